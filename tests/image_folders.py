"""Writers of small user datasets for tests: class-per-folder PNG trees and .npz files.

The pixels are Fashion-MNIST test images (Debian's dataset-fashion-mnist copy), so a decoded
image can be compared with the one written. Every writer returns what it wrote.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nas.user_data as user_data
from nas._dataset_files import _read_idx
from nas.data import CLASS_NAMES

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# Fashion-MNIST's class names as folder names ("T-shirt/top" cannot name a folder).
FOLDER_NAMES = tuple(
    name.replace("/", "_").replace(" ", "_") for name in CLASS_NAMES["fashion_mnist"]
)


@pytest.fixture(autouse=True)
def user_data_cache(monkeypatch, tmp_path):
    """A test's own user-data cache folder, the machine's memory budget and no tensors kept
    from an earlier test (import it into a test module: it is autouse)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(user_data.MEMORY_BUDGET_VARIABLE, raising=False)
    user_data._MEMO.clear()
    yield
    user_data._MEMO.clear()


@functools.cache
def fashion_test_set() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 Fashion-MNIST test images (N x 28 x 28 uint8) and their labels."""
    images = _read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz", ndim=3)
    labels = _read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz", ndim=1)
    return images, labels.astype(np.int64)


def fashion_samples(classes: int, per_class: int, skip: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of each of the first `classes` Fashion-MNIST classes, class by
    class (after skipping `skip` of each class), as N x 28 x 28 uint8 and labels."""
    images, labels = fashion_test_set()
    picked = [np.flatnonzero(labels == label)[skip : skip + per_class] for label in range(classes)]
    order = np.concatenate(picked)
    return images[order], labels[order]


def tinted(grey: np.ndarray) -> np.ndarray:
    """A colour version of grey images (... x H x W -> ... x H x W x 3) whose channels differ."""
    return np.stack([grey, 255 - grey, grey // 2], axis=-1)


@dataclass(frozen=True)
class WrittenImage:
    path: Path
    split: str  # "train", "val" or "test" ("train" in a plain class-per-folder tree)
    class_name: str
    pixels: np.ndarray  # as written: H x W (grey) or H x W x 3


def write_image_folder(
    root: Path,
    *,
    classes: int = 3,
    per_class: int = 6,
    sides: tuple[int | tuple[int, int], ...] = (),
    colour: bool = False,
    splits: dict[str, int] | None = None,
    extension: str = ".png",
) -> list[WrittenImage]:
    """Write a class-per-folder tree of Fashion-MNIST images under `root`.

    Args:
        classes: class folders, named after the first `classes` entries of FOLDER_NAMES.
        per_class: images per class (without `splits`).
        sides: sizes cycled over the images of each class: a side (square) or (height,
            width); an image is upscaled from 28 x 28 to it with Pillow (nearest), so a
            decoded one of that size holds the same values. Empty: all 28 x 28.
        colour: write RGB images (`tinted`) instead of grey ones.
        splits: images per class for each split folder, e.g. {"train": 4, "val": 1}: the tree
            is root/<split>/<class>/. None: root/<class>/.
        extension: of the files (Pillow picks the format by it).

    Returns:
        The images in the order the loader lists them (split, class, file name).
    """
    layout = splits or {"train": per_class}
    images, labels = fashion_samples(classes, sum(layout.values()))
    written = []
    for label in range(classes):
        own = images[labels == label]
        start = 0
        for split, count in layout.items():
            folder = root / split if splits else root
            for index in range(count):
                grey = own[start + index]
                pixels = _resized(grey, sides[index % len(sides)] if sides else 28)
                pixels = tinted(pixels) if colour else pixels
                path = folder / FOLDER_NAMES[label] / f"{index:03d}{extension}"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
                written.append(WrittenImage(path, split, FOLDER_NAMES[label], pixels))
            start += count
    order = {split: number for number, split in enumerate(layout)}
    return sorted(written, key=lambda image: (order[image.split], image.class_name, image.path))


def _resized(grey: np.ndarray, side: int | tuple[int, int]) -> np.ndarray:
    height, width = (side, side) if isinstance(side, int) else side
    if (height, width) == grey.shape:
        return grey
    return np.asarray(Image.fromarray(grey).resize((width, height), Image.Resampling.NEAREST))


def write_npz(
    path: Path,
    *,
    classes: int = 3,
    per_class: int = 6,
    layout: str = "nhwc",
    floats: bool = False,
    colour: bool = False,
    splits: tuple[str, ...] = ("train",),
    class_names: tuple[str, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Write an .npz of Fashion-MNIST images: x_<split>, y_<split> for each of `splits`.

    Args:
        layout: "nhwc", "nchw" or "nhw" (grey only).
        floats: store float32 pixels / 255 instead of uint8.
        colour: three channels (`tinted`), else one.
        class_names: stored as the class_names array when given.

    Returns:
        The arrays written, plus "pixels_<split>": the uint8 images as N x C x H x W.
    """
    arrays, written = {}, {}
    for number, split in enumerate(splits):
        grey, labels = fashion_samples(classes, per_class, skip=number * per_class)
        nhwc = tinted(grey) if colour else grey[..., None]
        written[f"pixels_{split}"] = nhwc.transpose(0, 3, 1, 2)
        images = {"nhwc": nhwc, "nchw": nhwc.transpose(0, 3, 1, 2), "nhw": nhwc[..., 0]}[layout]
        arrays[f"x_{split}"] = (images / 255).astype(np.float32) if floats else images
        arrays[f"y_{split}"] = labels
    if class_names is not None:
        arrays["class_names"] = np.array(class_names)
    np.savez(path, **arrays)
    return {**arrays, **written}
