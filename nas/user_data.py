"""A user's own image-classification dataset, decoded once into uint8 tensors and cached.

``--dataset PATH`` takes either layout:

- a folder: ``PATH/<class>/<image>`` (PNG, JPEG or BMP; grey or colour), or ``PATH/train/``,
  optional ``PATH/val/`` and ``PATH/test/``, each of class folders. Class names are the sorted
  names of train's class folders; a label is the index of its class in that order.
- an ``.npz``: ``x_train``, ``y_train``, optional ``x_val``/``y_val`` and ``x_test``/
  ``y_test``: uint8 or float [0, 1] images N x H x W x C, N x C x H x W (C 1 or 3) or
  N x H x W; integer labels 0..K-1; an optional ``class_names`` array of strings.

Splits given are used as given. A missing test split is carved first (a seeded, stratified
20% of train, so the search never sees it), then a missing validation split (20% of the rest,
at most 10,000 images); every class keeps at least one training image.

Size: ``image_size=N`` scales every image so its shorter side is N and crops the centre
N x N (`nas._image_files.fit_image`). By default the size is kept when all training images
share one; otherwise it is the median of their shorter sides, at most `DEFAULT_MAX_SIDE` for
the device. Channels: ``channels=1|3`` converts; by default 3 if any image is in colour.

Cache: one file per content key in ``$XDG_CACHE_HOME/nas/user/`` (``~/.cache/nas/user/``).
The key hashes the options and every image file's relative path, size and mtime, so a changed
folder is decoded again; nothing opens an image to compute it.

Memory: before decoding, the uint8 tensor's size is checked against `memory_budget_bytes`
(half the free memory of the device); ``NAS_MEMORY_BUDGET_BYTES`` overrides that budget.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import numpy as np
import torch

from nas._image_files import UserDatasetError
from nas._machine import available_memory
from nas._user_sources import (
    DEFAULT_MAX_SIDE,
    DatasetShape,
    Options,
    Progress,
    dataset_label,
    device_kind,
    holdout_quota,
    note,
    open_source,
)
from nas.data import Dataset, cache_dir, channel_stats

__all__ = [
    "DEFAULT_MAX_SIDE",
    "DatasetShape",
    "UserDatasetError",
    "dataset_label",
    "describe_user_dataset",
    "load_user_dataset",
    "memory_budget_bytes",
]

MEMORY_BUDGET_VARIABLE = "NAS_MEMORY_BUDGET_BYTES"
CACHE_FORMAT = 1  # bump when the cache file's contents change meaning


@dataclass(frozen=True)
class _Decoded:
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (N x C x H x W uint8, labels)
    class_names: tuple[str, ...]
    fingerprint: str


def memory_budget_bytes(device: str = "cpu") -> int:
    """The most bytes a dataset's uint8 tensor may take: half the free memory of `device`
    (CPU: MemAvailable; CUDA: free device memory), so that the splits' copies fit too.
    ``$NAS_MEMORY_BUDGET_BYTES`` overrides it."""
    override = os.environ.get(MEMORY_BUDGET_VARIABLE)
    if override:
        try:
            return int(override)
        except ValueError:
            raise UserDatasetError(
                f"{MEMORY_BUDGET_VARIABLE}={override!r} is not a whole number of bytes"
            ) from None
    if device_kind(device) == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free // 2
    return available_memory() // 2


def describe_user_dataset(
    path: str | os.PathLike,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    device: str = "cpu",
) -> DatasetShape:
    """The shape `load_user_dataset` gives with the same options, without decoding: from the
    cache when it holds this content, else from the image headers (or the .npz's array
    headers and labels).

    Raises:
        UserDatasetError: for a dataset that cannot be used as given.
    """
    options = Options.checked(image_size, channels, device)
    source = open_source(path)
    meta = _read_meta(_cache_file(source, options))
    return _shape_of(meta) if meta else source.plan(options).shape


def load_user_dataset(
    path: str | os.PathLike,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    split_seed: int = 0,
    device: str = "cpu",
) -> Dataset:
    """Load a folder or .npz dataset (see the module docstring) with seeded splits; the
    first load decodes and caches it, later ones read the cache (and repeated calls in one
    process reuse the tensors).

    Args:
        path: a class-per-folder tree or an .npz file.
        image_size: side of the square every image is resized and cropped to; None: keep a
            shared size, else the median shorter side (at most DEFAULT_MAX_SIDE[device]).
        channels: 1 (grey) or 3 (RGB); None: 3 when any image is in colour.
        split_seed: seed of the carved test and validation splits.
        device: where training runs ("cpu", "cuda", "cuda:N"): sets the default size cap and
            the memory budget. The tensors themselves stay on the CPU.

    Raises:
        UserDatasetError: for a dataset that cannot be used as given, or too large a one.
    """
    options = Options.checked(image_size, channels, device)
    source = open_source(path)
    cache_file = _cache_file(source, options)
    memo_key = (cache_file, split_seed)
    if memo_key not in _MEMO:
        decoded = _from_cache(cache_file, source, options) or _decode(source, options, cache_file)
        if len(_MEMO) >= MEMO_SIZE:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[memo_key] = _assemble(source, decoded, split_seed)
    return _MEMO[memo_key]


MEMO_SIZE = 4
_MEMO: dict[tuple[Path, int], Dataset] = {}


# ---- decoding, the cache and the splits ----------------------------------------------------


def _cache_file(source, options: Options) -> Path:
    digest = sha256(f"nas user dataset cache {CACHE_FORMAT}".encode())
    for part in [*options.key_parts(), *source.key_parts()]:
        digest.update(part.encode() + b"\0")
    safe_label = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.label)[:40]
    return cache_dir("user") / f"{safe_label}-{digest.hexdigest()[:32]}.npz"


def _decode(source, options: Options, cache_file: Path) -> _Decoded:
    plan = source.plan(options)
    _check_memory(source.root, plan.shape, options.device)
    channels, height, width = plan.shape.input_shape
    size = _bytes(plan.shape.images * channels * height * width)
    note(
        f"decoding {plan.shape.images:,} images of {source.root} into {channels} x {height} x "
        f"{width} uint8 ({size}); cache for later runs: {cache_file}"
    )
    progress = Progress(plan.shape.images)
    try:
        splits = source.decode(plan, progress)
    finally:
        progress.close()
    names = plan.shape.class_names
    decoded = _Decoded(splits, names, _fingerprint(splits, names))
    _write_cache(cache_file, decoded)
    return decoded


def _check_memory(root: Path, shape: DatasetShape, device: str) -> None:
    needed = shape.images * math.prod(shape.input_shape)
    budget = memory_budget_bytes(device)
    if needed <= budget:
        return
    fits = math.isqrt(budget // (shape.images * shape.input_shape[0]))
    advice = f"pass --image-size {fits} or less" if fits else "use fewer images"
    channels, height, width = shape.input_shape
    raise UserDatasetError(
        f"{root}: {shape.images:,} images of {channels} x {height} x {width} need "
        f"{_bytes(needed)} as uint8, more than the memory budget of {_bytes(budget)} (half the "
        f"free memory of {device}; ${MEMORY_BUDGET_VARIABLE} sets it); {advice}"
    )


def _fingerprint(splits: dict, class_names: tuple[str, ...]) -> str:
    digest = sha256(json.dumps(list(class_names)).encode())
    for split, (images, labels) in splits.items():
        digest.update(f"{split} {images.shape}".encode())
        digest.update(np.ascontiguousarray(images).data)
        digest.update(labels.astype("<i8").tobytes())
    return digest.hexdigest()[:16]


def _write_cache(cache_file: Path, decoded: _Decoded) -> None:
    """Write the cache through a temporary file and a rename: a crash leaves no half file."""
    arrays = {"meta": np.array(json.dumps(_meta(decoded)))}
    for split, (images, labels) in decoded.splits.items():
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = tempfile.NamedTemporaryFile(
            dir=cache_file.parent, prefix=".", suffix=".tmp", delete=False
        )
    except OSError as error:
        _unwritable(cache_file, error)
        return
    try:
        with partial:
            np.savez(partial, **arrays)
        os.replace(partial.name, cache_file)
    except OSError as error:  # a full disk, say: the data is decoded all the same
        _unwritable(cache_file, error)
    finally:
        if os.path.exists(partial.name):
            os.unlink(partial.name)


def _unwritable(cache_file: Path, error: OSError) -> None:
    note(f"note: could not write the cache {cache_file} ({error}); the next start decodes again")


def _meta(decoded: _Decoded) -> dict:
    images, _ = decoded.splits["train"]
    return {
        "format": CACHE_FORMAT,
        "input_shape": list(images.shape[1:]),
        "class_names": list(decoded.class_names),
        "images": sum(len(labels) for _, labels in decoded.splits.values()),
        "splits": list(decoded.splits),
        "fingerprint": decoded.fingerprint,
    }


def _shape_of(meta: dict) -> DatasetShape:
    names = tuple(meta["class_names"])
    return DatasetShape(tuple(meta["input_shape"]), len(names), names, meta["images"])


def _read_meta(cache_file: Path) -> dict | None:
    """The cache's metadata (its arrays unread), or None when there is no readable cache."""
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as archive:
            return _checked_meta(archive)
    except Exception as error:  # any damage (truncation, a foreign file): decode again
        _unreadable_cache(cache_file, error)
        return None


