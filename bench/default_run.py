"""The real default command, timed: `python -m nas.search --space inception_to_xception`.

Runs the search exactly as a user would (default dataset, budget, sampler, pruning; one
process) into a fresh SQLite file, for `--trials` trials or until `--minutes` have passed,
whichever comes first; a time-boxed run is stopped with Ctrl-C (the search's own clean stop)
and the time for all the trials is extrapolated from the measured rate. Writes the wall time,
trials per hour, per-trial seconds by kind and the resulting Pareto front.

    python bench/default_run.py [--trials 200] [--minutes 60] [--device auto]
"""

from __future__ import annotations

import collections
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from bench._machine import RESULTS, bench_parser, invocation, machine, ran_on, write_results  # noqa: E402
from bench._search_args import search_argv, search_command  # noqa: E402
from nas.pareto import hypervolume, pareto_indices  # noqa: E402
from nas.record import (  # noqa: E402
    TrialRecord,
    counts_toward_target,
    is_skipped,
    trial_accuracy,
    trial_macs,
)

SPACE = "inception_to_xception"


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=60.0, help="stop the run after this")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", default="default_run_cpu", help="results file name")
    parser.add_argument("--keep", default=None, help="copy the study's SQLite file here")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/studies.db"
        command = search_command(
            space=SPACE, trials=args.trials, storage=storage, device=args.device, workers=None
        )
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, preexec_fn=_hear_ctrl_c
        )
        stopped = False
        try:
            process.wait(timeout=args.minutes * 60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)  # the search fails the running trial and stops
            stopped = True
            process.wait(timeout=300)
        wall = time.perf_counter() - start
        out = process.stdout.read()
        if process.returncode not in (0, 130):
            raise SystemExit(f"the search exited with {process.returncode}")
        study = optuna.load_study(study_name=f"{SPACE}-fashion_mnist", storage=storage)
        result = summarize(study, wall, args, stopped)
        if args.keep:
            shutil.copyfile(f"{folder}/studies.db", args.keep)
    result["search_output_tail"] = out.strip().splitlines()[-30:]
    write_results(args.name, result, markdown(result), out=args.out)


