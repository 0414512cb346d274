"""Would another proxy budget rank architectures more like the long training does?

Trains the same seeded architectures as `python -m nas.fidelity` at each candidate proxy
budget and ranks them against the long runs that command already stored (it must have run
first). Runs go to the same JSON-lines log, so an interrupted benchmark resumes.

    python bench/fidelity_budgets.py --budgets 3x10000,5x10000,3x10000@batch_size=64

A candidate is a budget, optionally followed by recipe fields changed from the default
(`@field=value,...`, fields of nas.train.Recipe). The first candidate is the reference the
others are compared with, pair by pair over the same bootstrap draws of architectures.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import bench_parser, invocation, machine, write_results  # noqa: E402
from nas._runlog import append_run  # noqa: E402
from nas.fidelity import (  # noqa: E402
    bootstrap_interval,
    correlations,
    load_runs,
    paired_rows,
    proxy_tau,
    run_label,
    sample_archs,
    train_once,
)
from nas.train import DEFAULT_RECIPE, Budget  # noqa: E402


def parse_candidate(text: str) -> tuple[Budget, dict]:
    """ "3x10000@batch_size=64,peak_lr=0.05" -> (Budget(3, 10000), {"batch_size": 64, ...})."""
    budget_text, _, changes_text = text.partition("@")
    changes = {}
    for item in filter(None, changes_text.split(",")):
        name, _, value = item.partition("=")
        if not hasattr(DEFAULT_RECIPE, name):
            raise SystemExit(f"error: {name!r} is not a field of nas.train.Recipe")
        kind = type(getattr(DEFAULT_RECIPE, name))
        # bool("False") is True: spell booleans out.
        changes[name] = value.lower() in ("1", "true") if kind is bool else kind(value)
    if "batch_size" in changes:
        changes.setdefault("min_steps", 0)  # a batch asked for is the batch trained at
    return Budget.parse(budget_text), changes


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--budgets",
        nargs="+",
        default=["3x10000", "5x10000"],
        help="candidates: BUDGET or BUDGET@field=value,... (the first is the reference)",
    )
    parser.add_argument("--long-budget", default="30x10000")
    parser.add_argument("--space", default="inception_to_xception")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    # The repository's log (nas.fidelity writes it when given --runs with this path).
    parser.add_argument(
        "--runs",
        "--results",
        default="bench/results/fidelity_runs.jsonl",
        help="the JSON-lines log of nas.fidelity's runs; --results is its old name",
    )
    parser.add_argument("--name", default="fidelity_budgets", help="results file name")
    args = parser.parse_args()

    from nas.data import load_dataset

    candidates = [parse_candidate(text) for text in args.budgets]
    long = str(Budget.parse(args.long_budget))
    log = Path(args.runs)
    data = load_dataset(args.dataset)
    split_size = len(data.train_x)
    labels = [candidate_label(budget, changes, split_size) for budget, changes in candidates]
    runs = load_runs(log, split_size)
    archs = sample_archs(args.space, args.archs, args.seed)
    # The candidates train anyway; `python -m nas.fidelity` may still be filling the log.
    check_long_runs(archs, runs, long, log, before_training=True)
    for label, (budget, changes) in zip(labels, candidates):
        todo = [arch for _, arch in archs if (arch, label) not in runs]
        for index, arch in enumerate(todo, 1):
            run = train_once(arch, data, budget, "cpu", args.seed, changes)
            append_run(log, run)
            print(f"[{label} {index}/{len(todo)}] acc {run['val_acc']:.4f}", file=sys.stderr)
    runs = load_runs(log, split_size)  # again: long runs may have landed meanwhile
    check_long_runs(archs, runs, long, log, before_training=False)
    table = {}
    reference_rows = paired_rows(archs, runs, labels[0], long)
    for label, (budget, _) in zip(labels, candidates):
        rows = paired_rows(archs, runs, label, long)
        table[label] = {
            **correlations(rows),
            "batch_size": runs[(archs[0][1], label)]["batch_size"],
            "training_images": budget.epochs * (budget.train_size or len(data.train_x)),
            "seconds_median": statistics.median(row["short_seconds"] for row in rows),
            # Per architecture, so that a slow or fast architecture counts the same for both.
            "seconds_ratio_median": statistics.median(
                row["short_seconds"] / first["short_seconds"]
                for row, first in zip(rows, reference_rows)
            ),
            # The same bootstrap draws for both: is the gain more than the sample's luck?
            "tau_gain_over_first_95": bootstrap_interval(
                lambda picked, rows=rows: (
                    proxy_tau(rows, picked) - proxy_tau(reference_rows, picked)
                ),
                len(rows),
            ),
        }
    result = {
        "command": invocation(__file__),
        "machine": machine(),
        "long_budget": long,
        "budgets": table,
    }
    first = next(iter(table))
    lines = [
        f"# Proxy budgets against {long} on {args.dataset}",
        "",
        f"`{result['command']}`, {result['machine']['date']}, {result['machine']['cpu']} "
        f"({result['machine']['cores']} cores). {len(archs)} architectures (the landmarks and "
        f"the seeded sample of `python -m nas.fidelity`), seed {args.seed}. Intervals: 95% "
        "bootstrap over the architectures (1,000 draws); the gain is paired, on the same draws.",
        "",
        f"| proxy | training images | median s per run | time vs {first} | Kendall tau (95%) "
        f"| Spearman rho | tau gain over {first} (95%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in table.items():
        low, high = row["proxy_kendall_tau_95"]
        gain_low, gain_high = row["tau_gain_over_first_95"]
        gain = row["proxy_kendall_tau"] - table[first]["proxy_kendall_tau"]
        # A label without "@" is the default recipe: say which batch that picked.
        shown = label if "@" in label else f"{label} (default, batch {row['batch_size']})"
        lines.append(
            f"| {shown} | {row['training_images']:,} | {row['seconds_median']:.1f} "
            f"| {row['seconds_ratio_median']:.2f}x "
            f"| {row['proxy_kendall_tau']:.3f} ({low:.2f} to {high:.2f}) "
            f"| {row['proxy_spearman_rho']:.3f} "
            f"| {gain:+.3f} ({gain_low:+.2f} to {gain_high:+.2f}) |"
        )
    write_results(args.name, result, lines)


def check_long_runs(
    archs: list, runs: dict, long: str, log: Path, *, before_training: bool
) -> None:
    """Say which architectures have no long run yet to be ranked against.

    Args:
        archs: (label, arch) of the architectures ranked.
        runs: the logged runs by (arch, budget label).
        long: the long budget's label.
        log: the runs' log file, named in the message.
        before_training: True: a note, the candidates train anyway; False: an error and exit
            status 2, as no ranking can be made.
    """
    missing = [label for label, arch in archs if (arch, long) not in runs]
    if not missing:
        return
    if before_training:
        print(
            f"note: {len(missing)} architectures have no {long} run in {log} yet; "
            f"the ranking needs them (python -m nas.fidelity --runs {log})",
            file=sys.stderr,
        )
        return
    print(
        f"error: no {long} run for {', '.join(missing)} in {log}; "
        f"run `python -m nas.fidelity --runs {log}` to finish them, then this again",
        file=sys.stderr,
    )
    sys.exit(2)


def candidate_label(budget: Budget, changes: dict, split_size: int) -> str:
    """The label its runs will be logged under (see nas.fidelity.run_label)."""
    batch_size = replace(DEFAULT_RECIPE, **changes).batch_size_for(budget, split_size)
    run = {"budget": str(budget), "recipe_changes": changes, "batch_size": batch_size}
    return run_label(run, split_size)


if __name__ == "__main__":
    main()
