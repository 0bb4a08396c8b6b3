"""Shared fixtures: a small real MNIST slice and a helper to write space files."""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

from search.training import datasets

ROOT = Path(__file__).resolve().parent.parent  # the repository: spaces/, search/, README.md

# A shell that starts a job in the background without job control (`cmd &` in a script, nohup)
# starts it with SIGINT ignored, and an ignored signal stays ignored across exec: the `search run`
# processes the Ctrl-C tests start would never see their SIGINT. A handled signal is reset to the
# default at exec, so handling it here gives every child Python's usual KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def expected_kernels(models: set[str], threads: int) -> str:
    """The CPU kernels a worker training `models` on `threads` threads records with its trials:
    TF_ENABLE_ONEDNN_OPTS as set around the tests, or else what `search.runtime.use_onednn` picks."""
    from search.training.runtime import onednn_wanted

    return "oneDNN" if onednn_wanted(models, threads) else "Eigen"


@pytest.fixture(autouse=True)
def unstopped() -> None:
    """Every test starts in a process not asked to stop (a test may ask, as Ctrl-C would)."""
    from search.study import stopping

    stopping.reset()


@pytest.fixture(scope="session")
def small_mnist() -> datasets.Dataset:
    """The first 2,000 real training images; validation (5,000) and test (10,000) stay whole."""
    return datasets.load("mnist", train_size=2000)


# A small searched MLP with one baseline: what the study, run and CLI tests search.
SEARCH_SPACE = """
SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(32, 128, log=True)}),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 64,
}
BASELINES = {"tiny": {"model": "mlp", "layers": [{"units": 32}], "learning_rate": 3e-3, "batch_size": 64}}
"""

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


def _postgres_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on loopback for the session; yields a small controller.

    Runs as the `postgres` system user when the tests run as root (PostgreSQL refuses root).
    """
    import shutil
    import socket
    import subprocess
    import tempfile

    bindir = _postgres_bin()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed: run scripts/setup.sh (Debian package postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="search-pg-"))
    folder.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"

    def pg(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, text=True)

    pg(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "search")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(folder / "log"), "start")

    class Server:
        # trust authentication accepts any password: the tests use one to check it never leaks
        url = f"postgresql://search:s3cret@127.0.0.1:{port}/postgres"

        def restart(self) -> None:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-m", "fast",
               "-l", str(folder / "log"), "restart")

    yield Server()
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(folder, ignore_errors=True)
