"""Worker processes: how one search runs in several processes, and survives losing some of them.

`work` is one worker: it loads the space and the data, joins the study and runs trials until the
study-wide budget is met. `search run --workers N` starts N of them as child processes here
(`run_local`; one per core by default, at most 4), each on its share of the cores, and `search
worker` does the same on any machine that reaches the storage; with `--ray` they are actors on a Ray
cluster instead (search/study/cluster.py), watched the same way (`supervise`). The parent watches them: a worker
that dies (SIGKILL, out of memory) has its running trial failed and queued once more, and is
replaced; a worker that has run its `--recycle-after` trials is replaced by a fresh process, which
bounds the memory TensorFlow holds on to; on Ctrl-C or SIGTERM the parent sends every worker
SIGTERM, each marks its running trial interrupted, and the study can be resumed.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial

from search.errors import EXIT_DISK_FULL, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK
from search.study import artifacts, record, stopping, storage
from search.study.record import StudyAttr
from search.training.runtime import cores

STORAGE_RETRY_SECONDS = 120  # how long a worker waits for its database to come back


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one worker process needs; plain values, so it can be sent to a new process."""

    space_file: str
    study: str
    location: str
    dataset: str = "mnist"
    data_path: str | None = None
    train_size: int | None = None
    epochs: int | None = None
    budget: int = 50
    sampler: str = "tpe"
    pruner: str = "median"
    min_epochs: int | None = None  # the epochs a trial trains before the pruner first judges it (None: 2)
    timeout: float | None = None
    trial_timeout: float | None = None
    results: str = "results"
    keep: int = 10
    command: str = ""
    worker: int = 0
    threads: int | None = None
    recycle_after: int | None = None  # leave after this many trials (the parent starts a fresh one)
    debug: bool = False
    precision: str | None = None  # None: SEARCH_PRECISION or auto (search.runtime.precision_wanted)
    deterministic: bool = False  # TensorFlow's op determinism on one thread (run --deterministic)
    queued_only: bool = False  # run the queued trials, sample none (confirm)
    objectives: tuple[str, ...] = ("accuracy",)
    max_params: int | None = None
    max_latency_ms: float | None = None
    tensorboard: str | None = None  # --tensorboard: where each trial writes its TensorBoard run
    node: str | None = None  # the Ray node this worker runs on (run --ray)
    artifacts: str | None = None  # --artifacts: the store kept trials also go to (artifacts.check_location)

    @classmethod
    def joining(cls, settings: dict[str, Any], **here: Any) -> WorkerSpec:
        """A worker for a study `run` started: its stored settings, with what belongs to this machine
        (`here`: space file, storage location, results folder, ...). The data is the named set as
        loaded here, and the run's --timeout was for that process only."""
        known = {f.name for f in fields(cls)}
        stored = {k: v for k, v in settings.items() if k in known}
        return cls(**{**stored, "data_path": None, "timeout": None, **here})


