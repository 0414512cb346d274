"""Training throughput of the proxy trainer against a plain DataLoader loop, per landmark.

The baseline is the loop a typical user writes: a DataLoader over a TensorDataset of the same
uint8 tensors (shuffle=True, no workers), normalization on the CPU inside the loop, the model
in the default NCHW layout, the same batch size, optimizer and loss. A third variant adds
channels_last to that loop, to show how much of the gain is memory layout and how much the
data path. Our trainer runs in each --precision and each --layouts (channels_last, as the
recipe does, or the default NCHW). Variants are interleaved within each repeat (order rotated)
so that a busy neighbour on the machine slows all of them alike; figures are medians over
repeats.

Achieved work is 3 x forward MACs per training image (forward, input gradient, weight
gradient), as a fraction of a dense matmul's rate measured in the same run: bf16 for bf16
runs, fp32 for fp32 runs (on CUDA with TF32 allowed, as cuDNN's convolutions use it), timed
with CUDA events on a product large enough to be arithmetic-bound (8192^3 on CUDA).
Concurrent trainers sharing a device: bench/concurrency.py.

    python bench/throughput.py --device cpu                      # -> bench/results/
    python bench/throughput.py --device cuda --precision bf16,fp32 --layouts channels_last,nchw
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import (  # noqa: E402
    RESULTS,
    chosen_device,
    device_opening,
    device_run,
    device_tag,
    device_title,
    write_results,
)
from nas import build_model, count_cost  # noqa: E402
from nas.data import Dataset, DatasetNotFoundError, load_dataset  # noqa: E402
from nas.train import DEFAULT_RECIPE, Budget, auto_budget, cpu_threads, train  # noqa: E402
from search_spaces import LANDMARKS  # noqa: E402


def load_or_synthesize(name: str, data_dir: str | None) -> tuple[Dataset, str]:
    """The real dataset if it is here; else random images of its shape (speed ignores pixels)."""
    try:
        return load_dataset(name, data_dir), name
    except DatasetNotFoundError:
        shape = {"fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}[name]
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (60_000, *shape), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (60_000,), generator=generator)
        channels = (0.5,) * shape[0]
        synthetic = Dataset(
            name, images[:50_000], labels[:50_000], images[50_000:], labels[50_000:],
            images[50_000:], labels[50_000:], 10, channels, channels,
        )  # fmt: skip
        return synthetic, f"synthetic ({name} shapes: the files are not on this machine)"


def ours(
    model, data, images: int, device: str, precision: str, channels_last: bool = True
) -> float:
    """Images/s of nas.train.train for one epoch of `images` (evaluation excluded)."""
    recipe = bench_recipe(precision, channels_last)
    tiny_val = replace(data, val_x=data.val_x[:256], val_y=data.val_y[:256])
    result = train(model, tiny_val, Budget(1, images), device=device, recipe=recipe)
    return result.images_seen / result.train_seconds


def bench_recipe(precision: str, channels_last: bool = True):
    """The search's recipe in `precision` ("bf16" or "fp32") and memory layout."""
    # min_steps=0: one short epoch would otherwise train at half the batch the baselines use.
    bf16 = precision == "bf16"
    return replace(
        DEFAULT_RECIPE, cuda_bf16=bf16, cpu_bf16=bf16, min_steps=0, channels_last=channels_last
    )


def default_trial_images(device: str, data: Dataset) -> int:
    """Training images of one trial at the search's default budget (`--budget auto`)."""
    budget = auto_budget(device, data.name)
    return budget.epochs * min(budget.train_size or len(data.train_x), len(data.train_x))


