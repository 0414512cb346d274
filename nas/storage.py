"""Optuna storages: the one home of the default URL and of opening, checking and reading them."""

from __future__ import annotations

# The embedded default: a SQLite file in the current folder, zero set-up.
DEFAULT_STORAGE = "sqlite:///studies.db"
