"""A user's own dataset: folder and .npz layouts, sizes, channels, splits, cache and errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nas._user_sources as sources_module
import nas.user_data as user_data
from nas.data import cache_dir, is_builtin, load_dataset
from nas.user_data import (
    DatasetShape,
    UserDatasetError,
    dataset_label,
    describe_user_dataset,
    load_user_dataset,
    memory_budget_bytes,
)
from tests.image_folders import (
    FOLDER_NAMES,
    tinted,
    user_data_cache,  # noqa: F401  (autouse)
    write_image_folder,
    write_npz,
)


def cached_files() -> list[str]:
    folder = cache_dir("user")
    return sorted(os.listdir(folder)) if folder.exists() else []


def fresh_load(path, **options):
    """Load as a new process would: nothing reused from this process's memo."""
    user_data._MEMO.clear()
    return load_user_dataset(path, **options)


def splits_of(data):
    return {"train": data.train_x, "val": data.val_x, "test": data.test_x}


def labels_of(data):
    return {"train": data.train_y, "val": data.val_y, "test": data.test_y}


def count_opens(monkeypatch) -> list[str]:
    """Record every image Pillow opens from now on."""
    opened, real_open = [], Image.open

    def recording_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", recording_open)
    return opened


# ---- folders: labels, pixels, splits -------------------------------------------------------


def test_folder_labels_follow_sorted_class_folders_and_pixels_survive(tmp_path):
    written = write_image_folder(tmp_path / "pets", classes=3, per_class=10)
    data = load_user_dataset(tmp_path / "pets")
    assert data.name == "pets" and data.class_names == tuple(sorted(FOLDER_NAMES[:3]))
    assert data.num_classes == 3 and data.input_shape == (1, 28, 28)
    class_of = {image.pixels.tobytes(): image.class_name for image in written}
    seen = []
    for split, images in splits_of(data).items():
        assert images.dtype == torch.uint8 and labels_of(data)[split].dtype == torch.int64
        for pixels, label in zip(images, labels_of(data)[split]):
            key = pixels[0].numpy().tobytes()
            assert class_of[key] == data.class_names[label]  # the image's own class
            seen.append(key)
    assert sorted(seen) == sorted(class_of)  # every image once, in exactly one split


def test_carved_splits_are_stratified_seeded_and_test_comes_first(tmp_path):
    write_image_folder(tmp_path / "pets", classes=3, per_class=10)
    data = load_user_dataset(tmp_path / "pets", split_seed=0)
    # 20% of 30 for test, 2 per class; then 20% of the 24 left (4.8 -> 5) for validation.
    assert torch.bincount(data.test_y).tolist() == [2, 2, 2]
    assert sorted(torch.bincount(data.val_y).tolist()) == [1, 2, 2]
    assert len(data.train_y) == 19
    again = fresh_load(tmp_path / "pets", split_seed=0)
    assert torch.equal(again.test_x, data.test_x) and torch.equal(again.val_x, data.val_x)
    other = fresh_load(tmp_path / "pets", split_seed=1)
    assert not torch.equal(other.test_x, data.test_x)
    assert other.fingerprint == data.fingerprint  # the same data, split another way


def test_split_folders_are_used_as_given(tmp_path):
    written = write_image_folder(
        tmp_path / "pets", classes=3, splits={"train": 4, "val": 2, "test": 1}
    )
    data = load_user_dataset(tmp_path / "pets")
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (12, 6, 3)
    for split, images in splits_of(data).items():
        expected = [image.pixels for image in written if image.split == split]
        assert np.array_equal(images[:, 0].numpy(), np.stack(expected))


def test_holdout_quota_caps_validation_and_keeps_a_training_image_per_class():
    quota = sources_module.holdout_quota(np.array([30_000, 30_000, 10]), "val")
    assert quota.sum() == 10_000 and (quota < [30_000, 30_000, 10]).all()
    assert sources_module.holdout_quota(np.array([30_000, 30_000, 10]), "test").sum() == 12_002
    assert sources_module.holdout_quota(np.array([1, 1, 50]), "test").tolist() == [0, 0, 10]


