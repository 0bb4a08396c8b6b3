"""Worker processes: how one search runs in several processes, and survives losing some of them.

`work` is one worker: it loads the space and the data, joins the study and runs trials until the
study-wide budget is met. `search run --workers N` starts N of them as child processes here
(`run_local`; one per core by default, at most 4), each on its share of the cores, and `search
worker` does the same on any machine that reaches the storage. The parent watches them: a worker
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
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import FrameType
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search.errors import EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK
from search.study import record, storage
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
    timeout: float | None = None
    trial_timeout: float | None = None
    results: str = "results"
    keep: int = 10
    command: str = ""
    worker: int = 0
    threads: int | None = None
    max_trials: int | None = None  # leave after this many trials (the parent starts a fresh one)
    debug: bool = False
    precision: str | None = None  # None: SEARCH_PRECISION or auto (search.runtime.precision_wanted)
    deterministic: bool = False  # TensorFlow's op determinism on one thread (run --deterministic)
    queued_only: bool = False  # run the queued trials, sample none (confirm)
    objectives: tuple[str, ...] = ("accuracy",)
    max_params: int | None = None
    max_latency_ms: float | None = None

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
    """Run trials for the study until its budget is met; returns an exit code."""
    from search.space import load_space
    from search.study import studies
    from search.study.objective import Objective
    from search.training import datasets, runtime

    space = load_space(spec.space_file)
    runtime.start_tensorflow(verbose=spec.debug, threads=spec.threads, models=space.model_kinds(),
                             precision=spec.precision, deterministic=spec.deterministic)
    machine = record.Machine(spec.worker, runtime.cpu_kernels(), runtime.training_precision(spec.precision),
                             1 if spec.deterministic else spec.threads, spec.deterministic, spec.train_size,
                             runtime.versions(), runtime.cpu_model())
    data = datasets.load(spec.dataset, spec.data_path, spec.train_size)
    waited = 0.0
    while True:
        try:
            opened = studies.open_study(spec.study, spec.location, spec.sampler, spec.pruner, worker=spec.worker)
            if waited:  # back after losing the database: the trial we were running is lost
                lost = storage.reap_dead(opened, mine=True)
                print(f"worker {spec.worker}: storage reachable again"
                      + (f"; trial(s) {', '.join(map(str, lost))} queued again" if lost else ""),
                      file=sys.stderr, flush=True)
            objective = Objective(space, data, spec.epochs, int(opened.user_attrs[StudyAttr.SEED]), machine,
                                  param_prefix=studies.param_prefix(opened), on_epoch=on_epoch,
                                  study_dir=Path(spec.results) / spec.study, keep=spec.keep, command=spec.command,
                                  budget=spec.budget, trial_timeout=spec.trial_timeout, queued_only=spec.queued_only,
                                  objectives=tuple(spec.objectives), max_params=spec.max_params,
                                  max_latency_ms=spec.max_latency_ms)
            guard = studies.optimize(opened, objective, spec.timeout, callbacks or [], spec.max_trials)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except Exception as err:
            if not _storage_error(err) or waited >= STORAGE_RETRY_SECONDS:
                raise
            pause = min(10.0, STORAGE_RETRY_SECONDS - waited)
            print(f"worker {spec.worker}: storage unreachable ({type(err).__name__}); retrying in {pause:.0f} s",
                  file=sys.stderr, flush=True)
            time.sleep(pause)
            waited += pause
            continue
        if guard.tripped:
            print(f"worker {spec.worker}: stopped: {guard.tripped}", file=sys.stderr, flush=True)
            return EXIT_FAILED
        return EXIT_OK


def _storage_error(err: BaseException) -> bool:
    """A lost database connection (PostgreSQL restarting), as opposed to a bug."""
    names = {type(e).__name__ for e in (err, err.__cause__, err.__context__) if e is not None}
    return bool(names & {"OperationalError", "InterfaceError", "StorageInternalError", "DisconnectionError"})


def _child(spec: WorkerSpec, events: Any, parent: int) -> None:
    """Entry point of a local worker process; `events` carries epoch progress to the parent, whose
    pid is `parent`: the worker stops when that process dies (`_follow_parent`)."""
    from search.errors import InputError

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _follow_parent(parent)
        code = work(spec, callbacks=[_orphan_check(parent)], on_epoch=lambda *event: events.put(event))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except InputError as err:
        print(f"worker {spec.worker}: error: {err}", file=sys.stderr, flush=True)
        code = EXIT_INPUT
    sys.stdout.flush()
    sys.exit(code)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


PR_SET_PDEATHSIG = 1  # Linux prctl(2): the signal this process gets when its parent dies


def _follow_parent(parent: int) -> None:
    """Have Linux send this worker SIGTERM when the process that started it dies: a killed driver
    (SIGKILL, the OOM killer) must not leave its workers running the budget out on their own. The
    SIGTERM marks the running trial interrupted, as a Ctrl-C does. A parent already gone, or an OS
    without prctl, is caught by `_orphan_check` after each trial."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def _orphan_check(parent: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    """A study callback that starts no further trial once this worker's parent is gone."""
    def check(study: optuna.Study, trial: FrozenTrial) -> None:
        if os.getppid() != parent:
            study.stop()

    return check


