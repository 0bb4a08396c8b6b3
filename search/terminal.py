"""What reaches the user's terminal from below Python: C-level start-up chatter, silenced.

TensorFlow's GPU-capable wheel and LiteRT write lines about missing CUDA drivers and their CPU
delegates straight to file descriptor 2 while they load; TF_CPP_MIN_LOG_LEVEL does not reach them.
On a CPU machine they bury the progress display and the one-line errors, so their start-up runs
inside `quiet_stderr`. Python-level errors still raise.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for the block, then restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
