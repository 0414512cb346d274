"""What the search shows on a terminal (a live bar), in logs and pipes (plain lines), and its ETA.

The end-to-end checks run the real command: inside a pseudo-terminal, reading what it draws
from the master side, and with pipes.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from nas._report import WIDTH, EpochLines, Progress, eta_seconds
from tests.search_helpers import load

ROOT = Path(__file__).parent.parent
# Three trials of four short epochs on digits: an epoch takes a second or two, so the bar of a
# two-worker run (read from the storage every 2 s) catches trials between epochs.
COMMAND = ["--dataset", "digits", "--budget", "4x300", "--trials", "3", "--storage"]
STORAGE = "sqlite:///s.db"  # relative to the run's folder: lines hold the URL
BAR = re.compile(r"\r\[(\d+)/3\] +(\d+)%\|[^|\r\n]*\| ")  # tqdm's redraw: \r, count, percent, bar
PLAIN = re.compile(r"\[(\d+)/3\] \d+:\d\d:\d\d eta (\?|\d+:\d\d:\d\d) \| front \d+ \| HV ")


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "NAS_NO_DOWNLOAD": "1"}


def _command(workers: int) -> list[str]:
    return [sys.executable, "-m", "nas.search", *COMMAND, STORAGE, "--workers", str(workers)]


def run_in_terminal(folder: Path, workers: int, columns: int, timeout: float = 600):
    """Run the search with a pseudo-terminal `columns` wide as its stdin, stdout and stderr;
    (exit status, everything it wrote)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        _command(workers), stdin=slave, stdout=slave, stderr=slave, env=_env(), cwd=folder
    )
    os.close(slave)
    written = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                break
            if not chunk:
                break
            written += chunk
        else:
            process.kill()
            pytest.fail(f"the search ran past {timeout} s: {written.decode()[-2000:]}")
    finally:
        os.close(master)
    return process.wait(timeout=60), written.decode()


def run_in_pipes(folder: Path, workers: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(workers), capture_output=True, text=True, timeout=600, env=_env(), cwd=folder
    )


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_terminal_gets_a_live_bar_that_moves_with_each_epoch(tmp_path, workers):
    columns = 120 if workers == 1 else 80  # wider than the bar may be, and narrower
    status, written = run_in_terminal(tmp_path, workers, columns)
    assert status == 0, written[-3000:]
    draws = BAR.findall(written)
    assert len(draws) >= 3, written[-3000:]
    assert draws[-1] == ("3", "100")  # it ends full, with all three trials done
    if workers == 1:
        # Redrawn at every epoch by the trial itself: a draw whose percentage is past what the
        # finished trials alone make, naming the epoch. With 2 workers the 2-s poll of stored
        # curves may see no trial mid-way on a fast machine (trials of a second or two);
        # test_the_bar_moves_with_the_stored_curves_of_running_trials checks that path.
        assert any(int(percent) > 100 * int(done) // 3 for done, percent in draws), draws
        assert re.search(r"epoch [1-4]/4", written), written[-3000:]
    # Each redraw fits the terminal, and WIDTH where the terminal is wider.
    redraws = [part for part in re.split(r"[\r\n]", written) if re.match(r"\[\d/3\] ", part)]
    assert redraws and all(len(part) <= min(columns, WIDTH) for part in redraws)
    # The bar is left as it ended, and the summary starts on a line of its own below it.
    assert re.search(r"\| done *\r?\n(\r?\n)+study 'inception_to_xception", written)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_pipes_get_plain_lines_that_fit_100_columns(tmp_path, workers):
    result = run_in_pipes(tmp_path, workers)
    assert result.returncode == 0, result.stderr
    for output in (result.stdout, result.stderr):
        assert "\r" not in output and "\x1b" not in output
    lines = [*result.stdout.splitlines(), *result.stderr.splitlines()]
    too_long = [line for line in lines if len(line) > WIDTH]
    assert not too_long, too_long
    # One line per finished trial, also when the starting process polls its workers.
    progress = [PLAIN.match(line) for line in result.stderr.splitlines()]
    done = [int(match[1]) for match in progress if match]
    assert done[-1] == 3 and done == sorted(set(done)), result.stderr
    # The front table holds each front trial's whole architecture string, on the lines below
    # its row, broken after the dashes between stages.
    study = load(STORAGE.replace("///", f"///{tmp_path}/"))
    table = result.stdout.split("(arch below)\n")[1].split("\n\n")[0].splitlines()
    rows = {int(line.split()[0]): i for i, line in enumerate(table) if line[:6].strip()}
    front = {t.number for t in study.best_trials}
    assert set(rows) == front
    for number, row in rows.items():
        below = []
        for line in table[row + 1 :]:
            if line[:6].strip():
                break
            below.append(line.strip())
        assert "".join(below) == study.trials[number].user_attrs["arch"]
        assert all(line.endswith("-") for line in below[:-1])


# --- the ETA ----------------------------------------------------------------------------------


def test_eta_is_the_median_trial_duration_shared_among_the_workers():
    assert eta_seconds([10.0, 30.0, 20.0], remaining=6, workers=1) == 120.0
    assert eta_seconds([10.0, 30.0, 20.0], remaining=6, workers=3) == 40.0
    assert eta_seconds([], remaining=6, workers=1) is None  # nothing finished in this run yet
    assert eta_seconds([], remaining=0, workers=1) == 0.0


def test_eta_holds_steady_where_elapsed_per_trial_jumps():
    # Three typical trials, then a slow one (a wide landmark, a machine busy for a while).
    durations = [20.0, 22.0, 18.0, 240.0, 20.0, 21.0]
    target = 50
    steps = range(3, len(durations) + 1)  # the estimates after the 3rd, 4th, ... trial

    def naive(finished: list[float]) -> float:  # the old estimate: elapsed / finished
        return sum(finished) / len(finished) * (target - len(finished))

    naive_etas = [naive(durations[:k]) for k in steps]
    etas = [eta_seconds(durations[:k], target - k, 1) for k in steps]
    assert naive_etas[1] > 3.5 * naive_etas[0]  # the old one more than triples at the slow trial
    # The median's moves by less than a tenth at every step, the slow trial's included.
    assert all(0.9 < after / before < 1.1 for before, after in zip(etas, etas[1:]))
    assert etas == [20.0 * 47, 21.0 * 46, 20.0 * 45, 20.5 * 44]


def _finished_trial(number: int, start: datetime, seconds: float) -> FrozenTrial:
    return FrozenTrial(
        number=number,
        state=TrialState.COMPLETE,
        value=None,
        values=[0.5 + number / 100, 1e6],
        datetime_start=start,
        datetime_complete=start + timedelta(seconds=seconds),
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs={"macs": 1_000_000 * (number + 1)},
        system_attrs={},
        intermediate_values={},
        trial_id=number,
    )


def test_progress_times_the_trials_of_this_run_from_the_storage():
    study = optuna.create_study(directions=["maximize", "minimize"])
    now = datetime.now()
    study.add_trial(_finished_trial(0, now, 500.0))  # an earlier run's: not this run's pace
    progress = Progress(study, 10, workers=2, epochs=4, live=False, stream=io.StringIO())
    for number, seconds in ((1, 30.0), (2, 10.0), (3, 12.0)):
        study.add_trial(_finished_trial(number, now, seconds))
    running = study.ask()
    running.set_user_attr("val_acc_curve", [0.2, 0.4])
    snapshot = progress.read()
    assert snapshot.done == 4
    assert snapshot.eta_s == pytest.approx(6 * 12.0 / 2)
    assert snapshot.running == {running.number: 2}


def test_the_bar_moves_with_each_epoch_of_a_trial_in_this_process():
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_finished_trial(0, datetime.now(), 5.0))
    stream = io.StringIO()
    progress = Progress(study, 4, epochs=2, stream=stream, live=True)
    progress.report()
    progress.epoch_done(1, 1)  # one of trial 1's two epochs: 1.5 of 4 trials
    progress.note("note: a line of its own")
    progress.close()
    drawn = stream.getvalue()
    assert "[1/4]  25%|" in drawn and "[1/4]  38%|" in drawn
    assert "trial 1 epoch 1/2" in drawn and "note: a line of its own\n" in drawn
    assert drawn.endswith("\n")


