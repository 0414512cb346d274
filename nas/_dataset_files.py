"""The files of the datasets, parsed with their real formats and checked.

Fashion-MNIST comes as IDX files, CIFAR-10 as pickled python batches. Each file is checked
(magic, header against size, labels 0..9, enough images) so that a truncated, corrupt or
hostile file raises `DatasetCorruptError` naming it before any storage or training starts,
instead of yielding a silently partial dataset or failing mid-trial.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

IDX_FILES = {  # Fashion-MNIST: role -> file name (gzipped or raw)
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
CIFAR_FOLDER = "cifar-10-batches-py"


class DatasetCorruptError(ValueError):
    """A dataset file exists but is truncated or not in the expected format."""


# ---- Fashion-MNIST: IDX files --------------------------------------------------------------


def idx_path(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _read_fashion_mnist(directory: Path):
    arrays = {}
    for role, stem in IDX_FILES.items():
        path = idx_path(directory, stem)
        arrays[role] = _read_idx(path, ndim=3 if role.endswith("_x") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_x"], arrays[f"{split}_y"]
        images_path = idx_path(directory, IDX_FILES[f"{split}_x"])
        if len(images) != len(labels):
            raise DatasetCorruptError(
                f"{images_path}: {len(images)} images but "
                f"{len(labels)} labels in {idx_path(directory, IDX_FILES[split + '_y'])}"
            )
        _check_count(len(images), split, images_path)
        if images.shape[1:] != arrays["train_x"].shape[1:] or 0 in images.shape:
            raise DatasetCorruptError(
                f"{images_path}: images are {'x'.join(map(str, images.shape[1:]))} pixels; "
                f"expected the training images' nonzero size"
            )
        _check_labels(labels, idx_path(directory, IDX_FILES[f"{split}_y"]))
    return (
        torch.from_numpy(arrays["train_x"][:, None].copy()),
        torch.from_numpy(arrays["train_y"].astype(np.int64)),
        torch.from_numpy(arrays["test_x"][:, None].copy()),
        torch.from_numpy(arrays["test_y"].astype(np.int64)),
    )


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes: 0x0000, type 0x08, ndim, big-endian dims, data."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetCorruptError(f"{path}: cannot decompress ({error})") from error
    header_size = 4 + 4 * ndim
    if len(raw) < header_size or raw[:4] != bytes((0, 0, 0x08, ndim)):
        raise DatasetCorruptError(
            f"{path}: not an IDX file of unsigned bytes with {ndim} dimensions "
            f"(magic {raw[:4].hex() or 'missing'})"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = math.prod(dims)  # exact: numpy's int64 product wraps for a hostile header
    if len(raw) - header_size != expected:
        raise DatasetCorruptError(
            f"{path}: header says {'x'.join(map(str, dims))} = {expected} bytes of data, "
            f"file has {len(raw) - header_size}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


# The fewest images a split may hold: the training set gives one in five to validation, and
# both that and the test split must have an image to score on (and to divide by).
MIN_IMAGES = {"train": 5, "test": 1}


def _check_count(count: int, split: str, path: Path) -> None:
    if count < MIN_IMAGES[split]:
        raise DatasetCorruptError(
            f"{path}: {count} {split} images; the {split} split needs at least "
            f"{MIN_IMAGES[split]} (replace the file with a complete copy)"
        )


def _check_labels(labels: np.ndarray, path: Path | str) -> None:
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < 10:
        outside = labels[(labels < 0) | (labels >= 10)][0]
        raise DatasetCorruptError(f"{path}: label {int(outside)} outside 0..9")


# ---- CIFAR-10: python pickle batches -------------------------------------------------------


def cifar_folder(directory: Path) -> Path | None:
    for folder in (directory / CIFAR_FOLDER, directory):
        names = (*CIFAR_TRAIN_BATCHES, "test_batch")
        if all((folder / batch).is_file() for batch in names):
            return folder
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches contain (dicts, lists, numpy arrays): a crafted
    pickle in a data directory cannot run code."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        # How pickle protocol 5 stores an array: its raw bytes, a dtype and a shape (numpy
        # refuses an object dtype there, so no object can come of it).
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol 2 stores bytes when Python 3 writes a batch
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        # Batches written under numpy 1 name numpy.core, which numpy 2 renamed numpy._core.
        for candidate in (module.replace("numpy.core", "numpy._core"), module):
            try:
                return super().find_class(candidate, name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"cannot import {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except Exception as error:  # truncation shows as EOFError, garbage as many kinds
        raise DatasetCorruptError(f"{path}: not a readable CIFAR batch ({error!r})") from error
    if not isinstance(batch, dict):
        raise DatasetCorruptError(f"{path}: expected a dict, found {type(batch).__name__}")
    batch = {
        key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()
    }
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DatasetCorruptError(f"{path}: missing 'data' array or 'labels' list")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetCorruptError(f"{path}: data is {data.dtype} {data.shape}, not uint8 N x 3072")
    labels = _integer_labels(labels, path)
    if labels.shape != (len(data),):
        raise DatasetCorruptError(f"{path}: {len(data)} images but {labels.size} labels")
    _check_labels(labels, path)
    # Rows are 1024 red, then green, then blue values, each row-major 32 x 32.
    return data.reshape(-1, 3, 32, 32), labels


def _integer_labels(labels, path: Path) -> np.ndarray:
    """A batch's labels as int64, refused unless they are a list (or array) of integers."""
    if not isinstance(labels, (list, tuple, np.ndarray)):
        raise DatasetCorruptError(f"{path}: labels are a {type(labels).__name__}, not a list")
    try:
        array = np.asarray(labels)
    except (ValueError, TypeError, OverflowError) as error:  # ragged or exotic contents
        raise DatasetCorruptError(f"{path}: labels are not a flat list ({error})") from None
    # Booleans, floats and Python ints beyond int64 (an object array) are no class numbers.
    if array.size and array.dtype.kind not in "iu":
        raise DatasetCorruptError(
            f"{path}: labels are not integers 0..9 (numpy reads them as {array.dtype})"
        )
    return array.astype(np.int64)


def _read_cifar10(directory: Path):
    folder = cifar_folder(directory)
    train = [_read_cifar_batch(folder / batch) for batch in CIFAR_TRAIN_BATCHES]
    test_x, test_y = _read_cifar_batch(folder / "test_batch")
    _check_count(sum(len(y) for _, y in train), "train", folder / "data_batch_1..5")
    _check_count(len(test_y), "test", folder / "test_batch")
    return (
        torch.from_numpy(np.concatenate([x for x, _ in train])),
        torch.from_numpy(np.concatenate([y for _, y in train])),
        torch.from_numpy(test_x.copy()),
        torch.from_numpy(test_y),
    )


READERS = {"fashion_mnist": _read_fashion_mnist, "cifar10": _read_cifar10}
