"""Training throughput of the proxy trainer against a plain DataLoader loop, per landmark.

The baseline is the loop a typical user writes: a DataLoader over a TensorDataset of the same
uint8 tensors (shuffle=True, no workers), normalization on the CPU inside the loop, the model
in the default NCHW layout, the same batch size, optimizer and loss. A third variant adds
channels_last to that loop, to show how much of the gain is memory layout and how much the
data path. Variants are interleaved within each repeat (order rotated) so that a busy
neighbour on the machine slows all of them alike; figures are medians over repeats.

Achieved work is 3 x forward MACs per training image (forward, input gradient, weight
gradient), as a fraction of a dense fp32 (or bf16) matmul's rate measured in the same run.

    python bench/throughput.py --device cpu                      # -> bench/results/
    python bench/throughput.py --device cuda --precision fp32,bf16 --out "$OUT"
    python bench/throughput.py --device cuda --concurrency 1,2,4,8 --landmarks normal
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import RESULTS, machine  # noqa: E402
from nas import build_model, count_cost  # noqa: E402
from nas.data import Dataset, DatasetNotFoundError, load_dataset  # noqa: E402
from nas.train import DEFAULT_RECIPE, Budget, cpu_threads, resolve_device, train  # noqa: E402
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


def ours(model, data, images: int, device: str, precision: str) -> float:
    """Images/s of nas.train.train for one epoch of `images` (evaluation excluded)."""
    # min_steps=0: one short epoch would otherwise train at half the batch the baselines use.
    recipe = replace(
        DEFAULT_RECIPE, cuda_bf16=precision == "bf16", cpu_bf16=precision == "bf16", min_steps=0
    )
    tiny_val = replace(data, val_x=data.val_x[:256], val_y=data.val_y[:256])
    result = train(model, tiny_val, Budget(1, images), device=device, recipe=recipe)
    return result.images_seen / result.train_seconds


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
    """Dense matmul rate (MAC/s, median of 5) of the device: the ceiling we compare against."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = []
    for index in range(7):
        _synchronize(device)
        start = time.perf_counter()
        a @ b
        _synchronize(device)
        if index >= 2:  # the first calls pick kernels and warm caches
            times.append(time.perf_counter() - start)
    return size**3 / statistics.median(times)


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


def compare(args, device: str, data: Dataset, data_note: str, save) -> dict:
    """The interleaved comparison; calls save(partial record) after each landmark."""
    default_threads = torch.get_num_threads()  # what a plain loop runs with
    precisions = args.precision.split(",")
    peak = {
        "fp32": matmul_macs_per_s(device, torch.float32, args.matmul_size),
        **(
            {"bf16": matmul_macs_per_s(device, torch.bfloat16, args.matmul_size)}
            if "bf16" in precisions
            else {}
        ),
    }
    variants = [f"ours_{precision}" for precision in precisions]
    if not args.ours_only:
        variants += ["plain", "plain_channels_last"]
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
                if variant.startswith("ours"):
                    precision = variant.split("_")[1]
                    run = partial(ours, model, data, args.images, device, precision)
                else:
                    channels_last = variant.endswith("last")
                    run = partial(plain_loop, model, data, args.images, device, channels_last)
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
            row[f"{variant}_peak_fraction"] = 3 * macs * statistics.median(rates) / peak[precision]
        if not args.ours_only:
            first = variants[0]
            ratios = [a / b for a, b in zip(runs[first], runs["plain"])]
            row["ratio_vs_plain"] = statistics.median(ratios)
            row["ratio_runs"] = [round(ratio, 3) for ratio in ratios]
            cl_ratios = [a / b for a, b in zip(runs[first], runs["plain_channels_last"])]
            row["ratio_vs_plain_channels_last"] = statistics.median(cl_ratios)
        rows[name] = row
        save({"peak_matmul_macs_per_s": peak, "landmarks": rows, "data": data_note})
        print(name, json.dumps({k: v for k, v in row.items() if not k.endswith(("runs", "load"))}))
    summary = {
        f"median_{variant}_peak_fraction": statistics.median(
            row[f"{variant}_peak_fraction"] for row in rows.values()
        )
        for variant in variants
    }
    if not args.ours_only:
        summary["median_ratio_vs_plain"] = statistics.median(
            row["ratio_vs_plain"] for row in rows.values()
        )
        summary["median_ratio_vs_plain_channels_last"] = statistics.median(
            row["ratio_vs_plain_channels_last"] for row in rows.values()
        )
        summary["loader_only_img_s"] = loader_only(data, args.images * 4)
    return {
        "peak_matmul_macs_per_s": peak,
        "landmarks": rows,
        "summary": summary,
        "threads": {"ours": cpu_threads(), "plain": default_threads},
        "data": data_note,
    }


