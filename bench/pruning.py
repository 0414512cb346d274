"""What multi-objective pruning saves: the same search with and without it.

Goal: on a 100-trial search, at least 30% less training time while the final Pareto front's
hypervolume stays within 2% of the unpruned search with the same seed.

    python bench/pruning.py [--trials 100] [--seeds 2] [--budget 4x600]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optuna.trial import TrialState  # noqa: E402

from bench._machine import invocation, machine, ran_on, write_results  # noqa: E402
from bench._search_args import search_parser, search_settings  # noqa: E402
from bench._search_runs import hypervolume_curve, run_search, training_seconds  # noqa: E402


def main() -> None:
    parser = search_parser(__doc__, trials=100, budget="4x600")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--name", default="pruning", help="results file name")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/pruning.db"
        for seed in range(args.seeds):
            row = {"seed": seed}
            for mode in ("unpruned", "pruned"):
                pruner = "dominance" if mode == "pruned" else "none"
                settings = search_settings(args, seed=seed, pruner=pruner)
                study, wall = run_search(storage, f"{mode}-{seed}", **settings)
                row[mode] = {
                    "training_s": round(training_seconds(study), 2),
                    "wall_s": round(wall, 2),
                    "hypervolume": hypervolume_curve(study, [len(study.trials)])[
                        len(study.trials)
                    ],
                    "pruned_trials": sum(t.state == TrialState.PRUNED for t in study.trials),
                }
            row["time_saved"] = round(
                1 - row["pruned"]["training_s"] / row["unpruned"]["training_s"], 4
            )
            row["hv_ratio"] = round(
                row["pruned"]["hypervolume"] / row["unpruned"]["hypervolume"], 4
            )
            rows.append(row)
            print(json.dumps(row), flush=True)

    saved = statistics.median(r["time_saved"] for r in rows)
    ratio = statistics.median(r["hv_ratio"] for r in rows)
    result = {
        "command": invocation(__file__),
        "machine": machine(),
        "dataset": args.dataset,
        "budget": args.budget,
        "trials": args.trials,
        "runs": rows,
        "median_time_saved": saved,
        "median_hypervolume_ratio": ratio,
        "goal_met": saved >= 0.30 and ratio >= 0.98,
    }
    lines = [
        "# Multi-objective pruning",
        "",
        f"{ran_on(result['command'], result['machine'])}. {args.trials}-trial searches on "
        f"{args.dataset}, budget {args.budget}, same seed with and without pruning.",
        "",
        "| seed | training s (unpruned) | training s (pruned) | pruned trials | time saved | "
        "HV unpruned | HV pruned | HV ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['unpruned']['training_s']:.1f} | {r['pruned']['training_s']:.1f}"
            f" | {r['pruned']['pruned_trials']} | {r['time_saved']:.1%} | "
            f"{r['unpruned']['hypervolume']:.4f} | {r['pruned']['hypervolume']:.4f} | "
            f"{r['hv_ratio']:.3f} |"
        )
    lines += [
        "",
        f"Median: **{saved:.1%} training time saved**, hypervolume ratio "
        f"**{ratio:.3f}** (goal: >= 30% saved, ratio >= 0.98): "
        f"{'met' if result['goal_met'] else 'not met'}.",
    ]
    write_results(args.name, result, lines, args.out)


if __name__ == "__main__":
    main()
