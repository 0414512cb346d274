"""What every benchmark shares: the machine it ran on, how it was started, writing its results."""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from nas._machine import machine

__all__ = [
    "RESULTS",
    "bench_parser",
    "chosen_device",
    "device_opening",
    "device_run",
    "device_tag",
    "device_title",
    "invocation",
    "machine",
    "ran_on",
    "write_results",
]

RESULTS = Path(__file__).parent / "results"


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's argument parser, described by the first line of its module docstring."""
    return argparse.ArgumentParser(description=doc.splitlines()[0])


def invocation(script: str, argv: Sequence[str] | None = None) -> str:
    """The command line a result records: `python bench/NAME.py ARGS`.

    --out is left out: where the results are written does not shape them.

    Args:
        script: the benchmark's `__file__`.
        argv: its arguments; by default those it was started with.
    """
    arguments = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", f"bench/{Path(script).name}", *_without_out(arguments)])


def _without_out(argv: Sequence[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--out="):
            skip = False
            continue
        if arg == "--out":
            skip = True
            continue
        kept.append(arg)
    return kept


def ran_on(command: str, info: dict, via: str | None = None) -> str:
    """The opening of a report: "`COMMAND` on CPU (N cores), DATE" (no full stop).

    Args:
        command: what ran.
        info: `machine()` of where it ran.
        via: the benchmark that started `command`, where that is another command.
    """
    started = f" (via `{via}`)" if via else ""
    return f"`{command}`{started} on {info['cpu']} ({info['cores']} cores), {info['date']}"


def write_results(
    name: str, result: dict, markdown_lines: list[str], out: Path | str = RESULTS
) -> None:
    """Write OUT/NAME.json and OUT/NAME.md, and print the Markdown.

    Args:
        name: the file name without its ending.
        result: what goes into the JSON.
        markdown_lines: the report, one line each.
        out: the folder, bench/results unless a benchmark was told otherwise.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = "\n".join(markdown_lines) + "\n"
    (folder / f"{name}.md").write_text(text)
    print(text)


def chosen_device(parser: argparse.ArgumentParser, spec: str) -> str:
    """`spec` ("cpu", "cuda", "cuda:N", "auto") as a device this machine has, else the
    parser's one-line error."""
    from nas.train import resolve_device  # loads torch, which --help does not need

    try:
        return resolve_device(spec)
    except ValueError as error:
        parser.error(str(error))


def device_run(script: str, argv: Sequence[str] | None, device: str) -> dict:
    """The opening of a device benchmark's record: its command, date, device and machine."""
    return {
        "command": invocation(script, argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "machine": machine(),
    }


def device_title(what: str, record: dict) -> str:
    """A device benchmark's heading: WHAT on DEVICE (GPU or CPU model)."""
    info = record["machine"]
    return f"# {what} on {record['device']} ({info.get('gpu') or info['cpu']})"


def device_opening(record: dict) -> str:
    """How a device benchmark's report begins: "`COMMAND` on DATE, torch VERSION"."""
    return f"`{record['command']}` on {record['date']}, torch {record['machine']['torch']}"


def device_tag(device: str) -> str:
    """The device as a file-name part: cpu, cuda, cuda1."""
    return device.replace(":", "")