def concurrency(args, device: str, save) -> dict:
    """Aggregate images/s of N trainer processes sharing the device, for each N."""
    record = {}
    for name in args.landmarks.split(","):
        for count in [int(n) for n in args.concurrency.split(",")]:
            start_at = time.time() + args.startup_s  # every worker starts timing together
            command = [
                sys.executable, __file__, "--worker", "--device", device, "--landmarks", name,
                "--images", str(args.images), "--precision", args.precision.split(",")[-1],
                "--start-at", str(start_at), "--window", str(args.window),
                "--dataset", args.dataset,
            ]  # fmt: skip
            workers = [
                subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)
            ]
            reports = [json.loads(worker.communicate()[0].splitlines()[-1]) for worker in workers]
            rates = [report["img_s"] for report in reports]
            record[f"{name}_x{count}"] = {
                "processes": count,
                "aggregate_img_s": sum(rates),
                "per_process_img_s": [round(rate, 1) for rate in rates],
                # A worker that started late overlapped less: its rate flatters the aggregate.
                "late_start_s": max(report["late_start_s"] for report in reports),
            }
            save({"concurrency": record})
            print(name, count, round(sum(rates)), flush=True)
    return {"concurrency": record}


def worker(args, device: str) -> None:
    """One concurrent trainer: warm up, then count images trained within the shared window."""
    data, _ = load_or_synthesize(args.dataset, args.data_dir)
    model = build_model(LANDMARKS[args.landmarks], data.in_channels, data.num_classes)
    ours(model, data, args.images, device, args.precision)  # warm-up, outside the window
    late_s = max(0.0, time.time() - args.start_at)  # > 0: the warm-up overran the start
    time.sleep(max(0.0, args.start_at - time.time()))
    bf16 = args.precision == "bf16"
    recipe = replace(DEFAULT_RECIPE, cuda_bf16=bf16, cpu_bf16=bf16, min_steps=0)  # batch 128
    tiny_val = replace(data, val_x=data.val_x[:256], val_y=data.val_y[:256])
    images, busy = 0, 0.0
    while not images or time.time() < args.start_at + args.window:
        result = train(model, tiny_val, Budget(1, args.images), device=device, recipe=recipe)
        images, busy = images + result.images_seen, busy + result.train_seconds
    print(json.dumps({"img_s": images / busy, "late_start_s": late_s}))


