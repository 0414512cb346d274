"""The command line of `python -m nas.search` for every benchmark that runs the search.

Built by `search_argv` alone, whether the search runs in this process (bench/_search_runs.py)
or in a child process (`search_command`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench._machine import RESULTS, bench_parser


def search_parser(
    doc: str, *, trials: int, budget: str, helps: dict[str, str] | None = None
) -> argparse.ArgumentParser:
    """A benchmark's parser with the options every search benchmark takes.

    Args:
        doc: the benchmark's module docstring (its first line describes the command).
        trials: the default of --trials.
        budget: the default of --budget.
        helps: help texts by option ("trials", "budget", "dataset"), where one needs saying.
    """
    helps = helps or {}
    parser = bench_parser(doc)
    parser.add_argument("--trials", type=int, default=trials, help=helps.get("trials"))
    parser.add_argument("--budget", default=budget, help=helps.get("budget"))
    parser.add_argument("--dataset", default="digits", help=helps.get("dataset"))
    parser.add_argument("--out", default=str(RESULTS), help="folder for the results")
    return parser


def search_settings(args: argparse.Namespace, **changes) -> dict:
    """The settings of `search_argv` that a `search_parser` parsed, with `changes` on top."""
    return {"dataset": args.dataset, "budget": args.budget, "trials": args.trials, **changes}


def search_argv(
    *,
    space: str | None = None,
    dataset: str | None = None,
    budget: str | None = None,
    trials: int | None = None,
    storage: str | None = None,
    study: str | None = None,
    sampler: str | None = None,
    seed: int | None = None,
    workers: int | str | None = 1,
    device: str | None = None,
    pruner: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The arguments of `python -m nas.search` for these settings.

    Args:
        space: --space.
        dataset: --dataset.
        budget: --budget.
        trials: --trials.
        storage: --storage.
        study: --study.
        sampler: --sampler.
        seed: --seed.
        workers: --workers (1 unless told: a benchmark compares its runs in one process).
        device: --device.
        pruner: --pruner.
        extra: further arguments, as they are.

    Returns:
        One flag and its value after the other; a setting left at None is not passed, so the
        search's own default holds.
    """
    settings = {
        "--space": space,
        "--dataset": dataset,
        "--budget": budget,
        "--trials": trials,
        "--storage": storage,
        "--study": study,
        "--sampler": sampler,
        "--seed": seed,
        "--workers": workers,
        "--device": device,
        "--pruner": pruner,
    }
    argv = []
    for flag, value in settings.items():
        if value is not None:
            argv += [flag, str(value)]
    return [*argv, *extra]


def search_command(**settings) -> list[str]:
    """The command that runs the search in a child process; `settings` as `search_argv` takes."""
    return [sys.executable, "-m", "nas.search", *search_argv(**settings)]
