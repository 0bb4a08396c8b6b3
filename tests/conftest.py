"""Shared fixtures: a small real MNIST slice and a helper to write space files."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import SMALL_SPACE
from hypothesis import settings

from search.training import datasets

# A shell that starts a job in the background without job control (`cmd &` in a script, nohup)
# starts it with SIGINT ignored, and an ignored signal stays ignored across exec: the `search run`
# processes the Ctrl-C tests start would never see their SIGINT. A handled signal is reset to the
# default at exec, so handling it here gives every child Python's usual KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The properties (Hypothesis) try a bounded number of examples each, a few seconds in all; SEARCH_FUZZ=N
# tries N of each instead. No deadline: a loaded CI machine is not a slow property.
settings.register_profile("search", max_examples=int(os.environ.get("SEARCH_FUZZ", "500")), deadline=None)
settings.load_profile("search")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the fast tier (`-m fast`) a test module without a fast test is not even imported: importing
    some of them loads TensorFlow, seconds the tier does not spend."""
    if config.option.markexpr == "fast" and collection_path.suffix == ".py" and collection_path.name.startswith(
            "test_") and "mark.fast" not in collection_path.read_text():
        return True
    return None


@pytest.fixture(autouse=True)
def fast_means_fast(request: pytest.FixtureRequest):
    """In the fast tier (`-m fast`), a test that loads TensorFlow or starts a server fails: the tier's
    promise is to start neither, so that it runs in under a minute."""
    fast = request.config.option.markexpr == "fast"
    if fast:
        slow = set(request.fixturenames) & {"postgres", "finished_study"}
        assert not slow, f"marked fast but uses {', '.join(sorted(slow))}"
    yield
    if fast:
        assert "tensorflow" not in sys.modules, "marked fast but loaded TensorFlow"


@pytest.fixture(autouse=True)
def unstopped() -> None:
    """Every test starts in a process not asked to stop (a test may ask, as Ctrl-C would)."""
    from search.study import stopping

    stopping.reset()


@pytest.fixture(scope="session")
def small_mnist() -> datasets.Dataset:
    """The first 2,000 real training images; validation (5,000) and test (10,000) stay whole."""
    return datasets.load("mnist", train_size=2000)


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 5-trial study (one failed baseline) on a small slice; returns its results folder."""
    import io

    from rich.console import Console

    from search.run import SearchOptions, run_search

    folder = tmp_path_factory.mktemp("finished")
    space = folder / "small.py"
    space.write_text(SMALL_SPACE)
    results = folder / "results"
    options = SearchOptions(str(space), trials=5, epochs=2, train_size=2000, seed=0, workers=1, results=str(results),
                            keep_top=3, command=f"python -m search run {space} --trials 5 --epochs 2 --train-size 2000 "
                                                "--seed 0 --workers 1 --keep-top 3")
    assert run_search(options, Console(file=io.StringIO())) == 0
    return results


@pytest.fixture
def write_space(tmp_path: Path):
    """Write a space file from its source text and return its path."""

    def write(body: str, name: str = "space.py") -> Path:
        path = tmp_path / name
        path.write_text("from search.space import Choice, Float, Int, Repeat\n" + textwrap.dedent(body))
        return path

    return write


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on loopback for the session (postgres_server.py)."""
    from postgres_server import running

    try:
        with running() as server:
            yield server
    except FileNotFoundError as err:
        pytest.fail(str(err))


@pytest.fixture
def small_disk(tmp_path: Path):
    """A folder on its own 3 MB tmpfs, to be filled up (`fill`); unmounted after the test. Mounting needs
    root: elsewhere the test is skipped."""
    import subprocess

    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
