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
from collections.abc import Collection, Iterator
from pathlib import Path

from search.errors import InputError

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
# The precision trials train in: "float32", "bfloat16" (Keras's mixed_bfloat16: bfloat16 arithmetic,
# float32 weights and output), or "auto" (unset): bfloat16 on a CPU with AMX, else float32.
PRECISION = "SEARCH_PRECISION"
PRECISIONS = ("auto", "float32", "bfloat16")


def use_onednn(models: Collection[str], threads: int) -> bool:
    """Whether a process that trains these model kinds ("softmax", "mlp", "cnn") on `threads`
    intra-op threads should use oneDNN's CPU kernels rather than TensorFlow's own (Eigen's).

    Measured on the 2-core AMD EPYC (AVX2) machine by `benchmarks/kernels.py` (README, "Training
    speed"), the two taking turns in fresh processes, medians:
    - the CNN, one process on both cores: oneDNN 1.33x as many samples a second (4 of 4 pairs);
    - the S2 MLP, one process on both cores: Eigen 1.10x at batch 128 (3 of 4 pairs), even at
      batch 512 (1.02x, 2 of 4); earlier interleaved runs gave Eigen 1.13x and 1.26x (10 pairs);
    - the S2 MLP, two processes of one thread each at once (what `run` starts on 2 cores): oneDNN
      1.23x at batch 128 and 1.16x at batch 512 (3 of 3 pairs each).
    So Eigen only for dense models on several threads; more than 2 threads were not measured.
    Training in bfloat16 (`precision_wanted`) on a CPU with AMX takes oneDNN too: its AMX kernels are
    what make bfloat16 fast. On a GPU neither is used.
    """
    return "cnn" in models or threads <= 1 or (precision_wanted() == "bfloat16" and cpu_has_amx())


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX's bfloat16 tiles (Intel Sapphire Rapids and later), as Linux reports."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return False
    return any(line.startswith("flags") and "amx_bf16" in line.split() for line in text.splitlines())


def precision_wanted(value: str | None = None) -> str:
    """The precision a `value` ("auto", "float32" or "bfloat16"; None: SEARCH_PRECISION) asks this
    process to train in: "auto" (or unset) is bfloat16 where the CPU has AMX and float32 elsewhere.

    Measured on a 2-core Intel Xeon VM with AMX, one process on both cores, float32 and bfloat16 taking
    turns in fresh processes (3 pairs each): the harness trained the benchmark's small CNN 1.98-2.02x
    as fast in bfloat16, the S2 MLP 1.08-1.16x at batch 128 and 1.47-1.83x at batch 512; the tests
    check that it reaches float32's test accuracy (within 0.5 points). Without AMX, bfloat16 on a
    CPU has no such kernels, and on a GPU "auto" leaves float32 (TensorFlow already uses TF32 there).
    """
    value = _setting(value)
    if value not in PRECISIONS:
        raise InputError(f"{PRECISION}={value!r}: expected one of {', '.join(PRECISIONS)}")
    if value != "auto":
        return value
    return "bfloat16" if cpu_has_amx() else "float32"


@functools.cache
def training_precision() -> str:
    """The precision this process trains in (once TensorFlow has started): `precision_wanted`, except
    that "auto" means float32 on a GPU. Recorded with each trial, like `cpu_kernels`."""
    import tensorflow as tf

    if _setting(None) == "auto" and tf.config.list_physical_devices("GPU"):
        return "float32"
    return precision_wanted()


def _setting(value: str | None) -> str:
    """`value`, or else SEARCH_PRECISION, normalised; unset or empty is "auto"."""
    text = os.environ.get(PRECISION, "auto") if value is None else value
    return text.strip().lower() or "auto"


def onednn_wanted(models: Collection[str], threads: int) -> bool:
    """Whether a process that starts TensorFlow with these `models` and `threads` gets oneDNN: the
    TF_ENABLE_ONEDNN_OPTS the user set (read as TensorFlow reads it: "1" or "true" is on), or
    else `use_onednn`'s choice."""
    user = os.environ.get(ONEDNN)
    return user.strip().lower() in ("1", "true") if user is not None else use_onednn(models, threads)


@functools.cache
def cpu_kernels() -> str:
    """The CPU kernels this process's TensorFlow runs, "oneDNN" or "Eigen" (once it has started):
    recorded with each trial, since they change its training time."""
    from tensorflow.python.util import _pywrap_util_port

    return "oneDNN" if _pywrap_util_port.IsMklEnabled() else "Eigen"


def cores() -> int:
    """CPU cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def start_tensorflow(verbose: bool = False, threads: int | None = None,
                     models: Collection[str] | None = None) -> list[str]:
    """Import TensorFlow and list its devices (quietly unless `verbose`); returns the device names.

    `threads` caps TensorFlow's thread pools, so that local workers share the cores instead of each
    starting one thread per core; it only takes effect before TensorFlow's runtime has started.

    `models`, the model kinds this process will train, and `threads` (None: one per core) pick
    TensorFlow's CPU kernels (`use_onednn`); `models` None leaves TensorFlow's own default (a
    process that only predicts). It only takes effect before TensorFlow is first imported, and a
    TF_ENABLE_ONEDNN_OPTS the user set wins.
    """
    if models is not None and "tensorflow" not in sys.modules:
        os.environ[ONEDNN] = "1" if onednn_wanted(models, threads or cores()) else "0"
    with contextlib.nullcontext() if verbose else quiet_stderr():
        import tensorflow as tf

        if threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1 if threads == 1 else 2)
            except RuntimeError:  # the runtime is already up (a second call in the same process)
                pass
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
