"""Shared fixtures: a small real MNIST slice and a helper to write space files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from search import data


@pytest.fixture(scope="session")
def small_mnist() -> data.Dataset:
    """The first 2,000 real training images; validation (5,000) and test (10,000) stay whole."""
    return data.load("mnist", train_size=2000)


@pytest.fixture
def write_space(tmp_path: Path):
    """Write a space file from its source text and return its path."""

    def write(body: str, name: str = "space.py") -> Path:
        path = tmp_path / name
        path.write_text("from search.space import Choice, Float, Int, Repeat\n" + textwrap.dedent(body))
        return path

    return write
