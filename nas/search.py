"""`python -m nas.search --space NAME --trials N`: the multi-objective architecture search.

Every trial lands in an Optuna storage (sqlite:///studies.db by default). Rerunning the same
command continues the study until it holds N finished trials; Ctrl-C stops cleanly (exit 130).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TYPE_CHECKING

import optuna

import search_spaces
from nas._cli import (
    EXIT_BAD_INPUT,
    OneLineParser,
    add_budget_option,
    add_device_option,
    add_seed_option,
    add_space_option,
    add_storage_option,
    add_study_option,
    refusing_bad_input,
    whole_number_at_least,
)
from nas._data_choice import add_dataset_options
from nas._report import fit_width
from nas._settings import OBJECTIVES, SAMPLERS, WORKER_INDEX_OPTION, RunSettings, resume_notes
from nas._stops import (
    EXIT_INTERRUPTED,
    EXIT_NO_PROGRESS,
    EXIT_STORAGE_LOST,
    MAX_FAILURES_IN_A_ROW,
    MAX_SKIPS_IN_A_ROW,
)
from nas._study import check_compatible, open_or_create_study
from nas.pruning import PRUNERS
from nas.storage import in_memory, open_storage
from search_spaces import landmarks_for

if TYPE_CHECKING:
    from nas.data import Dataset


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        module="nas.search",
        script="nas-search",
        description="Search the spectrum from normal convolution to Xception: maximize "
        "validation accuracy, minimize MACs (multiply-accumulates).",
        epilog=f"exit status: 0 done; {EXIT_BAD_INPUT} bad input or an unsupported Optuna "
        "(nothing created); "
        f"{EXIT_STORAGE_LOST} database lost; {EXIT_NO_PROGRESS} stopped, as "
        f"{MAX_FAILURES_IN_A_ROW} trials in a row failed or {MAX_SKIPS_IN_A_ROW} were skipped "
        f"by --max-mmacs; {EXIT_INTERRUPTED} Ctrl-C (the next run redoes the interrupted trial)",
    )
    add_space_option(parser)
    parser.add_argument(
        "--trials",
        type=int,
        default=200,
        help="finished trials the study should hold (default 200)",
    )
    add_dataset_options(parser)
    add_storage_option(parser)
    add_study_option(parser)
    parser.add_argument("--sampler", default="nsga2", help=f"one of {', '.join(SAMPLERS)}")
    parser.add_argument("--objectives", default="acc,macs", help=" or ".join(OBJECTIVES))
    add_budget_option(parser)
    parser.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    parser.add_argument(
        "--max-mmacs",
        type=float,
        default=None,
        help="skip, before training, architectures above this many million MACs",
    )
    add_device_option(parser)
    parser.add_argument(
        "--workers",
        default="auto",
        help="parallel worker processes on this machine: a number, or auto (the default: one "
        "per core, fewer if memory is short; on a GPU at most 16, 2 GiB of its memory each)",
    )
    add_seed_option(parser)
    parser.add_argument(
        "--heartbeat",
        type=whole_number_at_least(0),
        default=None,
        help="seconds between trial heartbeats (default 10; 0 turns them off): a trial "
        "without one for 4x as long is marked failed and retried by another worker; use the "
        "same value on every worker of a study",
    )
    parser.add_argument(
        "--pruner",
        default="rungs",
        help=f"early stopping, one of {', '.join(PRUNERS)}: rungs ranks the trials at epoch 1 "
        "(then 3, 9, ...) into Pareto fronts and continues the top third; dominance stops a "
        "trial that 2 cheaper finished ones beat by 2 points; none trains all to the end "
        "(default rungs)",
    )
    parser.add_argument("--no-prune", action="store_true", help="the same as --pruner none")
    parser.add_argument(
        "--no-landmarks", action="store_true", help="do not put the landmark architectures first"
    )
    parser.add_argument(
        "--confirm",
        type=whole_number_at_least(1),
        default=None,
        metavar="K",
        help="once the study holds its trials, retrain its front (the knee and 4 neighbours) "
        "and its landmarks with K more seeds, as python -m nas.confirm --seeds K does",
    )
    parser.add_argument("--list-spaces", action="store_true", help="list search spaces and exit")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the space, its size and the landmarks' costs; train nothing",
    )
    parser.add_argument(WORKER_INDEX_OPTION, type=int, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats are "experimental" in Optuna and "meant for Study.optimize"; we drive them
    # ourselves around ask/tell (nas._worker), so those warnings say nothing to our users.
    warnings.filterwarnings("ignore", message=".*[Hh]eartbeat.*")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        return refusing_bad_input(_run, args, sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        # Before any trial ran (data, storage, study set-up): the rerun removes a half-made
        # storage file and finishes a half-done set-up, so nothing is lost.
        print(
            "\ninterrupted before any trial ran: rerun the same command to start", file=sys.stderr
        )
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, arguments: list[str]) -> int:
    if args.list_spaces:
        for name in search_spaces.names():
            space = search_spaces.get(name)
            print(f"{name:<24} {space.size():.3g} assignments  {space.description}")
        return 0
    settings = RunSettings.from_args(args, arguments)  # refuses bad input before anything exists
    if args.confirm is not None and in_memory(settings.storage_url):
        raise ValueError(
            "--confirm needs a storage that outlives the search; an in-memory database is gone "
            "when it ends: give --storage sqlite:///FILE.db"
        )
    if args.dry_run:
        print(_dry_run(settings))
        return 0
    # Both load torch, which takes seconds: imported once a search starts, so that --help and
    # a refused command answer at once.
    from nas._workers import run_search, run_worker

    data = settings.data.load(settings.device, split_seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna flags heartbeats as experimental
        storage = open_storage(settings.storage_url, heartbeat_s=settings.heartbeat_s)
    if settings.worker_index is not None:
        return run_worker(storage, settings, data)
    status = run_search(_open_study(storage, settings, data), storage, settings, data)
    if status != 0 or args.confirm is None:
        return status
    from nas import confirm

    return confirm.main(_confirm_arguments(args, settings))


def _confirm_arguments(args: argparse.Namespace, settings: RunSettings) -> list[str]:
    """nas.confirm's command line for --confirm: this study, its data and its workers."""
    arguments = ["--storage", settings.storage_url, "--study", settings.study_name]
    arguments += ["--seeds", str(args.confirm), "--workers", str(settings.workers)]
    arguments += ["--device", settings.device, "--dataset", args.dataset]
    return arguments + (["--data-dir", args.data_dir] if args.data_dir else [])


