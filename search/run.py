"""Running a search: the application layer between the command line and the stages.

`run_search` starts or resumes a search over a space file, and `join_search` adds this machine's
worker to a study `run_search` started; they are the Python API that the command line, the tests
and the benchmarks call. Both check every input before anything is written, open the study, fail
and queue again the trials that dead processes left running, say where the study stands, run trials
(in worker processes, or in this process under KerasTuner) with live progress, treat SIGTERM as
Ctrl-C from their first line on, and end by writing the leaderboard, with one line saying why when
the run trained nothing or the disk is full. Finished trials are always kept: the same call resumes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console
from rich.markup import escape

from search import ranges
from search.engines import keras_tuner, keras_tuner_space
from search.errors import (
    EXIT_DISK_FULL,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    DiskFull,
    InputError,
    SpaceError,
    disk_full,
)
from search.files import check_writable
from search.results import confirm, leaderboard
from search.space import Space, load_space
from search.study import (
    artifacts,
    cluster,
    lifecycle,
    record,
    references,
    stopping,
    storage,
    studies,
    tensorboard_files,
    warm_start,
    workers,
)
from search.study.progress import Progress
from search.study.record import Attr, StudyAttr
from search.training import datasets
from search.training.runtime import precision_setting, precision_wanted

ENGINES = ("optuna", "keras-tuner")
# What a joining worker brings itself rather than reads from the study: threads and precision belong
# to each machine, and the storage URL is the one it was given (a database URL's password is never
# stored on the study).
_PER_MACHINE = ("worker", "threads", "debug", "precision", "location", "node")


@dataclass
class SearchOptions:
    """What a search is asked for; the defaults are the command line's (`search run --help`)."""

    space_file: str
    trials: int = 50  # the study's total: re-running with more adds exactly the difference
    timeout: float | None = None  # stop starting trials after this many seconds
    study: str | None = None  # default: the space file's name
    sampler: str | None = None  # tpe (default), random, cmaes, gp
    pruner: str | None = None  # median, halving, hyperband, none (default: the space file's PRUNER or median)
    min_epochs: int | None = None  # the epochs a trial trains before the pruner first judges it (studies.FIRST_RUNG)
    engine: str = "optuna"
    tuner: str | None = None  # with engine keras-tuner: hyperband (default), bayesian, random
    seed: int | None = None  # base seed: trial N trains with seed + N
    storage: str | None = None  # default: the journal file results/<study>/journal.log
    epochs: int | None = None  # override every config's epochs (quick runs)
    train_size: int | None = None
    dataset: str = "mnist"
    data: str | None = None  # a folder of IDX files or an mnist.npz instead of the packaged data
    results: str = "results"
    top: int = 20  # leaderboard rows printed at the end
    workers: int | None = None  # default: one per core, at most 4 (1 under KerasTuner)
    trial_timeout: float | None = None
    recycle_after: int = 25
    precision: str | None = None  # auto, float32, bfloat16; None: the user's SEARCH_PRECISION or auto
    keep_top: int = 10
    deterministic: bool = False  # op determinism on one thread per worker: every trial replays exactly
    objectives: str = "accuracy"  # or with params and/or latency: a multi-objective search, without pruning
    max_params: int | None = None  # configs over these are rejected before training; the sampler learns it
    max_latency_ms: float | None = None
    accept_space_change: bool = False  # resume a study whose space file changed, recording the change
    confirm: bool = False  # once the search is done, confirm it as `search confirm` does with its defaults
    tensorboard: str | None = None  # a folder for TensorBoard: each trial's curves, the HParams table
    warm_start: str | None = None  # an earlier study in the same storage: queue its best configurations first
    warm_top: int | None = None  # how many of them (default warm_start.WARM_TOP)
    enqueue: str | None = None  # a JSON file of configurations (parameter: value) to queue first
    ray: str | None = None  # a Ray cluster's address (cluster.LOCAL: start one here): the workers run on it
    cpus_per_worker: int = 1  # with ray: the CPUs each worker asks the cluster for (and trains on)
    artifacts: str | None = None  # a folder or s3://BUCKET that kept trials also go to (default: the study's, if any)
    command: str = ""  # the command line that started it, recorded with kept trials and model cards
    debug: bool = False


