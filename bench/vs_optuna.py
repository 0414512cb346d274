"""Our search against a plain Optuna script, for the same wall time on the same machine.

For each seed, runs the default `python -m nas.search` (its default workers, pruner, sampler,
duplicate reuse and landmarks) and `bench/plain_optuna.py` (the same space, data, budget and
recipe, as Optuna's multi-objective tutorial writes a search) for --minutes each, one after
the other, never side by side, each stopped as Ctrl-C would. Each finished run is appended to
--runs at once, so a rerun resumes. Reports the trials per hour and the hypervolume of the
complete trials at each checkpoint, counted from each process's start (set-up included).

    python bench/vs_optuna.py [--minutes 20] [--seeds 2] [--checkpoints 5 10 20]

The sampler decision runs our search with each of its samplers, at the default command's
--trials (NSGA-II's population is an eighth of it) and the goal's wall time:

    python bench/vs_optuna.py --tools ours ours_tpe ours_random --trials 200 --seeds 3 \
        --minutes 40 --checkpoints 10 20 40 --name samplers \
        --runs bench/results/samplers_runs.jsonl
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from bench._machine import (  # noqa: E402
    RESULTS,
    bench_parser,
    invocation,
    machine,
    ran_on,
    write_results,  # noqa: E402
)
from bench._search_args import search_command  # noqa: E402
from nas._workers import nsga2_population  # noqa: E402
from nas.pareto import hypervolume  # noqa: E402
from nas.record import counts_toward_target, trial_accuracy, trial_macs  # noqa: E402

SPACE = "inception_to_xception"
# Our search with its defaults, with the defaults it had before (one process, the dominance
# pruner), with its other samplers (TPE: multivariate, constant liar), and the plain script.
OURS = {
    "ours": {"workers": None},
    "ours_earlier": {"workers": 1, "pruner": "dominance"},
    "ours_tpe": {"workers": None, "sampler": "tpe"},
    "ours_random": {"workers": None, "sampler": "random"},
}
TOOLS = (*OURS, "plain_optuna")
# The --trials of the runs before the option existed: NSGA-II's population at its cap of 50.
EARLIER_TRIALS = 100_000


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--minutes", type=float, default=20.0, help="wall time of each run")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--checkpoints", type=float, nargs="+", default=[5, 10, 20])
    parser.add_argument(
        "--trials",
        type=int,
        default=EARLIER_TRIALS,
        help="our search's --trials (it stops on time first; NSGA-II's population is trials/8, "
        "10 to 50)",
    )
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--runs", default=str(RESULTS / "vs_optuna_runs.jsonl"))
    parser.add_argument("--work", default="/tmp/vs_optuna", help="folder for the studies")
    parser.add_argument("--name", default="vs_optuna", help="results file name")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the results")
    args = parser.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runs_file = Path(args.runs)
    done = _read_runs(runs_file, args)
    for seed in range(args.seeds):
        for tool in args.tools:
            if (tool, seed) in done:
                continue
            print(f"{tool} seed {seed}: {args.minutes:g} min", file=sys.stderr, flush=True)
            run = _run(tool, seed, args, work)
            with runs_file.open("a") as log:
                log.write(json.dumps(run) + "\n")
            done[(tool, seed)] = run
    runs = [
        done[key]
        for seed in range(args.seeds)
        for tool in args.tools
        if (key := (tool, seed)) in done
    ]
    result = {
        "benchmark": invocation(__file__),
        "machine": machine(),
        "minutes": args.minutes,
        "dataset": args.dataset,
        "trials": args.trials,
        "checkpoints_min": args.checkpoints,
        "runs": runs,
        "summary": _summary(runs, args.checkpoints),
    }
    write_results(args.name, result, markdown(result), out=args.out)


def _read_runs(path: Path, args) -> dict:
    """The finished runs of the same settings in --runs, by (tool, seed)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            run = json.loads(line)
            same = (run["minutes"], run["dataset"], run.get("trials", EARLIER_TRIALS))
            if same == (args.minutes, args.dataset, args.trials):
                done[(run["tool"], run["seed"])] = run
    return done


def _run(tool: str, seed: int, args, work: Path) -> dict:
    storage = f"sqlite:///{work}/{tool}-{seed}-{args.minutes:g}min.db"
    Path(storage.removeprefix("sqlite:///")).unlink(missing_ok=True)
    study_name = f"{tool}-{seed}"
    if tool in OURS:
        command = search_command(
            space=SPACE,
            dataset=args.dataset,
            trials=args.trials,
            storage=storage,
            study=study_name,
            seed=seed,
            **OURS[tool],
        )
    else:
        plain = str(Path(__file__).parent / "plain_optuna.py")
        command = [sys.executable, plain, "--storage", storage, "--study", study_name]
        command += ["--seed", str(seed), "--dataset", args.dataset]
    # A file, not a pipe: a full pipe would stall the run that writes to it.
    output = work / f"{tool}-{seed}.log"
    start_wall = time.time()
    with output.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_hear_ctrl_c
        )
        try:
            process.wait(timeout=args.minutes * 60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)  # as Ctrl-C: both stop their running trials
            process.wait(timeout=300)
    if process.returncode not in (0, 130):
        raise SystemExit(f"{tool} exited with {process.returncode}: see {output}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    return {
        "tool": tool,
        "seed": seed,
        "minutes": args.minutes,
        "dataset": args.dataset,
        "trials": args.trials,
        **_measure(study, start_wall, args),
    }


