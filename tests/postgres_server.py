"""A throwaway PostgreSQL server on loopback, for the tests (the `postgres` fixture) and the benchmarks.

Runs as the `postgres` system user when run as root (PostgreSQL refuses root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


def _bin() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    raise FileNotFoundError("PostgreSQL is not installed: run scripts/setup.sh (Debian package postgresql)")


@dataclass(frozen=True)
class Server:
    url: str  # trust authentication accepts any password: the tests use one to check it never leaks
    restart: Callable[[], None]


@contextlib.contextmanager
def running() -> Iterator[Server]:
    """Start a server in a new folder; stop it and remove the folder at the end."""
    bindir = _bin()
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
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(folder / "log"), "start")

    def restart() -> None:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-m", "fast", "-l", str(folder / "log"),
           "restart")

    try:
        yield Server(f"postgresql://search:s3cret@127.0.0.1:{port}/postgres", restart)
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)