@dataclass
class ConfirmOptions:
    """What a confirmation is asked for (`search confirm --help`); the rest comes from the study."""

    study: str
    top: int = confirm.TOP  # configurations: the best by validation accuracy, the best baseline among them
    seeds: int = confirm.SEEDS  # trainings of each, with fresh seeds
    storage: str | None = None
    results: str = "results"
    workers: int | None = None
    recycle_after: int = 25
    precision: str | None = None
    tensorboard: str | None = None  # default: the folder the search wrote to, if any
    command: str = ""
    debug: bool = False


@dataclass
class JoinOptions:
    """What a joining worker is asked for (`search worker --help`); the rest comes from the study."""

    study: str
    storage: str | None = None
    results: str = "results"
    trial_timeout: float | None = None
    recycle_after: int = 25
    precision: str | None = None
    tensorboard: str | None = None  # default: the folder the search wrote to, if any
    artifacts: str | None = None  # this machine's way to the search's artifact store (default: the one it recorded)
    command: str = ""
    debug: bool = False


def _stoppable(command: Callable[[Any, Console], int]) -> Callable[[Any, Console], int]:
    """A command that stops cooperatively from its first line (stopping.py): a Ctrl-C or SIGTERM while it
    opens the study or queues trials is acted on at its next safe point, never halfway through a journal
    write that holds the journal's lock; it then ends interrupted (exit 130), its leaderboard written."""
    @functools.wraps(command)
    def stoppable(options: Any, console: Console) -> int:
        stopping.reset()  # a command run in-process again starts unstopped
        with stopping.on_signals():
            return command(options, console)

    return stoppable


@_stoppable
def run_search(options: SearchOptions, console: Console) -> int:
    """Run (or resume) the search `options` describe until its study holds `options.trials` trials,
    or time runs out, or Ctrl-C; returns an exit code (errors.EXIT_*). Bad input raises `InputError`
    before anything is written."""
    started = time.monotonic()
    precision, goals = _check(options)
    ray = cluster.connect(options.ray) if options.ray is not None else None
    space = load_space(options.space_file)
    references.stored(Path(options.results))  # a damaged reference store stops here, before anything is written
    if options.engine == "keras-tuner":
        keras_tuner_space.check_space(space, options.tuner or "hyperband", options.epochs)
    name = studies.study_name(space, options.study)
    location = studies.storage_url(name, options.storage, Path(options.results))
    if ray is not None:
        cluster.check_nodes(ray, location, options.artifacts)
    queued, skipped = _warm_starts(options, space, name)
    sampler, pruner = options.sampler or "tpe", _pruner(options, space, goals)
    if options.engine == "optuna":
        studies.make_sampler(sampler, 0)  # a bad --sampler or --pruner stops here, before anything is written
        studies.make_pruner(pruner)
        _check_min_epochs(options, space, pruner)
    data = datasets.load(options.dataset, options.data, options.train_size)
    label = (keras_tuner.engine_label(options.tuner or "hyperband") if options.engine == "keras-tuner"
             else studies.engine_label(sampler, pruner))
    studies.check_engine(location, name, label)
    studies.check_objectives(location, name, goals)
    if options.engine == "keras-tuner":
        return _run_keras_tuner(options, console, space, name, location, data, label, started)

    opened = studies.open_study(name, location, sampler, pruner, options.seed, goals=goals,
                                min_epochs=options.min_epochs)
    store = _artifacts(options.artifacts, opened.user_attrs.get(StudyAttr.SETTINGS))
    studies.check_space(opened, space, options.accept_space_change)
    studies.check_dataset(opened, data)
    studies.note_engine(opened, label)
    folder = Path(options.results) / name
    count = options.workers or (ray.workers(options.cpus_per_worker) if ray else workers.default_count())
    spec = workers.WorkerSpec(
        space_file=str(_copy_space(space, folder, location)), study=name, location=location, dataset=options.dataset,
        data_path=options.data, train_size=options.train_size, epochs=options.epochs, budget=options.trials,
        sampler=sampler, pruner=pruner, min_epochs=options.min_epochs, timeout=options.timeout,
        trial_timeout=options.trial_timeout,
        results=options.results, keep=options.keep_top, command=options.command, debug=options.debug,
        recycle_after=options.recycle_after, precision=precision, deterministic=options.deterministic,
        objectives=goals, max_params=options.max_params, max_latency_ms=options.max_latency_ms,
        tensorboard=options.tensorboard, artifacts=store)
    settings = {k: v for k, v in vars(spec).items() if k not in _PER_MACHINE}
    studies.save_settings(opened, {**settings, "space_source": Path(spec.space_file).read_text()})
    studies.enqueue_baselines(opened, space)
    for line in [*skipped, *warm_start.enqueue(opened, queued, options.trials)]:
        console.print(escape(line))
    _start_tensorboard(options.tensorboard, space)
    limits = [f"at most {limit:,} {unit}" for limit, unit in ((options.max_params, "parameters"),
                                                             (options.max_latency_ms, "ms a digit")) if limit]
    header = (f"study [bold]{name}[/] in {storage.redact(location)}: {{done}} of {options.trials} trials done; "
              f"{_split(data)}" + (f"; {count} workers" if count > 1 else "")
              + (f" on the Ray cluster at {ray.address} ({ray.cpus} CPUs)" if ray else "") + _precision_note(precision)
              + (f"; objectives {', '.join(goals)}, no pruning (Optuna prunes only one objective)" if len(goals) > 1
                 else "") + (f"; {', '.join(limits)}" if limits else ""))

    def go(progress: Progress) -> int:
        pool = (cluster.RayPool(spec, ray, options.cpus_per_worker, Path(spec.space_file).read_text()) if ray
                else workers.Pool(spec, count))
        return workers.supervise(spec, pool, count, on_trial=progress, say=console.print,
                                 on_epoch=progress.epoch).exit_code()

    code = _drive(opened, folder, console, header, options.trials, go, requeue=True,
                  end=lambda code, why: finish(opened, folder, console, code, started, options.top,
                                               None if options.confirm else count, why))
    if code != EXIT_OK or not options.confirm or stopping.requested():
        return EXIT_INTERRUPTED if stopping.requested() else code
    return confirm_search(ConfirmOptions(name, storage=options.storage, results=options.results,
                                         workers=options.workers, recycle_after=options.recycle_after,
                                         precision=options.precision, command=options.command,
                                         debug=options.debug), console)


