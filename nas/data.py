"""Datasets as whole uint8 tensors: Fashion-MNIST, CIFAR-10, scikit-learn's digits, and a
user's own folder or .npz (any other name is a path: see `nas.user_data`).

Each dataset comes as train / validation / test tensors. The validation split is a fixed,
seeded part of the official training set; the search scores on it and never sees the test set.

Files are looked up in this order, and the first place that has them all wins:

1. an explicit directory: ``data_dir`` (CLI ``--data-dir``) or the ``NAS_DATA_DIR`` variable;
2. the user cache, ``~/.cache/nas/<dataset>`` (``$XDG_CACHE_HOME`` is honoured);
3. system copies, e.g. ``/usr/share/datasets/fashion-mnist`` (Debian's dataset-fashion-mnist);
4. a download from the official source into the cache, verified by MD5 (``NAS_NO_DOWNLOAD=1``
   turns it off).

Files are parsed with their real formats and checked (`nas._dataset_files`), so a truncated,
corrupt or hostile file raises `DatasetCorruptError` naming it instead of yielding a silently
partial dataset.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas._cli import DATASET_SHAPES
from nas._dataset_files import (
    CIFAR_FOLDER,
    CIFAR_TRAIN_BATCHES,  # noqa: F401  (part of this module's interface, as before)
    IDX_FILES,
    READERS,
    DatasetCorruptError,  # noqa: F401  (raised by load_dataset: its home for callers)
    cifar_folder,
    idx_path,
)

DATASETS = tuple(DATASET_SHAPES)  # their names, listed once with their shapes (nas._cli)
# The official class names, in label order.
CLASS_NAMES = {
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    "digits": tuple(str(digit) for digit in range(10)),
}

# Validation images carved from the official training set (the size used by most papers that
# hold out part of these training sets; large enough that 1% accuracy is 100 images).
OFFICIAL_VAL_SIZE = {"fashion_mnist": 10_000, "cifar10": 10_000}
# The digits set has no official split: 20% test, then 20% of the rest as validation.
DIGITS_HOLDOUT_FRACTION = 0.2


# Official sources and the MD5 sums their maintainers publish for the downloaded files.
DOWNLOADS = {
    "fashion_mnist": {
        "mirrors": (
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        "files": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
    "cifar10": {
        "mirrors": ("https://www.cs.toronto.edu/~kriz/",),
        "files": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    },
}
# Offline machines must reach the error quickly, not hang on a dead connection.
DOWNLOAD_TIMEOUT_S = 5.0

SYSTEM_DIRS = {
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
    "cifar10": (Path("/usr/share/datasets/cifar-10"), Path("/usr/share/datasets/cifar10")),
}


class DatasetNotFoundError(ValueError):
    """No lookup place had the dataset's files and none could be downloaded."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train / validation / test splits of one dataset, as CPU tensors.

    Images are uint8 tensors of shape N x C x H x W, labels int64. The tensors are shared by
    every caller in this process (see `load_dataset`): treat them as read-only.

    Attributes:
        mean: per-channel mean of the train split, in [0, 1] units (pixel / 255).
        std: per-channel standard deviation of the train split, in [0, 1] units.
        class_names: the name of each label, in label order.
        fingerprint: a hash of a user dataset's images, labels and class names (a study
            stores it so it is not continued on other data); "" for the built-ins, which
            their names identify.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()
    fingerprint: str = ""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        channels, height, width = self.train_x.shape[1:]
        return channels, height, width

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]


def is_builtin(name: str) -> bool:
    """Whether `name` is a built-in dataset (else `load_dataset` reads it as a path)."""
    return name in DATASETS


def load_dataset(
    name: str,
    data_dir: str | None = None,
    *,
    split_seed: int = 0,
    image_size: int | None = None,
    channels: int | None = None,
    device: str = "cpu",
) -> Dataset:
    """Load a dataset with its seeded validation split; repeated calls reuse the tensors.

    Args:
        name: one of `DATASETS`, or the path of a folder or .npz of the user's own
            (`nas.user_data.load_user_dataset`).
        data_dir: a directory holding a built-in's files; defaults to ``$NAS_DATA_DIR``, then
            the cache, the system copies and a download (see the module docstring). Not used
            for a path.
        split_seed: seed of the train / validation split (and of any test split carved).
        image_size: a path's images resized and centre-cropped to this square side.
        channels: a path's images converted to 1 (grey) or 3 (RGB) channels.
        device: where training runs; for a path it sets the default size cap and the memory
            budget.

    Raises:
        ValueError: image_size or channels for a built-in.
        DatasetNotFoundError: when no lookup place has a built-in's files.
        DatasetCorruptError: when a built-in's file is truncated or malformed.
        nas.user_data.UserDatasetError: (a ValueError) for a path that cannot be used.
    """
    if not is_builtin(name):
        # Imported here: nas.user_data builds on this module (Dataset, cache_dir).
        from nas.user_data import load_user_dataset

        return load_user_dataset(
            name, image_size=image_size, channels=channels, split_seed=split_seed, device=device
        )
    if image_size is not None or channels is not None:
        raise ValueError(
            f"--image-size and --channels apply to a folder or .npz dataset, not the built-in "
            f"{name}"
        )
    explicit = data_dir or os.environ.get("NAS_DATA_DIR") or None
    return _load_split(name, explicit, split_seed)


