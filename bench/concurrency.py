"""Several trainers sharing one device: aggregate images/s of 1, 2, 4, 8 processes.

Each count N starts N processes of our trainer (nas.train.train, the search's recipe) on one
landmark; every process warms up, then all count the images they train within one shared
window. Trials per hour follow from the default budget's training images per trial, as an
upper bound (evaluation, cost counting and storage are left out; bench/gpu_search.py measures
a real search). A process whose warm-up overran the window's start overlapped less: the report
gives the latest start.

    python bench/concurrency.py --device cuda --counts 1,2,4,8 --out /tmp/gpu
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

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
from bench.throughput import (  # noqa: E402
    bench_recipe,
    default_trial_images,
    load_or_synthesize,
    ours,
)
from nas import build_model  # noqa: E402
from nas.train import Budget, train  # noqa: E402
from search_spaces import LANDMARKS  # noqa: E402


def measure(args, device: str, save) -> dict:
    """Aggregate images/s for each process count; calls save(record) after each."""
    record: dict = {}
    for count in [int(n) for n in args.counts.split(",")]:
        start_at = time.time() + args.startup_s  # every process starts timing together
        command = [
            sys.executable, __file__, "--worker", "--device", device,
            "--landmark", args.landmark, "--images", str(args.images),
            "--precision", args.precision, "--start-at", str(start_at),
            "--window", str(args.window), "--dataset", args.dataset,
        ]  # fmt: skip
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)
        ]
        outputs = [process.communicate()[0] for process in processes]
        if any(process.returncode for process in processes):
            codes = [process.returncode for process in processes]
            raise RuntimeError(f"a trainer process failed with {args.landmark} x{count}: {codes}")
        reports = [json.loads(output.splitlines()[-1]) for output in outputs]
        rates = [report["img_s"] for report in reports]
        images_per_trial = reports[0]["images_per_trial"]
        record[f"x{count}"] = {
            "processes": count,
            "aggregate_img_s": sum(rates),
            "per_process_img_s": [round(rate, 1) for rate in rates],
            "trials_per_hour_training_only": 3600 * sum(rates) / images_per_trial,
            "late_start_s": max(report["late_start_s"] for report in reports),
        }
        save({"concurrency": record, "images_per_trial": images_per_trial})
        print(args.landmark, count, round(sum(rates)), flush=True)
    return {"concurrency": record, "images_per_trial": images_per_trial}


def worker(args, device: str) -> None:
    """One trainer: warm up, then count the images it trains within the shared window."""
    data, _ = load_or_synthesize(args.dataset, None)
    model = build_model(LANDMARKS[args.landmark], data.in_channels, data.num_classes)
    ours(model, data, args.images, device, args.precision)  # warm-up, outside the window
    late_s = max(0.0, time.time() - args.start_at)  # > 0: the warm-up overran the start
    time.sleep(max(0.0, args.start_at - time.time()))
    recipe = bench_recipe(args.precision)  # batch 128
    tiny_val = replace(data, val_x=data.val_x[:256], val_y=data.val_y[:256])
    images, busy = 0, 0.0
    while not images or time.time() < args.start_at + args.window:
        result = train(model, tiny_val, Budget(1, args.images), device=device, recipe=recipe)
        images, busy = images + result.images_seen, busy + result.train_seconds
    per_trial = default_trial_images(device, data)
    report = {"img_s": images / busy, "late_start_s": late_s, "images_per_trial": per_trial}
    print(json.dumps(report))


def best_count(record: dict, tolerance: float = 0.05) -> int:
    """The fewest processes within `tolerance` of the highest aggregate rate."""
    rows = sorted(record["concurrency"].values(), key=lambda row: row["processes"])
    top = max(row["aggregate_img_s"] for row in rows)
    good_enough = [row for row in rows if row["aggregate_img_s"] >= (1 - tolerance) * top]
    return good_enough[0]["processes"]


def report_lines(record: dict) -> list[str]:
    """The markdown of a record (also of one cut short)."""
    lines = [
        device_title("Trainers sharing one device", record),
        "",
        f"{device_opening(record)}; landmark "
        f"{record['landmark']}, {record['precision']}; trials/hour counts training only, at "
        f"{record.get('images_per_trial', 0):,} images per trial (the default budget).",
        "",
        "| processes | aggregate img/s | per process | trials/hour (training only) "
        "| latest start |",
        "|---|---|---|---|---|",
    ]
    for row in record.get("concurrency", {}).values():
        per_process = ", ".join(f"{rate:.0f}" for rate in row["per_process_img_s"])
        lines.append(
            f"| {row['processes']} | {row['aggregate_img_s']:.0f} | {per_process} | "
            f"{row['trials_per_hour_training_only']:.0f} | {row['late_start_s']:.1f} s |"
        )
    if record.get("concurrency"):
        best = best_count(record)
        processes = "process" if best == 1 else "processes"
        lines += ["", f"Best: {best} {processes} (the fewest within 5% of the top).", ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="fashion_mnist", choices=("fashion_mnist", "cifar10"))
    parser.add_argument("--landmark", default="inception_v1", choices=tuple(LANDMARKS))
    parser.add_argument("--counts", default="1,2,4,8", help="process counts, comma-separated")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--images", type=int, default=None, help="per training call")
    parser.add_argument("--window", type=float, default=6.0, help="seconds timed")
    parser.add_argument("--startup-s", type=float, default=16.0, help="warm-up before the window")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the logic only")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON and markdown")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = chosen_device(parser, args.device)
    if args.images is None:
        args.images = 10_240 if device.startswith("cuda") else 2_048
    if args.quick and not args.worker:
        args.images, args.window, args.startup_s = 256, 2.0, 10.0
        args.counts = ",".join(args.counts.split(",")[:2])
    if args.worker:
        return worker(args, device)

    record = {**device_run(__file__, argv, device), "landmark": args.landmark}
    record["precision"] = args.precision
    name = f"concurrency_{device_tag(device)}"
    json_path = Path(args.out) / f"{name}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)

    def save(partial: dict) -> None:  # after every count, so a time limit keeps what finished
        json_path.write_text(json.dumps({**record, **partial}, indent=2) + "\n")

    record.update(measure(args, device, save))
    write_results(name, record, report_lines(record), args.out)


if __name__ == "__main__":
    main()