@_stoppable
def join_search(options: JoinOptions, console: Console) -> int:
    """Run trials of a stored study in one worker process on this machine until its budget is met."""
    started = time.monotonic()
    ranges.SECONDS.check(options.trial_timeout, "--trial-timeout")
    ranges.RECYCLE_AFTER.check(options.recycle_after, "--recycle-after")
    tensorboard_files.check_dir(options.tensorboard)
    check_writable(options.results, "--results")
    precision = precision_setting(options.precision)
    opened = studies.load_study(options.study, Path(options.results), options.storage)
    settings = opened.user_attrs.get(StudyAttr.SETTINGS)
    if not settings:
        raise InputError(f"study {options.study!r} has no settings to join with: start it with `search run` first")
    board = _tensorboard(options.tensorboard, settings)
    store = _artifacts(options.artifacts, settings)
    folder = Path(options.results) / opened.study_name
    location = studies.storage_url(opened.study_name, options.storage, Path(options.results))
    space_file = studies.restore_space(folder, settings["space_source"], location)
    spec = workers.WorkerSpec.joining(
        settings, space_file=str(space_file), results=options.results, debug=options.debug, location=location,
        trial_timeout=options.trial_timeout or settings.get("trial_timeout"), recycle_after=options.recycle_after,
        command=options.command, precision=precision, tensorboard=board, artifacts=store)
    _start_tensorboard(board, load_space(space_file))
    header = f"worker joining study {opened.study_name} ({spec.budget} trials in total, {{done}} done)"

    def go(progress: Progress) -> int:
        return workers.run_local(spec, 1, on_trial=progress, say=console.print).exit_code()

    return _drive(opened, folder, console, header, spec.budget, go, requeue=True,
                  end=lambda code, why: finish(opened, folder, console, code, started, 10, failure=why))