def work(spec: WorkerSpec, callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] | None = None,
         on_epoch: Callable[[int, int, int, float], None] | None = None) -> int:
    """Run trials for the study until its budget is met or this process is asked to stop; an exit code."""
    from search.space import load_space
    from search.study import lifecycle, studies
    from search.study.objective import Objective
    from search.training import datasets, runtime

    space = load_space(spec.space_file)
    runtime.start_tensorflow(verbose=spec.debug, threads=spec.threads, models=space.model_kinds(),
                             precision=spec.precision, deterministic=spec.deterministic)
    machine = record.Machine(spec.worker, runtime.cpu_kernels(), runtime.training_precision(spec.precision),
                             1 if spec.deterministic else spec.threads, spec.deterministic, spec.train_size,
                             runtime.versions(), runtime.cpu_model(), spec.node)
    context = lifecycle.Context(
        datasets.load(spec.dataset, spec.data_path, spec.train_size), machine,
        lifecycle.Limits(spec.trial_timeout, spec.max_params, spec.max_latency_ms), tuple(spec.objectives),
        spec.study, Path(spec.results) / spec.study, spec.keep, spec.command, on_epoch,
        tensorboard=Path(spec.tensorboard) if spec.tensorboard else None,
        artifact_store=artifacts.Store(spec.artifacts) if spec.artifacts else None)
    waited = 0.0
    while not stopping.requested():
        try:
            opened = studies.open_study(spec.study, spec.location, spec.sampler, spec.pruner, worker=spec.worker,
                                        min_epochs=spec.min_epochs)
            if waited:  # back after losing the database: the trial we were running is lost
                lost = storage.reap_dead(opened, mine=True)
                print(f"worker {spec.worker}: storage reachable again"
                      + (f"; trial(s) {', '.join(map(str, lost))} queued again" if lost else ""),
                      file=sys.stderr, flush=True)
            objective = Objective(space, context, spec.epochs, int(opened.user_attrs[StudyAttr.SEED]),
                                  param_prefix=studies.param_prefix(opened), budget=spec.budget,
                                  queued_only=spec.queued_only)
            streak = studies.optimize(opened, objective, spec.timeout, callbacks or [], spec.recycle_after)
        except Exception as err:
            if not storage_error(err) or waited >= STORAGE_RETRY_SECONDS:
                raise
            pause = min(10.0, STORAGE_RETRY_SECONDS - waited)
            print(f"worker {spec.worker}: storage unreachable ({type(err).__name__}); retrying in {pause:.0f} s",
                  file=sys.stderr, flush=True)
            stopping.wait(pause)
            waited += pause
            continue
        if streak.tripped:  # the parent says why, from the trials (lifecycle.verdict)
            return EXIT_FAILED
        break
    return EXIT_INTERRUPTED if stopping.requested() else EXIT_OK


def storage_error(err: BaseException) -> bool:
    """A lost database connection (PostgreSQL restarting), as opposed to a bug."""
    names = {type(e).__name__ for e in (err, err.__cause__, err.__context__) if e is not None}
    return bool(names & {"OperationalError", "InterfaceError", "StorageInternalError", "DisconnectionError"})


def _child(spec: WorkerSpec, events: Any, parent: int) -> None:
    """Entry point of a local worker process; `events` carries epoch progress to the parent, whose
    pid is `parent`: the worker stops when that process dies (`_follow_parent`)."""
    from search.errors import InputError, disk_full

    with stopping.on_signals():
        _follow_parent(parent)
        try:
            code = work(spec, callbacks=[_orphan_check(parent)], on_epoch=lambda *event: events.put(event))
        except InputError as err:
            print(f"worker {spec.worker}: error: {err}", file=sys.stderr, flush=True)
            code = EXIT_INPUT
        except Exception as err:
            if not disk_full(err):  # raised by Optuna while it failed the trial on a full disk, perhaps
                raise
            code = EXIT_DISK_FULL  # the parent says so, in one line
    sys.stdout.flush()
    sys.exit(code)


PR_SET_PDEATHSIG = 1  # Linux prctl(2): the signal this process gets when its parent dies


def _follow_parent(parent: int) -> None:
    """Have Linux send this worker SIGTERM when the process that started it dies: a killed driver
    (SIGKILL, the OOM killer) must not leave its workers running the budget out on their own. The
    SIGTERM asks the worker to stop, as a Ctrl-C does. A parent already gone, or an OS without
    prctl, is caught by `_orphan_check` after each trial."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was in place
        stopping.request()


def _orphan_check(parent: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    """A study callback that stops this worker once its parent is gone."""
    def check(study: optuna.Study, trial: FrozenTrial) -> None:
        if os.getppid() != parent:
            stopping.request()
            study.stop()

    return check


@dataclass
class Outcome:
    """What happened to a run of workers."""

    interrupted: bool = False
    failed: str | None = None
    disk_full: bool = False

    def exit_code(self) -> int:
        return (EXIT_INTERRUPTED if self.interrupted else EXIT_DISK_FULL if self.disk_full
                else EXIT_FAILED if self.failed else EXIT_OK)


def default_count() -> int:
    """Local workers when --workers is not given: one per core, at most 4. A trial of a small model
    leaves cores idle between its steps (Python, evaluation, storage) and another trial fills them;
    docs/design.md has the measured ratio."""
    return max(1, min(4, cores()))


class Workers(Protocol):
    """What `supervise` drives: workers by index, started, watched, replaced and stopped; `Pool` on this
    machine, `cluster.RayPool` on a Ray cluster."""

    @property
    def processes(self) -> Mapping[int, Any]:
        """The running workers by index."""

    def start(self, index: int) -> None:
        """Start worker `index` (again, once it has ended)."""

    def relay(self, on_epoch: Callable[..., None] | None, wait: float) -> None:
        """Pass on the workers' epoch events for up to `wait` seconds (`relay`)."""

    def exited(self) -> list[tuple[int, int | None]]:
        """The workers that have ended since the last look, with their exit codes (None: lost)."""

    def describe(self, code: int | None) -> str:
        """How a worker that ended with `code` ended, in words."""

    def reap(self, study: optuna.Study) -> list[int]:
        """Fail and queue again the trials that workers which died left running; their numbers."""

    def stop(self, grace: float = 60.0) -> None:
        """Ask every worker to stop at its next safe point; after `grace` seconds end the rest."""


