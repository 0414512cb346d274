"""A user's image files: a class-per-folder tree or an .npz, listed, checked and decoded.

`nas.user_data` decides what to do with them (sizes, cache, splits); this module knows the two
layouts. Every bad input raises `UserDatasetError` with one line that names the file or folder
and says what to do, before anything is written.

Folder layout: ``ROOT/<class>/<image>``, or ``ROOT/train/<class>/<image>`` with optional
``val/`` and ``test/`` beside it. Images are PNG, JPEG or BMP by extension (any case); hidden
files, other extensions and folders below a class folder are not read. EXIF orientation is
not applied: pixels are used as stored.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
SPLITS = ("train", "val", "test")
# Pillow modes that hold no colour; anything else (RGB, palette, CMYK, ...) counts as colour.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
# What Pillow raises for a file it cannot read: unknown format (UnidentifiedImageError is an
# OSError), truncation (OSError), broken headers (SyntaxError, ValueError, EOFError), and an
# image so large it looks like a decompression bomb.
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class UserDatasetError(ValueError):
    """A user's dataset (folder or .npz) cannot be used as given; the message says why."""


# ---- the folder layout ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFile:
    """One image of a folder dataset, with what the cache key needs (no image opened)."""

    relative: str  # path below the dataset root, "/"-separated
    size: int  # bytes
    mtime_ns: int
    label: int


@dataclass(frozen=True)
class FolderListing:
    root: Path
    class_names: tuple[str, ...]
    splits: dict[str, tuple[ImageFile, ...]]  # "train", and "val" / "test" when given

    def key_parts(self) -> list[str]:
        return [
            f"{file.relative}\t{file.size}\t{file.mtime_ns}"
            for files in self.splits.values()
            for file in files
        ]


def list_folder(root: Path) -> FolderListing:
    """The images of a dataset folder by split and class, from os.scandir alone (fast)."""
    folders = _subfolders(root)
    given = [split for split in SPLITS if split in folders]
    if not given:
        class_names = _class_names(root, folders)
        return FolderListing(root, class_names, {"train": _class_files(root, "", class_names)})
    if "train" not in given:
        raise UserDatasetError(
            f"{root} has {'/, '.join(given)}/ but no train/: a split layout needs "
            f"{root}/train/<class>/<image> (val/ and test/ are optional)"
        )
    strays = sorted(set(folders) - set(SPLITS))
    if strays:
        raise UserDatasetError(
            f"{root} has train/ and also {strays[0]}/: in a split layout every class folder "
            f"goes inside train/, val/ or test/ (move {strays[0]}/ there)"
        )
    class_names = _class_names(root / "train", _subfolders(root / "train"))
    splits = {"train": _class_files(root, "train", class_names)}
    for split in given[1:]:
        present = _subfolders(root / split)
        unknown = sorted(set(present) - set(class_names))
        if unknown:
            raise UserDatasetError(
                f"{root / split / unknown[0]} is a class that train/ lacks; every class of "
                f"{split}/ needs a folder of training images in {root / 'train'}"
            )
        splits[split] = _class_files(root, split, tuple(sorted(present)), class_names)
    return FolderListing(root, class_names, splits)


def _subfolders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in _scan(folder) if entry.is_dir() and _visible(entry))


