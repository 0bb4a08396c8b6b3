"""Stopping is cooperative: a signal asks, and the code stops at its own safe points.

Ctrl-C (SIGINT) and SIGTERM only set a flag here (`on_signals`); nothing is raised where the
signal happens to land, so no storage write, file lock or Optuna call is ever cut in half. The
training loop looks at the flag between its compiled calls (a Keras callback sets
`model.stop_training`, as Keras's own callbacks do), the trial lifecycle before it trains and
after, the worker loop between trials (Optuna's `study.stop()`), and the driver in its poll loop,
where it asks each worker to stop with one SIGTERM. A second signal tells the driver to hurry:
whatever has not stopped by then is killed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_asked = threading.Event()
_count = 0  # signals received since the last `reset`


def requested() -> bool:
    """Whether this process has been asked to stop."""
    return _asked.is_set()


def request() -> None:
    """Ask this process to stop, as a signal would (a parent that died, a test)."""
    _asked.set()


def signals() -> int:
    """How many stop signals arrived since `reset`: a second one means hurry."""
    return _count


def reset() -> None:
    """Forget earlier requests: a command run in-process starts unstopped."""
    global _count
    _asked.clear()
    _count = 0


def wait(seconds: float) -> bool:
    """Sleep up to `seconds`, cut short by a stop request; whether one came."""
    return _asked.wait(seconds)


def _handle(signum: int, frame: FrameType | None) -> None:
    global _count
    _count += 1
    _asked.set()


@contextlib.contextmanager
def on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM ask this process to stop instead of raising anywhere."""
    previous = {number: signal.signal(number, _handle) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():  # None: set outside Python; the default then
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
