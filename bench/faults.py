"""Faults injected into real searches, and bad inputs given to every command: what was lost.

Part 1 kills (SIGKILL, the process that reaches the phase) or interrupts (SIGINT to the
command and its workers, as a terminal's Ctrl-C) `python -m nas.search` at each named phase of
`nas._faults.PHASES`, with 1 and 2 workers, then reruns the same command without the
fault and inspects the study it leaves: the finished trials the command asked for, each
landmark finished exactly once, no trial left running, the storage readable by the dashboard.
Part 2 gives each command bad input in an empty folder and checks the answer is one line, exit
status 2, no traceback, and that the folder is left as it was.

    python bench/faults.py [--trials 9] [--budget 1x300]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import bench_parser, invocation, machine, ran_on, write_results  # noqa: E402
from nas._faults import FAULT_ENV, PHASES  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SPACE = "inception_to_xception"
STUDY = f"{SPACE}-digits"

# Bad input for each command: (command words after `python -m`, what is wrong). Each must be
# refused in one line with exit status 2, leaving the folder as it was.
BAD_INPUTS = [
    (["nas.search", "--dataset", "digits", "--seed", "-1"], "negative seed"),
    (["nas.search", "--dataset", "digits", "--seed", "4294967296"], "seed past 2**32"),
    (["nas.search", "--dataset", "digits", "--max-mmacs", "nan"], "NaN constraint"),
    (["nas.search", "--dataset", "digits", "--max-mmacs", "0.0001"], "constraint nothing fits"),
    (["nas.search", "--dataset", "digits", "--heartbeat", "1000000000000"], "huge heartbeat"),
    (["nas.search", "--dataset", "digits", "--trials", "0"], "zero trials"),
    (["nas.search", "--dataset", "digits", "--bogus"], "unknown option"),
    (["nas.search", "--dataset", "nope"], "unknown dataset"),
    (["nas.search", "--space", "nope"], "unknown space"),
    (["nas.search", "--dataset", "digits", "--storage", "sqlite:///"], "SQLite URL without file"),
    (["nas.search", "--dataset", "digits", "--storage", "sqlite:///:memory:", "--workers", "2"],
     "in-memory storage for 2 workers"),
    (["nas.search", "--dataset", "digits", "--storage", "mysql://x@127.0.0.1:1/x"],
     "storage driver not installed"),
    (["nas.search", "--dataset", "digits", "--storage", "sqlite:///no/such/folder/s.db"],
     "storage folder missing"),
    (["dashboard", "--port", "70000"], "port out of range"),
    (["dashboard", "--poll", "nan"], "NaN poll interval"),
    (["dashboard", "--poll", "inf"], "infinite poll interval"),
    (["dashboard", "--bogus"], "unknown option"),
    (["dashboard", "--storage", "not-a-url"], "not a storage URL"),
    (["dashboard", "--storage", "postgresql+psycopg://nas:S3cret@127.0.0.1:1/nas"],
     "server unreachable"),
    (["nas.export", "--study", "x", "--pick", "knee", "--bogus"], "unknown option"),
    (["nas.export", "--storage", "sqlite:///missing.db", "--study", "x", "--pick", "knee"],
     "storage missing"),
    (["nas.export", "--storage", "postgresql+psycopg://nas:S3cret@127.0.0.1:1/nas",
      "--study", "x", "--pick", "knee"], "server unreachable"),
    (["nas.inspect", "stem16-c32_d99999999999999999999_s1_k3_g1_pnone_f0_a0_r0"],
     "absurd depth"),
    (["nas.inspect", "stem1000000007-c1000000007_d1_s1_k3_g1000000006_pnone_f0_a0_r0"],
     "absurd channels and groups"),
    (["nas.fidelity", "--space", "nope"], "unknown space"),
    (["nas.fidelity", "--archs", "-5"], "negative architecture count"),
    (["nas.fidelity", "--out", "nodir/f.json"], "output folder missing"),
]  # fmt: skip


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--trials", type=int, default=9, help="finished trials each study holds")
    parser.add_argument("--budget", default="1x300", help="training per trial, EPOCHSxSIZE")
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args()

    faults = []
    for workers in (1, 2):
        for phase in PHASES:
            for how in ("KILL", "INT"):
                row = inject(phase, how, workers, args.trials, args.budget)
                print(row, flush=True)
                faults.append(row)
    inputs = []
    for words, what in BAD_INPUTS:
        row = refuse(words, what)
        print(row, flush=True)
        inputs.append(row)

    info = machine()
    result = {
        "command": invocation(__file__),
        "machine": info,
        "trials": args.trials,
        "budget": args.budget,
        "faults": faults,
        "bad_inputs": inputs,
    }
    write_results("faults", result, report(result), **({"out": args.out} if args.out else {}))


def _env(fault: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NAS_NO_DOWNLOAD": "1"}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return env


def _search(storage: str, workers: int, trials: int, budget: str, fault: str | None):
    command = [sys.executable, "-m", "nas.search", "--space", SPACE, "--dataset", "digits",
               "--budget", budget, "--trials", str(trials), "--workers", str(workers),
               "--storage", storage, "--seed", "5"]  # fmt: skip
    return subprocess.run(
        command, env=_env(fault), capture_output=True, text=True, timeout=900,
        start_new_session=True,  # an :INTGROUP fault interrupts this search's group only
    )  # fmt: skip


def inject(phase: str, how: str, workers: int, trials: int, budget: str) -> dict:
    """Stop a search at `phase`, rerun it, and say what the study lost."""
    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/s.db"
        start = time.perf_counter()
        # A terminal's Ctrl-C reaches the command and the workers it started: the group.
        ending = {"KILL": "", "INT": ":INT" if workers == 1 else ":INTGROUP"}[how]
        faulted = _search(storage, workers, trials, budget, phase + ending)
        rerun = _search(storage, workers, trials, budget, None)
        seconds = time.perf_counter() - start
        lost = inspect_study(storage, trials) if rerun.returncode == 0 else [_last_line(rerun)]
    return {
        "phase": phase,
        "fault": how,
        "workers": workers,
        "faulted_exit": faulted.returncode,
        "rerun_exit": rerun.returncode,
        "lost": lost,
        "seconds": round(seconds, 1),
    }


def inspect_study(storage: str, trials: int) -> list[str]:
    """What the study misses after the rerun: an empty list when nothing was lost."""
    import optuna
    from optuna.trial import TrialState

    import search_spaces
    from nas.record import counts_toward_target
    from nas.storage import OK, check_storage
    from search_spaces import LANDMARKS

    lost = []
    if check_storage(storage).kind != OK:
        return [f"storage not readable: {check_storage(storage).message}"]
    study = optuna.load_study(study_name=STUDY, storage=storage)
    counted = [t for t in study.trials if counts_toward_target(t)]
    if len(counted) != trials:
        lost.append(f"{len(counted)} of {trials} trials counted")
    finished = [t.user_attrs.get("landmark") for t in counted if t.user_attrs.get("landmark")]
    space = search_spaces.get(SPACE)
    reached = [name for name, arch in LANDMARKS.items() if space.params_for(arch) is not None]
    for name in reached[:trials]:
        if finished.count(name) != 1:
            lost.append(f"landmark {name} finished {finished.count(name)} times")
    running = [t.number for t in study.trials if t.state == TrialState.RUNNING]
    if running:
        lost.append(f"trials {running} left running")
    if not study.user_attrs.get("space"):
        lost.append("study settings missing")
    return lost


def refuse(words: list[str], what: str) -> dict:
    """Run one bad command in an empty folder; how it answered and what it left there."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            done = subprocess.run([sys.executable, "-m", *words], cwd=folder, env=_env(),
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
        except subprocess.TimeoutExpired as late:
            # Not refused at all (a dashboard serving, a search training): a failure to report.
            done = subprocess.CompletedProcess(late.cmd, "timeout", "", str(late.stderr or ""))
        left = sorted(p.name for p in Path(folder).iterdir())
    lines = done.stderr.strip().splitlines()
    return {
        "command": "python -m " + " ".join(words),
        "wrong": what,
        "exit": done.returncode,
        "lines": len(lines),
        "traceback": "Traceback" in done.stderr,
        "message": lines[-1] if lines else "",
        "left_behind": left,
        "ok": done.returncode == 2 and len(lines) == 1 and not left,
    }


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    return f"rerun exit {done.returncode}: {lines[-1] if lines else ''}"


