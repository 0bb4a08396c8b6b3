"""Keras's private names that `search` uses (see search/internals/__init__.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def safe_mode() -> Iterator[None]:
    """Keras's safe mode, pinned on for the block. `load_model(safe_mode=True)` alone is overridden by a
    process-wide `keras.config.enable_unsafe_deserialization()`; only the scope wins over that."""
    from keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(True):
        yield


def slot(optimizer: Any, variable: Any, name: str) -> Any:
    """An optimizer's state of one weight: `name` is "momentums" or "velocities". The fused optimizer
    updates (training/optimizers.py) hand this state to TensorFlow's fused kernels; Keras keeps it in
    lists indexed by a private helper, and Adam and RMSprop keep the lists themselves private."""
    slots = getattr(optimizer, f"_{name}", None)
    if slots is None:
        slots = getattr(optimizer, name)
    return slots[optimizer._get_variable_index(variable)]
