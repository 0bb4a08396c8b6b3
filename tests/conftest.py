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


SMALL_SPACE = """
from search.space import Choice, Float, Int, Repeat
SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(16, 64, log=True)}),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 128,
}
BASELINES = {
    "broken": {"model": "cnn", "conv_blocks": [{"filters": 4}] * 5},
    "tiny": {"model": "mlp", "layers": [{"units": 16}], "learning_rate": 3e-3},
}
"""


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 5-trial study (one failed baseline) on a small slice; returns its results folder."""
    from search.cli import main

    folder = tmp_path_factory.mktemp("finished")
    space = folder / "small.py"
    space.write_text(SMALL_SPACE)
    results = folder / "results"
    code = main(["run", str(space), "--trials", "5", "--epochs", "2", "--train-size", "2000", "--seed", "0",
                 "--results", str(results), "--keep-top", "3"])
    assert code == 0
    return results


@pytest.fixture
def write_space(tmp_path: Path):
    """Write a space file from its source text and return its path."""

    def write(body: str, name: str = "space.py") -> Path:
        path = tmp_path / name
        path.write_text("from search.space import Choice, Float, Int, Repeat\n" + textwrap.dedent(body))
        return path

    return write