def _dry_run(settings: RunSettings) -> str:
    """The space, its size and the landmarks' costs on the data's images, without touching
    storage (a user's images are not decoded: their shape comes from the cache or their
    headers)."""
    from nas.cost import count_cost  # loads torch; see _run

    input_shape, num_classes = settings.data.shape(settings.device)
    space = settings.space_for(input_shape)
    lines = [
        f"space {space.name}: {space.description}",
        f"  {len(space.choices)} parameters, {space.size():,} assignments",
    ]
    for name, values in space.choices.items():
        lines.append(f"    {name:<16} {', '.join(values)}")
    lines += [
        f"dataset {settings.data.label} ({'x'.join(map(str, input_shape))}, "
        f"{num_classes} classes), budget {settings.budget} on {settings.device}",
        f"stem stride {space.stem_stride}: the stages see "
        f"{_after_stem(input_shape, space.stem_stride)} pixels",
        "landmarks (MACs = multiply-accumulates):",
    ]
    for name, arch in landmarks_for(input_shape).items():
        cost = count_cost(arch, input_shape, num_classes)
        reachable = "" if space.params_for(arch) is not None else "  (not in this space)"
        lines.append(
            f"  {name:<18} {cost.macs / 1e6:>7.3f} MMACs {cost.params:>9,} params{reachable}"
        )
    return "\n".join(lines)


def _after_stem(input_shape: tuple[int, int, int], stride: int) -> str:
    """The size the stem's layers leave ("28x28")."""
    from nas._cheapest import stem_macs

    _, (height, width) = stem_macs(input_shape[0], 1, stride, tuple(input_shape[1:]))
    return f"{height}x{width}"


def _open_study(storage, settings: RunSettings, data: Dataset) -> optuna.Study:
    """The run's study, created with the landmarks first, or continued when it is compatible."""
    attrs = settings.study_attrs(data)
    # Safe when several processes start on the same new study: one creates it and enqueues
    # the landmarks.
    study, created = open_or_create_study(
        storage,
        settings.study_name,
        settings.directions,
        attrs,
        settings.landmark_trials(data.input_shape),
    )
    if not created:
        check_compatible(study, attrs)
        for note in resume_notes(study.study_name, study.user_attrs, attrs):
            print(fit_width(note), file=sys.stderr)
    return study


if __name__ == "__main__":
    sys.exit(main())
