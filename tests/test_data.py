"""Datasets: real formats, seeded disjoint splits, corrupt files and the lookup order."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nas.data as data_module
from nas.data import (
    DATASETS,
    DatasetCorruptError,
    DatasetNotFoundError,
    load_dataset,
)

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated_lookup(monkeypatch, tmp_path):
    """No test sees the real cache, $NAS_DATA_DIR, the network or an earlier test's tensors."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NAS_NO_DOWNLOAD", "1")
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)
    data_module._load_split.cache_clear()
    yield
    data_module._load_split.cache_clear()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file of unsigned bytes (gzipped when the name ends in .gz)."""
    header = bytes((0, 0, 0x08, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def numbered_images(count: int, height: int, width: int, channels: int = 1) -> np.ndarray:
    """Images whose first two pixels spell their index, so a split can be traced back."""
    images = np.zeros((count, channels, height, width), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(count) // 256
    images[:, 0, 0, 1] = np.arange(count) % 256
    return images


def image_ids(images: torch.Tensor) -> set[int]:
    return set((images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long()).tolist())


def write_fashion(directory: Path, train: int = 100, test: int = 20, gz: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    write_idx(directory / f"train-images-idx3-ubyte{suffix}", numbered_images(train, 28, 28)[:, 0])
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}", rng.integers(0, 10, train))
    write_idx(directory / f"t10k-images-idx3-ubyte{suffix}", numbered_images(test, 28, 28)[:, 0])
    write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, test))


def write_cifar_batch(path: Path, images: np.ndarray, labels, protocol: int = 2) -> None:
    """A batch as the official python version stores it: a dict with bytes keys."""
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": labels,
        # Red plane, green plane, blue plane; reshaped by the size of one image so that a batch
        # of no images keeps its 3072 columns.
        b"data": images.reshape(len(images), int(np.prod(images.shape[1:]))),
        b"filenames": [f"img_{index}.png".encode() for index in range(len(images))],
    }
    with path.open("wb") as handle:
        pickle.dump(batch, handle, protocol=protocol)


def write_cifar(directory: Path, per_batch: int = 20) -> Path:
    folder = directory / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = numbered_images(6 * per_batch, 32, 32, channels=3)
    images[:, 2] = 200  # a blue plane, to check the channel order survives
    labels = [index % 10 for index in range(6 * per_batch)]
    names = [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]
    for number, name in enumerate(names):
        part = slice(number * per_batch, (number + 1) * per_batch)
        write_cifar_batch(folder / name, images[part], labels[part])
    return folder


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="fashion_mnist, cifar10, digits"):
        load_dataset("mnist")


def test_digits_shapes_dtypes_and_proportions():
    data = load_dataset("digits")
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert data.input_shape == (1, 8, 8) and data.in_channels == 1 and data.num_classes == 10
    assert (len(data.test_y), len(data.val_y), len(data.train_y)) == (359, 288, 1150)
    assert int(data.train_x.max()) == 255  # 0..16 scaled to the uint8 range
    assert 0.0 < data.mean[0] < 1.0 and 0.0 < data.std[0] < 1.0  # [0, 1] units


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    write_fashion(tmp_path, train=100)
    first = load_dataset("fashion_mnist", str(tmp_path), split_seed=3)
    train_ids, val_ids = image_ids(first.train_x), image_ids(first.val_x)
    assert len(val_ids) == 20 and not train_ids & val_ids  # a small copy holds out 20%
    assert train_ids | val_ids == set(range(100))
    data_module._load_split.cache_clear()
    again = load_dataset("fashion_mnist", str(tmp_path), split_seed=3)
    assert torch.equal(again.val_x, first.val_x) and torch.equal(again.train_y, first.train_y)
    other = load_dataset("fashion_mnist", str(tmp_path), split_seed=4)
    assert image_ids(other.val_x) != val_ids


def test_repeated_loads_reuse_tensors():
    assert load_dataset("digits") is load_dataset("digits")


def test_fashion_mnist_from_the_debian_copy():
    assert DEBIAN_FASHION.is_dir(), "apt-get install dataset-fashion-mnist (bash .ci/run does)"
    data = load_dataset("fashion_mnist")
    assert data.train_x.shape == (50_000, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert data.val_x.shape == (10_000, 1, 28, 28) and data.test_x.shape == (10_000, 1, 28, 28)
    assert data.test_y.dtype == torch.int64 and set(data.test_y.tolist()) == set(range(10))
    assert data.mean[0] == pytest.approx(0.286, abs=0.002)
    assert data.std[0] == pytest.approx(0.353, abs=0.002)


def test_raw_idx_files_are_read_too(tmp_path):
    write_fashion(tmp_path, gz=False)
    assert load_dataset("fashion_mnist", str(tmp_path)).test_x.shape == (20, 1, 28, 28)


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    write_fashion(tmp_path)
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    assert load_dataset("fashion_mnist").train_x.shape[0] == 80


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[: len(raw) // 2], "header says"),
        (lambda raw: b"\x00\x00\x08\x01" + raw[4:], "magic"),
        (lambda raw: raw + b"\x00", "header says"),
    ],
)
def test_corrupt_idx_file_is_named(tmp_path, damage, message):
    write_fashion(tmp_path, gz=False)
    broken = tmp_path / "train-images-idx3-ubyte"
    broken.write_bytes(damage(broken.read_bytes()))
    with pytest.raises(DatasetCorruptError, match=message) as error:
        load_dataset("fashion_mnist", str(tmp_path))
    assert str(broken) in str(error.value)


def test_truncated_gzip_is_named(tmp_path):
    write_fashion(tmp_path)
    broken = tmp_path / "t10k-labels-idx1-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:-12])
    with pytest.raises(DatasetCorruptError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("fashion_mnist", str(tmp_path))


def test_cifar10_pickle_batches(tmp_path):
    write_cifar(tmp_path)
    data = load_dataset("cifar10", str(tmp_path))
    assert data.input_shape == (3, 32, 32) and data.train_x.dtype == torch.uint8
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (80, 20, 20)
    assert image_ids(data.test_x) == set(range(100, 120))  # test_batch, in order
    assert torch.equal(data.test_y, torch.arange(100, 120) % 10)
    assert bool((data.train_x[:, 2] == 200).all()) and bool((data.train_x[:, 1] == 0).all())
    assert not image_ids(data.train_x) & image_ids(data.val_x)
    assert data.mean[2] == pytest.approx(200 / 255)


def test_cifar10_batches_directly_in_the_directory(tmp_path):
    folder = write_cifar(tmp_path)
    assert load_dataset("cifar10", str(folder)).train_x.shape == (80, 3, 32, 32)


def test_truncated_cifar_batch_is_named(tmp_path):
    folder = write_cifar(tmp_path)
    broken = folder / "data_batch_3"
    broken.write_bytes(broken.read_bytes()[:1000])
    with pytest.raises(DatasetCorruptError, match="data_batch_3"):
        load_dataset("cifar10", str(tmp_path))


def test_cifar_batch_of_wrong_shape_is_named(tmp_path):
    folder = write_cifar(tmp_path)
    write_cifar_batch(folder / "test_batch", np.zeros((4, 3000), dtype=np.uint8), [0] * 4)
    with pytest.raises(DatasetCorruptError, match="test_batch.*3072"):
        load_dataset("cifar10", str(tmp_path))


@pytest.mark.parametrize("protocol", [pickle.DEFAULT_PROTOCOL, 5])  # 5 is read too
def test_cifar_batch_cannot_run_code(tmp_path, protocol):
    folder = write_cifar(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    with (folder / "data_batch_1").open("wb") as handle:
        pickle.dump({b"data": Exploit(), b"labels": []}, handle, protocol)
    with pytest.raises(DatasetCorruptError, match="data_batch_1.*builtins.print"):
        load_dataset("cifar10", str(tmp_path))


def test_not_found_error_lists_the_four_ways(tmp_path, monkeypatch):
    empty = tmp_path / "nothing_here"
    monkeypatch.setitem(data_module.SYSTEM_DIRS, "fashion_mnist", (empty,))
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("fashion_mnist")
    message = str(error.value)
    assert "\n" not in message and isinstance(error.value, ValueError)
    for way in (
        "--data-dir",
        "NAS_DATA_DIR",
        str(tmp_path / "cache/nas/fashion_mnist"),
        str(empty),
    ):
        assert way in message
    assert "download" in message and "NAS_NO_DOWNLOAD" in message


def test_download_is_verified_and_lands_in_the_cache(tmp_path, monkeypatch):
    source = tmp_path / "mirror"
    write_fashion(source)
    files = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in source.iterdir()}
    spec = {"mirrors": (source.as_uri() + "/",), "files": files}
    monkeypatch.setitem(data_module.DOWNLOADS, "fashion_mnist", spec)
    monkeypatch.setitem(data_module.SYSTEM_DIRS, "fashion_mnist", ())
    monkeypatch.delenv("NAS_NO_DOWNLOAD")
    assert load_dataset("fashion_mnist").test_x.shape == (20, 1, 28, 28)
    assert sorted(
        path.name for path in (tmp_path / "cache/nas/fashion_mnist").iterdir()
    ) == sorted(files)


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    source = tmp_path / "mirror"
    write_fashion(source)
    files = {path.name: "0" * 32 for path in source.iterdir()}
    spec = {"mirrors": (source.as_uri() + "/",), "files": files}
    monkeypatch.setitem(data_module.DOWNLOADS, "fashion_mnist", spec)
    monkeypatch.setitem(data_module.SYSTEM_DIRS, "fashion_mnist", ())
    monkeypatch.delenv("NAS_NO_DOWNLOAD")
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch"):
        load_dataset("fashion_mnist")
    assert not list((tmp_path / "cache/nas/fashion_mnist").iterdir())


def test_every_listed_dataset_has_a_loader():
    assert set(DATASETS) == {"digits", *data_module.DOWNLOADS}


def test_a_protocol_5_cifar_batch_is_read(tmp_path):
    folder = write_cifar(tmp_path)
    images = numbered_images(20, 32, 32, channels=3)
    labels = [index % 10 for index in range(20)]
    write_cifar_batch(folder / "test_batch", images, labels, protocol=5)
    assert b"_frombuffer" in (folder / "test_batch").read_bytes()  # protocol 5's array form
    data = load_dataset("cifar10", str(tmp_path))
    assert torch.equal(data.test_x, torch.from_numpy(images))
    assert data.test_y.tolist() == labels


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([0, -1, 2, 3], "label -1 outside 0..9"),
        ([0, 1, 10, 3], "label 10 outside 0..9"),
        ({0: 1, 1: 2}, "labels are a dict, not a list"),
        ([0, 2**70, 2, 3], "labels are not integers 0..9"),
        ([0, 0.5, 2, 3], "labels are not integers 0..9"),
        ([0, [1], 2, 3], "labels are not a flat list"),
    ],
    ids=["negative", "ten", "dict", "2**70", "fraction", "ragged"],
)
def test_bad_cifar_labels_are_named(labels, message, tmp_path):
    folder = write_cifar(tmp_path)
    write_cifar_batch(folder / "data_batch_2", np.zeros((4, 3072), np.uint8), labels)
    with pytest.raises(DatasetCorruptError) as error:
        load_dataset("cifar10", str(tmp_path))
    assert str(error.value).startswith(f"{folder / 'data_batch_2'}: {message}")


def test_a_header_whose_dimensions_wrap_is_named(tmp_path):
    write_fashion(tmp_path, gz=False)
    broken = tmp_path / "train-images-idx3-ubyte"
    # 2**31 x 2**31 x 4 = 2**64: a 64-bit product wraps to 0 bytes, what the file holds.
    broken.write_bytes(bytes((0, 0, 0x08, 3)) + struct.pack(">3I", 2**31, 2**31, 4))
    with pytest.raises(DatasetCorruptError) as error:
        load_dataset("fashion_mnist", str(tmp_path))
    assert str(error.value) == (
        f"{broken}: header says 2147483648x2147483648x4 = {2**64} bytes of data, file has 0"
    )


@pytest.mark.parametrize(
    ("train", "test", "file", "message"),
    [
        (0, 20, "train-images-idx3-ubyte", "0 train images; the train split needs at least 5"),
        (4, 20, "train-images-idx3-ubyte", "4 train images; the train split needs at least 5"),
        (100, 0, "t10k-images-idx3-ubyte", "0 test images; the test split needs at least 1"),
    ],
    ids=["no training images", "no validation image", "no test image"],
)
def test_too_few_images_are_named(train, test, file, message, tmp_path):
    write_fashion(tmp_path, train=train, test=test, gz=False)
    with pytest.raises(DatasetCorruptError) as error:
        load_dataset("fashion_mnist", str(tmp_path))
    assert str(error.value).startswith(f"{tmp_path / file}: {message}")


def test_an_empty_cifar_training_set_is_named(tmp_path):
    folder = write_cifar(tmp_path)
    for name in data_module.CIFAR_TRAIN_BATCHES:
        write_cifar_batch(folder / name, np.zeros((0, 3, 32, 32), np.uint8), [], protocol=5)
    with pytest.raises(DatasetCorruptError, match="0 train images"):
        load_dataset("cifar10", str(tmp_path))


def test_test_images_of_another_size_are_named(tmp_path):
    write_fashion(tmp_path, gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((20, 14, 14), np.uint8))
    with pytest.raises(DatasetCorruptError, match="t10k-images-idx3-ubyte: images are 14x14"):
        load_dataset("fashion_mnist", str(tmp_path))


def test_search_refuses_an_empty_dataset_before_making_a_storage(tmp_path):
    data_dir = tmp_path / "data"
    write_fashion(data_dir, train=0, test=0, gz=False)
    command = [sys.executable, "-m", "nas.search", "--dataset", "fashion_mnist"]
    command += ["--data-dir", str(data_dir), "--trials", "1", "--device", "cpu"]
    env = {**os.environ, "NAS_NO_DOWNLOAD": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and "0 train images" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]  # no studies.db
