"""`python -m nas.search --space NAME --trials N`: the multi-objective architecture search.

Every trial lands in an Optuna storage (sqlite:///studies.db by default). Rerunning the same
command continues the study until it holds N finished trials; Ctrl-C stops cleanly (exit 130).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import warnings

from nas.storage import DEFAULT_STORAGE, open_storage, redact

EXIT_INTERRUPTED = 130
SAMPLERS = ("nsga2", "tpe", "random")
OBJECTIVES = {
    "acc,macs": ("val_acc", "macs"),
    "acc,macs,latency": ("val_acc", "macs", "latency_ms"),
}


def build_parser() -> argparse.ArgumentParser:
    from nas._cli import OneLineParser
    from nas.data import DATASETS

    parser = OneLineParser(
        prog="python -m nas.search",
        description="Search the spectrum from normal convolution to Xception: maximize "
        "validation accuracy, minimize MACs (multiply-accumulates).",
    )
    parser.add_argument("--space", default="inception_to_xception", help="search space name")
    parser.add_argument(
        "--trials",
        type=int,
        default=200,
        help="finished trials the study should hold (default 200)",
    )
    parser.add_argument("--dataset", default="fashion_mnist", help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="Optuna storage URL (default sqlite:///studies.db)",
    )
    parser.add_argument("--study", default=None, help="study name (default SPACE-DATASET)")
    parser.add_argument("--sampler", default="nsga2", help=f"one of {', '.join(SAMPLERS)}")
    parser.add_argument("--objectives", default="acc,macs", help="acc,macs or acc,macs,latency")
    parser.add_argument(
        "--budget",
        default="auto",
        help="auto, or EPOCHSxSIZE images per epoch (e.g. 3x10000, 6xfull)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    parser.add_argument(
        "--max-mmacs",
        type=float,
        default=None,
        help="skip, before training, architectures above this many million MACs",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="parallel worker processes on this machine (they share a GPU)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of sampler and training")
    parser.add_argument(
        "--heartbeat",
        type=_heartbeat_seconds,
        default=None,
        help="seconds between trial heartbeats (default 10; 0 turns them off): a trial "
        "without one for 4x as long is marked failed and retried by another worker; use the "
        "same value on every worker of a study",
    )
    parser.add_argument("--no-prune", action="store_true", help="train every trial to the end")
    parser.add_argument(
        "--no-landmarks", action="store_true", help="do not put the landmark architectures first"
    )
    parser.add_argument("--list-spaces", action="store_true", help="list search spaces and exit")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the space, its size and the landmarks' costs; train nothing",
    )
    # Internal: set on the processes that --workers starts.
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import optuna

    from nas._cli import fail

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats are "experimental" in Optuna and "meant for Study.optimize"; we drive them
    # ourselves around ask/tell (nas._worker), so those warnings say nothing to our users.
    warnings.filterwarnings("ignore", message=".*[Hh]eartbeat.*")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    try:
        return _run(args, argv)
    except ValueError as error:  # every refusal of bad input: one line, exit 2
        return fail(str(error))


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    import search_spaces
    from nas import data as data_module
    from nas._cli import budget_option
    from nas.train import DEFAULT_RECIPE, Budget, resolve_device

    if args.list_spaces:
        for name in search_spaces.names():
            space = search_spaces.get(name)
            print(f"{name:<24} {space.size():.3g} assignments  {space.description}")
        return 0
    space = search_spaces.get(args.space)
    if args.dataset not in data_module.DATASETS:
        raise ValueError(
            f"unknown dataset {args.dataset!r}: choose from {', '.join(data_module.DATASETS)}"
        )
    if args.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {args.sampler!r}: choose from {', '.join(SAMPLERS)}")
    if args.objectives not in OBJECTIVES:
        raise ValueError(f"unknown objectives {args.objectives!r}: use {' or '.join(OBJECTIVES)}")
    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.max_mmacs is not None and args.max_mmacs <= 0:
        raise ValueError(f"--max-mmacs must be positive, got {args.max_mmacs}")
    device = resolve_device(args.device)
    budget = budget_option(args.budget, device, args.dataset)
    if args.epochs is not None:
        budget = Budget(args.epochs, budget.train_size)
    if args.dry_run:
        print(_dry_run(space, args.dataset, budget, device))
        return 0

    data = data_module.load_dataset(args.dataset, args.data_dir, split_seed=0)
    heartbeat_s = 10 if args.heartbeat is None else (args.heartbeat or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna flags heartbeats as experimental
        storage = open_storage(args.storage, heartbeat_s=heartbeat_s)
    settings = {
        "space": space.name,
        "dataset": args.dataset,
        "objectives": list(OBJECTIVES[args.objectives]),
        "budget": str(budget),
        "batch_size": DEFAULT_RECIPE.batch_size_for(budget, len(data.train_x)),
        "device": device,
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "seed": args.seed,
        "sampler": args.sampler,
        # Stored in the study and in exported files: never with a database password.
        "command": "python -m nas.search "
        + shlex.join(redact(arg) for arg in (sys.argv[1:] if argv is None else argv)),
    }
    study_name = args.study or f"{space.name}-{args.dataset}"
    if args.worker_index is not None:
        return _worker_process(
            storage, study_name, args, settings, data, budget, device, heartbeat_s
        )
    study = _open_study(storage, study_name, settings, space, args)
    return _search(study, storage, args, argv, settings, data, budget, device, heartbeat_s)


def _worker_process(storage, study_name, args, settings, data, budget, device, heartbeat_s):
    """One of the processes --workers starts: run trials on the existing study, no report."""
    import optuna

    from nas._worker import EXIT_STORAGE_LOST, StorageLost, _with_retries

    _pin_worker_cores(args.worker_index, args.workers, pin=device == "cpu")
    try:
        study = _with_retries(lambda: optuna.load_study(study_name=study_name, storage=storage))
        _worker_loop(
            study, storage, args, settings, data, budget, device, heartbeat_s, args.worker_index
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except StorageLost as error:
        print(
            f"error: worker {args.worker_index} lost the database after retries: {error}; "
            "its finished trials are kept",
            file=sys.stderr,
        )
        return EXIT_STORAGE_LOST
    return 0


def _heartbeat_seconds(text: str) -> int:
    """argparse type of --heartbeat: a whole number of seconds, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected whole seconds (0 or more), got {text!r}")
    return value