@_stoppable
def confirm_search(options: ConfirmOptions, console: Console) -> int:
    """Train the `top` best configurations of a stored study `seeds` more times each (confirm.py), in
    worker processes on this machine, then print what the confirmation found."""
    started = time.monotonic()
    for value, flag, allowed in ((options.top, "--top", ranges.CONFIRM_TOP),
                                 (options.seeds, "--seeds", ranges.CONFIRM_SEEDS),
                                 (options.workers, "--workers", ranges.LOCAL_WORKERS),
                                 (options.recycle_after, "--recycle-after", ranges.RECYCLE_AFTER)):
        allowed.check(value, flag)
    tensorboard_files.check_dir(options.tensorboard)
    check_writable(options.results, "--results")
    precision = precision_setting(options.precision)
    opened = studies.load_study(options.study, Path(options.results), options.storage)
    settings = opened.user_attrs.get(StudyAttr.SETTINGS)
    if not settings:
        raise InputError(f"study {opened.study_name!r} has no worker settings (a KerasTuner study): confirm runs "
                         "through Optuna's workers")
    board = _tensorboard(options.tensorboard, settings)
    _, total = confirm.queue(opened, options.top, options.seeds, Path(options.results))
    folder = Path(options.results) / opened.study_name
    location = studies.storage_url(opened.study_name, options.storage, Path(options.results))
    space_file = studies.restore_space(folder, settings["space_source"], location)
    spec = workers.WorkerSpec.joining(
        settings, space_file=str(space_file), results=options.results, debug=options.debug, queued_only=True,
        location=location, recycle_after=options.recycle_after, command=options.command, precision=precision,
        tensorboard=board, artifacts=None)  # a confirm training keeps no weights: nothing goes to a store
    _start_tensorboard(board, load_space(space_file))
    count = options.workers or confirm.workers_for(total, workers.default_count())
    taken = confirm.reused(opened)
    header = (f"confirming study [bold]{opened.study_name}[/]: {{done}} of {total} trainings done ({options.top} "
              f"configurations x {options.seeds} seeds" + (f"; already run: {taken}" if taken else "") + ")"
              + (f"; {count} workers" if count > 1 else ""))

    def go(progress: Progress) -> int:
        return workers.run_local(spec, count, on_trial=progress, say=console.print, on_epoch=progress.epoch).exit_code()

    def end(code: int, why: str | None) -> int:
        if not _unless_disk_full(lambda: references.collect(opened, Path(options.results))):
            code = code if code == EXIT_INTERRUPTED else EXIT_DISK_FULL
        found = confirm.summary(opened)
        assert found is not None
        console.print(leaderboard.render_confirmation(found))
        console.print(confirm.verdict(found))
        console.print(f"in {time.monotonic() - started:.0f} s")
        return _say_how_it_ended(opened, console, code, counts=_confirmations, failure=why)

    return _drive(opened, folder, console, header, total, go, requeue=True, counts=_confirmations, end=end)


def _confirmations(trial: optuna.trial.FrozenTrial) -> bool:
    return record.is_confirmation(trial) and record.ended_on_its_own(trial)


def _pruner(options: SearchOptions, space: Space, goals: tuple[str, ...]) -> str:
    """--pruner, else the space file's PRUNER, else median; none with several objectives."""
    if options.pruner or len(goals) > 1:
        return options.pruner or "none"
    if space.pruner is not None and space.pruner not in studies.PRUNERS:
        raise SpaceError(space.source, "PRUNER", f"{space.pruner!r}: expected one of {', '.join(studies.PRUNERS)}")
    return space.pruner or "median"


def _check_min_epochs(options: SearchOptions, space: Space, pruner: str) -> None:
    """--min-epochs needs a pruner, and no more epochs than a trial can train (the space's most, or --epochs)."""
    if options.min_epochs is None:
        return
    if pruner == "none":
        raise InputError(f"--min-epochs {options.min_epochs}: the study's pruner is none, so no trial is judged "
                         "(pass --pruner median, halving or hyperband)")
    most, where = (options.epochs, "--epochs") if options.epochs else (space.most_epochs(), space.source)
    if options.min_epochs > most:
        raise InputError(f"--min-epochs {options.min_epochs}: above the {most} epochs a trial trains at most "
                         f"({where}); expected {ranges.MIN_EPOCHS.low:g} to {most}")


