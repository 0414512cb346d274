"""Search throughput with 1, 2, 4 workers on SQLite and PostgreSQL, and the storage's overhead.

Throughput: the real command, `python -m nas.search --workers W`, on a fresh storage each
time (a new SQLite file; a new PostgreSQL database), on digits with a tiny budget; by default
7 trials, which are the 7 landmarks, so every configuration trains the same networks (random
architectures differ from run to run and cost up to 10x more). Reported as
trials per hour of wall time (process start to exit) and of trial time (first trial start to
last trial end, leaving out process start-up). Configurations are interleaved within each
repeat, so that a busy neighbour on the machine slows all of them alike; figures are medians.
A last configuration runs W independent processes with no core pinning, to show what
`--workers` pinning saves when W exceeds the cores.

Storage overhead: the real trial loop (`nas._worker.run_trials`) and objective in-process, with
training, latency and cost counting replaced by instant stand-ins, so what remains is the
storage traffic of a trial (ask, parameter and attribute writes, the reads of the duplicate
check and the pruner's peers, heartbeats, tell) plus a random sampler; against Optuna's
in-memory storage as the floor.

    python bench/scale.py                       # -> bench/results/scale.{json,md}
    python bench/scale.py --repeats 1 --trials 6 --workers 1,2 --out /tmp/scale
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import invocation, machine, ran_on, write_results  # noqa: E402
from bench._search_args import search_command, search_parser, search_settings  # noqa: E402

DEFAULT_POSTGRES = "postgresql+psycopg://nas:nas@127.0.0.1:5432/nas_test"
STUDY = "scale-bench"


# --- storages --------------------------------------------------------------------------------


@contextmanager
def fresh_storage(kind: str, postgres_url: str):
    """A URL of a new, empty storage of `kind`, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/studies.db"
        return
    import psycopg

    admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"nas_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- throughput of the real command ----------------------------------------------------------


def throughput_command(url: str, args, workers: int, seed: int | None = None) -> list[str]:
    """The search of one throughput run (`seed`: the search's default unless given)."""
    settings = search_settings(args, workers=workers, seed=seed, pruner="none")
    return search_command(space="inception_to_xception", study=STUDY, storage=url, **settings)


