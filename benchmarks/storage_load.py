"""Which storage serves many workers better: PostgreSQL, or Optuna's gRPC proxy in front of it.

    .venv/bin/python benchmarks/storage_load.py [--processes 1,8] [--trials 40]

Each process runs `--trials` trials without training, doing what a `search` trial does to its storage:
ask, write the dozen attributes it starts with, report three epochs, tell. Both storages hold one
study on the same throwaway PostgreSQL server (tests/postgres_server.py); the proxy runs in this
process, as a driver would run it, with Optuna's cached storage (`optuna.storages.get_storage`) behind
it. The figure is storage operations only (from a start all processes wait for): trials per second
across all processes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def trials(where: tuple[str, str | int], study: str, count: int, start: Any, ends: Any) -> None:
    """One worker: `count` trials against the storage at `where` (("url", URL) or ("grpc", port)), begun
    together with the others at `start` (a barrier); puts the time it ended on `ends`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the proxy's, per process
    kind, target = where
    storage = (optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=int(target)) if kind == "grpc"
               else optuna.storages.RDBStorage(str(target)))
    opened = optuna.load_study(study_name=study, storage=storage)
    start.wait()
    for _ in range(count):
        trial = opened.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        for key in ("host", "pid", "worker", "cpu_kernels", "precision", "cpu", "threads", "deterministic",
                    "versions", "train_size", "seed", "config"):
            trial.set_user_attr(key, key)
        for epoch in range(3):
            trial.report(0.9 + epoch / 100, epoch)
        opened.tell(trial, 0.95)
    ends.put(time.time())


def rate(where: tuple[str, str | int], url: str, processes: int, count: int) -> float:
    name = f"{where[0]}-{processes}"
    optuna.create_study(study_name=name, storage=url, direction="maximize")
    context = multiprocessing.get_context("spawn")
    start, ends = context.Barrier(processes + 1), context.Queue()
    workers = [context.Process(target=trials, args=(where, name, count, start, ends)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    start.wait()  # every worker has started and opened the study: time the trials only
    started = time.time()
    seconds = max(ends.get() for _ in workers) - started
    for worker in workers:
        worker.join()
    assert len(optuna.load_study(study_name=name, storage=url).trials) == processes * count
    return processes * count / seconds


def main() -> None:
    from postgres_server import running

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,8")
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with running() as server:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        proxied = optuna.storages.get_storage(server.url)
        threading.Thread(target=optuna.storages.run_grpc_proxy_server, args=(proxied,),
                         kwargs={"host": "127.0.0.1", "port": port}, daemon=True).start()
        time.sleep(1.0)
        rows = [(processes, label, rate(where, server.url, processes, args.trials))
                for processes in map(int, args.processes.split(","))
                for label, where in (("PostgreSQL", ("url", server.url)), ("gRPC proxy", ("grpc", port)))]
    print(f"{args.trials} trials a process, no training: ask, 12 attributes, 3 reports, tell")
    print("| processes | storage | trials per second |")
    print("| --- | --- | --- |")
    for processes, label, per_second in rows:
        print(f"| {processes} | {label} | {per_second:.1f} |")


if __name__ == "__main__":
    main()
