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
from collections.abc import Iterator


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


def start_tensorflow(verbose: bool = False, threads: int | None = None) -> list[str]:
    """Import TensorFlow and list its devices (quietly unless `verbose`); returns the device names.

    `threads` caps TensorFlow's thread pools, so that local workers share the cores instead of each
    starting one thread per core; it only takes effect before TensorFlow's runtime has started.
    """
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
