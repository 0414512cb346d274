"""Would another proxy budget rank architectures more like the long training does?

Trains the same seeded architectures as `python -m nas.fidelity` at each candidate proxy
budget and ranks them against the long runs that command already stored (it must have run
first). Runs go to the same JSON-lines log, so an interrupted benchmark resumes.

    python bench/fidelity_budgets.py --budgets 5x10000 [--long-budget 30x10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine, write_results  # noqa: E402
from nas._runlog import append_run  # noqa: E402
from nas.fidelity import (  # noqa: E402
    correlations,
    load_runs,
    paired_rows,
    sample_archs,
    train_once,
)
from nas.train import Budget  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="5x10000", help="comma-separated proxy budgets")
    parser.add_argument("--long-budget", default="30x10000")
    parser.add_argument("--space", default="inception_to_xception")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="bench/results/fidelity_runs.jsonl")
    parser.add_argument("--name", default="fidelity_budgets", help="results file name")
    args = parser.parse_args()

    from nas.data import load_dataset

    budgets = [Budget.parse(text) for text in args.budgets.split(",")]
    long = str(Budget.parse(args.long_budget))
    log = Path(args.results)
    runs = load_runs(log)
    archs = sample_archs(args.space, args.archs, args.seed)
    missing = [label for label, arch in archs if (arch, long) not in runs]
    if missing:
        # The candidates train anyway; `python -m nas.fidelity` may still be filling the log.
        print(
            f"note: {len(missing)} architectures have no {long} run in {log} yet; "
            "the ranking needs them (python -m nas.fidelity)",
            file=sys.stderr,
        )
    data = load_dataset(args.dataset)
    for budget in budgets:
        todo = [arch for _, arch in archs if (arch, str(budget)) not in runs]
        for index, arch in enumerate(todo, 1):
            run = train_once(arch, data, budget, "cpu", args.seed)
            append_run(log, run)
            print(f"[{budget} {index}/{len(todo)}] acc {run['val_acc']:.4f}", file=sys.stderr)
    runs = load_runs(log)  # again: long runs may have landed meanwhile
    missing = [label for label, arch in archs if (arch, long) not in runs]
    if missing:
        print(
            f"error: no {long} run for {', '.join(missing)} in {log}; "
            "run `python -m nas.fidelity` to finish them, then this again",
            file=sys.stderr,
        )
        sys.exit(2)
    table = {}
    for budget in budgets:
        rows = paired_rows(archs, runs, str(budget), long)
        table[str(budget)] = {
            **correlations(rows),
            "training_images": budget.epochs * (budget.train_size or len(data.train_x)),
            "seconds_median": statistics.median(row["short_seconds"] for row in rows),
        }
    result = {
        "command": " ".join(["python bench/fidelity_budgets.py", *sys.argv[1:]]),
        "machine": machine(),
        "long_budget": long,
        "budgets": table,
    }
    lines = [
        f"# Proxy budgets against {long} on {args.dataset}",
        "",
        f"`{result['command']}`, {result['machine']['date']}, {result['machine']['cpu']} "
        f"({result['machine']['cores']} cores). {len(archs)} architectures (the landmarks and "
        "the seeded sample of `python -m nas.fidelity`).",
        "",
        "| proxy budget | training images | median s per run | Kendall tau | Spearman rho |",
        "|---|---|---|---|---|",
    ]
    for budget, row in table.items():
        lines.append(
            f"| {budget} | {row['training_images']:,} | {row['seconds_median']:.1f} "
            f"| {row['proxy_kendall_tau']:.3f} | {row['proxy_spearman_rho']:.3f} |"
        )
    write_results(args.name, result, lines)


if __name__ == "__main__":
    main()