def _checked_meta(archive) -> dict:
    """The metadata of an opened cache archive; ValueError where it is of another format."""
    meta = json.loads(str(archive["meta"]))
    if meta["format"] != CACHE_FORMAT:
        raise ValueError(f"format {meta['format']}, not {CACHE_FORMAT}")
    _shape_of(meta)
    return meta


def _unreadable_cache(cache_file: Path, error: Exception) -> None:
    note(f"note: the cache {cache_file} cannot be read ({error}); reading the images instead")


def _from_cache(cache_file: Path, source, options: Options) -> _Decoded | None:
    """The decoded dataset from its cache (one opening of the file), or None without one."""
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as archive:
            meta = _checked_meta(archive)
            _check_memory(source.root, _shape_of(meta), options.device)
            splits = {s: (archive[f"x_{s}"], archive[f"y_{s}"]) for s in meta["splits"]}
        for images, labels in splits.values():
            if images.dtype != np.uint8 or list(images.shape[1:]) != meta["input_shape"]:
                raise ValueError(f"images are {images.dtype} {images.shape}")
            if labels.dtype != np.int64 or labels.shape != (len(images),):
                raise ValueError(f"labels are {labels.dtype} {labels.shape}")
    except UserDatasetError:
        raise  # too large for this device's memory: the refusal, not a damaged cache
    except Exception as error:  # any damage, as in _read_meta: decode again
        _unreadable_cache(cache_file, error)
        return None
    return _Decoded(splits, tuple(meta["class_names"]), meta["fingerprint"])


