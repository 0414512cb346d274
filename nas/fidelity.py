"""`python -m nas.fidelity`: does the short proxy rank architectures like a long training does?

Trains a fixed, seeded sample of architectures from a space (plus the landmarks) twice: with
the proxy budget the search uses, and with a budget at least 10x larger; then reports Kendall
tau and Spearman rho between the two rankings by validation accuracy, next to the baseline of
ranking by MACs alone (on NAS-Bench-201, FLOPs alone give Kendall tau about 0.58).

Every finished run is appended to a JSON-lines file at once, so an interrupted run resumes
where it stopped: `--runs` names it (default results/fidelity_runs.jsonl in the current folder;
`--results` is its old name, still taken).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import search_spaces
from nas._cli import (
    OneLineParser,
    add_budget_option,
    add_device_option,
    add_output_options,
    add_seed_option,
    add_space_option,
    check_writable,
    device_and_budget,
    refusing_bad_input,
    whole_number_at_least,
)
from nas._data_choice import DataChoice, add_dataset_options
from nas._runlog import append_run, read_runs
from search_spaces import LATER_KNOB_DEFAULTS, landmarks_for


def average_ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman_rho(xs: list[float], ys: list[float]) -> float:
    """Pearson correlation of the average ranks."""
    rx, ry = average_ranks(xs), average_ranks(ys)
    mean_x, mean_y = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mean_x) * (b - mean_y) for a, b in zip(rx, ry))
    var_x = sum((a - mean_x) ** 2 for a in rx)
    var_y = sum((b - mean_y) ** 2 for b in ry)
    return cov / math.sqrt(var_x * var_y) if var_x and var_y else 0.0


def kendall_tau(xs: list[float], ys: list[float]) -> float:
    """Kendall's tau-b: concordant minus discordant pairs, corrected for ties."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt(
        (concordant + discordant + ties_x) * (concordant + discordant + ties_y)
    )
    return (concordant - discordant) / denominator if denominator else 0.0


MAX_REPEATS = 1000  # draws in a row that repeat a sampled network before a small space is refused


def sample_archs(
    space_name: str,
    count: int,
    seed: int,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    full_count: int = 0,
) -> list[tuple[str, str]]:
    """(label, arch string): the landmarks first, then `count` seeded random architectures
    ("random0", ...), then `full_count` more ("full0", ...), as the search would build them for
    images of `input_shape`.

    The first `count` draw only the earlier knobs (the papers' block knobs, LATER_KNOB_DEFAULTS,
    at their defaults), in the order they always had: the same seed gives the same sample as
    before those knobs existed, so long runs already logged stay usable. The `full_count` after
    them draw every knob."""
    space = search_spaces.get(space_name).for_input(input_shape)
    rng = random.Random(seed)
    chosen = [(name, str(arch)) for name, arch in landmarks_for(input_shape).items()]
    seen = {text for _, text in chosen}
    earlier, later = {}, {}
    for name, values in space.choices.items():
        knob = name.split("_", 1)[-1]
        if knob not in LATER_KNOB_DEFAULTS:
            earlier[name] = values
        else:  # its default, or the one value a space that fixes it allows
            default = str(LATER_KNOB_DEFAULTS[knob])
            later[name] = default if default in values else values[0]
    for prefix, knobs, wanted in (("random", earlier, count), ("full", space.choices, full_count)):
        kept = later if prefix == "random" else {}
        drawn = misses = 0
        while drawn < wanted:
            params = {name: rng.choice(values) for name, values in knobs.items()} | kept
            text = str(space.arch_from_params(params))
            if text in seen:
                misses += 1
                if misses > MAX_REPEATS:
                    option = "--archs" if prefix == "random" else "--full-archs"
                    raise ValueError(
                        f"{space_name} gave no new architecture in {MAX_REPEATS} draws after "
                        f"{len(chosen)}: ask for fewer with {option}"
                    )
                continue
            seen.add(text)
            chosen.append((f"{prefix}{drawn}", text))
            drawn, misses = drawn + 1, 0
    return chosen