def plain_loop(model, data, images: int, device: str, channels_last: bool = False) -> float:
    """Images/s of the loop a typical user writes around a DataLoader."""
    loader = DataLoader(
        TensorDataset(data.train_x, data.train_y),
        batch_size=DEFAULT_RECIPE.batch_size,
        shuffle=True,
        drop_last=True,
    )
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=layout).train()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=0.01,
        momentum=DEFAULT_RECIPE.momentum,
        nesterov=True,
        weight_decay=DEFAULT_RECIPE.weight_decay,
    )
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    seen = 0
    _synchronize(device)
    start = time.perf_counter()
    for batch, labels in loader:
        batch = ((batch.float() / 255 - mean) / std).to(device, memory_format=layout)
        loss = F.cross_entropy(
            model(batch), labels.to(device), label_smoothing=DEFAULT_RECIPE.label_smoothing
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(batch)
        if seen >= images:
            break
    _synchronize(device)
    return seen / (time.perf_counter() - start)


def loader_only(data, images: int) -> float:
    """Images/s of the DataLoader plus CPU normalization alone: the baseline's data ceiling."""
    loader = DataLoader(
        TensorDataset(data.train_x, data.train_y), batch_size=DEFAULT_RECIPE.batch_size,
        shuffle=True, drop_last=True,
    )  # fmt: skip
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    seen, start = 0, time.perf_counter()
    for batch, _ in loader:
        _ = (batch.float() / 255 - mean) / std
        seen += len(batch)
        if seen >= images:
            break
    return seen / (time.perf_counter() - start)


def matmul_macs_per_s(device: str, dtype: torch.dtype, size: int) -> float:
    """Dense matmul rate (MAC/s, median of 10) of the device: the ceiling we compare against.

    On CUDA the products are timed with CUDA events (host timers around one product of a
    millisecond or less measure launch and synchronization overhead as well) and fp32 runs
    with TF32 allowed, the precision cuDNN's fp32 convolutions already use.
    """
    generator = torch.Generator(device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    on_cuda = device.startswith("cuda")
    precision_before = torch.get_float32_matmul_precision()
    if on_cuda:
        torch.set_float32_matmul_precision("high")  # TF32 for fp32 products
    try:
        times = []
        for index in range(13):
            if on_cuda:
                begin, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                begin.record()
                a @ b
                end.record()
                end.synchronize()
                seconds = begin.elapsed_time(end) / 1e3
            else:
                start = time.perf_counter()
                a @ b
                seconds = time.perf_counter() - start
            if index >= 3:  # the first calls pick kernels and warm caches
                times.append(seconds)
    finally:
        torch.set_float32_matmul_precision(precision_before)
    return size**3 / statistics.median(times)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def cpu_snapshot() -> tuple[float, float, float]:
    """(CPU-seconds every core was busy, CPU-seconds of this process tree, wall seconds)."""
    try:
        with open("/proc/stat") as handle:
            ticks = [int(value) for value in handle.readline().split()[1:9]]
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    except OSError:  # not Linux: contention cannot be seen, so none is reported
        busy = 0.0
    own = os.times()
    return busy, own.user + own.system + own.children_user + own.children_system, time.time()


def foreign_load(before: tuple[float, float, float]) -> float:
    """Cores' worth of CPU that other processes used since `before`."""
    after = cpu_snapshot()
    if not after[0]:
        return 0.0
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / (after[2] - before[2])


def measured(run, attempts: int, max_foreign: float) -> tuple[float, float]:
    """(rate, foreign load) of `run()`, retried while other processes compete for the CPU.

    On a shared machine a neighbour's burst slows an OpenMP loop many times over (threads
    spin at barriers while their partner is descheduled), which would swamp the comparison.
    """
    for attempt in range(attempts):
        before = cpu_snapshot()
        rate = run()
        load = foreign_load(before)
        if load <= max_foreign:
            break
        if attempt < attempts - 1:
            time.sleep(5.0)
    return rate, load


def our_variants(precisions: list[str], layouts: list[str]) -> list[str]:
    """Variant names of our trainer: ours_PRECISION, with _nchw for the default layout."""
    return [
        f"ours_{precision}" + ("" if layout == "channels_last" else "_nchw")
        for precision in precisions
        for layout in layouts
    ]


def run_variant(variant: str, model, data, images: int, device: str):
    """The measurement `variant` names, as a function of no arguments returning images/s."""
    if variant.startswith("ours_"):
        precision = variant.split("_")[1]
        return partial(ours, model, data, images, device, precision, "_nchw" not in variant)
    return partial(plain_loop, model, data, images, device, variant.endswith("channels_last"))


def compare(args, device: str, data: Dataset, data_note: str, save) -> dict:
    """The interleaved comparison; calls save(partial record) after each landmark."""
    default_threads = torch.get_num_threads()  # what a plain loop runs with
    precisions = args.precision.split(",")
    peak = {
        precision: matmul_macs_per_s(device, DTYPES[precision], args.matmul_size)
        for precision in sorted(set(precisions) | {"bf16"})
    }
    baselines = [name for name in args.baselines.split(",") if name]
    variants = our_variants(precisions, args.layouts.split(",")) + baselines
    rows = {}
    for name in args.landmarks.split(","):
        arch = LANDMARKS[name]
        macs = count_cost(arch, data.input_shape, data.num_classes).macs
        model = build_model(arch, data.in_channels, data.num_classes)
        runs = {variant: [] for variant in variants}
        loads = {variant: [] for variant in variants}  # other processes' CPU use, in cores
        for repeat in range(args.repeats + 1):  # repeat 0 warms up every variant
            order = variants[repeat % len(variants) :] + variants[: repeat % len(variants)]
            for variant in order:
                torch.set_num_threads(default_threads)
                run = run_variant(variant, model, data, args.images, device)
                if not repeat:
                    run()
                    continue
                rate, load = measured(run, args.attempts, args.max_foreign_load)
                runs[variant].append(rate)
                loads[variant].append(round(load, 3))
        row = {"mmacs": macs / 1e6}
        for variant, rates in runs.items():
            row[f"{variant}_img_s"] = statistics.median(rates)
            row[f"{variant}_runs"] = [round(rate, 1) for rate in rates]
            row[f"{variant}_foreign_load"] = loads[variant]
            precision = variant.split("_")[1] if variant.startswith("ours") else "fp32"
            work = 3 * macs * statistics.median(rates)
            row[f"{variant}_peak_fraction"] = work / peak[precision]
            row[f"{variant}_bf16_peak_fraction"] = work / peak["bf16"]
        for baseline in baselines:
            ratios = [a / b for a, b in zip(runs[variants[0]], runs[baseline])]
            row[f"ratio_vs_{baseline}"] = statistics.median(ratios)
            row[f"ratio_vs_{baseline}_runs"] = [round(ratio, 3) for ratio in ratios]
        rows[name] = row
        save({"peak_matmul_macs_per_s": peak, "landmarks": rows, "data": data_note})
        print(name, json.dumps({k: v for k, v in row.items() if not k.endswith(("runs", "load"))}))
    summary = {
        f"median_{variant}_peak_fraction": statistics.median(
            row[f"{variant}_peak_fraction"] for row in rows.values()
        )
        for variant in variants
    }
    for baseline in baselines:
        summary[f"median_ratio_vs_{baseline}"] = statistics.median(
            row[f"ratio_vs_{baseline}"] for row in rows.values()
        )
    if baselines:
        summary["loader_only_img_s"] = loader_only(data, args.images * 4)
    return {
        "peak_matmul_macs_per_s": peak,
        "landmarks": rows,
        "summary": summary,
        "threads": {"ours": cpu_threads(), "plain": default_threads},
        "data": data_note,
    }


def report_lines(record: dict) -> list[str]:
    """The markdown of a record, also of one a time limit cut short (no summary yet)."""
    info = record["machine"]
    lines = [
        device_title("Training throughput", record),
        "",
        f"{device_opening(record)}, "
        f"{info['cores']} cores available; data: {record.get('data', '-')}.",
        "",
    ]
    rows = record.get("landmarks") or {}
    if not rows:
        return [*lines, "No landmark was measured.", ""]
    first_row = next(iter(rows.values()))
    variants = [key[: -len("_img_s")] for key in first_row if key.endswith("_img_s")]
    baselines = [key[len("ratio_vs_") :] for key in first_row if key.startswith("ratio_vs_")]
    baselines = [name for name in baselines if not name.endswith("_runs")]
    header = ["landmark", "MMACs", *(f"{variant} img/s" for variant in variants)]
    header += [f"{variants[0]} / {baseline}" for baseline in baselines]
    header += [f"{variant} share of bf16 matmul" for variant in variants if "plain" not in variant]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [name, f"{row['mmacs']:.2f}"]
        cells += [f"{row[f'{variant}_img_s']:.0f}" for variant in variants]
        cells += [f"{row[f'ratio_vs_{baseline}']:.2f}x" for baseline in baselines]
        cells += [
            f"{100 * row.get(f'{variant}_bf16_peak_fraction', math.nan):.2f}%"
            for variant in variants
            if "plain" not in variant
        ]
        lines.append("| " + " | ".join(cells) + " |")
    peaks = record["peak_matmul_macs_per_s"]
    peak_text = ", ".join(f"{key} {value / 1e9:.0f} GMAC/s" for key, value in peaks.items())
    lines += ["", f"Dense matmul rate measured in this run: {peak_text}.", ""]
    lines += [f"- {key}: {value:.3g}" for key, value in record.get("summary", {}).items()]
    if len(rows) < len(record.get("settings", {}).get("landmarks", rows)):
        lines.append(f"- cut short: {len(rows)} landmarks measured")
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="fashion_mnist", choices=("fashion_mnist", "cifar10"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--landmarks", default=",".join(LANDMARKS))
    parser.add_argument("--images", type=int, default=None, help="per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--precision", default=None, help="fp32, bf16 or fp32,bf16 (default: the recipe's)"
    )
    parser.add_argument(
        "--layouts", default="channels_last", help="channels_last, nchw or both, comma-separated"
    )
    parser.add_argument(
        "--baselines",
        default="plain,plain_channels_last",
        help="plain DataLoader loops to compare with: plain, plain_channels_last, or none",
    )
    parser.add_argument(
        "--matmul-size", type=int, default=None, help="default 8192 on CUDA, 2048 on a CPU"
    )
    parser.add_argument(
        "--attempts", type=int, default=None, help="tries per measurement (default 8; 1 on CUDA)"
    )
    parser.add_argument(
        "--max-foreign-load", type=float, default=0.2, help="retry above this many busy cores"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the logic only")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON and markdown")
    parser.add_argument("--tag", default=None, help="file name suffix, default the device")
    args = parser.parse_args(argv)
    device = chosen_device(parser, args.device)
    on_cuda = device.startswith("cuda")
    if args.precision is None:
        recipe_bf16 = DEFAULT_RECIPE.cuda_bf16 if on_cuda else DEFAULT_RECIPE.cpu_bf16
        args.precision = "bf16" if recipe_bf16 else "fp32"
    if args.baselines == "none":
        args.baselines = ""
    if args.images is None:
        args.images = 20_480 if on_cuda else 3_072
    if args.matmul_size is None:
        args.matmul_size = 8192 if on_cuda else 2048
    if args.attempts is None:
        # Retrying while other processes load the CPU guards OpenMP loops; a GPU run is not
        # slowed that way, and its device time is scarce.
        args.attempts = 1 if on_cuda else 8
    if args.quick:
        args.images, args.repeats, args.matmul_size, args.attempts = 256, 1, 256, 1
        if args.landmarks == ",".join(LANDMARKS):
            args.landmarks = "xception,mobilenet"

    record = device_run(__file__, argv, device)
    record["machine"]["load_average_at_start"] = os.getloadavg()
    record |= {
        "settings": {
            "batch_size": DEFAULT_RECIPE.batch_size,
            "images_per_measurement": args.images,
            "repeats": args.repeats,
            "quick": args.quick,
            "landmarks": args.landmarks.split(","),
        },
    }
    name = f"throughput_{args.tag or device_tag(device)}"
    json_path = Path(args.out) / f"{name}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)

    def save(partial: dict) -> None:  # after every step, so a time limit keeps what finished
        json_path.write_text(json.dumps({**record, **partial}, indent=2) + "\n")

    data, data_note = load_or_synthesize(args.dataset, args.data_dir)
    record.update(compare(args, device, data, data_note, save))
    write_results(name, record, report_lines(record), args.out)


if __name__ == "__main__":
    main()
