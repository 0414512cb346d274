"""Hypervolume against trial count for the nsga2, tpe and random samplers (same seeds, budget).

Goal: the default sampler (nsga2) after 100 trials reaches at least random's hypervolume after
200. Hypervolume is nas.pareto's normalized accuracy x log-MACs area (reference: accuracy 0,
10^9 MACs).

    python bench/search_efficiency.py [--seeds 3] [--trials 200] [--budget 3x600]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import invocation, machine, ran_on, write_results  # noqa: E402
from bench._search_args import search_parser, search_settings  # noqa: E402
from bench._search_runs import hypervolume_curve, run_search  # noqa: E402


def main() -> None:
    parser = search_parser(__doc__, trials=200, budget="3x600")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--model-trials",
        type=int,
        default=100,
        help="trials for nsga2 and tpe (random always runs --trials)",
    )
    args = parser.parse_args()

    checkpoints = sorted({k for k in (10, 25, 50, 75, 100, 150, 200) if k <= args.trials})
    runs: dict[str, dict[int, dict[int, float]]] = {}
    walls: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/efficiency.db"
        for sampler in ("nsga2", "tpe", "random"):
            trials = args.trials if sampler == "random" else args.model_trials
            for seed in range(args.seeds):
                settings = search_settings(
                    args, trials=trials, sampler=sampler, seed=seed, pruner="none"
                )
                study, wall = run_search(storage, f"{sampler}-{seed}", **settings)
                curve = hypervolume_curve(study, [k for k in checkpoints if k <= trials])
                runs.setdefault(sampler, {})[seed] = curve
                walls.setdefault(sampler, []).append(wall)
                print(f"{sampler} seed {seed}: {curve} ({wall:.0f} s)", flush=True)

    def median_at(sampler: str, k: int) -> float | None:
        values = [curve[k] for curve in runs[sampler].values() if k in curve]
        return statistics.median(values) if values else None

    table = {s: {k: median_at(s, k) for k in checkpoints} for s in runs}
    goal_nsga2 = median_at("nsga2", min(100, args.model_trials))
    goal_random = median_at("random", args.trials)
    result = {
        "command": invocation(__file__),
        "machine": machine(),
        "dataset": args.dataset,
        "budget": args.budget,
        "seeds": args.seeds,
        "median_hypervolume": table,
        "runs": runs,
        "wall_s": walls,
        "goal": {
            "nsga2_at_100": goal_nsga2,
            f"random_at_{args.trials}": goal_random,
            "met": bool(
                goal_nsga2 is not None and goal_random is not None and goal_nsga2 >= goal_random
            ),
        },
    }
    write_results("search_efficiency", result, markdown(result, args.trials), args.out)


def markdown(result: dict, random_trials: int) -> list[str]:
    """The report of `result`; `random_trials`: the trials of the random sampler's runs."""
    table = result["median_hypervolume"]
    samplers = list(table)
    goal = result["goal"]
    lines = [
        "# Sampler efficiency",
        "",
        f"{ran_on(result['command'], result['machine'])}. {result['dataset']}, budget "
        f"{result['budget']}, {result['seeds']} seeds; median hypervolume over seeds "
        "(normalized accuracy x log-MACs).",
        "",
        "| trials | " + " | ".join(samplers) + " |",
        "|---:|" + "---:|" * len(samplers),
    ]
    for k in table[samplers[0]]:
        cells = [f"{table[s][k]:.4f}" if table[s][k] is not None else "" for s in samplers]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Goal: nsga2 after 100 trials ({goal['nsga2_at_100']:.4f}) >= random after "
        f"{random_trials} ({goal[f'random_at_{random_trials}']:.4f}): "
        f"**{'met' if goal['met'] else 'not met'}**.",
    ]
    return lines


if __name__ == "__main__":
    main()
