"""An append-only JSON-lines log of finished training runs, so long experiments resume."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path


def read_runs(path: Path, required: Collection[str] = ()) -> list[dict]:
    """Every run logged so far; a line torn by a crash is ignored.

    Args:
        path: the log; a missing file holds no runs.
        required: keys every run of this log has.

    Raises:
        ValueError: when `path` is some other file (a line that is no torn run: not an object,
            or one without a `required` key), which must not be appended to; one line naming
            the file and the line.
    """
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as a log of runs ({error})") from None
    runs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
        except json.JSONDecodeError:
            run = None
            if line.startswith("{"):  # the start of a run that a crash cut short
                continue
        missing = sorted(set(required) - set(run)) if isinstance(run, dict) else None
        if missing is None or missing:
            what = f"no {', '.join(map(repr, missing))}" if missing else "not one JSON object"
            raise ValueError(
                f"{path} line {number}: not a run of this log ({what}); "
                "name another file, or remove that line"
            )
        runs.append(run)
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