def _check(options: SearchOptions) -> tuple[str, tuple[str, ...]]:
    """Every option that can be checked without the space file or the data; returns the precision setting
    and the objectives."""
    for value, flag, allowed in (
            (options.trials, "--trials", ranges.TRIALS), (options.timeout, "--timeout", ranges.SECONDS),
            (options.seed, "--seed", ranges.SEED), (options.epochs, "--epochs", ranges.EPOCHS),
            (options.min_epochs, "--min-epochs", ranges.MIN_EPOCHS),
            (options.train_size, "--train-size", ranges.TRAIN_SIZE), (options.top, "--top", ranges.ROWS),
            (options.keep_top, "--keep-top", ranges.KEEP_TOP),
            (options.workers, "--workers", ranges.WORKERS if options.ray is not None else ranges.LOCAL_WORKERS),
            (options.cpus_per_worker, "--cpus-per-worker", ranges.CPUS_PER_WORKER),
            (options.trial_timeout, "--trial-timeout", ranges.SECONDS),
            (options.recycle_after, "--recycle-after", ranges.RECYCLE_AFTER),
            (options.max_params, "--max-params", ranges.MAX_PARAMS),
            (options.max_latency_ms, "--max-latency-ms", ranges.LATENCY_MS)):
        allowed.check(value, flag)
    tensorboard_files.check_dir(options.tensorboard)
    check_writable(options.results, "--results")
    if options.artifacts is not None:
        artifacts.check_location(options.artifacts)
    ranges.WARM_TOP.check(options.warm_top, "--warm-top")
    if options.warm_top is not None and options.warm_start is None:
        raise InputError(f"--warm-top {options.warm_top}: needs --warm-start STUDY")
    goals = studies.objectives(options.objectives)
    if len(goals) > 1 and options.pruner not in (None, "none"):
        raise InputError(f"--pruner {options.pruner}: Optuna cannot prune a study with several objectives "
                         f"(--objectives {options.objectives}); leave --pruner out")
    precision = precision_setting(options.precision)  # a bad SEARCH_PRECISION stops here too
    if options.engine not in ENGINES:
        raise InputError(f"--engine {options.engine!r}: expected one of {', '.join(ENGINES)}")
    if options.engine == "optuna" and options.tuner is not None:
        raise InputError(f"--tuner {options.tuner}: needs --engine keras-tuner (Optuna runs take --sampler and "
                         "--pruner)")
    if options.ray is None and options.cpus_per_worker != 1:
        raise InputError(f"--cpus-per-worker {options.cpus_per_worker}: needs --ray (local workers share this "
                         "machine's cores)")
    if options.engine == "keras-tuner":
        if options.ray is not None:
            raise InputError("--ray: needs --engine optuna (KerasTuner runs in one process)")
        if precision == "bfloat16":
            raise InputError("--precision bfloat16: --engine keras-tuner trains in float32 only")
        if options.accept_space_change:
            raise InputError("--accept-space-change: KerasTuner's project holds the space it began with; pass "
                             "--study NAME to search the changed space")
        keras_tuner.check_options(options.tuner, options.sampler, options.pruner, options.workers, options.storage)
        if len(goals) > 1 or options.max_params or options.max_latency_ms:
            raise InputError("--objectives, --max-params and --max-latency-ms need --engine optuna")
        if options.warm_start or options.enqueue:
            raise InputError("--warm-start and --enqueue need --engine optuna (they queue Optuna trials)")
        if options.min_epochs is not None:
            raise InputError(f"--min-epochs {options.min_epochs}: needs --engine optuna (KerasTuner's tuners set "
                             "their own epochs)")
        if options.artifacts is not None:
            raise InputError(f"--artifacts {options.artifacts}: needs --engine optuna (a KerasTuner search runs on "
                             "one machine, whose results folder keeps its weights)")
    return precision, goals


def _warm_starts(options: SearchOptions, space: Space, name: str) -> tuple[list[warm_start.Queued], list[str]]:
    """What --warm-start and --enqueue queue, checked against `space` before anything is written, and a
    line for each of the earlier study's best that `space` cannot express."""
    queued: list[warm_start.Queued] = []
    skipped: list[str] = []
    if options.warm_start is not None:
        earlier = studies.load_study(options.warm_start, Path(options.results), options.storage)
        if earlier.study_name == name:
            raise InputError(f"--warm-start {options.warm_start}: the study this run searches; name an earlier one")
        queued, skipped = warm_start.best_of(earlier, space, options.warm_top or warm_start.WARM_TOP)
        if not queued and not skipped:
            skipped.append(f"warm start: {earlier.study_name} has no completed searched trial to start from")
    if options.enqueue is not None:
        queued += warm_start.from_file(options.enqueue, space)
    return queued, skipped


