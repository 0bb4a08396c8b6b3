"""Process set-up: which CPU kernels TensorFlow is started with, in fresh real processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from search.runtime import ONEDNN

PROBE = """
import sys
from search.runtime import start_tensorflow
start_tensorflow(models=set(sys.argv[1].split(",")), threads=int(sys.argv[2]))
from tensorflow.python.util import _pywrap_util_port
print(_pywrap_util_port.IsMklEnabled())
"""


@pytest.mark.parametrize(("models", "threads", "user", "expected"), [
    ("mlp,softmax", 2, None, "False"),  # on two threads Eigen's matmuls trained the MLP faster
    ("mlp,softmax", 1, None, "True"),  # on one thread (a worker beside another) oneDNN's did
    ("mlp,cnn", 2, None, "True"),  # oneDNN's convolutions trained the CNN faster
    ("mlp", 2, "true", "True"),  # the user's own setting wins, read as TensorFlow reads it
    ("cnn", 2, "0", "False"),
])
def test_onednn_is_on_for_a_cnn_or_a_single_thread(models: str, threads: int, user: str | None, expected: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != ONEDNN}
    if user is not None:
        env[ONEDNN] = user
    out = subprocess.run([sys.executable, "-c", PROBE, models, str(threads)], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected
