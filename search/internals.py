"""The one home of every private API of Optuna, Keras, TensorFlow and KerasTuner that `search` uses.

Each is here because no public API does its job, and each says which job. Nothing else under
`search/` may import a private name of these libraries (tests/test_internals.py checks the whole
package); the same test pins the versions they were written against and exercises each, so that an
upgrade that moves one fails there, by name, instead of somewhere in the middle of a search.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

WRITTEN_FOR = {"optuna": "5.1.0", "keras": "3.15.1", "tensorflow": "2.21.0", "keras-tuner": "1.4.8"}


def journal_set_trial_state() -> int:
    """The operation code of a journal record that sets a trial's state (and values): Optuna's
    `JournalOperation.SET_TRIAL_STATE_VALUES`. Repairing a torn journal reads records without Optuna's
    storage, which has no public way to parse one record."""
    from optuna.storages.journal._storage import JournalOperation

    return int(JournalOperation.SET_TRIAL_STATE_VALUES)


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs oneDNN's CPU kernels. TensorFlow decides it at import from
    TF_ENABLE_ONEDNN_OPTS and the platform's default, and says so only through this private call."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


@contextlib.contextmanager
def keras_safe_mode() -> Iterator[None]:
    """Keras's safe mode, pinned on for the block. `load_model(safe_mode=True)` alone is overridden by a
    process-wide `keras.config.enable_unsafe_deserialization()`; only the scope wins over that."""
    from keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(True):
        yield


def keras_tuner_tracebacks(enabled: bool) -> None:
    """Whether KerasTuner prints the traceback of every failed trial (its default). A failed trial's
    reason is already one line on the leaderboard; KerasTuner has no public switch for this."""
    from keras_tuner.src import config

    config.DEBUG = enabled
