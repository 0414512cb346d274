"""The real search for a fixed time: `python -m nas.search` as a user runs it, then Ctrl-C.

Runs the default command (Fashion-MNIST, the default space, budget and sampler, landmarks
first) with W workers on a fresh SQLite study for --seconds, interrupts it as Ctrl-C would,
and reads the study back: finished trials, when each finished, their training times. The
200-trial time is extrapolated from the steady rate between the first and the last finished
trial: first + 199 / rate. W comes from --workers, or from bench/concurrency.py's result
(the fewest processes within 5% of its best aggregate rate).

    python bench/gpu_search.py --device cuda --seconds 100 --workers-from concurrency_cuda.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import (  # noqa: E402
    RESULTS,
    chosen_device,
    device_opening,
    device_run,
    device_tag,
    device_title,
    write_results,
)
from bench.concurrency import best_count  # noqa: E402
from nas.record import counts_toward_target, read_attr  # noqa: E402
from nas.storage import StorageError, load_study  # noqa: E402

TARGET = 200  # the default --trials
STOP_GRACE_S = 30  # after the interrupt: workers record their trials and the summary prints


def choose_workers(args, device: str) -> tuple[int, str]:
    """The worker count and where it came from."""
    if args.workers:
        return args.workers, "--workers"
    try:
        record = json.loads(Path(args.workers_from).read_text())
        return best_count(record), f"best of {Path(args.workers_from).name}"
    except (OSError, TypeError, ValueError, KeyError) as error:
        fallback = 4 if device.startswith("cuda") else 2
        return fallback, f"fallback ({type(error).__name__} reading --workers-from)"


def run_search(
    command: list[str], seconds: float, finished=lambda: 0, at_least: int = 0
) -> tuple[int, float]:
    """Run `command` for `seconds`, then interrupt it; (exit status, launch time).

    With `at_least`, the run goes on (up to 3x `seconds`) until `finished()` counts that many
    finished trials: a rehearsal on a busy CPU still gets a rate to extrapolate.
    """
    launched = time.time()
    # A session of its own, so that the interrupt reaches only the starting process (which
    # passes it on to its workers) and a stuck search can be killed as a whole.
    process = subprocess.Popen(command, start_new_session=True)

    def kill_search(*_) -> None:  # bench/gpu.sh's time limit: leave no search running
        os.killpg(process.pid, signal.SIGKILL)
        sys.exit(143)

    signal.signal(signal.SIGTERM, kill_search)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        while finished() < at_least and time.time() < launched + 3 * seconds:
            if process.poll() is not None:
                break
            time.sleep(2.0)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return process.returncode, launched


def finished_trials(storage: str, study: str) -> int:
    """Trials of `study` that count toward its target so far (0 before it exists)."""
    try:  # read-only: never creates the file the search is about to make
        loaded = load_study(storage, study)
    except StorageError:  # not created yet
        return 0
    return sum(counts_toward_target(trial) for trial in loaded.get_trials(deepcopy=False))


def read_back(storage: str, study: str, launched: float) -> dict:
    """Finished trials, their finishing times from launch, and the extrapolated 200-trial time."""
    loaded = optuna.load_study(study_name=study, storage=storage)
    trials = loaded.get_trials(deepcopy=False)
    finished = [trial for trial in trials if counts_toward_target(trial)]
    ends = sorted(trial.datetime_complete.timestamp() - launched for trial in finished)
    train_s = [read_attr(trial, "train_seconds") for trial in finished]
    train_s = [value for value in train_s if value]  # duplicates and skipped trials train 0 s
    result = {
        "finished": len(finished),
        "pruned": sum(trial.state == optuna.trial.TrialState.PRUNED for trial in finished),
        "finish_times_s": [round(end, 2) for end in ends],
        "median_train_s": statistics.median(train_s) if train_s else None,
    }
    if len(ends) >= TARGET:
        result["measured_200_trials_s"] = ends[TARGET - 1]
    if len(ends) >= 2 and ends[-1] > ends[0]:
        rate = (len(ends) - 1) / (ends[-1] - ends[0])
        result["trials_per_minute"] = 60 * rate
        result["estimated_200_trials_s"] = ends[0] + (TARGET - 1) / rate
    return result


def report_lines(record: dict) -> list[str]:
    """The markdown of a record."""
    info, result = record["machine"], record.get("result", {})
    lines = [
        device_title("The default search", record),
        "",
        f"`{record['search']}` for up to {record['seconds']:.0f} s, then Ctrl-C; started by "
        f"{device_opening(record)}, {info['cores']} cores; {record['workers']} workers "
        f"({record['workers_from']}).",
        "",
        f"- finished trials: {result.get('finished', 0)} ({result.get('pruned', 0)} pruned), "
        f"exit status {record.get('exit_status')}",
    ]
    if result.get("median_train_s") is not None:
        median = result["median_train_s"]
        lines.append(f"- median training time of a trained trial: {median:.1f} s")
    goal = " (goal on a GPU: under 10)" if record["device"].startswith("cuda") else ""
    if "measured_200_trials_s" in result:
        lines.append(
            f"- 200 trials: {result['measured_200_trials_s'] / 60:.1f} minutes, measured{goal}"
        )
    elif "trials_per_minute" in result:
        estimate = result["estimated_200_trials_s"]
        lines += [
            f"- steady rate: {result['trials_per_minute']:.1f} trials/minute (first to last "
            f"finished trial, {result['finished']} trials)",
            f"- 200 trials: about {estimate / 60:.1f} minutes, extrapolated{goal}",
        ]
    else:
        lines.append("- too few finished trials to extrapolate the 200-trial time")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=100.0, help="how long the search runs")
    parser.add_argument("--workers", type=int, default=None, help="worker processes")
    parser.add_argument("--workers-from", default=None, help="bench/concurrency.py's JSON")
    parser.add_argument("--quick", action="store_true", help="tiny budget: checks the logic")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON and markdown")
    args = parser.parse_args(argv)
    device = chosen_device(parser, args.device)
    workers, workers_from = choose_workers(args, device)
    folder = tempfile.mkdtemp(prefix="nas-gpu-search-")
    storage = f"sqlite:///{folder}/studies.db"
    search = ["-m", "nas.search", "--device", device, "--workers", str(workers)]
    if args.quick:
        search += ["--budget", "1x512", "--trials", "40"]
        args.seconds = min(args.seconds, 20.0)
    command = [sys.executable, *search, "--storage", storage, "--study", "gpu"]
    print("running", " ".join(command), f"for {args.seconds:.0f} s", flush=True)
    at_least = 2 if args.quick else 0
    status, launched = run_search(
        command, args.seconds, partial(finished_trials, storage, "gpu"), at_least
    )
    record = {
        **device_run(__file__, argv, device),
        "search": "python " + " ".join(search),
        "seconds": args.seconds,
        "workers": workers,
        "workers_from": workers_from,
        "exit_status": status,
        "result": read_back(storage, "gpu", launched),
    }
    shutil.rmtree(folder, ignore_errors=True)
    write_results(f"search_{device_tag(device)}", record, report_lines(record), args.out)
    # 0: reached its trials; 130: interrupted at the time limit, as planned.
    if status not in (0, 130) or not record["result"]["finished"]:
        print(f"error: the search exited {status} with {record['result']['finished']} trials")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
