"""What cuDNN's benchmark mode costs and buys per architecture, as a search meets them.

In benchmark mode cuDNN times its kernels for every new convolution shape and keeps the
fastest, so each new architecture of a search pays a one-off tuning cost on its first steps
(our trainer shows it two shapes per network: the training batch and the evaluation batch).
For each landmark, in the order a search would meet them, one process with the mode on and one
with it off each run a short training call twice: the first (cold) call tunes, the second
(warm) runs tuned. The tuning cost is the extra time of the cold call over the warm one with
the mode on, less the same difference with it off (first-touch costs both have); the gain is
the warm time saved per image, so the mode pays for itself after cost / gain images, against
the default budget's images per trial.

    python bench/autotune.py --device cuda --out /tmp/gpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

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
)
from nas import build_model  # noqa: E402
from nas.train import Budget, train  # noqa: E402
from search_spaces import LANDMARKS  # noqa: E402


def probe(args, device: str, benchmark: bool) -> dict:
    """{"timings": {landmark: {"cold_s", "warm_s"}}, "images_per_trial"} of short training
    calls with the mode on or off."""
    data, _ = load_or_synthesize("fashion_mnist", None)
    data = replace(data, val_x=data.val_x[: args.val_images], val_y=data.val_y[: args.val_images])
    recipe = replace(bench_recipe("bf16"), cudnn_benchmark=benchmark)
    budget = Budget(1, args.images)

    def seconds(model: nn.Module) -> float:
        start = time.perf_counter()
        train(model, data, budget, device=device, recipe=recipe)  # synchronizes at its end
        return time.perf_counter() - start

    # CUDA context, cuBLAS handles and allocator growth are paid here, not by the first landmark.
    toy = nn.Sequential(nn.Conv2d(data.in_channels, 4, 5), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    seconds(nn.Sequential(*toy, nn.Linear(4, data.num_classes)))
    timings = {}
    for name in args.landmarks.split(","):
        model = build_model(LANDMARKS[name], data.in_channels, data.num_classes)
        cold = seconds(model)
        warm = statistics.median(seconds(model) for _ in range(2))
        timings[name] = {"cold_s": cold, "warm_s": warm}
    return {"timings": timings, "images_per_trial": default_trial_images(device, data)}


def measure(args, device: str) -> dict:
    """Both probes, each in a fresh process (cuDNN keeps what it tuned for the process)."""
    probes = {}
    for mode in ("on", "off"):
        command = [
            sys.executable, __file__, "--probe", mode, "--device", device,
            "--landmarks", args.landmarks, "--images", str(args.images),
            "--val-images", str(args.val_images),
        ]  # fmt: skip
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        probes[mode] = json.loads(output.splitlines()[-1])
    images_per_trial = probes["on"]["images_per_trial"]
    rows = {}
    for name in args.landmarks.split(","):
        on, off = probes["on"]["timings"][name], probes["off"]["timings"][name]
        tuning_s = (on["cold_s"] - on["warm_s"]) - (off["cold_s"] - off["warm_s"])
        saved_per_image_s = (off["warm_s"] - on["warm_s"]) / args.images
        rows[name] = {
            **{f"{key}_on": value for key, value in on.items()},
            **{f"{key}_off": value for key, value in off.items()},
            "tuning_s": tuning_s,
            "warm_speedup": off["warm_s"] / on["warm_s"],
            "net_s_per_trial": saved_per_image_s * images_per_trial - tuning_s,
        }
    return {"landmarks": rows, "images_per_trial": images_per_trial}


def report_lines(record: dict) -> list[str]:
    """The markdown of a record."""
    rows = record.get("landmarks", {})
    lines = [
        device_title("cuDNN benchmark mode", record),
        "",
        f"{device_opening(record)}; short calls of "
        f"{record['images']:,} training images and {record['val_images']:,} validation "
        f"images; a default trial trains {record.get('images_per_trial', 0):,} images.",
        "",
        "| landmark | tuning cost | warm speed-up | net per default trial (+ = mode pays) |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['tuning_s']:.2f} s | {row['warm_speedup']:.2f}x | "
            f"{row['net_s_per_trial']:+.1f} s |"
        )
    if rows:
        nets = [row["net_s_per_trial"] for row in rows.values()]
        net, gains = statistics.median(nets), sum(value > 0 for value in nets)
        # One cold and one warm call per landmark and setting: the verdict needs them to agree.
        verdict = (
            "keep it on"
            if gains == len(nets)
            else "turn it off (Recipe.cudnn_benchmark)"
            if gains == 0
            else f"not distinguishable: {gains} of {len(nets)} landmarks gain"
        )
        if not record["device"].startswith("cuda"):
            verdict = "no verdict: the mode does nothing on a CPU (a logic check only)"
        lines += ["", f"Median net per trial {net:+.1f} s: {verdict}.", ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--landmarks", default=",".join(LANDMARKS))
    parser.add_argument("--images", type=int, default=None, help="training images per call")
    parser.add_argument("--val-images", type=int, default=2560, help="validation images")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the logic only")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON and markdown")
    parser.add_argument("--probe", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = chosen_device(parser, args.device)
    if args.images is None:
        args.images = 5_120 if device.startswith("cuda") else 1_024
    if args.quick and not args.probe:
        args.images, args.val_images = 256, 256
        if args.landmarks == ",".join(LANDMARKS):
            args.landmarks = "mobilenet"
    if args.probe:
        print(json.dumps(probe(args, device, benchmark=args.probe == "on")))
        return

    record = {
        **device_run(__file__, argv, device),
        "images": args.images,
        "val_images": args.val_images,
        "cudnn": torch.backends.cudnn.version() if device.startswith("cuda") else None,
    }
    record.update(measure(args, device))
    write_results(f"autotune_{device_tag(device)}", record, report_lines(record), args.out)


if __name__ == "__main__":
    main()
