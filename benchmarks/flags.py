"""Argument types the benchmark scripts share. Kept apart from them: importing `throughput` starts
TensorFlow, and a script must parse its arguments first (they pick the CPU kernels it starts with)."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """An argparse type: a whole number above zero, or one clear line saying what was expected."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number above 0")
    return value
