"""What the pruners keep of the long-run front, read from the stored fidelity runs (no training).

`python -m nas.fidelity` trained each of its architectures at the proxy budget (3x10000,
whose per-epoch curve it keeps) and at 30x10000. This asks of those runs: how well does the
accuracy after epoch 1 or 2 of the proxy rank the long runs (Kendall tau, 95% bootstrap over
the architectures), and, with every architecture at the rung together, which ones each pruner
lets continue, how many of the long runs' Pareto front they are, and what share of the long
runs' hypervolume the continuing ones hold.

    python bench/rung_fidelity.py [--runs bench/results/fidelity_runs.jsonl]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import RESULTS, bench_parser, invocation, machine, write_results  # noqa: E402
from nas.fidelity import bootstrap_interval, kendall_tau, load_runs  # noqa: E402
from nas.pareto import hypervolume, pareto_indices  # noqa: E402
from nas.pruning import DominancePruner, PeerCurve, RungPruner  # noqa: E402

PROXY, LONG = "3x10000", "30x10000"
# The training split of Fashion-MNIST after its validation split: what labels the runs.
SPLIT_SIZE = 50_000
RANDOM_DRAWS = 1000


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", default=str(RESULTS / "fidelity_runs.jsonl"))
    parser.add_argument("--name", default="rung_fidelity", help="results file name")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the results")
    args = parser.parse_args()

    runs = load_runs(Path(args.runs), SPLIT_SIZE)
    rows = []
    for (arch, label), proxy in sorted(runs.items()):
        long = runs.get((arch, LONG))
        if label != PROXY or long is None or proxy["failure"] or long["failure"]:
            continue
        rows.append({"curve": proxy["curve"], "macs": proxy["macs"], "long": long["val_acc"]})

    taus = {}
    for epoch in (1, 2, 3):

        def tau(picked, epoch=epoch):
            return kendall_tau(
                [rows[i]["curve"][epoch - 1] for i in picked], [rows[i]["long"] for i in picked]
            )

        low, high = bootstrap_interval(tau, len(rows))
        taus[epoch] = {
            "tau": round(tau(range(len(rows))), 3),
            "tau_95": [round(low, 3), round(high, 3)],
        }

    long_points = [(r["long"], r["macs"]) for r in rows]
    front = set(pareto_indices(long_points))
    full_hv = hypervolume(long_points)
    decisions = {
        "rungs (epoch 1, top third)": _continuing(RungPruner(), rows),
        "dominance (epochs 1 and 2)": _continuing(DominancePruner(), rows),
    }
    kept = {}
    for name, continuing in decisions.items():
        kept[name] = {
            "continue": len(continuing),
            "front_kept": len(front & continuing),
            "hv_share": round(hypervolume([long_points[i] for i in continuing]) / full_hv, 4),
            "random_hv_share_median": _random_share(long_points, len(continuing), full_hv),
            # A random draw of as many keeps each front member with chance size / n.
            "random_front_kept": round(len(front) * len(continuing) / len(rows), 1),
        }
    result = {
        "benchmark": invocation(__file__),
        "machine": machine(),
        "architectures": len(rows),
        "long_front": len(front),
        "kendall_tau_by_epoch": taus,
        "kept": kept,
    }
    write_results(args.name, result, markdown(result), out=args.out)


def _continuing(pruner, rows: list[dict]) -> set[int]:
    """The architectures the pruner lets train to the end, all of them meeting at each rung
    with the others as peers (the dominance rule sees them as finished)."""
    continuing = set()
    for index, row in enumerate(rows):
        peers = [PeerCurve(r["macs"], tuple(r["curve"])) for i, r in enumerate(rows) if i != index]
        stopped = any(
            pruner.should_prune(epoch, row["curve"][epoch - 1], row["macs"], peers, 3)
            for epoch in (1, 2)
        )
        if not stopped:
            continuing.add(index)
    return continuing


def _random_share(points: list, size: int, full_hv: float) -> float:
    """The median hypervolume share of `size` architectures drawn at random: the baseline."""
    rng = random.Random(0)
    shares = sorted(hypervolume(rng.sample(points, size)) / full_hv for _ in range(RANDOM_DRAWS))
    return round(shares[len(shares) // 2], 4)


def markdown(r: dict) -> list[str]:
    lines = [
        "# What the pruners keep of the long-run front",
        "",
        f"`{r['benchmark']}` on {r['machine']['cpu']} ({r['machine']['cores']} cores), "
        f"{r['machine']['date']}; no training: the {r['architectures']} architectures of "
        f"`bench/results/fidelity_runs.jsonl` trained at {PROXY} (its per-epoch curve) and at "
        f"{LONG}, whose Pareto front has {r['long_front']} of them.",
        "",
        "| proxy accuracy after | Kendall tau with the long runs (95%) |",
        "|---|---|",
    ]
    for epoch, t in r["kendall_tau_by_epoch"].items():
        lines.append(
            f"| epoch {epoch} of 3 | {t['tau']:.3f} ({t['tau_95'][0]:.2f} to "
            f"{t['tau_95'][1]:.2f}) |"
        )
    lines += [
        "",
        "With every architecture at the rung together:",
        "",
        "| pruner | continue to the end | of the long front's "
        f"{r['long_front']} (as many at random) | share of the long runs' hypervolume (as many "
        "at random, median) |",
        "|---|---:|---:|---:|",
    ]
    for name, k in r["kept"].items():
        lines.append(
            f"| {name} | {k['continue']} | {k['front_kept']} ({k['random_front_kept']:g}) | "
            f"{k['hv_share']:.4f} ({k['random_hv_share_median']:.4f}) |"
        )
    return lines


if __name__ == "__main__":
    main()