def _scan(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as error:
        raise UserDatasetError(
            f"{folder}: cannot list the folder ({error.strerror}); check its permissions"
        ) from None


def _visible(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".")


def _is_image(entry: os.DirEntry) -> bool:
    return _visible(entry) and entry.name.lower().endswith(IMAGE_EXTENSIONS) and entry.is_file()


def _class_names(folder: Path, subfolders: list[str]) -> tuple[str, ...]:
    if not subfolders:
        loose = sum(_is_image(entry) for entry in _scan(folder))
        found = f"{loose} images but no class folders" if loose else "no class folders"
        raise UserDatasetError(
            f"{folder} holds {found}: put each class's images in a folder of their own, "
            f"{folder}/<class>/<image>.png"
        )
    if len(subfolders) == 1:
        raise UserDatasetError(
            f"{folder} has one class folder ({subfolders[0]}/); classification needs at "
            f"least two: add a folder per class"
        )
    return tuple(subfolders)


def _class_files(
    root: Path, split: str, classes: tuple[str, ...], label_order: tuple[str, ...] | None = None
) -> tuple[ImageFile, ...]:
    """The images of each class folder of one split, labelled by their place in
    `label_order` (train's classes; `classes` themselves for train)."""
    label_order = label_order or classes
    files = []
    for name in classes:
        folder = root / split / name
        images = sorted((entry for entry in _scan(folder) if _is_image(entry)), key=_name)
        if not images:
            raise UserDatasetError(
                f"{folder} holds no PNG, JPEG or BMP image (folders inside a class folder "
                f"are not read); add its images or remove the folder"
            )
        prefix = f"{split}/{name}" if split else name
        for entry in images:
            stat = entry.stat()
            label = label_order.index(name)
            files.append(
                ImageFile(f"{prefix}/{entry.name}", stat.st_size, stat.st_mtime_ns, label)
            )
    return tuple(files)


def _name(entry: os.DirEntry) -> str:
    return entry.name


def read_header(path: Path) -> tuple[int, int, str]:
    """(width, height, Pillow mode) of an image, from its header alone."""
    try:
        with Image.open(path) as image:
            return image.width, image.height, image.mode
    except _PILLOW_ERRORS as error:
        raise _unreadable(path, error) from None


def decode_file(path: Path, channels: int, side: int | None) -> np.ndarray:
    """An image file as a C x H x W uint8 array (see `fit_image`)."""
    try:
        with Image.open(path) as image:
            image.load()
            return fit_image(image, channels, side)
    except _PILLOW_ERRORS as error:
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: Exception) -> UserDatasetError:
    # Pillow often repeats the path in its message; the message names it once already.
    why = " ".join(str(error).replace(f" {str(path)!r}", "").split()) or type(error).__name__
    return UserDatasetError(f"{path}: not a readable image ({why}); replace or delete the file")


# ---- one conversion for both layouts -------------------------------------------------------


