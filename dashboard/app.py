"""The app factory: one Dash app reading one storage."""

from __future__ import annotations

import threading
from pathlib import Path

from dash import Dash

from dashboard.callbacks import register_callbacks
from dashboard.data import FrameCache
from dashboard.layout import shell
from dashboard.storage import StorageReader
from nas.storage import DEFAULT_STORAGE

ASSETS = Path(__file__).with_name("assets")


def _preload(cache: FrameCache) -> None:
    try:
        latest = list(cache.infos())[-1:]
        cache.frame(latest)
    except Exception:  # noqa: BLE001 - a failed warm-up is retried by the first page view
        pass


def create_app(
    storage: str = DEFAULT_STORAGE, poll_seconds: float = 5.0, preload: bool = False
) -> Dash:
    """A Dash app that shows the studies in `storage`, polling it for new trials.

    The storage is only read; a missing or empty one shows how to start a search, one that is
    not an Optuna database shows why it cannot be read.

    Args:
        storage: an Optuna RDB storage URL (sqlite:///studies.db, postgresql://...).
        poll_seconds: how often open pages check the storage for new trials.
        preload: read the latest study in the background now, so that the first page view
            does not wait for it (thousands of trials take seconds to read).
    """
    cache = FrameCache(StorageReader(storage))
    if preload:
        threading.Thread(target=_preload, args=(cache,), daemon=True).start()
    app = Dash(
        __name__,  # a module with a file: Flask finds its root even under odd installs
        title="Spectrum NAS",
        update_title="",
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,
    )
    app.layout = shell(storage, int(poll_seconds * 1000))
    register_callbacks(app, cache)
    return app
