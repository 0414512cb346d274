"""Running real searches in-process for benchmarks, and reading their hypervolume."""

from __future__ import annotations

import contextlib
import io
import time

import optuna
from optuna.trial import TrialState

from nas import search
from nas.pareto import hypervolume


def run_search(storage: str, study: str, *args: str) -> tuple[optuna.Study, float]:
    """Run `python -m nas.search` in this process; returns the study and the wall seconds."""
    argv = ["--storage", storage, "--study", study, *args]
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
            (t.values[0], t.user_attrs["macs"])
            for t in trials[:k]
            if t.state == TrialState.COMPLETE and t.values is not None
        ]
        curve[k] = hypervolume(points)
    return curve


def training_seconds(study: optuna.Study) -> float:
    return sum(
        t.user_attrs.get("train_seconds", 0.0) + t.user_attrs.get("eval_seconds", 0.0)
        for t in study.trials
    )
