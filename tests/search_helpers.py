"""Running the real search command in tests, on throwaway storages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna

import search_spaces
from nas._objective import Objective
from nas.data import load_dataset
from nas.pruning import NO_PRUNING
from nas.record import COUNTED_TRIAL_KEYS
from nas.train import Budget

# Digits with a budget small enough for seconds per trial, large enough to learn something.
TINY = ["--dataset", "digits", "--budget", "4x600"]
# What every finished (trained, early-stopped or reused) trial must store.
TRIAL_ATTRS = set(COUNTED_TRIAL_KEYS)


def search_command(storage: str, *args: str) -> list[str]:
    # One worker unless a test says otherwise (a later --workers wins): the default, auto,
    # would depend on the cores the test runner leaves each test.
    return [
        sys.executable,
        "-m",
        "nas.search",
        "--storage",
        storage,
        *TINY,
        "--workers",
        "1",
        *args,
    ]


def run_search(
    storage: str, *args: str, timeout: float = 900, cores: set[int] | None = None
) -> subprocess.CompletedProcess:
    """Run the search command to its end; on `cores` only, where given."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NAS_NO_DOWNLOAD": "1"}
    return subprocess.run(
        search_command(storage, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=Path(__file__).parent.parent,
        preexec_fn=None if cores is None else lambda: os.sched_setaffinity(0, cores),
    )


def load(storage: str, name: str = "inception_to_xception-digits") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def objective(**overrides) -> Objective:
    """A search's objective on digits, two short epochs, no pruning, for in-process loops."""
    settings = dict(
        space=search_spaces.get("inception_to_xception"),
        data=load_dataset("digits"),
        budget=Budget(2, 300),
        device="cpu",
        seed=0,
        objectives=("val_acc", "macs"),
        pruner=NO_PRUNING,
    )
    return Objective(**{**settings, **overrides})
