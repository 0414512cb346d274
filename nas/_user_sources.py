"""How a user's dataset becomes arrays: the options, a plan from the headers, the decoding.

`nas.user_data` caches what this produces; `nas._image_files` reads the files.
"""

from __future__ import annotations

import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from nas._image_files import (
    UserDatasetError,
    decode_file,
    fit_image,
    is_colour,
    list_folder,
    npz_geometry,
    npz_headers,
    npz_images,
    npz_labels,
    read_header,
)
from nas.data import DATASETS

# The default side when image sizes differ: what a CPU trains in a sensible time, and the
# ImageNet size a GPU handles.
DEFAULT_MAX_SIDE = {"cpu": 64, "cuda": 224}
HOLDOUT_FRACTION = 0.2  # of train, for a carved test split and then a carved validation split
MAX_VAL_IMAGES = 10_000  # as the built-ins: plenty to read accuracy to 0.01%
PROGRESS_MIN_IMAGES = 1_000  # fewer decode in a blink: no progress display
DECODE_THREADS = 8  # Pillow releases the GIL while it decodes and resizes


@dataclass(frozen=True)
class DatasetShape:
    """What a command needs to cost or check an architecture, without the images.

    Attributes:
        input_shape: (channels, height, width) of one image as loaded.
        images: images in the dataset (all splits it gives, before any split is carved).
    """

    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    images: int


def dataset_label(path: str | os.PathLike) -> str:
    """A short name for study names and messages: the folder's name or the file's stem."""
    candidate = Path(path).expanduser()
    name = candidate.name if candidate.name not in ("", ".", "..") else candidate.resolve().name
    return (name[:-4] if name.lower().endswith(".npz") else name) or "dataset"


# ---- options, sources and what they decode to ------------------------------------------------


def device_kind(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


@dataclass(frozen=True)
class Options:
    image_size: int | None
    channels: int | None
    device: str

    @classmethod
    def checked(cls, image_size, channels, device) -> Options:
        if image_size is not None and (
            isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
        ):
            raise UserDatasetError(f"--image-size {image_size!r}: give a whole number >= 1")
        if channels not in (None, 1, 3):
            raise UserDatasetError(f"--channels {channels!r}: give 1 (grey) or 3 (RGB)")
        return cls(image_size, channels, str(device))

    @property
    def cap(self) -> int:
        return DEFAULT_MAX_SIDE[device_kind(self.device)]

    def key_parts(self) -> list[str]:
        size = self.image_size or f"auto<={self.cap}"
        return [f"image_size={size}", f"channels={self.channels or 'auto'}"]


@dataclass(frozen=True)
class Plan:
    """How to decode a source: the shape it yields, and what each image becomes."""

    shape: DatasetShape
    side: int | None  # None: images keep their (shared) size


def open_source(path) -> FolderSource | NpzSource:
    location = Path(path).expanduser()
    if location.is_dir():
        return FolderSource(location)
    if location.is_file() and location.suffix.lower() == ".npz":
        return NpzSource(location)
    what = "is a file but not an .npz" if location.is_file() else "does not exist"
    raise UserDatasetError(
        f"dataset {str(path)!r} is none of the built-ins ({', '.join(DATASETS)}) and {what}; "
        f"give a built-in name, a folder of class folders (PATH/<class>/<image>) or an .npz"
    )


class FolderSource:
    def __init__(self, root: Path) -> None:
        self.root, self.label = root, dataset_label(root)
        self.listing = list_folder(root)

    def key_parts(self) -> list[str]:
        return self.listing.key_parts()

    def plan(self, options: Options) -> Plan:
        splits = self.listing.splits
        total = sum(map(len, splits.values()))
        if total > PROGRESS_MIN_IMAGES:
            note(f"reading the headers of {total:,} images in {self.root}")
        headers = {
            split: [read_header(self.root / file.relative) for file in files]
            for split, files in splits.items()
        }
        colour = any(is_colour(mode) for found in headers.values() for *_, mode in found)
        others = [
            (str(self.root / file.relative), (height, width))
            for split in splits
            if split != "train"
            for file, (width, height, _) in zip(splits[split], headers[split])
        ]
        train_sizes = [(height, width) for width, height, _ in headers["train"]]
        side, height, width = _geometry(train_sizes, others, options)
        names = self.listing.class_names
        counts = np.bincount([file.label for file in splits["train"]], minlength=len(names))
        channels = options.channels or (3 if colour else 1)
        shape = DatasetShape((channels, height, width), len(names), names, total)
        return _checked_plan(self.root, shape, side, counts, tuple(splits))

    def decode(self, plan: Plan, progress: Progress) -> dict[str, tuple[np.ndarray, ...]]:
        channels = plan.shape.input_shape[0]
        decoded = {}
        for split, files in self.listing.splits.items():
            images = np.empty((len(files), *plan.shape.input_shape), dtype=np.uint8)

            def decode_one(index: int, files=files, images=images) -> None:
                path = self.root / files[index].relative
                images[index] = decode_file(path, channels, plan.side)

            _in_threads(decode_one, len(files), progress)
            decoded[split] = (images, np.array([file.label for file in files], dtype=np.int64))
        return decoded


class NpzSource:
    def __init__(self, path: Path) -> None:
        self.root, self.label = path, dataset_label(path)
        self.headers = npz_headers(path)

    def key_parts(self) -> list[str]:
        # The resolved path too: two archives written within one mtime tick may share a size.
        stat = self.root.stat()
        return [f"npz\t{self.root.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}"]

    def plan(self, options: Options) -> Plan:
        given = tuple(name[2:] for name in self.headers if name.startswith("x_"))
        geometry = {split: npz_geometry(self.root, self.headers, f"x_{split}") for split in given}
        others = [(f"{self.root} (x_{s})", geometry[s][1:]) for s in given if s != "train"]
        side, height, width = _geometry([geometry["train"][1:]], others, options)
        labels, names = npz_labels(self.root, self.headers)
        channels = options.channels or max(found[0] for found in geometry.values())
        total = sum(len(y) for y in labels.values())
        shape = DatasetShape((channels, height, width), len(names), names, total)
        counts = np.bincount(labels["train"], minlength=len(names))
        return _checked_plan(self.root, shape, side, counts, given)

    def decode(self, plan: Plan, progress: Progress) -> dict[str, tuple[np.ndarray, ...]]:
        channels = plan.shape.input_shape[0]
        labels, _ = npz_labels(self.root, self.headers)
        decoded = {}
        for split, images in npz_images(self.root, self.headers).items():
            if images.shape[1:] != plan.shape.input_shape:  # else there is nothing to do
                source, images = images, np.empty((len(images), *plan.shape.input_shape), np.uint8)

                def convert_one(index: int, source=source, images=images) -> None:
                    pixels = source[index]
                    pixels = pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0)
                    images[index] = fit_image(Image.fromarray(pixels), channels, plan.side)

                _in_threads(convert_one, len(images), progress)
            decoded[split] = (images, labels[split])
        return decoded


