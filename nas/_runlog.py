"""An append-only JSON-lines log of finished training runs, so long experiments resume."""

from __future__ import annotations

import json
from pathlib import Path


def read_runs(path: Path) -> list[dict]:
    """Every run logged so far; a torn last line from a crash is ignored."""
    runs = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return runs


def append_run(path: Path, run: dict) -> None:
    """Log one run at once (one line, flushed), before the next one starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A crash mid-write leaves a torn last line; start a fresh line so this run is not lost too.
    with path.open("ab+") as handle:
        torn = False
        if handle.seek(0, 2):  # the file is not empty: look at its last byte
            handle.seek(-1, 2)
            torn = handle.read(1) != b"\n"
        handle.write((("\n" if torn else "") + json.dumps(run) + "\n").encode())
