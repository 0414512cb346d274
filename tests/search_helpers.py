"""Running the real search command in tests, on throwaway storages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna

from nas.record import COUNTED_TRIAL_KEYS

# Digits with a budget small enough for seconds per trial, large enough to learn something.
TINY = ["--dataset", "digits", "--budget", "4x600"]
# What every finished (trained, early-stopped or reused) trial must store.
TRIAL_ATTRS = set(COUNTED_TRIAL_KEYS)


def search_command(storage: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "nas.search", "--storage", storage, *TINY, *args]


def run_search(storage: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NAS_NO_DOWNLOAD": "1"}
    return subprocess.run(
        search_command(storage, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=Path(__file__).parent.parent,
    )


def load(storage: str, name: str = "inception_to_xception-digits") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)