def _geometry(
    train_sizes: list[tuple[int, int]], others: list[tuple[str, tuple[int, int]]], options
) -> tuple[int | None, int, int]:
    """(side or None when sizes are kept, height, width) of the images as loaded."""
    if options.image_size is not None:
        return options.image_size, options.image_size, options.image_size
    if len(set(train_sizes)) == 1:
        height, width = train_sizes[0]
        for culprit, size in others:
            if size != (height, width):
                raise UserDatasetError(
                    f"{culprit}: images are {size[0]} x {size[1]} pixels (height x width) but "
                    f"the training images are {height} x {width}; pass --image-size N to resize "
                    f"every image to N x N"
                )
        return None, height, width
    # The median of the shorter sides: most images are scaled little; median_low is a size
    # that occurs, so those images need no resampling at all.
    side = min(statistics.median_low(min(size) for size in train_sizes), options.cap)
    return side, side, side


def _checked_plan(root: Path, shape: DatasetShape, side, counts: np.ndarray, given) -> Plan:
    """A plan, once the training images can feed every class and the carved splits."""
    if (counts == 0).any():
        missing = shape.class_names[int(np.flatnonzero(counts == 0)[0])]
        raise UserDatasetError(
            f"{root}: class {missing!r} has no training image; give it training images or "
            f"remove it"
        )
    for split in ("test", "val"):
        if split not in given and not holdout_quota(counts, split).sum():
            raise UserDatasetError(
                f"{root}: {int(counts.sum())} training images are too few to hold out a {split} "
                f"split ({HOLDOUT_FRACTION:.0%}) and keep an image of each class; add images or "
                f"give the split (a {split}/ folder or x_{split}/y_{split})"
            )
        if split not in given:
            counts = counts - holdout_quota(counts, split)
    return Plan(shape, side)


def holdout_quota(counts: np.ndarray, split: str) -> np.ndarray:
    """Images per class to carve for `split`: a stratified share of HOLDOUT_FRACTION (at most
    MAX_VAL_IMAGES for validation), apportioned by largest remainder; each class keeps one."""
    total = round(HOLDOUT_FRACTION * int(counts.sum()))
    if split == "val":
        total = min(total, MAX_VAL_IMAGES)
    exact = counts * total / counts.sum()
    room = counts - 1
    quota = np.minimum(np.floor(exact).astype(np.int64), room)
    for label in np.argsort(-(exact - np.floor(exact)), kind="stable"):
        if quota.sum() >= total:
            break
        if quota[label] < room[label]:
            quota[label] += 1
    return quota


# ---- what the user sees while it works -----------------------------------------------------


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Progress:
    """Decoding progress on stderr for more than PROGRESS_MIN_IMAGES images: a tqdm bar on a
    terminal, else a plain line every 10%."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.next_tenth = total, 0, 1
        self.shown = total > PROGRESS_MIN_IMAGES
        self.live = self.shown and _is_terminal(sys.stderr)
        self.bar = None

    def advance(self) -> None:
        self.done += 1
        if self.live:
            if self.bar is None:  # created on the first image: an .npz may need no decoding
                self.bar = tqdm(total=self.total, desc="decoding", unit="img", file=sys.stderr)
            self.bar.update()
        elif self.shown and self.done * 10 >= self.next_tenth * self.total:
            note(f"decoded {self.done:,}/{self.total:,} images ({10 * self.next_tenth}%)")
            self.next_tenth += 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def _in_threads(work, count: int, progress: Progress) -> None:
    """work(0) .. work(count - 1) on a few threads; the first error stops the rest."""
    pool = ThreadPoolExecutor(max_workers=min(DECODE_THREADS, os.cpu_count() or 1))
    try:
        for _ in pool.map(work, range(count)):
            progress.advance()
    finally:
        pool.shutdown(cancel_futures=True)
