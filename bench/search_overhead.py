"""Share of a search's wall time spent outside training and evaluation.

Runs the real search command in-process on digits with a tiny budget and times, by wrapping
the functions the search calls: training + evaluation (the work), cost counting (ptflops),
latency measurement, and everything else (sampler, storage, set-up, reporting).

    python bench/search_overhead.py [--trials 50] [--budget 2x600]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nas._objective as objective_module  # noqa: E402
from bench._machine import invocation, machine, ran_on, write_results  # noqa: E402
from bench._search_args import search_parser, search_settings  # noqa: E402
from bench._search_runs import run_search  # noqa: E402


def timed(module, name: str, totals: dict, key: str) -> None:
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start

    setattr(module, name, wrapper)


def main() -> None:
    args = search_parser(__doc__, trials=50, budget="2x600").parse_args()

    totals = {"train_and_eval": 0.0, "cost_count": 0.0, "latency": 0.0}
    timed(objective_module, "train", totals, "train_and_eval")
    timed(objective_module, "count_cost", totals, "cost_count")
    timed(objective_module, "measure_latency", totals, "latency")
    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/overhead.db"
        _, wall = run_search(storage, "overhead", **search_settings(args, pruner="none"))
    other = wall - sum(totals.values())
    outside = wall - totals["train_and_eval"]
    result = {
        "command": invocation(__file__),
        "machine": machine(),
        "trials": args.trials,
        "dataset": args.dataset,
        "budget": args.budget,
        "wall_s": round(wall, 2),
        "train_and_eval_s": round(totals["train_and_eval"], 2),
        "cost_count_s": round(totals["cost_count"], 2),
        "latency_s": round(totals["latency"], 2),
        "sampler_storage_setup_s": round(other, 2),
        "outside_share": round(outside / wall, 4),
        "per_trial_outside_ms": round(outside / args.trials * 1e3, 1),
    }
    write_results("search_overhead", result, markdown(result), args.out)


def markdown(result: dict) -> list[str]:
    """The report of `result`: the parts of the wall time."""
    wall = result["wall_s"]
    lines = [
        "# Search overhead",
        "",
        f"{ran_on(result['command'], result['machine'])}.",
        "",
        f"{result['trials']} trials, {result['dataset']}, budget {result['budget']}, no pruning.",
        "",
        "| part | seconds | share of wall |",
        "|---|---:|---:|",
    ]
    for key in ("train_and_eval_s", "cost_count_s", "latency_s", "sampler_storage_setup_s"):
        lines.append(
            f"| {key[:-2].replace('_', ' ')} | {result[key]:.2f} | {result[key] / wall:.1%} |"
        )
    lines += [
        f"| **wall** | {wall:.2f} | 100% |",
        "",
        f"Outside training and evaluation: **{result['outside_share']:.1%}** of wall time, "
        f"{result['per_trial_outside_ms']:.0f} ms per trial.",
    ]
    return lines


if __name__ == "__main__":
    main()