def test_mean_and_std_are_those_of_the_train_split(tmp_path):
    write_image_folder(tmp_path / "pets", classes=3, per_class=10, colour=True)
    data = load_user_dataset(tmp_path / "pets")
    pixels = data.train_x.double().div(255).transpose(0, 1).flatten(1)
    assert data.mean == pytest.approx(pixels.mean(dim=1).tolist(), abs=1e-12)
    assert data.std == pytest.approx(pixels.std(dim=1).tolist(), abs=1e-12)


def test_hidden_files_other_extensions_and_nested_folders_are_not_read(tmp_path):
    written = write_image_folder(tmp_path / "pets", classes=2, per_class=5)
    folder = written[0].path.parent
    Image.fromarray(written[0].pixels).save(folder / ".hidden.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "deeper").mkdir()
    Image.fromarray(written[0].pixels).save(folder / "deeper" / "extra.png")
    Image.fromarray(written[0].pixels).save(folder / "UPPER.PNG")  # read: case-insensitive
    Image.fromarray(tinted(written[0].pixels)).save(folder / "photo.jpg")
    Image.fromarray(written[0].pixels).save(folder / "bitmap.bmp")
    assert describe_user_dataset(tmp_path / "pets").images == 13
    assert load_user_dataset(tmp_path / "pets").in_channels == 3  # the JPEG is in colour


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    written = write_image_folder(tmp_path / "pets", classes=2, per_class=5)
    wide = np.full((28, 28), 257 * 100, dtype=np.uint16)
    wide[0, 0] = 65535
    Image.fromarray(wide).save(written[0].path)
    data = load_user_dataset(tmp_path / "pets", split_seed=0)
    everything = torch.cat([data.train_x, data.val_x, data.test_x])
    flat = everything[(everything[:, 0, 1, 1] == 100)]
    assert len(flat) == 1 and int(flat[0, 0, 0, 0]) == 255


# ---- size and channels ---------------------------------------------------------------------


def test_mixed_sizes_become_the_median_shorter_side_centre_cropped(tmp_path):
    # Shorter sides per class: 28, 40, 40, 56, 56 -> median 40.
    written = write_image_folder(
        tmp_path / "pets", classes=2, per_class=5, sides=(28, 40, (40, 60), 56, 56)
    )
    data = load_user_dataset(tmp_path / "pets", split_seed=0)
    assert data.input_shape == (1, 40, 40)
    decoded = {x.numpy().tobytes() for images in splits_of(data).values() for x in images[:, 0]}
    square = [image.pixels for image in written if image.pixels.shape == (40, 40)]
    wide = [image.pixels for image in written if image.pixels.shape == (40, 60)]
    assert all(pixels.tobytes() in decoded for pixels in square)  # the right size: untouched
    assert all(pixels[:, 10:50].tobytes() in decoded for pixels in wide)  # the centre 40 x 40


def test_downscaling_is_antialiased(tmp_path):
    written = write_image_folder(tmp_path / "pets", classes=2, per_class=5, sides=(84,))
    rows, columns = np.indices((84, 84))
    checkerboard = ((rows + columns) % 2 * 255).astype(np.uint8)
    Image.fromarray(checkerboard).save(written[0].path)
    data = load_user_dataset(tmp_path / "pets", image_size=28, split_seed=0)
    everything = torch.cat([data.train_x, data.val_x, data.test_x])[:, 0]
    (board,) = [image for image in everything if 120 < image.double().mean() < 135]
    # Sampling every third pixel would give 0 or 255; a filter as wide as the reduction
    # averages the neighbours into mid-grey.
    assert 110 <= int(board[2:-2, 2:-2].min()) and int(board[2:-2, 2:-2].max()) <= 145


def test_default_size_cap_depends_on_the_device(tmp_path):
    write_image_folder(tmp_path / "big", classes=2, per_class=3, sides=(70, 80, 90))
    assert describe_user_dataset(tmp_path / "big").input_shape == (1, 64, 64)
    assert describe_user_dataset(tmp_path / "big", device="cuda:1").input_shape == (1, 80, 80)
    assert describe_user_dataset(tmp_path / "big", image_size=12).input_shape == (1, 12, 12)


def test_a_shared_size_is_kept_even_when_not_square(tmp_path):
    written = write_image_folder(tmp_path / "pets", classes=2, per_class=5, sides=((30, 44),))
    data = load_user_dataset(tmp_path / "pets")
    assert data.input_shape == (1, 30, 44)
    assert data.train_x[0, 0].numpy().tobytes() in {image.pixels.tobytes() for image in written}


def test_image_size_upscales_too(tmp_path):
    write_image_folder(tmp_path / "pets", classes=2, per_class=5)
    assert load_user_dataset(tmp_path / "pets", image_size=36).input_shape == (1, 36, 36)


def test_colour_is_kept_and_converted_by_luminance(tmp_path):
    written = write_image_folder(tmp_path / "pets", classes=2, per_class=5, colour=True)
    rgb = fresh_load(tmp_path / "pets", split_seed=0)
    assert rgb.in_channels == 3
    colours = {image.pixels.transpose(2, 0, 1).tobytes() for image in written}
    assert rgb.train_x[0].numpy().tobytes() in colours
    grey = fresh_load(tmp_path / "pets", channels=1, split_seed=0)
    assert grey.in_channels == 1
    red, green, blue = rgb.train_x[0].double()
    luminance = (red * 299 + green * 587 + blue * 114) / 1000  # ITU-R 601-2, as Pillow's "L"
    assert (grey.train_x[0, 0].double() - luminance).abs().max() <= 1


def test_grey_to_rgb_copies_and_one_colour_image_makes_the_set_colour(tmp_path):
    written = write_image_folder(tmp_path / "pets", classes=2, per_class=5)
    grey_as_rgb = load_user_dataset(tmp_path / "pets", channels=3)
    assert torch.equal(grey_as_rgb.train_x[:, 0], grey_as_rgb.train_x[:, 2])
    Image.fromarray(tinted(written[-1].pixels)).save(written[-1].path)
    assert describe_user_dataset(tmp_path / "pets").input_shape == (3, 28, 28)


# ---- .npz ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "floats", "colour"),
    [("nhwc", False, False), ("nchw", False, False), ("nhw", False, False),
     ("nhwc", True, True), ("nchw", True, True), ("nhwc", False, True)],
)  # fmt: skip
def test_npz_layouts_and_float_pixels_give_the_written_images(tmp_path, layout, floats, colour):
    written = write_npz(
        tmp_path / "clothes.npz",
        layout=layout,
        floats=floats,
        colour=colour,
        splits=("train", "val", "test"),
    )
    data = load_user_dataset(tmp_path / "clothes.npz")
    assert data.name == "clothes" and data.class_names == ("0", "1", "2")
    for split, images in splits_of(data).items():
        assert np.array_equal(images.numpy(), written[f"pixels_{split}"])
        assert np.array_equal(labels_of(data)[split].numpy(), written[f"y_{split}"])