def run_search(url: str, args, workers: int, independent: bool) -> dict:
    """One run on a fresh storage: wall and trial-time throughput."""
    env = {**os.environ, "NAS_NO_DOWNLOAD": "1"}
    start = time.perf_counter()
    if not independent:
        result = subprocess.run(
            throughput_command(url, args, workers),
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        failures = [result.stderr[-2000:]] if result.returncode else []
    else:
        # W separate processes (as on W machines), not pinned: each runs torch on all cores.
        first = subprocess.Popen(
            throughput_command(url, args, 1, seed=0),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        _wait_for_study(url, first)
        rest = [
            subprocess.Popen(
                throughput_command(url, args, 1, seed=i),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
            for i in range(1, workers)
        ]
        errors = [(p.wait(), p.stderr.read()) for p in [first, *rest]]
        failures = [err[-2000:] for code, err in errors if code]
    wall = time.perf_counter() - start
    if failures:
        raise SystemExit(f"search failed:\n{failures[0]}")
    return {"wall_s": wall, **_trial_time(url, args.trials)}


def _wait_for_study(url: str, process: subprocess.Popen) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    while process.poll() is None:
        try:
            if optuna.load_study(study_name=STUDY, storage=url).trials:
                return
        except Exception:
            pass
        time.sleep(0.2)


def _trial_time(url: str, trials: int) -> dict:
    import optuna

    from nas.record import counts_toward_target

    study = optuna.load_study(study_name=STUDY, storage=url)
    counted = [t for t in study.trials if counts_toward_target(t)]
    assert len(counted) == trials, f"{len(counted)} trials instead of {trials}"
    first = min(t.datetime_start for t in study.trials if t.datetime_start)
    last = max(t.datetime_complete for t in study.trials if t.datetime_complete)
    failed: dict[str, int] = {}
    for trial in study.trials:
        if trial.state.name == "FAIL":
            why = trial.user_attrs.get("failure", "?").split(":", 1)[0]
            failed[why] = failed.get(why, 0) + 1
    return {"trial_span_s": (last - first).total_seconds(), "failed": failed}


def throughput(args) -> list[dict]:
    configs = [(kind, w, False) for kind in args.storages for w in args.workers]
    if args.unpinned:
        configs.append(("sqlite", max(args.workers), True))
    runs: dict[tuple, list[dict]] = {config: [] for config in configs}
    for repeat in range(args.repeats):
        shift = repeat % len(configs)
        for kind, workers, independent in configs[shift:] + configs[:shift]:
            with fresh_storage(kind, args.postgres_url) as url:
                run = run_search(url, args, workers, independent)
            runs[(kind, workers, independent)].append(run)
            label = f"{kind} W={workers}{' independent' if independent else ''}"
            print(
                f"repeat {repeat + 1}: {label:<26} wall {run['wall_s']:6.1f} s, trials span "
                f"{run['trial_span_s']:6.1f} s",
                file=sys.stderr,
                flush=True,
            )
    rows = []
    for (kind, workers, independent), done in runs.items():
        wall = statistics.median(r["wall_s"] for r in done)
        span = statistics.median(r["trial_span_s"] for r in done)
        rows.append(
            {
                "storage": kind,
                "workers": workers,
                "mode": _mode(workers, independent),
                "repeats": len(done),
                "median_wall_s": round(wall, 2),
                "median_trial_span_s": round(span, 2),
                "trials_per_hour_wall": round(args.trials / wall * 3600),
                "trials_per_hour_trials": round(args.trials / span * 3600),
                "wall_s_each": [round(r["wall_s"], 2) for r in done],
                "failed_trials": _sum_counts(r["failed"] for r in done),
            }
        )
    return rows


def _mode(workers: int, independent: bool) -> str:
    if independent:
        return f"{workers} processes, unpinned"
    if workers == 1:
        return "one process, all cores"
    return "--workers, pinned"


def _sum_counts(counts) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return total


# --- storage overhead, in-process ------------------------------------------------------------


def storage_overhead(args) -> list[dict]:
    import optuna

    import nas._objective as objective_module
    import search_spaces
    from nas._objective import Objective
    from nas._worker import run_trials
    from nas.cost import Cost
    from nas.data import load_dataset
    from nas.pruning import DominancePruner
    from nas.storage import open_storage
    from nas.train import Budget, TrainResult

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", message=".*[Hh]eartbeat.*")  # "experimental"
    budget = Budget.parse(args.budget)

    def instant_train(model, data, budget, *, device, seed, on_epoch=None, **_):
        curve = [0.5 + 0.01 * epoch for epoch in range(budget.epochs)]
        for epoch, accuracy in enumerate(curve, 1):
            if on_epoch is not None:
                on_epoch(epoch, accuracy)
        return TrainResult(val_acc_curve=curve, train_loss_curve=[1.0] * len(curve))

    stand_ins = {
        "train": instant_train,
        "measure_latency": lambda *a, **k: {1: 0.5},
        "count_cost": lambda arch, *a, **k: Cost(hash(str(arch)) % 10**6 + 10**5, 10**5),
        "build_model": lambda *a, **k: None,
    }
    originals = {name: getattr(objective_module, name) for name in stand_ins}
    for name, function in stand_ins.items():
        setattr(objective_module, name, function)
    data = load_dataset("digits")
    rows = []
    try:
        for kind in ["memory", *args.storages]:
            samples = []
            for _ in range(args.repeats):
                backing = "sqlite" if kind == "memory" else kind  # memory: a folder, unused
                with fresh_storage(backing, args.postgres_url) as url:
                    storage = None if kind == "memory" else open_storage(url, heartbeat_s=10)
                    study = optuna.create_study(
                        storage=storage,
                        directions=["maximize", "minimize"],
                        sampler=optuna.samplers.RandomSampler(seed=0),
                    )
                    objective = Objective(
                        space=search_spaces.get("inception_to_xception"),
                        data=data,
                        budget=budget,
                        device="cpu",
                        seed=0,
                        objectives=("val_acc", "macs"),
                        pruner=DominancePruner(),
                    )
                    ends = [time.perf_counter()]

                    def trial_ended(*_, ends=ends):
                        ends.append(time.perf_counter())

                    run_trials(
                        study,
                        objective,
                        args.overhead_trials,
                        heartbeat_s=None if kind == "memory" else 10,
                        on_trial_end=trial_ended,
                    )
                    samples += [b - a for a, b in zip(ends, ends[1:])]
                    if storage is not None:
                        storage.engine.dispose()
            rows.append(
                {
                    "storage": kind,
                    "trials": len(samples),
                    "median_ms_per_trial": round(statistics.median(samples) * 1e3, 2),
                    "p90_ms_per_trial": round(statistics.quantiles(samples, n=10)[-1] * 1e3, 2),
                }
            )
            print(f"overhead {kind:<10} {rows[-1]['median_ms_per_trial']} ms", file=sys.stderr)
    finally:
        for name, function in originals.items():
            setattr(objective_module, name, function)
    floor = rows[0]["median_ms_per_trial"]
    for row in rows:
        row["storage_ms_per_trial"] = round(row["median_ms_per_trial"] - floor, 2)
    return rows


# --- report ----------------------------------------------------------------------------------


def markdown(result: dict) -> list[str]:
    info, args = result["machine"], result["settings"]
    lines = [
        "# Scaling: workers and storages",
        "",
        f"{ran_on(result['command'], info)}; torch {info['torch']}, {result['postgres']}; "
        f"load average {result['load_before']} before, {result['load_after']} after (the "
        "machine is shared: absolute figures move with the neighbours, compare within a table).",
        "",
        f"## Throughput: {args['trials']} trials (the landmarks) on "
        f"{args.get('dataset', 'digits')}, budget {args['budget']}, no pruning; "
        f"medians of {args['repeats']}",
        "",
        "| storage | workers | mode | trials/hour (wall) | trials/hour (trials) | wall s "
        "(each run) | failed trials (all runs) |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for row in result["throughput"]:
        each = ", ".join(f"{wall:.0f}" for wall in row["wall_s_each"])
        failed = ", ".join(f"{n} {why}" for why, n in row["failed_trials"].items()) or "none"
        lines.append(
            f"| {row['storage']} | {row['workers']} | {row['mode']} | "
            f"{row['trials_per_hour_wall']:,} | {row['trials_per_hour_trials']:,} | "
            f"{row['median_wall_s']:.1f} ({each}) | {failed} |"
        )
    lines += [
        "",
        "Wall: from starting the command to its exit (process start-up, data loading and the "
        "final report included). Trials: from the first trial's start to the last one's end. "
        "One process runs torch's threads on all cores: a neighbour busy on any core stalls "
        "it (the threads wait for each other at every step), so its figure swings most with "
        "the load. `--workers` binds each worker to its share of the cores (one thread on one "
        "core when workers >= cores). The unpinned row runs independent processes (as on "
        'separate machines, here sharing one), each with threads on all cores. "surplus" '
        "failures are workers giving way when they raced past the target together; they cost "
        "no training.",
        "",
        f"## Storage overhead per trial ({args['overhead_trials']} trials, no training)",
        "",
        "| storage | ms per trial (median) | p90 | storage's share (minus in-memory) |",
        "|---|---:|---:|---:|",
    ]
    for row in result["storage_overhead"]:
        lines.append(
            f"| {row['storage']} | {row['median_ms_per_trial']:.1f} | "
            f"{row['p90_ms_per_trial']:.1f} | {row['storage_ms_per_trial']:.1f} |"
        )
    lines += [
        "",
        "The real trial loop and objective with training, latency measurement and cost "
        "counting replaced by instant stand-ins: what remains is sampling (random) and the "
        "storage traffic of one trial (ask, parameters, user attributes, the reads of the "
        "duplicate check and the pruner, heartbeat, tell). In-memory is Optuna's own storage, "
        "the floor.",
    ]
    return lines


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _postgres_version(url: str) -> str:
    try:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as c:
            version = c.execute("SHOW server_version").fetchone()[0].split()[0]
        return f"PostgreSQL {version} on the same machine"
    except Exception as error:  # the report says so rather than failing
        return f"PostgreSQL unavailable ({type(error).__name__})"


def main() -> None:
    parser = search_parser(
        __doc__,
        trials=7,
        budget="4x600",
        helps={
            "trials": "7: the landmarks, the same work in every run",
            "dataset": "of the throughput runs",
        },
    )
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--storages", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-trials", type=int, default=40)
    parser.add_argument("--no-unpinned", dest="unpinned", action="store_false")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("NAS_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--name", default="scale", help="results file name (.json and .md)")
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    args.storages = args.storages.split(",")

    load_before = _load()
    result = {
        "command": invocation(__file__),
        "machine": machine(),
        "postgres": _postgres_version(args.postgres_url),
        "settings": {
            "trials": args.trials,
            "budget": args.budget,
            "dataset": args.dataset,
            "repeats": args.repeats,
            "overhead_trials": args.overhead_trials,
        },
        "load_before": load_before,
        "storage_overhead": storage_overhead(args),
        "throughput": throughput(args),
        "load_after": _load(),
    }
    write_results(args.name, result, markdown(result), args.out)


if __name__ == "__main__":
    main()