def run_label(run: dict, split_size: int) -> str:
    """A run's budget and what of its recipe differs from the default: "3x10000@batch_size=128".

    The batch counts as changed only where it differs from the one the default recipe picks
    for that budget, so a default run's label is its budget alone.
    """
    from nas.train import BATCH_SIZE_BEFORE_MIN_STEPS, DEFAULT_RECIPE, Budget

    changes = {
        name: value
        for name, value in (run.get("recipe_changes") or {}).items()
        if name not in ("batch_size", "min_steps")
    }
    batch_size = run.get("batch_size", BATCH_SIZE_BEFORE_MIN_STEPS)
    if batch_size != DEFAULT_RECIPE.batch_size_for(Budget.parse(run["budget"]), split_size):
        changes["batch_size"] = batch_size
    text = ",".join(f"{name}={value}" for name, value in sorted(changes.items()))
    return f"{run['budget']}@{text}" if text else run["budget"]


# What every run of the log holds: the key of a run, and what the report reads of it (all
# written by train_once).
KEY_FIELDS = ("arch", "budget")
RUN_KEYS = (*KEY_FIELDS, "val_acc", "macs", "seconds", "failure")


def load_runs(path: Path, split_size: int) -> dict[tuple[str, str], dict]:
    """Finished runs keyed by (arch, run_label); a run under a changed recipe is kept apart.

    Raises:
        ValueError: when `path` holds something other than these runs (one line for the user).
    """
    return {(run["arch"], run_label(run, split_size)): run for run in read_runs(path, KEY_FIELDS)}


def train_once(
    arch_text: str, data, budget, device: str, seed: int, recipe_changes: dict | None = None
) -> dict:
    from nas.builder import build_model
    from nas.cost import count_cost
    from nas.train import DEFAULT_RECIPE, train

    model = build_model(arch_text, data.in_channels, data.num_classes)
    recipe = replace(DEFAULT_RECIPE, **(recipe_changes or {}))
    result = train(model, data, budget, device=device, seed=seed, recipe=recipe)
    return {
        "arch": arch_text,
        "budget": str(budget),
        "batch_size": result.batch_size,
        **({"recipe_changes": recipe_changes} if recipe_changes else {}),
        "val_acc": result.val_acc,
        "curve": result.val_acc_curve,
        "macs": count_cost(arch_text, data.input_shape, data.num_classes).macs,
        "seconds": round(result.train_seconds + result.eval_seconds, 2),
        "failure": result.failure,
    }


def paired_rows(
    archs: list[tuple[str, str]], runs: dict[tuple[str, str], dict], short: str, long: str
) -> list[dict]:
    """One row per architecture: its MACs, and accuracy (None if it failed) and seconds at
    the `short` and the `long` budget."""
    rows = []
    for label, arch_text in archs:
        short_run, long_run = runs[(arch_text, short)], runs[(arch_text, long)]
        rows.append(
            {
                "label": label,
                "arch": arch_text,
                "macs": short_run["macs"],
                "short_acc": None if short_run["failure"] else short_run["val_acc"],
                "long_acc": None if long_run["failure"] else long_run["val_acc"],
                "short_seconds": short_run["seconds"],
                "long_seconds": long_run["seconds"],
            }
        )
    return rows


def correlations(rows: list[dict]) -> dict:
    """Rank agreement of the proxy, and of MACs alone, with the long training."""
    usable = [r for r in rows if r["short_acc"] is not None and r["long_acc"] is not None]
    short = [r["short_acc"] for r in usable]
    long = [r["long_acc"] for r in usable]
    # More MACs is taken to mean more accurate: the baseline a proxy must beat.
    macs = [float(r["macs"]) for r in usable]
    low, high = bootstrap_interval(lambda picked: proxy_tau(usable, picked), len(usable))
    return {
        "architectures": len(usable),
        "proxy_kendall_tau": round(kendall_tau(short, long), 4),
        "proxy_kendall_tau_95": [round(low, 4), round(high, 4)],
        "proxy_spearman_rho": round(spearman_rho(short, long), 4),
        "macs_kendall_tau": round(kendall_tau(macs, long), 4),
        "macs_spearman_rho": round(spearman_rho(macs, long), 4),
    }


