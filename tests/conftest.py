"""Fixtures shared by several test modules."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module's tests: networks this small gain nothing from threads,
    and on a busy machine threads stall each other (several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    """Under pytest-xdist (`-n`), each test worker runs on its own core, and so do the commands
    it starts (affinity is inherited): several workers' OpenMP threads competing for every core
    would run many times slower, and the code under test sizes its threads by its affinity."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})
    torch.set_num_threads(1)
