"""A user's own image folder against the built-in loader: first start, cached start, pixels and
training throughput.

Fashion-MNIST's 70,000 images are written as PNG files in the class-per-folder layout
(train/<class>/*.png, test/<class>/*.png), then loaded as `--dataset FOLDER` would load them:
once in a fresh process with an empty cache (decoding every file), then again in another
fresh process (the cache). The decoded pixels are compared with the built-in loader's, and
one landmark's training throughput (`nas.train.train`, the search's recipe) is measured on
both datasets, interleaved, repeats rotated, medians. The two should train alike: the folder
becomes the same kind of uint8 tensor, and the trainer never sees where it came from.

    python bench/own_data.py                    # -> bench/results/own_data.{md,json}
    python bench/own_data.py --repeats 1 --images 2000 --out /tmp/own   # a quick look
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import RESULTS, bench_parser, invocation, machine, ran_on, write_results  # noqa: E402
from bench.throughput import default_trial_images, ours  # noqa: E402
from nas import build_model  # noqa: E402
from nas.data import load_dataset  # noqa: E402
from search_spaces import LANDMARKS  # noqa: E402

# Run in a fresh interpreter, so that the time counts what a new search's start pays.
LOAD_ONE = (
    "import sys, time; start = time.perf_counter(); from nas.data import load_dataset; "
    "data = load_dataset(sys.argv[1]); "
    "print(time.perf_counter() - start, len(data.train_x) + len(data.val_x) + len(data.test_x))"
)


def write_folder(root: Path) -> int:
    """Fashion-MNIST as PNG files under root/train and root/test; the number of files."""
    from PIL import Image

    data = load_dataset("fashion_mnist")
    names = [name.replace("/", "-") for name in data.class_names]  # "T-shirt/top"
    splits = {
        "train": (
            np.concatenate([data.train_x, data.val_x]),
            np.concatenate([data.train_y, data.val_y]),
        ),
        "test": (data.test_x.numpy(), data.test_y.numpy()),
    }
    count = 0
    for split, (images, labels) in splits.items():
        for name in names:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for index, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(image[0]).save(root / split / names[label] / f"{index:05d}.png")
            count += 1
    return count


def timed_load(dataset: Path | str, cache: Path) -> float:
    """Seconds a fresh process takes to import the loader and load `dataset`."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(RESULTS.parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_ONE, str(dataset)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.split()[0])


def pixel_digest(images) -> str:
    """A digest of a set of images that ignores their order (the folder sorts by class)."""
    rows = sorted(hashlib.sha256(image.tobytes()).digest() for image in np.asarray(images))
    return hashlib.sha256(b"".join(rows)).hexdigest()[:16]


def verdict(ratios: list[float]) -> str:
    """What the per-repeat ratios say, honestly."""
    if min(ratios) <= 1 <= max(ratios):
        return (
            f"not distinguishable at {len(ratios)} repeats (the range includes 1). The trainer "
            "gets the same kind of uint8 tensor from both loaders."
        )
    faster = "faster" if min(ratios) > 1 else "slower"
    return f"the folder trained {faster} in every one of {len(ratios)} repeats."


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--landmark", default="inception_v1", choices=tuple(LANDMARKS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=None, help="default: one default trial")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="own_data_"))
    folder, cache = work / "fashion_png", work / "cache"
    start = time.perf_counter()
    files = write_folder(folder)
    print(f"wrote {files:,} PNG files in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    first = timed_load(folder, cache)
    cached = [timed_load(folder, cache) for _ in range(3)]
    builtin_load = [timed_load("fashion_mnist", cache) for _ in range(3)]
    os.environ["XDG_CACHE_HOME"] = str(cache)
    own, builtin = load_dataset(str(folder)), load_dataset("fashion_mnist")
    same_test = pixel_digest(own.test_x) == pixel_digest(builtin.test_x)
    same_train = pixel_digest(np.concatenate([own.train_x, own.val_x])) == pixel_digest(
        np.concatenate([builtin.train_x, builtin.val_x])
    )
    images = args.images or default_trial_images("cpu", builtin)
    rates: dict[str, list[float]] = {"built-in": [], "folder": []}
    datasets = {"built-in": builtin, "folder": own}
    for repeat in range(args.repeats):
        order = list(rates) if repeat % 2 == 0 else list(reversed(rates))
        for name in order:
            data = datasets[name]
            model = build_model(LANDMARKS[args.landmark], data.in_channels, data.num_classes)
            rates[name].append(ours(model, data, images, "cpu", "fp32"))
            print(f"repeat {repeat + 1}: {name} {rates[name][-1]:,.0f} img/s", file=sys.stderr)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratios = [f / b for f, b in zip(rates["folder"], rates["built-in"])]
    info = machine()
    result = {
        "command": invocation(__file__, argv),
        "machine": info,
        "files": files,
        "first_load_s": round(first, 2),
        "cached_load_s": [round(value, 2) for value in cached],
        "builtin_load_s": [round(value, 2) for value in builtin_load],
        "same_pixels": {"train+val": same_train, "test": same_test},
        "split_sizes": {"train": len(own.train_x), "val": len(own.val_x), "test": len(own.test_x)},
        "landmark": args.landmark,
        "images_per_run": images,
        "img_per_s": {name: [round(v) for v in values] for name, values in rates.items()},
        "median_img_per_s": {name: round(value) for name, value in medians.items()},
        "folder_over_builtin": [round(value, 3) for value in ratios],
    }
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
    lines = [
        "# Your own image folder against the built-in loader",
        "",
        ran_on(result["command"], info) + ".",
        "",
        f"Fashion-MNIST written as {files:,} PNG files (train/ and test/ of 10 class folders).",
        "",
        "| | seconds |",
        "|---|---|",
        f"| first start: decode every file, write the cache (fresh process) | {first:.1f} |",
        f"| cached start, median of 3 (fresh process) | {statistics.median(cached):.1f} |",
        "| the built-in Fashion-MNIST from its IDX files, median of 3 (fresh process) | "
        f"{statistics.median(builtin_load):.1f} |",
        "",
        "Each time includes starting Python and importing torch (about 2 s here).",
        "",
        f"The cached start is {first / statistics.median(cached):.0f}x faster. Decoded pixels "
        f"equal the built-in loader's: train+val {'yes' if same_train else 'NO'}, test "
        f"{'yes' if same_test else 'NO'} (as sets of images: the folder is read class by "
        f"class). Splits: {len(own.train_x):,} / {len(own.val_x):,} / {len(own.test_x):,} "
        "(the validation split carved per class from train/, the size the built-in carves).",
        "",
        f"Training throughput of `{args.landmark}` ({images:,} images per run, the search's "
        f"recipe, fp32, CPU), {args.repeats} interleaved repeats:",
        "",
        "| dataset | median img/s |",
        "|---|---|",
        *(f"| {name} | {value:,.0f} |" for name, value in medians.items()),
        "",
        f"Folder / built-in, per repeat: median {statistics.median(ratios):.3f} (range "
        f"{spread}): {verdict(ratios)}",
    ]
    write_results("own_data", result, lines, args.out)


if __name__ == "__main__":
    main()