def _assemble(source, decoded: _Decoded, split_seed: int) -> Dataset:
    """The Dataset: given splits as they are, missing ones carved seeded from train."""
    splits = dict(decoded.splits)
    for split, seed in (("test", split_seed), ("val", split_seed + 1)):  # test first, as built-ins
        if split not in splits:
            images, labels = splits["train"]
            held, kept = _stratified_split(labels, split, seed)
            splits[split], splits["train"] = (
                (images[held], labels[held]),
                (images[kept], labels[kept]),
            )
    mean, std = channel_stats(splits["train"][0])
    tensors = {
        split: (torch.from_numpy(x), torch.from_numpy(y)) for split, (x, y) in splits.items()
    }
    return Dataset(
        name=source.label,
        train_x=tensors["train"][0],
        train_y=tensors["train"][1],
        val_x=tensors["val"][0],
        val_y=tensors["val"][1],
        test_x=tensors["test"][0],
        test_y=tensors["test"][1],
        num_classes=len(decoded.class_names),
        mean=mean,
        std=std,
        class_names=decoded.class_names,
        fingerprint=decoded.fingerprint,
    )


def _stratified_split(labels: np.ndarray, split: str, seed: int) -> tuple[np.ndarray, ...]:
    """Sorted indices held out for `split` (per class, seeded) and the rest."""
    counts = np.bincount(labels)
    generator = np.random.default_rng(seed)
    held = [
        generator.permutation(np.flatnonzero(labels == label))[:quota]
        for label, quota in enumerate(holdout_quota(counts, split))
    ]
    held = np.sort(np.concatenate(held))
    return held, np.setdiff1d(np.arange(len(labels)), held)


def _bytes(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"