def _dry_run(space, dataset: str, budget, device: str) -> str:
    """The space, its size and the landmarks' costs, without touching storage or data."""
    from nas.cost import count_cost
    from nas.inspect import DATASET_SHAPES
    from search_spaces import LANDMARKS

    input_shape, num_classes = DATASET_SHAPES[dataset]
    lines = [
        f"space {space.name}: {space.description}",
        f"  {len(space.choices)} parameters, {space.size():,} assignments",
    ]
    for name, values in space.choices.items():
        lines.append(f"    {name:<16} {', '.join(values)}")
    lines += [
        f"dataset {dataset} ({'x'.join(map(str, input_shape))}), budget {budget} on {device}",
        "landmarks (MACs = multiply-accumulates):",
    ]
    for name, arch in LANDMARKS.items():
        cost = count_cost(arch, input_shape, num_classes)
        reachable = "" if space.params_for(arch) is not None else "  (not in this space)"
        lines.append(
            f"  {name:<18} {cost.macs / 1e6:>7.3f} MMACs {cost.params:>9,} params{reachable}"
        )
    return "\n".join(lines)


def _open_study(storage, name, settings, space, args):
    import nas
    from nas._study import check_compatible, open_or_create_study
    from nas.train import BATCH_SIZE_BEFORE_MIN_STEPS
    from search_spaces import LANDMARKS

    directions = ["maximize"] + ["minimize"] * (len(settings["objectives"]) - 1)
    landmarks = []
    if not args.no_landmarks:
        landmarks = [
            (params, {"landmark": landmark})
            for landmark, arch in LANDMARKS.items()
            if (params := space.params_for(arch)) is not None
        ]
    # Safe when several processes start on the same new study: one creates it and enqueues
    # the landmarks (no more than trials: a waiting trial beyond the target would never run).
    study, created = open_or_create_study(
        storage,
        name,
        directions,
        {**settings, "version": nas.__version__},
        landmarks[: args.trials],
    )
    if not created:
        check_compatible(study, settings)
        if study.user_attrs.get("budget") not in (None, settings["budget"]):
            print(
                f"note: study {name!r} was started with budget {study.user_attrs['budget']}, "
                f"continuing with {settings['budget']}",
                file=sys.stderr,
            )
        stored_batch = study.user_attrs.get("batch_size", BATCH_SIZE_BEFORE_MIN_STEPS)
        if stored_batch != settings["batch_size"]:
            print(
                f"note: study {name!r} trained its trials at batch {stored_batch}, continuing at "
                f"{settings['batch_size']}: accuracies before and after are not comparable; "
                "start a new --study to keep one recipe",
                file=sys.stderr,
            )
    return study


def _make_objective(space, data, budget, device, args, settings):
    from nas._objective import Objective
    from nas.pruning import NO_PRUNING, DominancePruner
    from search_spaces import LANDMARKS

    return Objective(
        space=space,
        data=data,
        budget=budget,
        device=device,
        seed=args.seed,
        objectives=tuple(settings["objectives"]),
        pruner=NO_PRUNING if args.no_prune else DominancePruner(),
        max_mmacs=args.max_mmacs,
        landmark_names={str(arch): name for name, arch in LANDMARKS.items()},
    )