def test_npz_layouts_share_one_fingerprint_and_pixels_change_it(tmp_path):
    fingerprints = {
        load_user_dataset(write_path, split_seed=0).fingerprint
        for write_path in [tmp_path / f"{layout}.npz" for layout in ("nhwc", "nchw", "nhw")]
        if write_npz(write_path, layout=write_path.stem) is not None
    }
    assert len(fingerprints) == 1
    arrays = dict(np.load(tmp_path / "nhwc.npz"))
    arrays["x_train"][0, 0, 0, 0] ^= 1
    np.savez(tmp_path / "changed.npz", **arrays)
    assert load_user_dataset(tmp_path / "changed.npz").fingerprint not in fingerprints
    np.savez(
        tmp_path / "named.npz", **dict(np.load(tmp_path / "nhwc.npz")), class_names=["a", "b", "c"]
    )
    assert load_user_dataset(tmp_path / "named.npz").fingerprint not in fingerprints


def test_compressed_npz(tmp_path):
    written = write_npz(tmp_path / "plain.npz", splits=("train", "test"))
    arrays = {name: array for name, array in written.items() if not name.startswith("pixels")}
    np.savez_compressed(tmp_path / "small.npz", **arrays)
    assert describe_user_dataset(tmp_path / "small.npz").images == 36
    data = load_user_dataset(tmp_path / "small.npz")
    assert np.array_equal(data.test_x.numpy(), written["pixels_test"])