@dataclass
class LocalRun:
    """What happened to a run of local workers."""

    interrupted: bool = False
    failed: str | None = None

    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.interrupted else EXIT_FAILED if self.failed else EXIT_OK


def default_count() -> int:
    """Local workers when --workers is not given: one per core, at most 4. A trial of a small model
    leaves cores idle between its steps (Python, evaluation, storage) and another trial fills them;
    docs/design.md has the measured ratio."""
    return max(1, min(4, cores()))


def run_local(spec: WorkerSpec, workers: int, on_trial: Callable[[optuna.Study, FrozenTrial], None],
              say: Callable[[str], None], on_epoch: Callable[..., None] | None = None) -> LocalRun:
    """Run `workers` processes on the study and watch them until the budget is met or Ctrl-C.

    Even one worker runs in a child process: the parent stays small and never imports TensorFlow,
    and a child can be replaced after `spec.max_trials` trials, which keeps memory flat.
    """
    from search.study import studies

    context = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    events = context.Queue()
    # One worker uses TensorFlow's own default (every core); several split the cores between them.
    threads = None if workers == 1 else max(1, cores() // workers)
    processes: dict[int, multiprocessing.process.BaseProcess] = {}
    outcome = LocalRun()
    restarts_left = 3 * workers  # a worker that keeps dying is a bug, not bad luck

    def start(index: int) -> None:
        process = context.Process(target=_child, args=(replace(spec, worker=index, threads=threads), events,
                                                       os.getpid()), name=f"search-worker-{index}")
        process.start()
        processes[index] = process

    opened = studies.load_study(spec.study, Path(spec.results), spec.location)
    seen = {t.number for t in opened.get_trials(deepcopy=False) if record.finished(t)}
    for index in range(workers):
        start(index)
    try:
        while processes:
            _drain(events, on_epoch, wait=1.0)
            _tolerant(lambda: _report_new(opened, seen, on_trial))
            for index, process in list(processes.items()):
                if process.is_alive():
                    continue
                process.join()
                del processes[index]
                code = process.exitcode
                lost = _tolerant(lambda: storage.reap_dead(opened)) or []
                if code == EXIT_FAILED:
                    outcome.failed = "too many trials failed in a row (see the leaderboard's reasons)"
                if code == EXIT_INPUT:
                    outcome.failed = f"worker {index} could not start (its error is above)"
                if code not in (EXIT_OK, EXIT_INTERRUPTED, EXIT_FAILED, EXIT_INPUT):
                    say(f"worker {index} exited with {_describe(code)}"
                        + (f"; trial(s) {', '.join(map(str, lost))} failed and queued again" if lost else ""))
                    restarts_left -= 1
                left = (lambda: _waiting(opened)) if spec.queued_only else (
                    lambda: studies.remaining(opened, spec.budget) + _waiting(opened))
                if outcome.failed is None and restarts_left > 0 and spec.timeout is None and _tolerant(
                        left, default=1) > 0:
                    start(index)
            if not processes and outcome.failed is None and spec.timeout is None:
                # A trial created but never run (the database lost inside Optuna's ask) holds a place
                # in the budget: once seen long enough to be sure of (`storage.reap_dead`), it is failed
                # and queued again.
                ages = _tolerant(lambda: storage.orphan_ages(opened), default=[]) or []
                if ages:
                    wait = max(0.0, storage.ORPHAN_SECONDS - min(ages))
                    say(f"{len(ages)} trial(s) were created but never run; queued again in {wait:.0f} s")
                    deadline = time.monotonic() + wait + 0.5
                    while time.monotonic() < deadline:
                        _drain(events, on_epoch, wait=min(1.0, max(0.0, deadline - time.monotonic())))
                    if _tolerant(lambda: storage.reap_dead(opened)):
                        start(0)
    except KeyboardInterrupt:
        outcome.interrupted = True
        _stop(list(processes.values()))
        _tolerant(lambda: storage.reap_dead(opened))
        # A worker stopped inside Optuna's `ask` leaves a trial that never recorded its pid. A live
        # process records it within milliseconds, so one still without it a moment after all of ours
        # have gone was ours: failed and queued again now, not left RUNNING for the next run to wait on.
        if _tolerant(lambda: storage.orphan_ages(opened), default=[]):
            time.sleep(storage.ORPHAN_SECONDS_STOPPED)
            _tolerant(lambda: storage.reap_dead(opened, orphan_seconds=storage.ORPHAN_SECONDS_STOPPED))
    _tolerant(lambda: _report_new(opened, seen, on_trial))
    return outcome


def _stop(processes: list[multiprocessing.process.BaseProcess], grace: float = 60.0, every: float = 2.0) -> None:
    """Ask every worker to mark its trial interrupted and leave, wait up to `grace` seconds, then
    kill what is left (the parent reaps the trials a killed worker held).

    The request is SIGTERM, which a worker always handles: a worker started with SIGINT ignored
    (under nohup, say) ignores a forwarded SIGINT and would run on to the end of the budget while
    the parent waits for it. It is sent again every `every` seconds: the KeyboardInterrupt it raises
    can land in a `__del__` or a weak-reference callback, where Python drops it. A second Ctrl-C or
    SIGTERM during the wait cuts it short rather than escaping this function and leaving the
    workers running."""
    hurried: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: hurried.append(signum))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline, asked = time.monotonic() + grace, 0.0
        while not hurried and time.monotonic() < deadline and any(p.is_alive() for p in processes):
            if time.monotonic() - asked >= every:
                asked = time.monotonic()
                for process in processes:
                    if process.pid is not None and process.is_alive():
                        os.kill(process.pid, signal.SIGTERM)
            time.sleep(0.05)
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
    finally:
        for number, handler in previous.items():  # None: set outside Python; the default then
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def _tolerant(action: Callable[[], Any], default: Any = None) -> Any:
    """Run a parent-side storage read; while the database is unreachable, skip it (workers retry)."""
    try:
        return action()
    except Exception as err:
        if _storage_error(err):
            return default
        raise


def _drain(events: Any, on_epoch: Callable[..., None] | None, wait: float) -> None:
    """Pass on the epoch events that arrive within `wait` seconds."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = events.get(timeout=left)
        except queue.Empty:
            return
        if on_epoch is not None:
            on_epoch(*event)


def _waiting(study: optuna.Study) -> int:
    return sum(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))


def _report_new(study: optuna.Study, seen: set[int], on_trial: Callable[[optuna.Study, FrozenTrial], None]) -> None:
    for trial in study.get_trials(deepcopy=False):
        if trial.number not in seen and record.finished(trial):
            seen.add(trial.number)
            on_trial(study, trial)


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