def _hear_ctrl_c() -> None:
    # A benchmark started in the background inherits an ignored SIGINT; the runs must hear it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _measure(study: optuna.Study, start_wall: float, args) -> dict:
    """Trials finished and hypervolume of the complete ones by each checkpoint."""
    trials = [t for t in study.trials if t.datetime_complete is not None]

    def minutes_in(trial) -> float:
        return (trial.datetime_complete.timestamp() - start_wall) / 60

    finished = sorted(
        (t for t in trials if counts_toward_target(t)), key=lambda t: t.datetime_complete
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # A run that reaches its --trials stops before its minutes are up: its rate is over the
    # time it ran, and when it got there is the figure a user waits for.
    reached = minutes_in(finished[args.trials - 1]) if len(finished) >= args.trials else None
    rate = len(finished) / args.minutes if reached is None else args.trials / reached
    by_checkpoint = {}
    for checkpoint in args.checkpoints:
        points = [
            (trial_accuracy(t), trial_macs(t)) for t in complete if minutes_in(t) <= checkpoint
        ]
        by_checkpoint[f"{checkpoint:g}"] = {
            "finished": sum(minutes_in(t) <= checkpoint for t in finished),
            "complete": len(points),
            "hypervolume": round(hypervolume(points), 4),
        }
    return {
        "finished": len(finished),
        "complete": len(complete),
        "trials_per_hour": round(rate * 60, 1),
        "minutes_to_target": None if reached is None else round(reached, 2),
        "checkpoints": by_checkpoint,
    }


def _summary(runs: list[dict], checkpoints: list[float]) -> dict:
    """Per tool: median trials per hour and, per checkpoint, the hypervolume of each seed."""
    summary = {}
    for tool in sorted({r["tool"] for r in runs}, key=TOOLS.index):
        mine = [r for r in runs if r["tool"] == tool]
        summary[tool] = {
            "trials_per_hour_median": statistics.median(r["trials_per_hour"] for r in mine),
            "hypervolume": {
                f"{c:g}": [r["checkpoints"][f"{c:g}"]["hypervolume"] for r in mine]
                for c in checkpoints
            },
        }
    return summary


def _verdict(ours: list[float], plain: list[float]) -> str:
    """Higher only when every seed of ours beats every seed of the other, over 2 seeds or more."""
    if min(len(ours), len(plain)) < 2:
        side = "ahead" if ours[0] > plain[0] else "behind" if ours[0] < plain[0] else "level"
        return f"{side} on one seed, which is not a finding"
    if min(ours) > max(plain):
        return "higher"
    if max(ours) < min(plain):
        return "lower"
    return "not distinguishable (the seeds' ranges overlap)"


def _minutes_text(minutes: float | None) -> str:
    return "not reached" if minutes is None else f"{minutes:.1f}"


def markdown(r: dict) -> list[str]:
    summary, seeds = r["summary"], sorted({run["seed"] for run in r["runs"]})
    trials = r.get("trials", EARLIER_TRIALS)
    against_plain = any(run["tool"] == "plain_optuna" for run in r["runs"])
    lines = [
        "# Our search against a plain Optuna script, same wall time"
        if against_plain
        else "# Our search with each sampler, same wall time",
        "",
        f"{ran_on(r['benchmark'], r['machine'])}. {r['minutes']:g} minutes per run on "
        f"{r['dataset']}, seeds {', '.join(map(str, seeds))}, one run after the other. Ours: "
        "the default `python -m nas.search` (workers auto, rung pruner, NSGA-II, duplicate "
        f"reuse, landmarks first) with `--trials {trials}` (NSGA-II's population "
        f"{nsga2_population(trials)}; each run stops on time or at its {trials} trials); "
        "ours_earlier: the same with its earlier defaults (`--workers 1 --pruner dominance`); "
        "ours_tpe and ours_random: the same with `--sampler tpe` (multivariate, constant liar) "
        "or `--sampler random`; plain: `bench/plain_optuna.py` (the same space, budget and "
        "recipe in a DataLoader loop, NSGA-II defaults (population 50), nothing else). "
        "Hypervolume of the complete trials, counted from each process's start.",
        "",
        f"| tool | seed | finished trials | complete | trials per hour | minutes to {trials} | "
        + " | ".join(f"HV at {c:g} min" for c in r["checkpoints_min"])
        + " |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(r["checkpoints_min"]),
    ]
    for run in r["runs"]:
        cells = [
            f"{run['checkpoints'][f'{c:g}']['hypervolume']:.4f}" for c in r["checkpoints_min"]
        ]
        lines.append(
            f"| {run['tool']} | {run['seed']} | {run['finished']} | {run['complete']} | "
            f"{run['trials_per_hour']:.0f} | {_minutes_text(run.get('minutes_to_target'))} | "
            + " | ".join(cells)
            + " |"
        )
    ours = summary.get("ours")
    for other in ("plain_optuna", *(tool for tool in OURS if tool != "ours")):
        theirs = summary.get(other)
        if ours is None or theirs is None:
            continue
        ratio = ours["trials_per_hour_median"] / theirs["trials_per_hour_median"]
        lines += [
            "",
            f"**ours against {other}**: median trials per hour "
            f"{ours['trials_per_hour_median']:.0f} against "
            f"{theirs['trials_per_hour_median']:.0f}, **{ratio:.2f}x** (ours counts the "
            "trials its pruner stopped, each trained up to a rung).",
            "",
        ]
        for c in r["checkpoints_min"]:
            key = f"{c:g}"
            mine, other_hv = ours["hypervolume"][key], theirs["hypervolume"][key]
            lines.append(
                f"- hypervolume at {key} min: {', '.join(f'{v:.4f}' for v in mine)} against "
                f"{', '.join(f'{v:.4f}' for v in other_hv)}: {_verdict(mine, other_hv)}"
            )
    return lines


if __name__ == "__main__":
    main()