def report(result: dict) -> list[str]:
    faults, inputs = result["faults"], result["bad_inputs"]
    clean = sum(not row["lost"] for row in faults)
    refused = sum(row["ok"] for row in inputs)
    lines = [
        "# Faults injected and bad inputs: what was lost",
        "",
        ran_on(result["command"], result["machine"]) + ".",
        "",
        f"Each search: digits, `--budget {result['budget']}`, `--trials {result['trials']}`;"
        " stopped at the phase, then the same command rerun without the fault.",
        f"**{clean} of {len(faults)} faults lost nothing**; "
        f"**{refused} of {len(inputs)} bad inputs** were refused in one line with exit 2 and"
        " nothing left behind.",
        "",
        "| phase | fault | workers | exit when stopped | rerun exit | lost |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in faults:
        lost = "; ".join(row["lost"]) or "nothing"
        lines.append(f"| `{row['phase']}` | {row['fault']} | {row['workers']} | "
                     f"{row['faulted_exit']} | {row['rerun_exit']} | {lost} |")  # fmt: skip
    lines += ["", "| command | what is wrong | exit | lines | left behind | message |",
              "|---|---|---:|---:|---|---|"]  # fmt: skip
    for row in inputs:
        message = row["message"].replace("|", "\\|")
        left = ", ".join(row["left_behind"]) or "nothing"
        lines.append(f"| `{row['command']}` | {row['wrong']} | {row['exit']} | {row['lines']} "
                     f"| {left} | {message} |")  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