class Pool:
    """Worker processes on this machine, by index: started, replaced, and stopped (a `Workers`)."""

    def __init__(self, spec: WorkerSpec, count: int) -> None:
        self.context = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
        self.events = self.context.Queue()
        # One worker uses TensorFlow's own default (every core); several split the cores between them.
        self.spec = replace(spec, threads=None if count == 1 else max(1, cores() // count))
        self.processes: dict[int, multiprocessing.process.BaseProcess] = {}

    def start(self, index: int) -> None:
        process = self.context.Process(target=_child, args=(replace(self.spec, worker=index), self.events,
                                                            os.getpid()), name=f"search-worker-{index}")
        process.start()
        self.processes[index] = process

    def relay(self, on_epoch: Callable[..., None] | None, wait: float) -> None:
        relay(self.events, on_epoch, wait)

    def exited(self) -> list[tuple[int, int | None]]:
        """The workers that have ended since the last look, with their exit codes."""
        ended = []
        for index, process in list(self.processes.items()):
            if not process.is_alive():
                process.join()
                del self.processes[index]
                ended.append((index, process.exitcode))
        return ended

    def describe(self, code: int | None) -> str:
        """How a worker that exited with `code` ended, in words."""
        if code is not None and code < 0:
            return f"signal {signal.Signals(-code).name}"
        return f"exit code {code}"

    def reap(self, study: optuna.Study) -> list[int]:
        """Fail and queue again the trials of workers that died (`storage.reap_dead`)."""
        return storage.reap_dead(study)

    def stop(self, grace: float = 60.0) -> None:
        """Ask every worker once, with SIGTERM, to stop at its next safe point (marking its trial
        interrupted); wait up to `grace` seconds, then kill what is left (the parent reaps the trials a
        killed worker held). A further Ctrl-C or SIGTERM to the parent cuts the wait short."""
        stop_processes(list(self.processes.values()), grace)
        self.processes.clear()


def relay(events: Any, on_epoch: Callable[..., None] | None, wait: float) -> None:
    """Pass on the epoch events that arrive on `events` (a queue whose `get` takes a timeout and raises
    `queue.Empty`, as multiprocessing's and Ray's do) within `wait` seconds, or until a stop request."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0 and not stopping.requested():
        try:
            event = events.get(timeout=min(left, 0.25))
        except queue.Empty:
            continue
        if on_epoch is not None:
            on_epoch(*event)


def stop_processes(processes: list[multiprocessing.process.BaseProcess], grace: float = 60.0) -> None:
    """SIGTERM to each process once, up to `grace` seconds for all to end (less if this process gets
    another stop signal), then SIGKILL to the rest."""
    for process in processes:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    asked, deadline = stopping.signals(), time.monotonic() + grace
    while stopping.signals() <= asked and time.monotonic() < deadline and any(
            p.is_alive() for p in processes):
        time.sleep(0.05)
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join()


def run_local(spec: WorkerSpec, workers: int, on_trial: Callable[[optuna.Study, FrozenTrial], None],
              say: Callable[[str], None], on_epoch: Callable[..., None] | None = None) -> Outcome:
    """Run `workers` processes on this machine on the study until the budget is met or a stop request.

    Even one worker runs in a child process: the parent stays small and never imports TensorFlow,
    and a child can be replaced after `spec.recycle_after` trials, which keeps memory flat.
    """
    return supervise(spec, Pool(spec, workers), workers, on_trial, say, on_epoch)


def supervise(spec: WorkerSpec, pool: Workers, workers: int, on_trial: Callable[[optuna.Study, FrozenTrial], None],
              say: Callable[[str], None], on_epoch: Callable[..., None] | None = None) -> Outcome:
    """Start `workers` workers of `pool` (local processes, or Ray actors) and watch them until the budget is
    met or a stop request: one that ends while work is left is replaced, the trial of one that died is
    failed and queued again. The caller has installed `stopping.on_signals`."""
    from search.study import studies

    opened = studies.load_study(spec.study, Path(spec.results), spec.location)
    seen = {t.number for t in opened.get_trials(deepcopy=False) if record.ended_on_its_own(t)}
    outcome = Outcome()
    restarts_left = 3 * workers  # a worker that keeps dying is a bug, not bad luck
    for index in range(workers):
        pool.start(index)
    while pool.processes and not stopping.requested():
        pool.relay(on_epoch, wait=1.0)
        _tolerant(lambda: _report_new(opened, seen, on_trial))
        for index, code in pool.exited():
            lost = _tolerant(lambda: pool.reap(opened)) or []
            if code == EXIT_FAILED:
                outcome.failed = "too many trials failed in a row (see the leaderboard's reasons)"
            elif code == EXIT_DISK_FULL:
                outcome.failed, outcome.disk_full = "no space left on the disk", True
            elif code == EXIT_INPUT:
                outcome.failed = f"worker {index} could not start (its error is above)"
            elif code not in (EXIT_OK, EXIT_INTERRUPTED):
                say(f"worker {index} exited with {pool.describe(code)}"
                    + (f"; trial(s) {', '.join(map(str, lost))} failed and queued again" if lost else ""))
                restarts_left -= 1
            if outcome.failed is None and restarts_left > 0 and spec.timeout is None and _work_left(opened, spec):
                pool.start(index)
        if not pool.processes and outcome.failed is None and spec.timeout is None and _requeue_orphans(
                opened, pool, on_epoch, say):
            pool.start(0)
    if stopping.requested():
        outcome.interrupted = True
        pool.stop()
        _tolerant(lambda: pool.reap(opened))
    _tolerant(lambda: _report_new(opened, seen, on_trial))
    return outcome


def _work_left(study: optuna.Study, spec: WorkerSpec) -> bool:
    """Whether a worker that ended leaves trials to run: queued ones, or (searching) places in the budget."""
    from search.study import studies

    def left() -> int:
        return _waiting(study) + (0 if spec.queued_only else studies.remaining(study, spec.budget))

    return bool(_tolerant(left, default=1) > 0)


def _requeue_orphans(study: optuna.Study, pool: Any, on_epoch: Callable[..., None] | None,
                     say: Callable[[str], None]) -> bool:
    """Every worker has ended, but a trial created and never run (the database lost inside Optuna's
    `ask`, a worker killed there) holds a place in the budget: once seen long enough to be sure of
    (`storage.reap_dead`), it is failed and queued again; whether one was."""
    ages = _tolerant(lambda: storage.orphan_ages(study), default=[]) or []
    if not ages:
        return False
    wait = max(0.0, storage.ORPHAN_SECONDS - min(ages))
    say(f"{len(ages)} trial(s) were created but never run; queued again in {wait:.0f} s")
    pool.relay(on_epoch, wait=wait + 0.5)
    return not stopping.requested() and bool(_tolerant(lambda: storage.reap_dead(study)))


def _tolerant(action: Callable[[], Any], default: Any = None) -> Any:
    """Run a parent-side storage read; while the database is unreachable, skip it (workers retry)."""
    try:
        return action()
    except Exception as err:
        if storage_error(err):
            return default
        raise


def _waiting(study: optuna.Study) -> int:
    return sum(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))


def _report_new(study: optuna.Study, seen: set[int], on_trial: Callable[[optuna.Study, FrozenTrial], None]) -> None:
    for trial in study.get_trials(deepcopy=False):
        if trial.number not in seen and record.ended_on_its_own(trial):
            seen.add(trial.number)
            on_trial(study, trial)