def test_plain_progress_prints_a_line_only_when_a_trial_finished():
    study = optuna.create_study(directions=["maximize", "minimize"])
    stream = io.StringIO()
    progress = Progress(study, 4, stream=stream, live=False)
    study.add_trial(_finished_trial(0, datetime.now(), 5.0))
    progress.report()
    progress.epoch_done(1, 1)  # no lines for epochs outside a terminal
    progress.report()  # nothing finished since: no repeat (a poll of the workers)
    study.add_trial(_finished_trial(1, datetime.now(), 7.0))
    progress.report()
    lines = stream.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["[1/4]", "[2/4]"]
    assert "eta 0:00:15 |" in lines[0] and "eta 0:00:12 |" in lines[1]  # 3 x 5 s; 2 x 6 s


def test_the_bar_moves_with_the_stored_curves_of_running_trials(monkeypatch):
    # With --workers the trials train in other processes: the starting process's poll reads
    # the curves they store after each epoch.
    monkeypatch.setenv("COLUMNS", str(WIDTH))  # what a stream that is no terminal falls back to
    study = optuna.create_study(directions=["maximize", "minimize"])
    stream = io.StringIO()
    progress = Progress(study, 4, workers=2, epochs=4, stream=stream, live=True)
    first, second = study.ask(), study.ask()
    progress.report()
    first.set_user_attr("val_acc_curve", [0.3, 0.5])
    second.set_user_attr("val_acc_curve", [0.4])
    progress.report()  # (2 + 1) of 4 epochs of one trial each: 0.75 of 4 trials
    progress.close()
    drawn = stream.getvalue()
    assert "[0/4]   0%|" in drawn and "[0/4]  19%|" in drawn
    assert "2 running, epochs 2/4 1/4" in drawn


def test_a_long_training_prints_each_epoch_with_its_eta():
    now = [100.0]
    out = io.StringIO()
    lines = EpochLines(4, stream=out, clock=lambda: now[0])
    for seconds, accuracy in ((30, 0.8512), (40, 0.87), (20, 0.9)):
        now[0] += seconds
        lines(len(out.getvalue().splitlines()) + 1, accuracy)
    assert out.getvalue().splitlines() == [
        "epoch 1/4: test accuracy 0.8512, 0:00:30 elapsed, ETA 0:01:30",
        "epoch 2/4: test accuracy 0.8700, 0:01:10 elapsed, ETA 0:01:10",
        "epoch 3/4: test accuracy 0.9000, 0:01:30 elapsed, ETA 0:00:30",
    ]