def test_npz_class_names_channels_and_size_options(tmp_path):
    write_npz(tmp_path / "c.npz", colour=True, class_names=("shirt", "trousers", "jumper"))
    data = load_user_dataset(tmp_path / "c.npz", channels=1, image_size=14)
    assert data.class_names == ("shirt", "trousers", "jumper") and data.input_shape == (1, 14, 14)
    assert data.num_classes == 3


# ---- the cache ------------------------------------------------------------------------------


def test_second_load_reads_the_cache_and_opens_no_image(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "pets", classes=3, per_class=6)
    first = load_user_dataset(tmp_path / "pets")
    assert load_user_dataset(tmp_path / "pets") is first  # the same process: the same tensors
    assert len(cached_files()) == 1 and cached_files()[0].startswith("pets-")
    opened = count_opens(monkeypatch)
    second = fresh_load(tmp_path / "pets")
    shape = describe_user_dataset(tmp_path / "pets")
    assert opened == []
    assert second is not first and torch.equal(second.train_x, first.train_x)
    assert second.fingerprint == first.fingerprint and shape.input_shape == first.input_shape


def test_touching_or_adding_a_file_changes_the_key(tmp_path, monkeypatch):
    written = write_image_folder(tmp_path / "pets", classes=3, per_class=6)
    load_user_dataset(tmp_path / "pets")
    opened = count_opens(monkeypatch)
    stat = written[0].path.stat()
    os.utime(written[0].path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    fresh_load(tmp_path / "pets")
    assert len(opened) == 2 * 18 and len(cached_files()) == 2  # headers, then pixels
    Image.fromarray(written[0].pixels).save(written[0].path.parent / "new.png")
    assert fresh_load(tmp_path / "pets").fingerprint and len(cached_files()) == 3


def test_options_have_caches_of_their_own(tmp_path):
    write_image_folder(tmp_path / "pets", classes=2, per_class=5)
    load_user_dataset(tmp_path / "pets")
    load_user_dataset(tmp_path / "pets", image_size=16)
    load_user_dataset(tmp_path / "pets", channels=3)
    assert len(cached_files()) == 3


def test_an_unreadable_cache_is_rebuilt_with_a_note(tmp_path, capsys):
    write_image_folder(tmp_path / "pets", classes=2, per_class=5)
    first = load_user_dataset(tmp_path / "pets")
    (cache_dir("user") / cached_files()[0]).write_bytes(b"PK\x03\x04 not a zip any more")
    capsys.readouterr()
    again = fresh_load(tmp_path / "pets")
    assert "cannot be read" in capsys.readouterr().err
    assert torch.equal(again.train_x, first.train_x)
    assert describe_user_dataset(tmp_path / "pets").input_shape == (1, 28, 28)


def test_a_failed_cache_write_leaves_no_file_and_still_loads(tmp_path, monkeypatch, capsys):
    write_image_folder(tmp_path / "pets", classes=2, per_class=5)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    data = load_user_dataset(tmp_path / "pets")
    assert data.input_shape == (1, 28, 28) and cached_files() == []
    assert "could not write the cache" in capsys.readouterr().err


def test_a_cached_load_is_quicker_than_the_first(tmp_path):
    write_image_folder(tmp_path / "pets", classes=3, per_class=40)
    first, second = [], []
    for _ in range(3):  # the fastest of three of each: robust on a busy machine
        for name in cached_files():
            (cache_dir("user") / name).unlink()
        start = time.perf_counter()
        fresh_load(tmp_path / "pets")
        first.append(time.perf_counter() - start)
        start = time.perf_counter()
        fresh_load(tmp_path / "pets")
        second.append(time.perf_counter() - start)
    assert min(second) < min(first)


def test_progress_lines_when_not_on_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sources_module, "PROGRESS_MIN_IMAGES", 10)
    write_image_folder(tmp_path / "pets", classes=3, per_class=10)
    load_user_dataset(tmp_path / "pets")
    lines = capsys.readouterr().err.splitlines()
    assert any(
        line.startswith("decoding 30 images of") and "cache for later runs: " in line
        for line in lines
    )
    progress = [line for line in lines if line.startswith("decoded ")]
    assert len(progress) == 10 and progress[-1] == "decoded 30/30 images (100%)"


