"""Workers on a Ray cluster: `search run ... --ray [ADDRESS]`.

The search's workers are Ray actors instead of local processes, each asking the cluster for the CPUs
(and the GPU, if the cluster has any) that one worker trains with; Ray places them on whichever node
has room, and this process watches them exactly as it watches local workers (`workers.supervise`):
the budget is the study's, a worker that ends early is replaced, and a worker lost with its node
has its running trial failed and queued again and a new worker started wherever the cluster has
room. Ctrl-C here asks every actor to stop at its next safe point (the same cooperative stop as a
local worker's), then removes what is left.

Every node must reach the study's storage and artifact store: a database URL and an artifact folder are
tried from every node before anything is written; a journal or SQLite file is refused when a node is
another machine (Optuna's gRPC storage proxy cannot serve a journal; docs/design.md says why PostgreSQL
is the storage for a cluster).
Ray is imported only here, and only when `--ray` is given: it is an optional extra. The CLI imports
this module for `LOCAL` whatever the command, so Optuna and the storage are imported where used.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.errors import EXIT_INPUT, InputError, one_line
from search.study import stopping

if TYPE_CHECKING:  # the CLI reads LOCAL from here for every command: nothing heavy at import
    import optuna

    from search.study.workers import WorkerSpec

LOCAL = "local"  # --ray with no address: start a Ray instance on this machine
CONNECT_SECONDS = 10  # an address that does not answer within this is unreachable


@dataclass(frozen=True)
class Cluster:
    """The Ray cluster this process is connected to: its CPUs and GPUs, and the nodes that are other machines."""

    address: str
    cpus: int
    gpus: int
    remote_nodes: tuple[str, ...]  # addresses of nodes that are not this machine

    def workers(self, cpus_per_worker: int) -> int:
        """How many workers of `cpus_per_worker` CPUs the cluster holds at once."""
        return max(1, self.cpus // cpus_per_worker)


def connect(address: str) -> Cluster:
    """Join the Ray cluster at `address` (`LOCAL`: start one here); one line if Ray is missing or the
    address does not answer."""
    try:
        import ray
    except ImportError as err:
        raise InputError("--ray: Ray is not installed: pip install 'search[ray]' (or pip install ray)") from err
    if address != LOCAL:
        _check_reachable(address)
    try:
        ray.init(address=None if address == LOCAL else address, logging_level=logging.ERROR, log_to_driver=False,
                 configure_logging=False, include_dashboard=False)
    except Exception as err:  # a head of another Ray version, a refused connection
        raise InputError(f"--ray {address}: cannot join the cluster: {one_line(err)}") from err
    here = ray.util.get_node_ip_address()
    alive = [node for node in ray.nodes() if node.get("Alive")]
    resources = ray.cluster_resources()
    return Cluster(address, int(resources.get("CPU", 0)), int(resources.get("GPU", 0)),
                   tuple(sorted({n["NodeManagerAddress"] for n in alive} - {here})))


def _check_reachable(address: str) -> None:
    """A TCP connection to the head's GCS port: Ray itself would retry for a minute before giving up."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray {address}: expected the head node's HOST:PORT (as `ray start --head` prints it)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise InputError(f"--ray {address}: no Ray head answers there ({one_line(err)})") from err


