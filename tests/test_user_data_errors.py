"""A user's dataset that cannot be used: one line naming the culprit, and nothing cached."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from nas.data import cache_dir, load_dataset
from nas.user_data import UserDatasetError, describe_user_dataset, load_user_dataset
from tests.image_folders import (
    user_data_cache,  # noqa: F401  (autouse)
    write_image_folder,
    write_npz,
)

# ---- folders: each writer damages a small tree and returns the path to load ------------------


def missing_path(root):
    return root / "nowhere"


def empty_folder(root):
    root.mkdir()
    return root


def loose_images(root):
    for image in write_image_folder(root / "tmp", classes=2, per_class=2):
        shutil.move(image.path, root / f"{image.class_name}-{image.path.name}")
    shutil.rmtree(root / "tmp")
    return root


def single_class(root):
    write_image_folder(root, classes=1, per_class=5)
    return root


def class_without_images(root):
    write_image_folder(root, classes=2, per_class=3)
    (root / "Zebra").mkdir()
    (root / "Zebra" / "readme.txt").write_text("images to come")
    return root


def truncated_image(root):
    written = write_image_folder(root, classes=2, per_class=3)
    written[1].path.write_bytes(written[1].path.read_bytes()[:80])
    return root


def not_an_image(root):
    written = write_image_folder(root, classes=2, per_class=3)
    written[2].path.write_text("<html>an error page saved as .png</html>")
    return root


def val_class_unknown_to_train(root):
    written = write_image_folder(root, classes=2, splits={"train": 3, "val": 1})
    os.rename(written[-1].path.parent, root / "val" / "Unicorn")
    return root


def val_without_train(root):
    write_image_folder(root, classes=2, splits={"val": 2})
    return root


def stray_folder_beside_train(root):
    write_image_folder(root, classes=2, splits={"train": 3})
    write_image_folder(root / "extra", classes=2, per_class=1)
    shutil.move(root / "extra" / "Trouser", root / "Trouser")
    return root


def val_size_differs(root):
    write_image_folder(root, classes=2, splits={"train": 3, "val": 1})
    Image.new("L", (30, 30)).save(root / "val" / "Trouser" / "000.png")
    return root


def too_few_to_carve(root):
    write_image_folder(root, classes=2, per_class=1)
    return root


FOLDER_CASES = {
    missing_path: r"'.*nowhere' is none of the built-ins \(fashion_mnist, cifar10, digits\)",
    empty_folder: r"holds no class folders: put each class's images in a folder",
    loose_images: r"holds 4 images but no class folders",
    single_class: r"one class folder \(T-shirt_top/\); classification needs at least two",
    class_without_images: r"Zebra holds no PNG, JPEG or BMP image",
    truncated_image: r"T-shirt_top/001.png: not a readable image \(.*\); replace or delete",
    not_an_image: r"T-shirt_top/002.png: not a readable image",
    val_class_unknown_to_train: r"val/Unicorn is a class that train/ lacks",
    val_without_train: r"has val/ but no train/",
    stray_folder_beside_train: r"has train/ and also Trouser/",
    val_size_differs: r"val/Trouser/000.png: images are 30 x 30 .* training images are 28 x 28; "
    r"pass --image-size N",
    too_few_to_carve: r"2 training images are too few to hold out a test split",
}


# Pixels past a sound header: describe_user_dataset reads headers only, so only loading finds it.
FOUND_ONLY_BY_DECODING = {truncated_image}


@pytest.mark.parametrize(
    ("damage", "message"), FOLDER_CASES.items(), ids=[damage.__name__ for damage in FOLDER_CASES]
)
def test_bad_folder_is_refused_in_one_line(tmp_path, damage, message):
    path = damage(tmp_path / "pets")
    describe = [] if damage in FOUND_ONLY_BY_DECODING else [describe_user_dataset]
    for attempt in (load_user_dataset, *describe):
        with pytest.raises(UserDatasetError, match=message) as refused:
            attempt(path)
        assert "\n" not in str(refused.value)
    assert not cache_dir("user").exists()


def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "pets", classes=2, per_class=3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 28 x 28 is now over twice the limit
    with pytest.raises(UserDatasetError, match=r"000.png: not a readable image .*decompression"):
        load_user_dataset(tmp_path / "pets")
    assert not cache_dir("user").exists()


def test_bad_options_are_refused(tmp_path):
    write_image_folder(tmp_path / "pets", classes=2, per_class=3)
    with pytest.raises(UserDatasetError, match="--channels 2: give 1 .grey. or 3 .RGB."):
        load_user_dataset(tmp_path / "pets", channels=2)
    with pytest.raises(UserDatasetError, match="--image-size 0: give a whole number >= 1"):
        load_dataset(str(tmp_path / "pets"), image_size=0)


# ---- .npz: each case rewrites the arrays of a good archive ---------------------------------


def good_arrays(tmp_path) -> dict[str, np.ndarray]:
    written = write_npz(tmp_path / "good.npz", splits=("train", "val"))
    return {name: array for name, array in written.items() if not name.startswith("pixels")}


def without(arrays, name):
    return {key: value for key, value in arrays.items() if key != name}


NPZ_CASES = {
    "no y_train": (lambda a: without(a, "y_train"), r"array 'y_train' is missing; x_train and"),
    "x_val alone": (lambda a: without(a, "y_val"), r"array 'y_val' is missing; store both"),
    "unexpected": (lambda a: {**a, "x_valid": a["x_val"]}, r"unexpected array 'x_valid'"),
    "count": (lambda a: {**a, "y_train": a["y_train"][:-1]}, r"18 images but y_train 17 labels"),
    "int64 images": (
        lambda a: {**a, "x_train": a["x_train"].astype(np.int64)},
        r"x_train is int64; store uint8 pixels \(0..255\) or floats in \[0, 1\]",
    ),
    "two channels": (
        lambda a: {**a, "x_train": np.repeat(a["x_train"], 2, axis=3)},
        r"x_train has shape \(18, 28, 28, 2\); store N x H x W",
    ),
    "no images": (
        lambda a: {**a, "x_train": a["x_train"][:0], "y_train": a["y_train"][:0]},
        r"x_train has shape \(0, 28, 28, 1\)",
    ),
    "float above 1": (
        lambda a: {**a, "x_train": a["x_train"] / 200},
        r"x_train holds 1\.0\d*, outside \[0, 1\]",
    ),
    "NaN": (
        lambda a: {**a, "x_val": np.full(a["x_val"].shape, np.nan, np.float32)},
        r"x_val holds nan, outside \[0, 1\]",
    ),
    "negative label": (lambda a: {**a, "y_val": a["y_val"] - 1}, r"y_val holds label -1"),
    "float labels": (
        lambda a: {**a, "y_train": a["y_train"].astype(np.float32)},
        r"y_train is float32 of shape \(18,\); store a 1-D array of integer class numbers",
    ),
    "label beyond class_names": (
        lambda a: {**a, "class_names": np.array(["a", "b"])},
        r"y_train holds label 2, outside 0..1 \(class_names names 2 classes\)",
    ),
    "class without training image": (
        lambda a: {**a, "class_names": np.array(["a", "b", "c", "d"])},
        r"class 'd' has no training image",
    ),
    "gap in labels": (
        lambda a: {**a, "y_train": a["y_train"] * 2, "y_val": a["y_val"] * 2},
        r"class '1' has no training image",
    ),
    "single class": (
        lambda a: {**a, "y_train": a["y_train"] * 0, "y_val": a["y_val"] * 0},
        r"every label is 0, a single class",
    ),
    "repeated names": (
        lambda a: {**a, "class_names": np.array(["a", "a", "b"])},
        r"class_names \['a', 'a', 'b'\] has an empty or repeated name",
    ),
    "val size": (
        lambda a: {**a, "x_val": a["x_val"][:, :20]},
        r"good.npz \(x_val\): images are 20 x 28 .* pass --image-size N",
    ),
}


@pytest.mark.parametrize(("change", "message"), NPZ_CASES.values(), ids=NPZ_CASES)
def test_bad_npz_is_refused_in_one_line(tmp_path, change, message):
    arrays = change(good_arrays(tmp_path))
    np.savez(tmp_path / "good.npz", **arrays)
    with pytest.raises(UserDatasetError, match=message) as refused:
        load_user_dataset(tmp_path / "good.npz")
    assert "\n" not in str(refused.value) and "good.npz" in str(refused.value)
    assert not cache_dir("user").exists()


def test_npz_object_arrays_and_other_files_are_refused(tmp_path):
    arrays = good_arrays(tmp_path)
    np.savez(tmp_path / "objects.npz", **arrays, class_names=np.array(["a", 1, None], object))
    with pytest.raises(UserDatasetError, match=r"objects.npz: class_names is object"):
        load_user_dataset(tmp_path / "objects.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip archive")
    with pytest.raises(UserDatasetError, match=r"broken.npz: not a readable .npz archive"):
        load_user_dataset(tmp_path / "broken.npz")
    (tmp_path / "labels.csv").write_text("file,label\n")
    with pytest.raises(UserDatasetError, match=r"labels.csv' .* is a file but not an .npz"):
        load_user_dataset(tmp_path / "labels.csv")
    assert not cache_dir("user").exists()
