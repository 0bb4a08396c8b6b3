"""Process set-up for training: start TensorFlow quietly, once, before any stage imports Keras.

The GPU-capable `tensorflow` wheel writes several lines about missing CUDA drivers to the C-level
stderr while it loads and first looks for devices; TF_CPP_MIN_LOG_LEVEL does not reach them. On a
CPU machine they are noise that buries the progress display, so `start_tensorflow` loads it with
file descriptor 2 pointed at /dev/null, then restores it. Python-level errors still raise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Collection, Iterator

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"


def use_onednn(models: Collection[str]) -> bool:
    """Whether a process that trains these model kinds ("softmax", "mlp", "cnn") should use
    oneDNN's CPU kernels rather than TensorFlow's own (Eigen's).

    Measured side by side on the 2-core AMD EPYC (AVX2) machine with `benchmarks/throughput.py`'s
    workloads (README, "Training speed"): for the CNN, oneDNN's convolutions trained about 1.3x as
    many samples a second as Eigen's; for the S2 MLP, Eigen's matmuls trained about 1.2x (batch 128)
    to 1.35x (batch 512) as many as oneDNN's. So oneDNN is on when any trial may be a CNN (a CNN
    epoch costs many MLP epochs) and off otherwise. On a GPU neither is used.
    """
    return "cnn" in models


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

    `models`, the model kinds this process will train, picks TensorFlow's CPU kernels
    (`use_onednn`); None leaves TensorFlow's own default (a process that only predicts). It only
    takes effect before TensorFlow is first imported, and a TF_ENABLE_ONEDNN_OPTS the user set wins.
    """
    if models is not None and "tensorflow" not in sys.modules:
        os.environ.setdefault(ONEDNN, "1" if use_onednn(models) else "0")
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