def _run_keras_tuner(options: SearchOptions, console: Console, space: Space, name: str, location: str,
                     data: datasets.Dataset, label: str, started: float) -> int:
    """`run --engine keras-tuner`: the same study folder and storage, trials run by KerasTuner here."""
    opened = studies.open_study(name, location, "random", "none", options.seed)  # baselines only: nothing sampled
    studies.check_space(opened, space, options.accept_space_change)
    studies.check_dataset(opened, data)
    studies.note_engine(opened, label)
    folder = Path(options.results) / name
    _copy_space(space, folder, location)
    _start_tensorboard(options.tensorboard, space)
    header = f"study [bold]{name}[/] ({label}) in {storage.redact(location)}: {{done}} of {options.trials} trials " \
             f"done; {_split(data)}"
    settings = keras_tuner.Settings(tuner=options.tuner or "hyperband", budget=options.trials, epochs=options.epochs,
                                    timeout=options.timeout, debug=options.debug)

    def go(progress: Progress) -> int:
        from search.training import runtime

        runtime.start_tensorflow(verbose=options.debug, models=space.model_kinds(), precision="float32")
        machine = record.Machine(0, runtime.cpu_kernels(), "float32", None, False, options.train_size,
                                 runtime.versions(), runtime.cpu_model())
        context = lifecycle.Context(data, machine, lifecycle.Limits(options.trial_timeout), ("accuracy",), name,
                                    folder, options.keep_top, options.command, progress.epoch,
                                    tensorboard=Path(options.tensorboard) if options.tensorboard else None)
        return keras_tuner.run(space, context, opened, folder, settings, progress)

    return _drive(opened, folder, console, header, options.trials, go, requeue=False,
                  end=lambda code, why: finish(opened, folder, console, code, started, options.top, failure=why))


def _drive(opened: optuna.Study, folder: Path, console: Console, header: str, total: int,
           go: Callable[[Progress], int], requeue: bool, end: Callable[[int, str | None], int],
           counts: Callable[[optuna.trial.FrozenTrial], bool] = record.counts_toward_budget) -> int:
    """What every way of running trials shares: reap what dead processes left running, say where the
    study stands (`header` with {done} filled in: the trials `counts` counts), run `go` with live
    progress until it ends or a stop request (Ctrl-C, SIGTERM: stopping.py), then `end` with the exit
    code and, when the run trained nothing or stopped early, why (lifecycle.verdict)."""
    lost = storage.reap_dead(opened)
    if lost:
        console.print(f"trial(s) {', '.join(map(str, lost))} were left running by a process that died: failed"
                      + (", and queued once more" if requeue else ""))
    trials = opened.get_trials(deepcopy=False)
    finished_before = {t.number for t in trials if t.state in record.FINISHED}
    done = sum(counts(t) for t in trials)
    console.print(header.format(done=done))
    with stopping.on_signals(), Progress(console, total, done, counts=counts) as progress:
        progress.seed_bests(opened)
        code = go(progress) if not stopping.requested() else EXIT_INTERRUPTED
    if stopping.requested():
        return end(EXIT_INTERRUPTED, None)
    ran = [record.read(t) for t in opened.get_trials(deepcopy=False)
           if t.number not in finished_before and t.state in record.FINISHED and not t.user_attrs.get(Attr.SURPLUS)]
    why = lifecycle.verdict(ran, stopped=code == EXIT_FAILED)
    return end(EXIT_FAILED if why is not None and code == EXIT_OK else code, why)


def finish(opened: optuna.Study, folder: Path, console: Console, code: int, started: float, top: int,
           workers: int | None = None, failure: str | None = None) -> int:
    """Write and print the leaderboard, store the tutorials it trained as written (study/references.py), say
    how the run ended (`failure`: why it trained nothing or stopped early) and, given the `workers` a
    confirmation would have, where the search stands against its baselines; returns the exit code. On a
    full disk the leaderboard is only printed."""
    table = leaderboard.frame(opened)
    written: list[Path] = []
    def write() -> None:
        references.collect(opened, folder.parent)
        written.extend(leaderboard.write(table, folder))

    if not _unless_disk_full(write):
        code = code if code == EXIT_INTERRUPTED else EXIT_DISK_FULL
    console.print(leaderboard.render(table, f"{opened.study_name} ({leaderboard.engine(opened)}): ranked by test "
                                            "accuracy", top=top))
    for line in leaderboard.summary(opened, table):
        console.print(line)
    if written:
        console.print(f"wrote {', '.join(map(str, written))} in {time.monotonic() - started:.0f} s")
    standing = confirm.standing(opened, workers, folder.parent) if code == EXIT_OK and workers else None
    if standing is not None:
        console.print(escape(standing))
    return _say_how_it_ended(opened, console, code, failure=failure)


