"""The Dash app: browse the Pareto fronts of stored searches while they run.

`python -m dashboard [--storage URL]`, or `create_app(storage)` for a WSGI server or a test.
"""

from __future__ import annotations

from dashboard.app import DEFAULT_STORAGE, create_app

__all__ = ["DEFAULT_STORAGE", "create_app"]