def check_nodes(cluster: Cluster, location: str, artifacts: str | None = None) -> None:
    """Every node must reach the study's storage and the artifact store, checked before anything is
    written: a storage file only when every node is this machine; a database, and an artifact folder,
    from each node (a bare connection, a look at the folder: nothing is written)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from search.study import storage

    if ("://" not in location or location.startswith("sqlite:///")) and cluster.remote_nodes:
        raise InputError(f"--storage {storage.redact(location)}: a file on this machine, which the Ray nodes "
                         f"{', '.join(cluster.remote_nodes)} cannot reach: give --storage postgresql://...")
    probe = ray.remote(num_cpus=0)(_problem)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    answers = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                       .remote(location, artifacts) for node in nodes])
    for node, problem in zip(nodes, answers, strict=True):
        if problem:
            raise InputError(f"Ray node {node['NodeManagerAddress']}: {problem}")


def _problem(location: str, artifacts: str | None) -> str | None:
    """On a node: why the study's database or the artifact store cannot be reached from there, or None.
    The database gets a bare connection, which writes nothing (opening it as Optuna's storage would
    create its tables)."""
    import sqlalchemy

    from search.study import artifacts as stores
    from search.study import storage

    if "://" in location and not location.startswith("sqlite:///"):
        try:
            sqlalchemy.create_engine(location).connect().close()
        except Exception as err:
            secret = sqlalchemy.engine.make_url(location).password
            text = one_line(err)
            return (f"--storage {storage.redact(location)}: cannot reach it: "
                    + (text.replace(secret, "***") if secret else text))
    if artifacts is not None:
        try:
            stores.check_location(artifacts)
        except InputError as err:
            return str(err)
    return None


class _Worker:
    """One worker as a Ray actor. `run` trains (in one of the actor's two threads) while `stop` can
    still reach it (in the other): a stop request sets the same flag a signal sets in a local worker."""

    def where(self) -> tuple[str, int]:
        import os

        from search.study import storage

        return storage.HOST, os.getpid()

    def run(self, spec: WorkerSpec, space_source: str, events: Any) -> int:
        import ray

        from search.study import studies, workers

        spec = replace(spec, node=ray.get_runtime_context().get_node_id())
        try:
            studies.restore_space(Path(spec.results) / spec.study, space_source, spec.location)
            return workers.work(spec, on_epoch=lambda *event: events.put_nowait(event))
        except InputError as err:
            print(f"worker {spec.worker}: error: {err}", flush=True)
            return EXIT_INPUT

    def stop(self) -> None:
        stopping.request()


@dataclass
class _Placed:
    actor: Any
    done: Any  # the ref of its `run`
    where: Any  # the ref of its (host, pid)


class RayPool:
    """Workers as Ray actors, by index: started, replaced and stopped as `workers.Pool`'s processes are (a
    `workers.Workers`)."""

    def __init__(self, spec: WorkerSpec, cluster: Cluster, cpus_per_worker: int, space_source: str) -> None:
        import ray
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})  # dies with this process only
        self.spec = replace(spec, threads=cpus_per_worker)
        self.space_source = space_source
        self.actor_class = ray.remote(_Worker).options(
            num_cpus=cpus_per_worker, num_gpus=1 if cluster.gpus else 0, max_concurrency=2,
            max_restarts=0)
        self.processes: dict[int, _Placed] = {}
        self.lost: list[tuple[str, int]] = []  # (host, pid) of workers that died with their node or process

    def start(self, index: int) -> None:
        actor: Any = self.actor_class.remote()  # an actor handle: its methods are called with .remote()
        self.processes[index] = _Placed(actor, actor.run.remote(replace(self.spec, worker=index), self.space_source,
                                                                 self.events), actor.where.remote())

    def relay(self, on_epoch: Callable[..., None] | None, wait: float) -> None:
        from search.study import workers

        workers.relay(self.events, on_epoch, wait)  # Ray's queue.Empty is the standard library's

    def exited(self) -> list[tuple[int, int | None]]:
        import ray

        ended = []
        for index, placed in list(self.processes.items()):
            ready, _ = ray.wait([placed.done], timeout=0)
            if ready:
                del self.processes[index]
                ended.append((index, self._code(placed)))
                ray.kill(placed.actor)
        return ended

    def _code(self, placed: _Placed) -> int | None:
        """The worker's exit code; None when it died with its node or process (remembered for `reap`)."""
        import ray

        try:
            return int(ray.get(placed.done))
        except ray.exceptions.RayTaskError as err:  # a bug, or a node without this version of search
            print(f"error: a Ray worker failed: {one_line(err)}", file=sys.stderr, flush=True)
            return EXIT_INPUT
        except ray.exceptions.RayError:
            try:
                self.lost.append(ray.get(placed.where, timeout=1))
            except ray.exceptions.RayError:
                pass  # it died before saying where: its trial, if any, has no pid and is reaped as an orphan
            return None

    def describe(self, code: int | None) -> str:
        return "its Ray node or process lost" if code is None else f"exit code {code}"

    def reap(self, study: optuna.Study) -> list[int]:
        from search.study import storage

        return storage.reap_dead(study, gone=self.lost)

    def stop(self, grace: float = 60.0) -> None:
        """Ask every actor to stop at its next safe point; after `grace` seconds (or a second Ctrl-C),
        remove what is left."""
        import ray

        placed = list(self.processes.values())
        for one in placed:
            one.actor.stop.remote()
        asked, deadline = stopping.signals(), time.monotonic() + grace
        pending = [one.done for one in placed]
        while pending and stopping.signals() <= asked and time.monotonic() < deadline:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.25)
        for one in placed:
            ray.kill(one.actor)
        self.processes.clear()
