"""TensorFlow's private names that `search` uses (see search/internals/__init__.py)."""

from __future__ import annotations


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs oneDNN's CPU kernels. TensorFlow decides it at import from
    TF_ENABLE_ONEDNN_OPTS and the platform's default, and says so only through this private call."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
