"""`python -m nas.findings`: the Inception and Xception papers' claims, measured on your data.

Runs five small experiments at a stated budget, with several seeds each, and writes a Markdown
report (default results/findings.md in the current folder):

1. the spectrum: accuracy, MACs and latency against segments, 1 (normal) .. one per channel;
2. factorization: a 5x5 against two stacked 3x3 (18/25 of the cost in a block that keeps its
   width, 27/25 in one that doubles it; accuracy measured);
3. the activation between the depthwise/spatial and the pointwise step (Xception: none is
   better; Inception-v3: ReLU is better);
4. the landmarks head to head at matched parameter count;
5. FLOPs versus speed: MACs against measured latency, with their rank correlation.

Each training run is appended to a JSON-lines file as it finishes (`--runs`), so an
interrupted run resumes without retraining.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna

import search_spaces
from nas._arch import Arch
from nas._cli import (
    OneLineParser,
    add_budget_option,
    add_device_option,
    add_output_options,
    check_writable,
    device_and_budget,
    fail,
    refusing_bad_input,
    whole_number_at_least,
)
from nas._data_choice import DataChoice, add_dataset_options, data_key_of
from nas._findings_report import render
from nas._runlog import append_run, read_runs
from search_spaces import LANDMARKS, stem_stride_for
from search_spaces._landmarks import rescaled

TARGET_PARAMS_FROM = "inception_v3"
EXPERIMENTS = (
    "spectrum",
    "factorization",
    "activation",
    "matched",
    "speed",
)  # landmarks are scaled to this one's parameter count


def spectrum_archs() -> list[tuple[str, Arch]]:
    space = search_spaces.get("xception_spectrum")
    return [
        (f"segments={value}", space.sample(optuna.trial.FixedTrial({"segments": value})))
        for value in space.choices["segments"]
    ]


def _with_knobs(arch: Arch, **knobs) -> Arch:
    return replace(arch, stages=tuple(replace(stage, **knobs) for stage in arch.stages))


def factorization_archs() -> list[tuple[str, Arch]]:
    five = _with_knobs(LANDMARKS["normal"], branches=("5",))
    return [
        ("5x5 conv", five),
        ("two stacked 3x3", _with_knobs(five, factorize=True)),
        ("inception_v1 (5x5 branch)", LANDMARKS["inception_v1"]),
        # The one knob inside Inception; inception_v3 differs from v1 in more than it.
        ("inception_v1, 5x5 as two 3x3", _with_knobs(LANDMARKS["inception_v1"], factorize=True)),
        ("inception_v3 (its paper's module)", LANDMARKS["inception_v3"]),
    ]


def activation_archs() -> list[tuple[str, Arch]]:
    xception, extreme = LANDMARKS["xception"], LANDMARKS["extreme_inception"]
    return [
        ("depthwise -> 1x1, no activation (Xception)", xception),
        ("depthwise -> ReLU -> 1x1", _with_knobs(xception, mid_act=True)),
        ("1x1 -> ReLU -> depthwise (extreme Inception)", extreme),
        ("1x1 -> depthwise, no activation", _with_knobs(extreme, mid_act=False)),
    ]


def scaled(arch: Arch, multiplier: float) -> Arch:
    """The same design with every width times `multiplier` (multiples of 4, at least 8); a
    stage's branch and inner widths keep their proportions (search_spaces._landmarks.rescaled:
    integers, the branches' summing to the width)."""
    stages = tuple(
        rescaled(stage, max(8, int(round(stage.width * multiplier / 4)) * 4))
        for stage in arch.stages
    )
    return replace(arch, stem=max(8, int(round(arch.stem * multiplier / 4)) * 4), stages=stages)


def matched_landmarks(input_shape, num_classes) -> list[tuple[str, Arch]]:
    """Each landmark widened or narrowed to the parameter count of TARGET_PARAMS_FROM."""
    from nas.cost import count_cost

    def params(arch: Arch) -> int:
        return count_cost(arch, input_shape, num_classes).params

    target = params(LANDMARKS[TARGET_PARAMS_FROM])
    matched = []
    for name, arch in LANDMARKS.items():
        candidates = [scaled(arch, m / 8) for m in range(2, 33)]
        best = min(candidates, key=lambda a: abs(params(a) - target))
        matched.append((name, best))
    return matched


# What every run of the log holds (written below, read by the tables).
RUN_KEYS = ("key", "val_acc", "failure")


LATENCY_ROUNDS = 3


def interleaved_latencies(archs, measure, rounds: int = LATENCY_ROUNDS) -> dict:
    """Each distinct design timed once per round, all designs in turn, and the median of its
    rounds kept: a slow spell of a shared machine then spreads over every design instead of
    landing on one, and a design in several sections shows one latency in all of them."""
    distinct = list(dict.fromkeys(archs))
    timings = {arch: [] for arch in distinct}
    for _ in range(rounds):
        for arch in distinct:
            timings[arch].append(measure(arch))
    return {
        arch: {batch: statistics.median(t[batch] for t in runs) for batch in runs[0]}
        for arch, runs in timings.items()
    }