def write_markdown(record: dict, path: Path) -> None:
    info = record["machine"]
    lines = [
        f"# Training throughput on {record['device']} ({info.get('gpu') or info['cpu']})",
        "",
        f"`{record['command']}` on {record['date']}, torch {info['torch']}, "
        f"{info['cores']} cores available; data: {record.get('data', '-')}.",
        "",
    ]
    if "landmarks" in record:
        rows = record["landmarks"]
        first_row = next(iter(rows.values()))
        variants = [key[: -len("_img_s")] for key in first_row if key.endswith("_img_s")]
        has_ratio = "ratio_vs_plain" in first_row
        header = ["landmark", "MMACs", *(f"{variant} img/s" for variant in variants)]
        header += ["ours / plain", "ours / plain+CL"] if has_ratio else []
        header.append(f"{variants[0]} share of matmul peak")
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, row in rows.items():
            cells = [name, f"{row['mmacs']:.2f}"]
            cells += [f"{row[f'{variant}_img_s']:.0f}" for variant in variants]
            if has_ratio:
                cells.append(f"{row['ratio_vs_plain']:.2f}x")
                cells.append(f"{row['ratio_vs_plain_channels_last']:.2f}x")
            cells.append(f"{100 * row[f'{variants[0]}_peak_fraction']:.1f}%")
            lines.append("| " + " | ".join(cells) + " |")
        peaks = record["peak_matmul_macs_per_s"]
        peak_text = ", ".join(f"{key} {value / 1e9:.0f} GMAC/s" for key, value in peaks.items())
        lines += ["", f"Dense matmul rate measured in this run: {peak_text}.", ""]
        lines += [f"- {key}: {value:.3g}" for key, value in record["summary"].items()]
    if "concurrency" in record:
        lines += ["| run | processes | aggregate img/s | per process |", "|---|---|---|---|"]
        for key, row in record["concurrency"].items():
            per_process = ", ".join(f"{rate:.0f}" for rate in row["per_process_img_s"])
            lines.append(
                f"| {key} | {row['processes']} | {row['aggregate_img_s']:.0f} | {per_process} |"
            )
    path.write_text("\n".join(lines) + "\n")


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
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--attempts", type=int, default=8, help="tries per measurement")
    parser.add_argument(
        "--max-foreign-load", type=float, default=0.2, help="retry above this many busy cores"
    )
    parser.add_argument("--ours-only", action="store_true", help="skip the plain loops")
    parser.add_argument("--concurrency", default=None, help="e.g. 1,2,4,8 trainer processes")
    parser.add_argument("--window", type=float, default=15.0, help="concurrency: seconds timed")
    parser.add_argument("--startup-s", type=float, default=20.0, help="concurrency: warm-up time")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the logic only")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON and markdown")
    parser.add_argument("--tag", default=None, help="file name suffix, default the device")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    on_cuda = device.startswith("cuda")
    if args.precision is None:
        recipe_bf16 = DEFAULT_RECIPE.cuda_bf16 if on_cuda else DEFAULT_RECIPE.cpu_bf16
        args.precision = "bf16" if recipe_bf16 else "fp32"
    if args.images is None:
        args.images = 20_480 if on_cuda else 3_072
    if args.quick:
        args.images, args.repeats, args.matmul_size, args.attempts = 256, 1, 256, 1
        args.window, args.startup_s = 2.0, 8.0
        if args.landmarks == ",".join(LANDMARKS):
            args.landmarks = "xception,mobilenet"
    if args.worker:
        return worker(args, device)

    arguments = sys.argv[1:] if argv is None else argv
    record = {
        "command": shlex.join(["python", "bench/throughput.py", *arguments]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "machine": {**machine(), "load_average_at_start": os.getloadavg()},
        "settings": {
            "batch_size": DEFAULT_RECIPE.batch_size,
            "images_per_measurement": args.images,
            "repeats": args.repeats,
            "quick": args.quick,
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_concurrency" if args.concurrency else ""
    json_path = out / f"throughput_{args.tag or device.replace(':', '') + suffix}.json"

    def save(partial: dict) -> None:  # after every step, so a time limit keeps what finished
        json_path.write_text(json.dumps({**record, **partial}, indent=2) + "\n")

    if args.concurrency:
        record.update(concurrency(args, device, save))
    else:
        data, data_note = load_or_synthesize(args.dataset, args.data_dir)
        record.update(compare(args, device, data, data_note, save))
    save({})
    write_markdown(record, json_path.with_suffix(".md"))
    print(f"wrote {json_path} and .md")


if __name__ == "__main__":
    main()
