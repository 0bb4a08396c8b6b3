"""Process set-up: which CPU kernels TensorFlow is started with, in fresh real processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from search.errors import InputError
from search.training.runtime import ONEDNN, PRECISION, cpu_has_amx, precision_wanted

PROBE = """
import sys
from search.training.runtime import start_tensorflow
start_tensorflow(models=set(sys.argv[1].split(",")), threads=int(sys.argv[2]))
from tensorflow.python.util import _pywrap_util_port
print(_pywrap_util_port.IsMklEnabled())
"""


@pytest.mark.parametrize(("models", "threads", "user", "precision", "expected"), [
    ("mlp,softmax", 2, None, "float32", "False"),  # on two threads Eigen's matmuls trained the MLP faster
    ("mlp,softmax", 1, None, "float32", "True"),  # on one thread (a worker beside another) oneDNN's did
    ("mlp,cnn", 2, None, "float32", "True"),  # oneDNN's convolutions trained the CNN faster
    ("mlp,softmax", 2, None, "bfloat16", "AMX"),  # bfloat16 is fast with oneDNN's AMX kernels, where there are
    ("mlp", 2, "true", "float32", "True"),  # the user's own setting wins, read as TensorFlow reads it
    ("cnn", 2, "0", "bfloat16", "False"),
])
def test_onednn_is_on_for_a_cnn_a_single_thread_or_bfloat16(models: str, threads: int, user: str | None,
                                                            precision: str, expected: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != ONEDNN}
    env[PRECISION] = precision
    if user is not None:
        env[ONEDNN] = user
    out = subprocess.run([sys.executable, "-c", PROBE, models, str(threads)], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == (str(cpu_has_amx()) if expected == "AMX" else expected)


@pytest.mark.fast
@pytest.mark.parametrize(("value", "expected"), [
    ("float32", "float32"), ("bfloat16", "bfloat16"), (" BFloat16 ", "bfloat16"), ("auto", None), ("", None),
])
def test_precision_is_the_users_or_bfloat16_where_the_cpu_has_amx(monkeypatch: pytest.MonkeyPatch, value: str,
                                                                   expected: str | None) -> None:
    monkeypatch.setenv(PRECISION, value)
    amx = any("amx_bf16" in line.split() for line in open("/proc/cpuinfo") if line.startswith("flags"))
    assert cpu_has_amx() == amx
    assert precision_wanted() == (expected or ("bfloat16" if amx else "float32"))


@pytest.mark.fast
def test_a_bad_precision_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRECISION, "half")
    with pytest.raises(InputError, match=r"^SEARCH_PRECISION='half': expected one of auto, float32, bfloat16$"):
        precision_wanted()