@functools.lru_cache(maxsize=8)
def _load_split(name: str, explicit_dir: str | None, split_seed: int) -> Dataset:
    if name == "digits":
        images, labels = _read_digits()
        test_idx, rest = _seeded_split(len(labels), _fraction(len(labels)), split_seed)
        val_pos, train_pos = _seeded_split(len(rest), _fraction(len(rest)), split_seed + 1)
        val_idx, train_idx = rest[val_pos], rest[train_pos]
        test_x, test_y = images[test_idx], labels[test_idx]
    else:
        train_images, train_labels, test_x, test_y = _read_files(name, explicit_dir)
        images, labels = train_images, train_labels
        val_size = min(OFFICIAL_VAL_SIZE[name], len(labels) // 5)  # tiny copies: 20%
        val_idx, train_idx = _seeded_split(len(labels), val_size, split_seed)
    train_x = images[train_idx]
    mean, std = channel_stats(train_x.numpy())
    return Dataset(
        name=name,
        train_x=train_x,
        train_y=labels[train_idx],
        val_x=images[val_idx],
        val_y=labels[val_idx],
        test_x=test_x,
        test_y=test_y,
        num_classes=10,
        mean=mean,
        std=std,
        class_names=CLASS_NAMES[name],
    )


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) standard deviation in [0, 1] units (pixel / 255) of
    N x C x H x W uint8 images, from a histogram of the 256 pixel values: exact, and no float
    copy of the images (Fashion-MNIST's as doubles would take 300 MB)."""
    channels = images.shape[1]
    histogram = np.zeros((channels, 256), dtype=np.int64)
    step = max(1, (1 << 24) // max(1, images[0].size))  # images per chunk: ~16 M pixels
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        for channel in range(channels):
            histogram[channel] += np.bincount(chunk[:, channel].ravel(), minlength=256)
    values = np.arange(256) / 255
    count = histogram.sum(axis=1)
    mean = histogram @ values / count
    variance = (histogram * (values[None] - mean[:, None]) ** 2).sum(axis=1) / (count - 1)
    return tuple(mean.tolist()), tuple(np.sqrt(variance).tolist())


def _fraction(count: int) -> int:
    return round(count * DIGITS_HOLDOUT_FRACTION)


def _seeded_split(count: int, first: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a seeded random split of range(count) into `first` and the rest, sorted."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[:first].sort().values, order[first:].sort().values


def _read_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no files to find

    digits = load_digits()
    # Pixel values are 0..16; scale to 0..255 so every dataset shares one uint8 convention.
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None]
    return torch.from_numpy(images), torch.from_numpy(digits.target.astype(np.int64))


# ---- where the files are -------------------------------------------------------------------


def cache_dir(name: str) -> Path:
    """The user cache directory of a dataset (downloads go here)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "nas" / name


def _read_files(name: str, explicit_dir: str | None):
    candidates = [Path(explicit_dir).expanduser()] if explicit_dir else []
    candidates += [cache_dir(name), *SYSTEM_DIRS[name]]
    for directory in candidates:
        if _has_files(name, directory):
            return READERS[name](directory)
    download_note = _download(name, cache_dir(name))
    if download_note is None:
        return READERS[name](cache_dir(name))
    raise DatasetNotFoundError(_not_found_message(name, candidates, download_note))


def _has_files(name: str, directory: Path) -> bool:
    if name == "fashion_mnist":
        return all(idx_path(directory, stem) is not None for stem in IDX_FILES.values())
    return cifar_folder(directory) is not None


def _not_found_message(name: str, tried: list[Path], download_note: str) -> str:
    wanted = (
        "the four *-ubyte(.gz) IDX files"
        if name == "fashion_mnist"
        else f"{CIFAR_FOLDER}/ (data_batch_1..5, test_batch)"
    )
    system = " or ".join(str(path) for path in SYSTEM_DIRS[name])
    debian = " (Debian: apt install dataset-fashion-mnist)" if name == "fashion_mnist" else ""
    return (
        f"dataset {name!r} not found (looked in: {', '.join(map(str, tried))}; "
        f"download: {download_note}). Provide {wanted} in one of four ways: "
        f"1) pass --data-dir DIR (data_dir=) or set NAS_DATA_DIR=DIR; "
        f"2) put them in the cache {cache_dir(name)}; "
        f"3) install a system copy in {system}{debian}; "
        f"4) run once online to download them from {DOWNLOADS[name]['mirrors'][0]} "
        f"into the cache (unset NAS_NO_DOWNLOAD)."
    )


def _download(name: str, target: Path) -> str | None:
    """Fetch the official files into `target`; None on success, else why it failed."""
    if os.environ.get("NAS_NO_DOWNLOAD"):
        return "disabled by NAS_NO_DOWNLOAD"
    spec = DOWNLOADS[name]
    target.mkdir(parents=True, exist_ok=True)
    for file_name, md5 in spec["files"].items():
        errors = []
        for mirror in spec["mirrors"]:
            try:
                _fetch_verified(mirror + file_name, target / file_name, md5)
                break
            except (OSError, ValueError) as error:  # URLError and timeouts are OSErrors
                errors.append(f"{mirror}: {error}")
        else:
            return "failed (" + "; ".join(errors) + ")"
    if name == "cifar10":
        with tarfile.open(target / "cifar-10-python.tar.gz") as archive:
            # The "data" filter refuses absolute paths and links that leave the target.
            archive.extractall(target, filter="data")
    return None


def _fetch_verified(url: str, destination: Path, md5: str) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    partial = tempfile.NamedTemporaryFile(dir=destination.parent, delete=False)
    try:
        with partial, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                partial.write(chunk)
        if digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch for {url}")
        shutil.move(partial.name, destination)  # only a verified file gets the real name
    finally:
        if os.path.exists(partial.name):
            os.unlink(partial.name)
