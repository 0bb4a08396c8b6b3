"""Process set-up for training: start TensorFlow quietly, once, before any stage imports Keras.

The GPU-capable `tensorflow` wheel writes several lines about missing CUDA drivers to the C-level
stderr while it loads and first looks for devices; TF_CPP_MIN_LOG_LEVEL does not reach them. On a
CPU machine they are noise that buries the progress display, so `start_tensorflow` loads it with
file descriptor 2 pointed at /dev/null, then restores it. Python-level errors still raise.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Collection
from pathlib import Path

from search.errors import InputError
from search.terminal import quiet_stderr

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
# The precision trials train in: "float32", "bfloat16" (Keras's mixed_bfloat16: bfloat16 arithmetic,
# float32 weights and output), or "auto" (unset): bfloat16 on a CPU with AMX, else float32.
PRECISION = "SEARCH_PRECISION"
PRECISIONS = ("auto", "float32", "bfloat16")


def use_onednn(models: Collection[str], threads: int, precision: str = "float32") -> bool:
    """Whether a process that trains these model kinds ("softmax", "mlp", "cnn") on `threads`
    intra-op threads in `precision` should use oneDNN's CPU kernels rather than TensorFlow's own
    (Eigen's): oneDNN for CNNs, on one thread, and for bfloat16 on a CPU with AMX (its AMX kernels
    are what make bfloat16 fast); Eigen for dense models on several threads. `benchmarks/kernels.py`
    measures the choice (docs/design.md). On a GPU neither is used.
    """
    return "cnn" in models or threads <= 1 or (precision == "bfloat16" and cpu_has_amx())


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX's bfloat16 tiles (Intel Sapphire Rapids and later), as Linux reports."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return False
    return any(line.startswith("flags") and "amx_bf16" in line.split() for line in text.splitlines())


def precision_wanted(value: str | None = None) -> str:
    """The precision a `value` ("auto", "float32" or "bfloat16"; None: the user's SEARCH_PRECISION)
    asks this process to train in: "auto" (or unset) is bfloat16 where the CPU has AMX and float32
    elsewhere. Without AMX, bfloat16 on a CPU has no fast kernels, and on a GPU "auto" leaves float32
    (TensorFlow already uses TF32 there); docs/design.md has the measurement behind it.
    """
    value = precision_setting(value)
    if value != "auto":
        return value
    return "bfloat16" if cpu_has_amx() else "float32"


def precision_setting(value: str | None = None) -> str:
    """`value`, or else the user's SEARCH_PRECISION, checked and normalised: "auto", "float32" or
    "bfloat16"; a bad one is an `InputError` in one line."""
    setting = _setting(value)
    if setting not in PRECISIONS:
        where = f"--precision {setting!r}" if value is not None else f"{PRECISION}={setting!r}"
        raise InputError(f"{where}: expected one of {', '.join(PRECISIONS)}")
    return setting


@functools.cache
def training_precision(value: str | None = None) -> str:
    """The precision this process trains in for `value` (as `precision_wanted` takes it), once
    TensorFlow has started: `precision_wanted`, except that "auto" means float32 on a GPU. Recorded
    with each trial, like `cpu_kernels`."""
    import tensorflow as tf

    if _setting(value) == "auto" and tf.config.list_physical_devices("GPU"):
        return "float32"
    return precision_wanted(value)


def _setting(value: str | None) -> str:
    """`value`, or else SEARCH_PRECISION, normalised; unset or empty is "auto"."""
    text = os.environ.get(PRECISION, "auto") if value is None else value
    return text.strip().lower() or "auto"


def onednn_wanted(models: Collection[str], threads: int, precision: str | None = None) -> bool:
    """Whether a process that starts TensorFlow with these `models`, `threads` and `precision` (as
    `precision_wanted` takes it) gets oneDNN: the TF_ENABLE_ONEDNN_OPTS the user set (read as
    TensorFlow reads it: "1" or "true" is on), or else `use_onednn`'s choice."""
    user = os.environ.get(ONEDNN)
    if user is not None:
        return user.strip().lower() in ("1", "true")
    return use_onednn(models, threads, precision_wanted(precision))


@functools.cache
def cpu_kernels() -> str:
    """The CPU kernels this process's TensorFlow runs, "oneDNN" or "Eigen" (once it has started):
    recorded with each trial, since they change its training time."""
    from search.internals import of_tensorflow

    return "oneDNN" if of_tensorflow.onednn_enabled() else "Eigen"


@functools.cache
def cpu_model() -> str:
    """This CPU's model name as Linux reports it, with its family and model numbers ("AMD EPYC (family
    25, model 1)"; "" elsewhere): oneDNN picks its kernels by the instructions a CPU has, so a trial
    replays exactly only on the same kind of CPU, and virtual machines often report one name for
    several generations."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor's block is enough
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "")
    if name and "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


def versions() -> dict[str, str]:
    """The versions of what a trial's arithmetic depends on (once TensorFlow has started)."""
    import keras
    import numpy
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": numpy.__version__}


def cores() -> int:
    """CPU cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def start_tensorflow(verbose: bool = False, threads: int | None = None,
                     models: Collection[str] | None = None, precision: str | None = None,
                     deterministic: bool = False, onednn: bool | None = None) -> list[str]:
    """Import TensorFlow and list its devices (quietly unless `verbose`); returns the device names.

    `threads` caps TensorFlow's thread pools, so that local workers share the cores instead of each
    starting one thread per core; it only takes effect before TensorFlow's runtime has started.

    `models`, the model kinds this process will train, `threads` (None: one per core) and
    `precision` (as `precision_wanted` takes it) pick TensorFlow's CPU kernels (`use_onednn`);
    `models` None leaves TensorFlow's own default (a process that only predicts). It only takes
    effect before TensorFlow is first imported, and a TF_ENABLE_ONEDNN_OPTS the user set wins.

    `deterministic` turns on TensorFlow's op determinism on one thread: the same seed then trains the
    same weights, bit for bit, on the same kind of machine (`run --deterministic`, `replay`). `onednn`
    forces the kernels (a replay takes the ones its trial recorded).
    """
    if deterministic:
        threads = 1
    if onednn is None and models is not None:
        onednn = onednn_wanted(models, threads or cores(), precision)
    if onednn is not None and "tensorflow" not in sys.modules:
        os.environ[ONEDNN] = "1" if onednn else "0"
    with contextlib.nullcontext() if verbose else quiet_stderr():
        import tensorflow as tf

        if threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1 if threads == 1 else 2)
            except RuntimeError:  # the runtime is already up (a second call in the same process)
                pass
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        for gpu in tf.config.list_physical_devices("GPU"):
            # TensorFlow maps all of a GPU's memory for the first process that touches it; growing on
            # demand lets several local workers share one GPU.
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
        devices = [device.name for device in tf.config.list_logical_devices()]
    # Keras warns on every new trial that its train function was "retraced": expected here, since
    # each trial is a new model.
    logging.getLogger("tensorflow").setLevel(logging.INFO if verbose else logging.ERROR)
    return devices