def test_progress_bar_on_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sources_module, "PROGRESS_MIN_IMAGES", 10)
    monkeypatch.setattr(sources_module, "_is_terminal", lambda stream: True)
    write_image_folder(tmp_path / "pets", classes=3, per_class=10)
    load_user_dataset(tmp_path / "pets")
    err = capsys.readouterr().err
    assert "\r" in err and "30/30" in err and "decoded 30/30" not in err  # tqdm, no lines


# ---- memory --------------------------------------------------------------------------------


def test_too_large_for_memory_is_refused_with_the_size_that_fits(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "pets", classes=3, per_class=5)  # 15 images of 1 x 28 x 28
    monkeypatch.setenv(user_data.MEMORY_BUDGET_VARIABLE, str(15 * 20 * 20))
    with pytest.raises(UserDatasetError, match=r"pass --image-size 20 or less") as refused:
        load_user_dataset(tmp_path / "pets")
    assert "11.8 kB" in str(refused.value) and cached_files() == []
    with pytest.raises(UserDatasetError, match="--image-size 20 or less"):
        load_user_dataset(tmp_path / "pets", image_size=21)
    assert load_user_dataset(tmp_path / "pets", image_size=20).input_shape == (1, 20, 20)


def test_memory_budget_reads_the_machine():
    budget = memory_budget_bytes("cpu")
    with open("/proc/meminfo") as meminfo:
        available = next(int(line.split()[1]) for line in meminfo if "MemAvailable" in line)
    assert 0.4 * available * 1024 < budget < 0.6 * available * 1024


def test_memory_budget_on_cuda_is_half_the_free_device_memory(monkeypatch):
    asked = []

    def mem_get_info(device):
        asked.append(device)
        return 8_000_000_000, 141_000_000_000

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert memory_budget_bytes("cuda:1") == 4_000_000_000
    assert asked == [torch.device("cuda:1")]


# ---- describe and the names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["grey", "mixed colour", "split folders", "options", "npz", "npz options", "npz split"],
)
def test_describe_agrees_with_load(tmp_path, case):
    path = tmp_path / ("data.npz" if case.startswith("npz") else "data")
    options = {"image_size": 18, "channels": 3} if "options" in case else {}
    if case == "grey" or case == "options":
        write_image_folder(path, classes=3, per_class=5)
    elif case == "mixed colour":
        write_image_folder(path, classes=2, per_class=5, sides=(28, (30, 50), 44), colour=True)
    elif case == "split folders":
        write_image_folder(path, classes=4, splits={"train": 3, "test": 2})
    else:
        write_npz(
            path,
            colour="options" in case,
            splits=("train", "test") if "split" in case else ("train",),
        )
    shape = describe_user_dataset(path, **options)
    data = load_user_dataset(path, **options)
    images = sum(len(labels) for labels in labels_of(data).values())
    assert shape == DatasetShape(data.input_shape, data.num_classes, data.class_names, images)


def test_dataset_label():
    assert dataset_label("/data/my_pets/") == "my_pets"
    assert dataset_label("x/flowers.npz") == "flowers"
    assert dataset_label("x/my.pets") == "my.pets"
    assert dataset_label(".") == Path.cwd().name


def test_load_dataset_routes_paths_and_keeps_built_ins(tmp_path):
    write_image_folder(tmp_path / "pets", classes=2, per_class=5)
    assert load_dataset(str(tmp_path / "pets"), image_size=16).input_shape == (1, 16, 16)
    assert is_builtin("digits") and not is_builtin(str(tmp_path / "pets"))
    digits = load_dataset("digits")
    assert digits.class_names == tuple("0123456789") and digits.fingerprint == ""
    with pytest.raises(ValueError, match="apply to a folder or .npz dataset, not the built-in"):
        load_dataset("digits", image_size=32)
    with pytest.raises(ValueError, match="not the built-in cifar10"):
        load_dataset("cifar10", channels=1)