def proxy_tau(rows: list[dict], picked: list[int]) -> float:
    """Kendall tau between proxy and long accuracy over the picked rows (repeats allowed, as a
    bootstrap draws them); a row where either run failed has no rank and is left out."""
    pairs = [rows[i] for i in picked if None not in (rows[i]["short_acc"], rows[i]["long_acc"])]
    return kendall_tau([r["short_acc"] for r in pairs], [r["long_acc"] for r in pairs])


def bootstrap_interval(
    statistic, count: int, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of `statistic(indices)` over architectures drawn with
    replacement: how much a figure from a few dozen architectures could move by chance."""
    rng = random.Random(seed)
    values = sorted(
        statistic([rng.randrange(count) for _ in range(count)]) for _ in range(resamples)
    )
    return values[int(0.025 * resamples)], values[int(0.975 * resamples) - 1]


def markdown_report(summary: dict) -> str:
    """The result table: each architecture's rank by the proxy, by the long run and by MACs."""
    rows = summary["rows"]
    usable = [r for r in rows if r["short_acc"] is not None and r["long_acc"] is not None]
    labels = [r["label"] for r in usable]

    def rank_by(key) -> dict[str, float]:
        # Rank 1 is the most accurate (or the most MACs).
        return dict(zip(labels, average_ranks([-float(key(r)) for r in usable])))

    ranks = {
        "short_acc": rank_by(lambda r: r["short_acc"]),
        "long_acc": rank_by(lambda r: r["long_acc"]),
        "macs": rank_by(lambda r: r["macs"]),
    }

    def cell(row: dict, key: str, text: str) -> str:
        if row[key] is None:
            return "failed"
        rank = ranks[key].get(row["label"])
        return text if rank is None else f"{text} (#{rank:g})"

    lines = [
        f"# Proxy fidelity on {summary['dataset']} ({summary['device']})",
        "",
        f"`{summary['command']}`, {summary['machine']['date']}, "
        f"{summary['machine']['cpu']} ({summary['machine']['cores']} cores), "
        f"torch {summary['machine']['torch']}.",
        "",
        f"{summary['architectures']} architectures from `{summary['space']}` (the landmarks "
        f"and a seeded sample), each trained at the proxy budget {summary['proxy_budget']} "
        f"(batch {summary['proxy_batch_size']}) and at {summary['long_budget']} "
        f"(batch {summary['long_batch_size']}), under the default recipe otherwise.",
        "",
        "| ranking of the long run by | Kendall tau | Spearman rho |",
        "|---|---|---|",
        f"| the proxy's accuracy | {summary['proxy_kendall_tau']:.3f} "
        f"| {summary['proxy_spearman_rho']:.3f} |",
        f"| MACs alone (baseline) | {summary['macs_kendall_tau']:.3f} "
        f"| {summary['macs_spearman_rho']:.3f} |",
        "",
        "Resampling the architectures (bootstrap, 1,000 draws) puts the proxy's Kendall tau "
        "between {:.3f} and {:.3f} (95%).".format(*summary["proxy_kendall_tau_95"]),
        "",
        f"Median training time per architecture: {summary['proxy_seconds_median']:.1f} s at "
        f"the proxy budget, {summary['long_seconds_median']:.1f} s at the long one.",
        "",
        "| architecture | MMACs (#) | proxy val acc (#) | long val acc (#) | arch |",
        "|---|---|---|---|---|",
    ]
    ordered = sorted(rows, key=lambda r: -(r["long_acc"] if r["long_acc"] is not None else -1))
    for row in ordered:
        short = "" if row["short_acc"] is None else f"{100 * row['short_acc']:.2f}%"
        long = "" if row["long_acc"] is None else f"{100 * row['long_acc']:.2f}%"
        mmacs = f"{row['macs'] / 1e6:.2f}"
        lines.append(
            f"| {row['label']} | {cell(row, 'macs', mmacs)} "
            f"| {cell(row, 'short_acc', short)} | {cell(row, 'long_acc', long)} "
            f"| `{row['arch']}` |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        module="nas.fidelity", script="nas-fidelity", description=__doc__.splitlines()[0]
    )
    add_space_option(parser)
    add_dataset_options(parser)
    parser.add_argument(
        "--archs",
        type=whole_number_at_least(1),
        default=30,
        help="random architectures besides the landmarks, drawn over the knobs the space had "
        "before the papers' block knobs, which stay at their defaults (default 30)",
    )
    parser.add_argument(
        "--full-archs",
        type=whole_number_at_least(0),
        default=6,
        help="random architectures drawn over every knob, after those (default 6)",
    )
    add_budget_option(parser)
    parser.add_argument(
        "--long-budget",
        default=None,
        help="the reference budget (default: the proxy's --budget with 10x the epochs)",
    )
    add_device_option(parser)
    add_seed_option(parser)
    add_output_options(
        parser, "fidelity_runs.jsonl", "fidelity.json", "its table as Markdown (.md)"
    )
    # The log's name before it was --runs, as in nas.findings: old commands still work.
    parser.add_argument(
        "--results", dest="runs", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return refusing_bad_input(_run, build_parser().parse_args(argv))


def _run(args) -> int:
    # nas.train loads torch: imported once a run starts, not for --help.
    from nas.train import DEFAULT_RECIPE, Budget

    device, short = device_and_budget(args)
    long = (
        Budget(short.epochs * 10, short.train_size)
        if args.long_budget is None
        else Budget.parse(args.long_budget)
    )
    short_images = short.epochs * (short.train_size or 10**9)
    long_images = long.epochs * (long.train_size or 10**9)
    if long_images < 10 * short_images:
        raise ValueError(f"--long-budget {long} must be at least 10x the proxy budget {short}")
    search_spaces.get(args.space)  # an unknown space is refused before any data loads
    choice = DataChoice.from_args(args)
    results_path, out = Path(args.runs), Path(args.out)
    check_writable(results_path, "--runs", makes_folder=True)
    # The report may go to the folder the runs' log creates (both default to results/).
    check_writable(out, "--out", makes_folder=out.parent == results_path.parent)
    read_runs(results_path, RUN_KEYS)  # refuses another file before the dataset loads
    data = choice.load(device)
    archs = sample_archs(
        args.space, args.archs, args.seed, data.input_shape, full_count=args.full_archs
    )
    runs = load_runs(results_path, len(data.train_x))
    results_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    todo = [(a, b) for _, a in archs for b in (short, long) if (a, str(b)) not in runs]
    print(
        f"fidelity: {len(archs)} architectures at {short} and {long}; "
        f"{2 * len(archs) - len(todo)} runs already in {results_path}, {len(todo)} to train",
        file=sys.stderr,
        flush=True,
    )
    for index, (arch_text, budget) in enumerate(todo, 1):
        run = train_once(arch_text, data, budget, device, args.seed)
        runs[(arch_text, str(budget))] = run
        append_run(results_path, run)
        elapsed = time.monotonic() - start
        print(
            f"[{index}/{len(todo)}] {budget} acc {run['val_acc']:.4f} "
            f"({run['seconds']:.0f} s, elapsed {elapsed / 60:.1f} min)",
            file=sys.stderr,
            flush=True,
        )
    rows = paired_rows(archs, runs, str(short), str(long))
    from nas._machine import machine

    summary = {
        "command": " ".join(["python -m nas.fidelity", *sys.argv[1:]]),
        "machine": machine(),
        "dataset": choice.label,
        "space": args.space,
        "proxy_budget": str(short),
        "long_budget": str(long),
        "proxy_batch_size": DEFAULT_RECIPE.batch_size_for(short, len(data.train_x)),
        "long_batch_size": DEFAULT_RECIPE.batch_size_for(long, len(data.train_x)),
        "device": device,
        **correlations(rows),
        "proxy_seconds_median": statistics.median(r["short_seconds"] for r in rows),
        "long_seconds_median": statistics.median(r["long_seconds"] for r in rows),
        "rows": rows,
    }
    out.write_text(json.dumps(summary, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown_report(summary))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