def run_key(arch: Arch, budget: str, seed: int, dataset: str, batch_size: int) -> str:
    # The batch is part of the key: the recipe picks it per budget, and it changed once.
    return f"{dataset}|{budget}|b{batch_size}|{seed}|{arch}"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        module="nas.findings", script="nas-findings", description=__doc__.splitlines()[0]
    )
    add_dataset_options(parser)
    parser.add_argument(
        "--seeds",
        type=whole_number_at_least(1),
        default=3,
        help="training runs of each design, seeded 0, 1, ... (default 3)",
    )
    add_budget_option(parser)
    add_device_option(parser)
    add_output_options(parser, "findings_runs.jsonl", "findings.md", "its data as JSON (.json)")
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated subset of {','.join(EXPERIMENTS)} (default all)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    only = EXPERIMENTS if args.only is None else tuple(args.only.split(","))
    unknown = [name for name in only if name not in EXPERIMENTS]
    if unknown:
        return fail(f"unknown experiment {unknown[0]!r}: choose from {', '.join(EXPERIMENTS)}")
    args.only = only
    return refusing_bad_input(_run, args)


def _run(args) -> int:
    # Training, cost counting and the data load torch: imported once a run starts.
    from nas._machine import machine
    from nas.builder import build_model
    from nas.cost import count_cost, measure_latency
    from nas.train import DEFAULT_RECIPE, train

    device, budget = device_and_budget(args)
    runs_path, out = Path(args.runs), Path(args.out)
    for path, option in ((runs_path, "--runs"), (out, "--out")):
        check_writable(path, option, makes_folder=True)
    # Refused before the dataset loads when --runs names some other file.
    runs = {run["key"]: run for run in read_runs(runs_path, RUN_KEYS)}
    choice = DataChoice.from_args(args)
    data = choice.load(device)
    data_key = data_key_of(choice, data)
    batch_size = DEFAULT_RECIPE.batch_size_for(budget, len(data.train_x))
    shape, classes = data.input_shape, data.num_classes
    experiments = {
        "spectrum": spectrum_archs(),
        "factorization": factorization_archs(),
        "activation": activation_archs(),
        "matched": matched_landmarks(shape, classes),
        "speed": list(LANDMARKS.items()),
    }
    # The designs are drawn for 28 x 28 images; on larger ones their stem downsamples first,
    # as the search's does, so that they compare at the cost they would have there.
    stride = stem_stride_for(shape)
    experiments = {
        name: [(label, replace(arch, stem_stride=stride)) for label, arch in archs]
        for name, archs in experiments.items()
        if name in args.only
    }
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    trained = {arch for name, archs in experiments.items() if name != "speed" for _, arch in archs}
    todo = [
        (a, s)
        for a in sorted(trained, key=str)
        for s in range(args.seeds)
        if run_key(a, str(budget), s, data_key, batch_size) not in runs
    ]
    start = time.monotonic()
    for index, (arch, seed) in enumerate(todo, 1):
        model = build_model(arch, data.in_channels, classes)
        result = train(model, data, budget, device=device, seed=seed)
        run = {
            "key": run_key(arch, str(budget), seed, data_key, batch_size),
            "val_acc": result.val_acc,
            "failure": result.failure,
            "seconds": round(result.train_seconds, 2),
        }
        runs[run["key"]] = run
        append_run(runs_path, run)
        print(
            f"[{index}/{len(todo)}] acc {result.val_acc:.4f} elapsed "
            f"{(time.monotonic() - start) / 60:.1f} min",
            file=sys.stderr,
            flush=True,
        )

    latencies = interleaved_latencies(
        [arch for archs in experiments.values() for _, arch in archs],
        lambda arch: measure_latency(arch, shape, device=device, batch_sizes=(1, 64)),
    )
    tables = {}
    for name, archs in experiments.items():
        rows = []
        for label, arch in archs:
            cost = count_cost(arch, shape, classes)
            latency = latencies[arch]
            accs = [
                runs[k]["val_acc"]
                for s in range(args.seeds)
                if (k := run_key(arch, str(budget), s, data_key, batch_size)) in runs
                and not runs[k]["failure"]
            ]
            rows.append(
                {
                    "label": label,
                    "arch": str(arch),
                    "macs": cost.macs,
                    "params": cost.params,
                    "latency_ms_b1": round(latency[1], 3),
                    "latency_ms_b64": round(latency[64], 3),
                    "acc_mean": statistics.mean(accs) if accs else None,
                    "acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "seeds": len(accs),
                }
            )
        tables[name] = rows
    context = {
        "dataset": choice.label,
        "budget": str(budget),
        "batch_size": batch_size,
        "seeds": args.seeds,
        "device": device,
        "machine": machine(),
        "command": "python -m nas.findings " + " ".join(sys.argv[1:]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(tables, context))
    out.with_suffix(".json").write_text(
        json.dumps({"context": context, "tables": tables}, indent=2) + "\n"
    )
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
