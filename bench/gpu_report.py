"""bench/gpu.sh's report: every stage's status and time, then each stage's own tables.

Reads what the stages left in the work folder (stages.tsv and their JSON files), also when
some failed or ran out of time, and writes one markdown file.

    python bench/gpu_report.py WORK_FOLDER OUT/gpu.md
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The JSON each stage writes (its name begins so), and the module that renders it: imported
# only when its stage left a file, as a failed environment may lack what the stages import.
STAGE_FILES = {
    "throughput": ("throughput_", "bench.throughput"),
    "autotune": ("autotune_", "bench.autotune"),
    "concurrency": ("concurrency_", "bench.concurrency"),
    "search": ("search_", "bench.gpu_search"),
}


def stage_rows(work: Path) -> list[tuple[str, str, int]]:
    """(stage, state, seconds) in the order the stages ran."""
    path = work / "stages.tsv"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        name, state, seconds = line.split("\t")
        rows.append((name, state, int(seconds)))
    return rows


def environment_lines(work: Path) -> list[str]:
    path = work / "env.json"
    if not path.exists():
        return ["The environment stage wrote nothing: see gpu.log.", ""]
    env = json.loads(path.read_text())
    packages = ", ".join(f"{name} {version}" for name, version in env["packages"].items())
    gpu = f"{env['gpu']}, CUDA {env['torch_cuda']}, cuDNN {env['cudnn']}" if env["gpu"] else "none"
    return [
        f"- device: {env['device']}; GPU: {gpu}",
        f"- CPU: {env['machine']['cpu']}, {env['machine']['cores']} cores; Python {env['python']}",
        f"- packages: {packages}",
        f"- dataset: {env['dataset']['name']} from {env['dataset']['source']} "
        f"({env['dataset']['train']:,} training images)",
        "",
    ]


def report(work: Path) -> str:
    rows = stage_rows(work)
    total = sum(seconds for _, _, seconds in rows)
    lines = ["# bench/gpu.sh", "", *environment_lines(work)]
    lines += ["| stage | state | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {state} | {seconds} |" for name, state, seconds in rows]
    lines += ["", f"Stages took {total} s in all (the machine's start and transfers not counted)."]
    lines.append("")
    for stage, (prefix, module_name) in STAGE_FILES.items():
        for path in sorted(work.glob(f"{prefix}*.json")):
            try:
                stage_lines = importlib.import_module(module_name).report_lines(
                    json.loads(path.read_text())
                )
            except (ValueError, KeyError, TypeError) as error:
                stage_lines = [f"{stage}: {path.name} is unreadable ({error}).", ""]
            # Each stage's title one level down, under this report's.
            lines += ["#" + line if line.startswith("# ") else line for line in stage_lines]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python bench/gpu_report.py WORK_FOLDER OUT.md", file=sys.stderr)
        return 2
    Path(args[1]).write_text(report(Path(args[0])))
    print(f"wrote {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