def _sampler(name: str, seed: int, trials: int):
    import optuna

    if name == "nsga2":
        # Generations of ~1/8 of the trials: several rounds of selection even in short runs.
        population = min(50, max(10, trials // 8))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.RandomSampler(seed=seed)


def _search(study, storage, args, argv, settings, data, budget, device, heartbeat_s) -> int:
    from nas._report import Progress, summary

    progress = Progress(study, args.trials)
    print(
        f"study {study.study_name!r} in {redact(args.storage)}: space {settings['space']}, "
        f"dataset {settings['dataset']}, budget {budget} (batch {settings['batch_size']}) "
        f"per trial on {device}, "
        f"sampler {args.sampler}, {args.workers} worker(s); "
        f"{progress.done()}/{args.trials} trials already done",
        file=sys.stderr,
    )
    start = time.monotonic()
    status = 0
    try:
        if args.workers == 1:
            _worker_loop(
                study,
                storage,
                args,
                settings,
                data,
                budget,
                device,
                heartbeat_s,
                0,
                lambda *_: progress.report(),
            )
        else:
            status = _run_workers(args, argv, progress)
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
        print(
            "\ninterrupted: the running trial is marked failed; rerun the same command to "
            "continue",
            file=sys.stderr,
        )
    except Exception as error:
        from nas._worker import StorageLost

        if not isinstance(error, StorageLost):
            raise
        print(
            f"error: lost the database after retries: {error}; finished trials are kept, "
            "rerun the same command to continue",
            file=sys.stderr,
        )
        status = 3
    if status != 3:  # the database is gone: no summary, which would need it
        print(summary(study, args.storage, time.monotonic() - start))
    return status


def _worker_loop(
    study, storage, args, settings, data, budget, device, heartbeat_s, index, on_trial_end=None
):
    import optuna

    from nas._worker import run_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study.study_name,
        storage=storage,
        sampler=_sampler(args.sampler, args.seed + index, args.trials),
    )
    space = _space(settings["space"])
    objective = _make_objective(space, data, budget, device, args, settings)
    run_trials(study, objective, args.trials, heartbeat_s=heartbeat_s, on_trial_end=on_trial_end)
    return objective


def _space(name):
    import search_spaces

    return search_spaces.get(name)


def _pin_worker_cores(index: int, workers: int, *, pin: bool = True) -> None:
    """Give each worker its share of the cores: OpenMP threads of several processes competing
    for all cores oversubscribe them and run many times slower.

    On a CPU, every thread of the process (OpenMP's pool may exist already) is bound to the
    share from `core_share`, and torch runs that many threads; with more workers than cores
    each worker gets one thread on one core. GPU workers (`pin=False`) stay unbound but cap
    their CPU threads (cost counting, data handling) at their share of the cores.
    """
    import torch

    from nas._worker import core_share

    if not hasattr(os, "sched_setaffinity"):
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
        return
    cores = sorted(os.sched_getaffinity(0))
    share = core_share(cores, index, workers)
    if pin:
        tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []
        for task in tasks:
            try:
                os.sched_setaffinity(int(task), share)
            except OSError:
                pass  # a thread that ended meanwhile
        os.sched_setaffinity(0, share)
    torch.set_num_threads(len(share) if pin else max(1, len(cores) // workers))


def _run_workers(args, argv, progress) -> int:
    """Start `--workers` processes of this command on the existing study; report progress.

    A worker killed by a signal is reported; the others retry its trial (heartbeats), so the
    run still succeeds when the study reaches its target. Workers that lost the database make
    this raise StorageLost.
    """
    import signal
    import subprocess

    from nas._worker import EXIT_STORAGE_LOST, StorageLost, is_connection_error

    def report() -> None:
        try:
            progress.report()
        except Exception as error:  # skipped while the database is away; the workers retry
            if not is_connection_error(error):
                raise

    base = list(sys.argv[1:] if argv is None else argv)
    children = [
        subprocess.Popen([sys.executable, "-m", "nas.search", *base, "--worker-index", str(i)])
        for i in range(args.workers)
    ]
    killed: set[int] = set()
    last_report = 0.0
    try:
        while True:
            for i, child in enumerate(children):
                code = child.poll()
                if code is not None and code < 0 and i not in killed:
                    killed.add(i)
                    print(
                        f"note: worker {i} (pid {child.pid}) was killed by signal {-code}; "
                        "the others retry its trial",
                        file=sys.stderr,
                    )
            if all(child.returncode is not None for child in children):
                break
            if time.monotonic() - last_report >= 2.0:
                report()
                last_report = time.monotonic()
            time.sleep(0.25)
    except KeyboardInterrupt:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            child.wait()
        raise
    codes = [child.returncode for child in children]
    if EXIT_STORAGE_LOST in codes:
        lost = codes.count(EXIT_STORAGE_LOST)
        raise StorageLost(f"{lost} of {len(codes)} workers stopped")
    report()
    failed = [code for code in codes if code > 0]
    if failed:
        return failed[0]
    if killed and progress.done() < args.trials:
        return 1  # workers were killed and none is left to finish their trials
    return 0


if __name__ == "__main__":
    sys.exit(main())
