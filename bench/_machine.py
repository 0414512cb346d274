"""What every benchmark shares: the machine it ran on, and writing its committed results."""

from __future__ import annotations

import json
from pathlib import Path

from nas._machine import machine

__all__ = ["RESULTS", "machine", "write_results"]

RESULTS = Path(__file__).parent / "results"


def write_results(name: str, result: dict, markdown_lines: list[str]) -> None:
    """Write bench/results/NAME.json and NAME.md, and print the Markdown."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = "\n".join(markdown_lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
