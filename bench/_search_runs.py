"""Running real searches in this process for benchmarks, and reading what they found."""

from __future__ import annotations

import contextlib
import io
import time

import optuna
from optuna.trial import TrialState

from bench._search_args import search_argv
from nas import search
from nas.pareto import hypervolume
from nas.record import TrialRecord, trial_accuracy, trial_macs


def run_search(storage: str, study: str, **settings) -> tuple[optuna.Study, float]:
    """Run `python -m nas.search` in this process, its output swallowed.

    Args:
        storage: the storage URL.
        study: the study name.
        settings: the rest of the command, as `search_argv` takes them.

    Returns:
        The study and the wall seconds of the search.
    """
    argv = search_argv(storage=storage, study=study, **settings)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = search.main(argv)
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"search {argv} exited with {code}")
    return optuna.load_study(study_name=study, storage=storage), wall


def hypervolume_curve(study: optuna.Study, checkpoints: list[int]) -> dict[int, float]:
    """Hypervolume of the complete trials among the first k trials, for each k."""
    trials = sorted(study.trials, key=lambda t: t.number)
    curve = {}
    for k in checkpoints:
        points = [
            (trial_accuracy(t), trial_macs(t))
            for t in trials[:k]
            if t.state == TrialState.COMPLETE and t.values is not None
        ]
        curve[k] = hypervolume(points)
    return curve


def training_seconds(study: optuna.Study) -> float:
    """Seconds the study's trials spent training and evaluating."""
    records = [TrialRecord.from_trial(t) for t in study.trials]
    return sum((r.train_seconds or 0.0) + (r.eval_seconds or 0.0) for r in records)
