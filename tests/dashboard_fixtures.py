"""Fake studies for the dashboard's tests: the writer lives in bench/_fake_studies.py.

The dashboard's benchmark (bench/dashboard_scale.py) writes the same studies; this module adds
what only tests need, a study built once per test session.
"""

from __future__ import annotations

from bench._fake_studies import add_complete_trials, build_study, make_trials, study_attrs

__all__ = ["add_complete_trials", "build_study", "make_trials", "shared_study", "study_attrs"]

_BUILT: dict[tuple, str] = {}


def shared_study(tmp_path_factory, name: str = "demo", **options) -> str:
    """The URL of a study built once per test session (tests must not write to it)."""
    key = (name, tuple(sorted(options.items())))
    if key not in _BUILT:
        path = tmp_path_factory.mktemp("dashboard") / "studies.db"
        build_study(f"sqlite:///{path}", name, **options)
        _BUILT[key] = f"sqlite:///{path}"
    return _BUILT[key]