def _unless_disk_full(write: Callable[[], Any]) -> bool:
    """Run a write of the results folder; False, instead of an error, when its disk is full."""
    try:
        write()
    except (OSError, DiskFull) as err:
        if not disk_full(err):
            raise
        return False
    return True


def _say_how_it_ended(opened: optuna.Study, console: Console, code: int,
                      counts: Callable[[optuna.trial.FrozenTrial], bool] = record.counts_toward_budget,
                      failure: str | None = None) -> int:
    """One line for a run that did not end on its own with trials trained; the command's exit code."""
    if code == EXIT_INTERRUPTED:
        kept = sum(counts(t) for t in opened.get_trials(deepcopy=False))
        console.print(f"[magenta]interrupted[/]: {kept} finished trials kept; run the same command to resume")
    elif code == EXIT_DISK_FULL and (failure is None or not failure.startswith(lifecycle.DISK_FULL)):
        console.print("[red]stopped[/]: no space left on the disk of the results folder or the study's journal: "
                      "free some space, then run the same command to resume")
    elif code in (EXIT_FAILED, EXIT_DISK_FULL):
        failure = failure or "too many trials failed in a row; the leaderboard shows their reasons"
        console.print(f"[red]stopped[/]: {escape(failure)}")
    return EXIT_FAILED if code == EXIT_DISK_FULL else code


def _artifacts(given: str | None, settings: dict[str, Any] | None) -> str | None:
    """The artifact store a run or a joining worker keeps trials in, checked: its own --artifacts, else the
    one the search recorded on the study (which may name a folder this machine lacks or may not write)."""
    if given is not None:
        return artifacts.check_location(given)
    recorded = (settings or {}).get("artifacts")
    return artifacts.check_location(recorded, "--artifacts (recorded on the study)") if recorded else None


def _tensorboard(given: str | None, settings: dict[str, Any]) -> str | None:
    """The TensorBoard folder of a joining worker or a confirmation: its own, else the one the search
    recorded on the study (checked here: it may name a folder this machine lacks or may not write)."""
    if given:
        return given
    recorded = settings.get("tensorboard")
    tensorboard_files.check_dir(recorded, "--tensorboard (recorded on the study)")
    return recorded


def _start_tensorboard(folder: str | None, space: Space) -> None:
    """Make the TensorBoard folder and write the HParams plugin's experiment into it, once."""
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tensorboard_files.write_experiment(Path(folder), space)


def _split(data: datasets.Dataset) -> str:
    return (f"{data.name} {len(data.train_labels):,} train / {len(data.val_labels):,} val / "
            f"{len(data.test_labels):,} test")


def _copy_space(space: Space, folder: Path, location: str) -> Path:
    """The results folder keeps the space file it was searched with (workers elsewhere get it too)."""
    storage.claim_folder(folder, location)
    copy = folder / "space.py"
    text = Path(space.source).read_text()
    if not copy.exists() or copy.read_text() != text:
        copy.write_text(text)
    return copy


def _precision_note(setting: str) -> str:
    """Said at the start of a run whose trials train in bfloat16 on the CPU, so that nobody has to
    learn it from a trial's attributes."""
    if precision_wanted(setting) != "bfloat16":
        return ""
    return "; on the CPU, trials train in mixed bfloat16 (--precision float32 turns it off)"


def options_from(namespace: Any, kind: type[SearchOptions] | type[JoinOptions] | type[ConfirmOptions],
                 **extra: Any) -> Any:
    """`kind` from an argparse namespace: the fields it has, under their own names, plus `extra`."""
    values = {f.name: getattr(namespace, f.name) for f in fields(kind) if hasattr(namespace, f.name)}
    return kind(**{**values, **extra})