def fit_image(image: Image.Image, channels: int, side: int | None) -> np.ndarray:
    """An image as a C x H x W uint8 array with `channels` (1 or 3), and when `side` is given
    resized so its shorter side is `side`, then centre-cropped to side x side.

    Grey becomes RGB by copying; colour becomes grey by Pillow's luminance (ITU-R 601-2).
    Resizing is Pillow's bilinear filter without `reducing_gap`, which widens its support by
    the reduction factor, so downscaling is antialiased. It resizes the centre square in one
    step (`box=`), which is the same as scaling the whole image and cropping it.
    """
    image = _to_mode(image, "L" if channels == 1 else "RGB")
    if side is not None and image.size != (side, side):
        width, height = image.size
        short = min(width, height)
        left, top = (width - short) / 2, (height - short) / 2
        box = (left, top, left + short, top + short)
        image = image.resize((side, side), Image.Resampling.BILINEAR, box=box)
    pixels = np.asarray(image)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode.startswith("I;16"):
        # 16-bit grey (e.g. PNG): Pillow's own conversion clips at 255; scale 0..65535 instead.
        wide = np.asarray(image).astype(np.uint32)
        image = Image.fromarray(((wide + 128) // 257).astype(np.uint8), "L")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("L" if image.mode in GREY_MODES else "RGB")
    return image if image.mode == mode else image.convert(mode)


def is_colour(mode: str) -> bool:
    return mode not in GREY_MODES


# ---- the .npz layout -----------------------------------------------------------------------

NPZ_ARRAYS = tuple(f"{kind}_{split}" for split in SPLITS for kind in ("x", "y"))


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an .npz, read from the array headers alone."""
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(member)
                headers[info.filename.removesuffix(".npy")] = (shape, dtype)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UserDatasetError(
            f"{path}: not a readable .npz archive ({error}); write it with numpy.savez"
        ) from None
    check_npz_headers(path, headers)
    return headers


def check_npz_headers(path: Path, headers: dict) -> None:
    """Refuse missing, unexpected or mismatched arrays and wrong dtypes or shapes."""
    unexpected = sorted(set(headers) - {*NPZ_ARRAYS, "class_names"})
    if unexpected:
        raise UserDatasetError(
            f"{path}: unexpected array {unexpected[0]!r}; the arrays are x_train, y_train, "
            f"optional x_val/y_val and x_test/y_test, and optional class_names"
        )
    for split in SPLITS:
        x_name, y_name = f"x_{split}", f"y_{split}"
        present = [name for name in (x_name, y_name) if name in headers]
        if split == "train" and len(present) < 2 or len(present) == 1:
            missing = y_name if x_name in present else x_name
            raise UserDatasetError(
                f"{path}: array {missing!r} is missing; "
                f"{'x_train and y_train are required' if split == 'train' else 'store both'}"
                f" ({x_name}: images, {y_name}: their labels)"
            )
        if present:
            (x_shape, x_dtype), (y_shape, y_dtype) = headers[x_name], headers[y_name]
            channels_last(path, x_name, x_shape, x_dtype)
            if y_dtype.kind not in "iu" or len(y_shape) != 1:
                raise UserDatasetError(
                    f"{path}: {y_name} is {y_dtype} of shape {y_shape}; store a 1-D array of "
                    f"integer class numbers 0..K-1"
                )
            if y_shape[0] != x_shape[0]:
                raise UserDatasetError(
                    f"{path}: {x_name} has {x_shape[0]} images but {y_name} {y_shape[0]} "
                    f"labels; store one label per image"
                )
    if "class_names" in headers:
        shape, dtype = headers["class_names"]
        if dtype.kind not in "US" or len(shape) != 1:
            raise UserDatasetError(
                f"{path}: class_names is {dtype} of shape {shape}; store a 1-D array of strings"
            )


def channels_last(path: Path, name: str, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether images of `shape` are N x H x W x C (else N x C x H x W or N x H x W)."""
    if dtype != np.uint8 and dtype.kind != "f":
        raise UserDatasetError(
            f"{path}: {name} is {dtype}; store uint8 pixels (0..255) or floats in [0, 1]"
        )
    last = len(shape) == 4 and shape[3] in (1, 3)
    if not (len(shape) == 3 or last or len(shape) == 4 and shape[1] in (1, 3)) or (0 in shape):
        raise UserDatasetError(
            f"{path}: {name} has shape {shape}; store N x H x W (grey), N x H x W x C or "
            f"N x C x H x W with C 1 or 3, and at least one image"
        )
    return last


def npz_geometry(path: Path, headers: dict, name: str) -> tuple[int, int, int]:
    """(channels, height, width) of the images of array `name`."""
    shape, dtype = headers[name]
    if len(shape) == 3:
        return 1, shape[1], shape[2]
    if channels_last(path, name, shape, dtype):
        return shape[3], shape[1], shape[2]
    return shape[1], shape[2], shape[3]


def npz_labels(path: Path, headers: dict) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The labels of every given split and the class names, checked (images are not read)."""
    wanted = [name for name in headers if name.startswith("y_") or name == "class_names"]
    arrays = _npz_arrays(path, wanted)
    labels = {name[2:]: arrays[name].astype(np.int64) for name in wanted if name != "class_names"}
    if "class_names" in arrays:
        class_names = tuple(_text(name) for name in arrays["class_names"].tolist())
        if len(set(class_names)) != len(class_names) or "" in class_names:
            raise UserDatasetError(
                f"{path}: class_names {list(class_names)} has an empty or repeated name; "
                f"give each class a name of its own"
            )
    else:
        count = 1 + max(int(y.max()) for y in labels.values())
        class_names = tuple(str(label) for label in range(count))
    for split, y in labels.items():
        outside = y[(y < 0) | (y >= len(class_names))]
        if len(outside):
            named = "class_names names" if "class_names" in arrays else "labels imply"
            last = len(class_names) - 1
            raise UserDatasetError(
                f"{path}: y_{split} holds label {int(outside[0])}, outside 0..{last} ({named} "
                f"{len(class_names)} classes); labels are class numbers 0..K-1"
            )
    if len(class_names) < 2:
        raise UserDatasetError(
            f"{path}: every label is 0, a single class; classification needs at least two"
        )
    return labels, class_names


def npz_images(path: Path, headers: dict) -> dict[str, np.ndarray]:
    """The images of every given split as N x C x H x W uint8 arrays (floats checked and
    scaled: round(x * 255))."""
    wanted = [name for name in headers if name.startswith("x_")]
    images = {}
    for name, array in _npz_arrays(path, wanted).items():
        if array.dtype.kind == "f":
            inside = (array >= 0) & (array <= 1)  # False for NaN too
            if not inside.all():
                raise UserDatasetError(
                    f"{path}: {name} holds {array[~inside].flat[0]}, outside [0, 1]; store "
                    f"floats in [0, 1] or uint8 pixels 0..255"
                )
            array = np.rint(array * 255).astype(np.uint8)
        if array.ndim == 3:
            array = array[:, None]
        elif channels_last(path, name, array.shape, array.dtype):
            array = array.transpose(0, 3, 1, 2)
        images[name[2:]] = np.ascontiguousarray(array)
    return images


def _npz_arrays(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in names}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        # An object array (e.g. a list of strings saved with dtype=object) is refused here.
        raise UserDatasetError(f"{path}: cannot read its arrays ({error})") from None


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)