def _hear_ctrl_c() -> None:
    # A benchmark started in the background (nohup, `&` in a script) inherits an ignored SIGINT,
    # and Python then never raises KeyboardInterrupt: the search would run past --minutes.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def summarize(study: optuna.Study, wall: float, args, stopped: bool) -> dict:
    device = None if args.device == "auto" else args.device
    user_settings = {"space": SPACE, "trials": args.trials, "device": device, "workers": None}
    trials = sorted(study.trials, key=lambda t: t.number)
    records = {t.number: TrialRecord.from_trial(t) for t in trials}

    def record(trial) -> TrialRecord:
        return records[trial.number]

    counted = [t for t in trials if counts_toward_target(t)]
    trained = [t for t in counted if record(t).duplicate_of is None]
    seconds = [t.duration.total_seconds() for t in trained if t.duration is not None]
    first = min(t.datetime_start for t in trials if t.datetime_start is not None)
    last = max(t.datetime_complete for t in counted)
    trial_span = (last - first).total_seconds()
    rate = len(counted) / trial_span * 3600
    setup = wall - trial_span if not stopped else None
    complete = [t for t in counted if t.state == TrialState.COMPLETE]
    points = [(trial_accuracy(t), trial_macs(t)) for t in complete]
    front = [complete[i] for i in pareto_indices(points)]
    return {
        # As a user would type it: the storage is a temporary file, the device when not auto.
        "command": shlex.join(["python", "-m", "nas.search", *search_argv(**user_settings)]),
        "benchmark": invocation(__file__),
        "machine": machine(),
        "budget": study.user_attrs.get("budget"),
        "device": study.user_attrs.get("device") or record(trained[0]).device,
        "target_trials": args.trials,
        "finished_trials": len(counted),
        "stopped_after_minutes": args.minutes if stopped else None,
        "wall_s": round(wall, 1),
        "trial_span_s": round(trial_span, 1),
        "setup_s": None if setup is None else round(setup, 1),
        "trials_per_hour": round(rate, 1),
        "minutes_for_target": round(args.trials / rate * 60, 1),
        "workers": len({record(t).worker for t in trained if record(t).worker}),
        "pruned": sum(t.state == TrialState.PRUNED for t in counted),
        "pruned_at_epoch": dict(
            sorted(
                collections.Counter(
                    record(t).pruned_at_epoch
                    for t in counted
                    if t.state == TrialState.PRUNED and record(t).pruned_at_epoch
                ).items()
            )
        ),
        "complete": len(complete),
        "duplicates": sum(record(t).duplicate_of is not None for t in counted),
        "skipped_by_constraint": sum(is_skipped(t) for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "trial_seconds_median": round(statistics.median(seconds), 1),
        "trial_seconds_p90": round(sorted(seconds)[int(0.9 * (len(seconds) - 1))], 1),
        "landmark_seconds": {
            record(t).landmark: round(t.duration.total_seconds(), 1)
            for t in trained
            if record(t).landmark
        },
        "hypervolume": round(hypervolume(points), 4),
        "front": [
            {
                "trial": t.number,
                "val_acc": round(t.values[0], 4),
                "mmacs": round(record(t).macs / 1e6, 2),
                "params": record(t).params,
                "latency_ms": record(t).latency_ms,
                "decoupling": round(record(t).decoupling or 0.0, 2),
                "landmark": record(t).landmark or "",
                "arch": record(t).arch,
            }
            for t in sorted(front, key=lambda t: record(t).macs)
        ],
    }


def markdown(r: dict) -> list[str]:
    ran = (
        f"stopped after {r['stopped_after_minutes']:g} min with {r['finished_trials']} of "
        f"{r['target_trials']} trials; the time for all {r['target_trials']} is extrapolated "
        "from the measured rate"
        if r["stopped_after_minutes"]
        else f"ran all {r['finished_trials']} trials"
    )
    lines = [
        "# The default search, timed",
        "",
        f"{ran_on(r['command'], r['machine'], via=r['benchmark'])}; device {r['device']}, "
        f"budget {r['budget']} per trial; {ran}.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| wall time | {r['wall_s'] / 60:.1f} min |",
        f"| finished trials (complete + pruned) | {r['finished_trials']} |",
        f"| trials per hour | {r['trials_per_hour']:.0f} |",
        f"| minutes for {r['target_trials']} trials | **{r['minutes_for_target']:.0f}** |",
        f"| median / p90 seconds per trained trial | {r['trial_seconds_median']} / "
        f"{r['trial_seconds_p90']} |",
        f"| worker processes | {r['workers']} |",
        f"| complete / pruned / duplicates / failed | {r['complete']} / {r['pruned']} / "
        f"{r['duplicates']} / {r['failed']} |",
        "| pruned after epoch | "
        + ", ".join(f"{k}: {v}" for k, v in r["pruned_at_epoch"].items())
        + " |",
        f"| hypervolume | {r['hypervolume']:.4f} |",
        "",
        "Seconds per landmark trial: "
        + ", ".join(f"{k} {v}" for k, v in sorted(r["landmark_seconds"].items()))
        + ".",
        "",
        "## Pareto front (validation accuracy vs MACs)",
        "",
        "| trial | val acc | MMACs | params | latency ms | decoupling | landmark | arch |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for p in r["front"]:
        lines.append(
            f"| {p['trial']} | {p['val_acc']:.4f} | {p['mmacs']} | {p['params']:,} | "
            f"{p['latency_ms']} | {p['decoupling']} | {p['landmark']} | `{p['arch']}` |"
        )
    return lines


if __name__ == "__main__":
    main()
