"""Hypervolume against trial count for the nsga2, tpe and random samplers (same seeds, budget).

Goal: the default sampler (nsga2) after 100 trials reaches at least random's hypervolume after
200. Hypervolume is nas.pareto's normalized accuracy x log-MACs area (reference: accuracy 0,
10^9 MACs).

    python bench/search_efficiency.py [--seeds 3] [--trials 200] [--budget 3x600]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, write_results  # noqa: E402
from bench._search_runs import hypervolume_curve, run_search  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument(
        "--model-trials",
        type=int,
        default=100,
        help="trials for nsga2 and tpe (random always runs --trials)",
    )
    parser.add_argument("--budget", default="3x600")
    parser.add_argument("--dataset", default="digits")
    args = parser.parse_args()

    checkpoints = sorted({k for k in (10, 25, 50, 75, 100, 150, 200) if k <= args.trials})
    runs: dict[str, dict[int, dict[int, float]]] = {}
    walls: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/efficiency.db"
        for sampler in ("nsga2", "tpe", "random"):
            trials = args.trials if sampler == "random" else args.model_trials
            for seed in range(args.seeds):
                study, wall = run_search(
                    storage,
                    f"{sampler}-{seed}",
                    "--dataset",
                    args.dataset,
                    "--budget",
                    args.budget,
                    "--trials",
                    str(trials),
                    "--sampler",
                    sampler,
                    "--seed",
                    str(seed),
                    "--no-prune",
                )
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
        "command": "python bench/search_efficiency.py " + " ".join(sys.argv[1:]),
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
    lines = [
        "# Sampler efficiency",
        "",
        f"`{result['command']}` on {result['machine']['cpu']} ({result['machine']['cores']} "
        f"cores), {result['machine']['date']}. {args.dataset}, budget {args.budget}, "
        f"{args.seeds} seeds; median hypervolume over seeds (normalized accuracy x log-MACs).",
        "",
        "| trials | " + " | ".join(runs) + " |",
        "|---:|" + "---:|" * len(runs),
    ]
    for k in checkpoints:
        cells = [f"{table[s][k]:.4f}" if table[s][k] is not None else "" for s in runs]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Goal: nsga2 after 100 trials ({goal_nsga2:.4f}) >= random after {args.trials} "
        f"({goal_random:.4f}): **{'met' if result['goal']['met'] else 'not met'}**.",
    ]
    write_results("search_efficiency", result, lines)


if __name__ == "__main__":
    main()
