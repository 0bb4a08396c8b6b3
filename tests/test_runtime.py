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
start_tensorflow(models=set(sys.argv[1].split(",")))
from tensorflow.python.util import _pywrap_util_port
print(_pywrap_util_port.IsMklEnabled())
"""


@pytest.mark.parametrize(("models", "user", "expected"), [
    ("mlp,softmax", None, "False"),  # Eigen's matmuls trained the MLPs faster
    ("mlp,cnn", None, "True"),  # oneDNN's convolutions trained the CNN faster
    ("mlp", "1", "True"),  # the user's own setting wins
])
def test_onednn_is_on_exactly_when_the_process_may_train_a_cnn(models: str, user: str | None, expected: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != ONEDNN}
    if user is not None:
        env[ONEDNN] = user
    out = subprocess.run([sys.executable, "-c", PROBE, models], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected
