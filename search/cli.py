"""The command line: argparse, one handler per command, bad input turned into exit code 2.

`main(argv)` is what `python -m search` and the `search` script call, and what tests call
in-process. Every handler validates all of its input (space file, data, storage, options) before it
writes anything; an `InputError` becomes one line on stderr and exit code 2, with the traceback
only under `--debug`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from search import space as spaces
from search.errors import InputError
from search.runtime import PRECISIONS, precision_wanted

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    # Logs and pipes get a wide fixed width, so tables stay one row per trial there too.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    try:
        return int(args.handler(args, console))
    except InputError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="search", description="Hyperparameter search for MNIST digits.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or resume) a search over a space file")
    run.add_argument("space", help="space file, e.g. spaces/mlp.py")
    run.add_argument("--trials", type=int, default=50, help="total finished trials the study should hold (50)")
    run.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    run.add_argument("--study", help="study name (default: the space file's name)")
    run.add_argument("--sampler", help="tpe (default), random, cmaes or gp")
    run.add_argument("--pruner", help="median (default), hyperband or none")
    run.add_argument("--engine", default="optuna",
                     help="optuna (default) or keras-tuner: the same space file searched by KerasTuner 1.4")
    run.add_argument("--tuner", help="with --engine keras-tuner: hyperband (default), bayesian or random. Hyperband "
                                     "takes --epochs (else the space's epochs) as max_epochs, factor 3; a model it "
                                     "promotes trains on from its weights as a new trial, and --trials counts those")
    run.add_argument("--seed", type=int, help="base seed; trial N uses seed+N (default: random, kept in the study)")
    run.add_argument("--storage", help="Optuna storage URL (default: the journal file results/<study>/journal.log)")
    run.add_argument("--epochs", type=int, help="override every config's epochs (quick runs)")
    run.add_argument("--train-size", type=int, help="train on the first N of the 55,000 training images")
    run.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    run.add_argument("--data", help="folder of the four IDX files (plain or .gz), or a Keras mnist.npz")
    run.add_argument("--results", default="results", help="results folder (default: results)")
    run.add_argument("--top", type=int, default=20, help="rows of the leaderboard to print (20)")
    run.add_argument("--workers", type=int,
                     help="worker processes on this machine (default: one per CPU core, at most 4; 1 under "
                          "--engine keras-tuner). Several finish a search sooner, but in an order that differs "
                          "from run to run: --workers 1 --seed N repeats a search")
    run.add_argument("--trial-timeout", type=float, help="fail a trial that trains longer than this (seconds)")
    run.add_argument("--recycle-after", type=int, default=25,
                     help="replace each worker process after this many trials: TensorFlow's memory grows "
                          "with every trial in one process (25)")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="what trials compute in: auto (default: bfloat16 on a CPU with AMX, else float32), "
                          "float32, or bfloat16 (Keras's mixed_bfloat16: float32 weights and output). Kept and "
                          "exported models are float32 either way")
    run.add_argument("--keep-top", type=int, default=10,
                     help="keep the weights of this many best trials in results/<study>/trials (10; 0: none)")
    run.set_defaults(handler=cmd_run)

    worker = commands.add_parser("worker", help="join a stored study as one more worker (any machine)")
    worker.add_argument("--study", required=True, help="the study's name")
    worker.add_argument("--trial-timeout", type=float, help="fail a trial that trains longer than this (seconds)")
    worker.add_argument("--recycle-after", type=int, default=25,
                        help="replace the worker process after this many trials (25)")
    worker.add_argument("--precision", choices=PRECISIONS, help="as for run: this machine's choice (auto)")
    _add_location(worker)
    worker.set_defaults(handler=cmd_worker)

    board = commands.add_parser("leaderboard", help="the ranked trials of a stored study (also while it runs)")
    board.add_argument("study", help="study name or its space file")
    board.add_argument("--top", type=int, help="show only the first K rows")
    board.add_argument("--sort", choices=["test", "val", "params", "time"], default="test")
    board.add_argument("--state", choices=["complete", "pruned", "failed", "all"], default="all")
    board.add_argument("--format", choices=["table", "csv", "md", "json"], default="table")
    _add_location(board)
    board.set_defaults(handler=cmd_leaderboard)

    compare = commands.add_parser("compare", help="the best trials of several studies side by side")
    compare.add_argument("studies", nargs="+", help="study names or space files")
    compare.add_argument("--format", choices=["table", "csv", "md", "json"], default="table")
    _add_location(compare)
    compare.set_defaults(handler=cmd_compare)

    export = commands.add_parser("export", help="write a kept trial as .keras, SavedModel, TFLite and a model card")
    export.add_argument("study", help="study name or its space file")
    export.add_argument("--trial", type=int, help="trial number (default: the leaderboard's first row)")
    export.add_argument("--out", help="output folder (default: results/<study>/export/trial-N)")
    _add_location(export)
    export.set_defaults(handler=cmd_export)

    report = commands.add_parser("report", help="write results/<study>/report.html and its figures as PNG")
    report.add_argument("study", help="study name or its space file")
    _add_location(report)
    report.set_defaults(handler=cmd_report)

    samples = commands.add_parser("samples", help="write real MNIST test digits as PNG files to try predict on")
    samples.add_argument("--out", required=True, help="folder to write the PNGs (and labels.json) into")
    samples.add_argument("--n", type=int, default=20, help="how many digits (20)")
    samples.add_argument("--seed", type=int, default=0, help="which digits: a seed for the draw (0)")
    samples.set_defaults(handler=cmd_samples)

    predict = commands.add_parser("predict", help="recognize digits in your own image files")
    predict.add_argument("model", help="an export folder (with model.keras) or a .keras file")
    predict.add_argument("images", nargs="+", help="PNG, JPEG or BMP files, any size or colour mode")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.set_defaults(handler=cmd_predict)

    seeds = commands.add_parser("baselines", help="train the five tutorials once each and compare with their papers")
    seeds.add_argument("--only", action="append", metavar="NAME", help="S1, S2, S3, S4, S4-aug or S5 (repeatable)")
    seeds.add_argument("--scale", type=float, default=1.0, help="multiply every tutorial's epochs/steps (quick runs)")
    seeds.add_argument("--train-size", type=int, help="train on the first N of the 55,000 training images")
    seeds.add_argument("--seed", type=int, default=0)
    seeds.set_defaults(handler=cmd_baselines)

    show = commands.add_parser("show", help="print a space file as a tree, with its dimensions")
    show.add_argument("space")
    show.set_defaults(handler=cmd_show)
    return parser


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument("--storage", help="Optuna storage URL, if not the study's own journal file")


def _emit(table: Any, fmt: str, console: Console, title: str) -> None:
    """Print a table in the requested format; `table` is a pandas DataFrame."""
    from search import leaderboard

    if fmt == "csv":
        sys.stdout.write(table.to_csv(index=False, float_format="%.4f"))
    elif fmt == "md":
        sys.stdout.write(leaderboard.markdown(table))
    elif fmt == "json":
        sys.stdout.write(table.to_json(orient="records", indent=2) + "\n")
    elif "rank" in table:
        console.print(leaderboard.render(table, title, top=None))
    else:
        console.print(title)
        console.print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def cmd_leaderboard(args: argparse.Namespace, console: Console) -> int:
    from search import leaderboard, study

    if args.top is not None:
        _positive(args.top, "--top")
    opened = study.load_study(args.study, Path(args.results), args.storage)
    table = leaderboard.select(leaderboard.frame(opened), args.sort, args.state, args.top)
    _emit(table, args.format, console, f"{opened.study_name} ({leaderboard.engine(opened)}): {len(table)} trials, "
                                       f"sorted by {args.sort}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from search import leaderboard, study

    tables, engines = {}, {}
    for name in args.studies:  # load all first: one bad name fails before anything is printed
        opened = study.load_study(name, Path(args.results), args.storage)
        tables[opened.study_name] = leaderboard.frame(opened)
        engines[opened.study_name] = leaderboard.engine(opened)
    _emit(leaderboard.compare(tables, engines), args.format, console, "best trial of each study, by test accuracy")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    from search import study
    from search.runtime import start_tensorflow

    _, _, folder = study.locate(args.study, Path(args.results), args.storage)
    start_tensorflow(verbose=args.debug)
    from search.export import export

    out = export(folder, args.trial, Path(args.out) if args.out else None, command=_command_line(args))
    card = json.loads((out / "model_card.json").read_text())
    console.print(f"exported trial {card['trial']} of {card['study']} to {out}: test accuracy "
                  f"{100 * card['test_accuracy']:.2f}% (.keras, SavedModel), {100 * card['tflite_test_accuracy']:.2f}%"
                  f" (TFLite); {card['n_params']:,} parameters")
    for name in sorted(p.name for p in out.iterdir()):
        console.print(f"  {out / name}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from search import study
    from search.runtime import start_tensorflow

    _, _, folder = study.locate(args.study, Path(args.results), args.storage)
    opened = study.load_study(args.study, Path(args.results), args.storage)
    start_tensorflow(verbose=args.debug)
    from search.report import write_report

    path = write_report(opened, folder)
    console.print(f"wrote {path} (open it in a browser; no network needed) and its figures in {path.parent / 'report'}")
    return EXIT_OK


def cmd_baselines(args: argparse.Namespace, console: Console) -> int:
    from search import baselines
    from search import data as datasets
    from search.runtime import start_tensorflow

    _positive(args.scale, "--scale")
    unknown = [name for name in args.only or [] if name not in baselines.SEEDS]
    if unknown:
        raise InputError(f"--only {', '.join(unknown)}: expected one of {', '.join(baselines.SEEDS)}")
    data = datasets.load("mnist", None, args.train_size)
    kinds = {baselines.SEEDS[name].config["model"] for name in args.only or baselines.SEEDS}
    start_tensorflow(verbose=args.debug, models=kinds)
    table = baselines.run_baselines(data, args.only, args.scale, args.seed,
                                    progress=lambda line: console.print(line, highlight=False))
    console.print(baselines.format_table(table))
    return EXIT_OK


def cmd_samples(args: argparse.Namespace, console: Console) -> int:
    from search.predict import write_samples

    written = write_samples(Path(args.out), args.n, args.seed)
    console.print(f"wrote {len(written)} real MNIST test digits to {args.out} (true labels in labels.json); try:\n"
                  f"  python -m search predict results/<study>/export/trial-N {args.out}/*.png")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace, console: Console) -> int:
    from search.runtime import start_tensorflow

    start_tensorflow(verbose=args.debug)
    from search.predict import format_table, load_model, predict, to_json

    predictions = predict(load_model(args.model), args.images)
    if args.json:
        sys.stdout.write(to_json(predictions) + "\n")
    else:
        console.print(format_table(predictions))
    failed = sum(p.error is not None for p in predictions)
    if failed:
        print(f"{failed} of {len(predictions)} files could not be read", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _command_line(args: argparse.Namespace) -> str:
    """The command as a person would type it, for model cards: `python -m search ...`."""
    from search.storage import redact

    return redact(shlex.join(["python", "-m", "search", *args.argv]))


def cmd_show(args: argparse.Namespace, console: Console) -> int:
    space = spaces.load_space(args.space)
    tree = Tree(f"[bold]{args.space}[/]" + (f"  [dim]{space.doc.splitlines()[0]}[/]" if space.doc else ""))
    _add_branch(tree, space.space)
    console.print(tree)
    console.print(f"{spaces.count_dimensions(space.space)} searched dimensions at most "
                  "(each Repeat at its largest count, every branch)")
    console.print(f"engines: optuna; keras-tuner {_keras_tuner_support(space)}")
    for label, config in space.baselines.items():
        console.print(f"baseline [cyan]{label}[/]: {config}")
    return EXIT_OK


def _keras_tuner_support(space: spaces.Space) -> str:
    """Which KerasTuner tuners can run the space, or what it cannot express (checked without loading it)."""
    from search import tuner, tuner_space
    from search.errors import SpaceError

    usable, refused = [], ""
    for kind in tuner.TUNERS:
        try:
            tuner_space.check_space(space, kind, None)
            usable.append(kind)
        except SpaceError as err:
            refused = refused or f"{err.path}: {err.problem}"
    return (f"({', '.join(usable)})" if usable else "(none)") + (f"; refused: {escape(refused)}" if refused else "")


def _add_branch(tree: Tree, node: dict[str, object]) -> None:
    for key, value in node.items():
        if isinstance(value, spaces.Choice) and isinstance(value.options, dict):
            branch = tree.add(f"{key}: Choice of {len(value.options)} branches")
            for label, sub in value.options.items():
                _add_branch(branch.add(f"[bold]{label}[/]"), sub)
        elif isinstance(value, spaces.Repeat):
            branch = tree.add(f"{key}: Repeat({value.count!r}) of")
            if isinstance(value.block, dict):
                _add_branch(branch, value.block)
            else:
                branch.add(repr(value.block))
        elif isinstance(value, (spaces.Int, spaces.Float, spaces.Choice)):
            tree.add(f"{key}: [green]{value!r}[/]")
        else:
            tree.add(f"{key} = {value!r}  [dim](fixed)[/]")


def _positive(value: int | float | None, flag: str) -> None:
    if value is not None and value <= 0:
        raise InputError(f"{flag} {value}: must be > 0")


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from search import data as datasets
    from search import study, tuner_space, workers
    from search import tuner as engines
    from search.progress import Progress
    from search.storage import redact

    started = time.monotonic()
    for value, flag in ((args.trials, "--trials"), (args.timeout, "--timeout"), (args.epochs, "--epochs"),
                        (args.top, "--top"), (args.workers, "--workers"), (args.trial_timeout, "--trial-timeout"),
                        (args.recycle_after, "--recycle-after")):
        _positive(value, flag)
    if args.keep_top < 0:
        raise InputError(f"--keep-top {args.keep_top}: must be >= 0")
    if args.precision is None:
        precision_wanted()  # a bad SEARCH_PRECISION stops here, before anything is written
    if args.engine == "keras-tuner" and args.precision == "bfloat16":
        raise InputError("--precision bfloat16: --engine keras-tuner trains in float32 only")
    engines.check_options(args.engine, args.tuner, args.sampler, args.pruner, args.workers, args.storage)
    args.sampler, args.pruner, args.tuner = args.sampler or "tpe", args.pruner or "median", args.tuner or "hyperband"
    if args.workers is None:
        args.workers = 1 if args.engine == "keras-tuner" else workers.default_count()
    label = engines.engine_label(args.tuner) if args.engine == "keras-tuner" else f"optuna/{args.sampler}+{args.pruner}"
    space = spaces.load_space(args.space)
    if args.engine == "keras-tuner":
        tuner_space.check_space(space, args.tuner, args.epochs)
    name = study.study_name(space, args.study)
    location = study.storage_url(name, args.storage, Path(args.results))
    study.make_sampler(args.sampler, 0)  # reject a bad --sampler/--pruner before writing anything
    study.make_pruner(args.pruner)
    data = datasets.load(args.dataset, args.data, args.train_size)
    engines.check_engine(location, name, label)
    if args.engine == "keras-tuner":
        return _run_keras_tuner(args, console, space, name, location, data, label, started)

    opened = study.open_study(name, location, args.sampler, args.pruner, args.seed)
    study.check_dataset(opened, data)
    engines.note_engine(opened, label)
    folder = Path(args.results) / name
    spec = workers.WorkerSpec(
        space_file=str(_copy_space(space, folder)), study=name, location=location, dataset=args.dataset,
        data_path=args.data, train_size=args.train_size, epochs=args.epochs, budget=args.trials,
        sampler=args.sampler, pruner=args.pruner, timeout=args.timeout, trial_timeout=args.trial_timeout,
        results=args.results, keep=args.keep_top, command=_command_line(args), debug=args.debug,
        max_trials=args.recycle_after, precision=args.precision)
    # Threads and precision belong to each machine (a joining worker picks its own).
    settings = {k: v for k, v in vars(spec).items() if k not in ("worker", "threads", "debug", "precision")}
    study.save_settings(opened, {**settings, "space_source": Path(spec.space_file).read_text()})
    lost = study.storage.reap_dead(opened)  # trials left RUNNING by a process that died
    if lost:
        console.print(f"trial(s) {', '.join(map(str, lost))} were left running by a process that died: "
                      "failed, and queued once more")
    study.enqueue_baselines(opened, space)
    done = sum(study.counted(t) for t in opened.get_trials(deepcopy=False))
    console.print(f"study [bold]{name}[/] in {redact(location)}: {done} of {args.trials} trials done; "
                  f"{data.name} {len(data.train_labels):,} train / {len(data.val_labels):,} val / "
                  f"{len(data.test_labels):,} test" + (f"; {args.workers} workers" if args.workers > 1 else "")
                  + _precision_note(args.precision))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with Progress(console, args.trials, done) as progress:
            progress.seed_bests(opened)
            outcome = workers.run_local(spec, args.workers, on_trial=progress, say=console.print,
                                        on_epoch=progress.epoch)
            code = outcome.exit_code()
    except KeyboardInterrupt:
        code = workers.EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _finish(opened, folder, args, console, code, started)


def _run_keras_tuner(args: argparse.Namespace, console: Console, space: spaces.Space, name: str, location: str,
                     data: Any, label: str, started: float) -> int:
    """`run --engine keras-tuner`: the same study folder and storage, trials run by KerasTuner here."""
    from search import study
    from search import tuner as engines
    from search.progress import Progress
    from search.runtime import start_tensorflow
    from search.storage import redact

    opened = study.open_study(name, location, "random", "none", args.seed)  # baselines only: nothing sampled
    study.check_dataset(opened, data)
    engines.note_engine(opened, label)
    folder = Path(args.results) / name
    _copy_space(space, folder)
    lost = study.storage.reap_dead(opened)
    if lost:
        console.print(f"trial(s) {', '.join(map(str, lost))} were left running by a process that died: failed")
    done = sum(study.counted(t) for t in opened.get_trials(deepcopy=False))
    console.print(f"study [bold]{name}[/] ({label}) in {redact(location)}: {done} of {args.trials} trials done; "
                  f"{data.name} {len(data.train_labels):,} train / {len(data.val_labels):,} val / "
                  f"{len(data.test_labels):,} test")
    start_tensorflow(verbose=args.debug, models=space.model_kinds())
    settings = engines.Settings(tuner=args.tuner, trials=args.trials, epochs=args.epochs, timeout=args.timeout,
                                trial_timeout=args.trial_timeout, keep=args.keep_top, command=_command_line(args),
                                debug=args.debug)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with Progress(console, args.trials, done) as progress:
            progress.seed_bests(opened)
            code = engines.run(space, data, opened, folder, settings, progress)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _finish(opened, folder, args, console, code, started)


def _copy_space(space: spaces.Space, folder: Path) -> Path:
    """The results folder keeps the space file it was searched with (workers elsewhere get it too)."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "space.py"
    text = Path(space.source).read_text()
    if not copy.exists() or copy.read_text() != text:
        copy.write_text(text)
    return copy


def _finish(opened: Any, folder: Path, args: argparse.Namespace, console: Console, code: int,
            started: float) -> int:
    """Write and print the leaderboard, and say how the run ended."""
    from search import leaderboard, study

    table = leaderboard.frame(opened)
    written = leaderboard.write(table, folder)
    console.print(leaderboard.render(table, f"{opened.study_name} ({leaderboard.engine(opened)}): ranked by test "
                                            "accuracy", top=args.top))
    console.print(f"wrote {', '.join(map(str, written))} in {time.monotonic() - started:.0f} s")
    if code == EXIT_INTERRUPTED:
        kept = sum(study.counted(t) for t in opened.get_trials(deepcopy=False))
        console.print(f"[magenta]interrupted[/]: {kept} finished trials kept; run the same command to resume")
    elif code == EXIT_FAILED:
        console.print("[red]stopped[/]: too many trials failed in a row; the leaderboard shows their reasons")
    return code


def cmd_worker(args: argparse.Namespace, console: Console) -> int:
    from search import study, workers

    for value, flag in ((args.trial_timeout, "--trial-timeout"), (args.recycle_after, "--recycle-after")):
        _positive(value, flag)
    if args.precision is None:
        precision_wanted()
    opened = study.load_study(args.study, Path(args.results), args.storage)
    settings = opened.user_attrs.get("settings")
    if not settings:
        raise InputError(f"study {args.study!r} has no settings to join with: start it with `search run` first")
    folder = Path(args.results) / opened.study_name
    folder.mkdir(parents=True, exist_ok=True)
    space_file = folder / "space.py"
    space_file.write_text(settings["space_source"])
    spaces.load_space(space_file)  # the same validation as `run`, before any trial starts
    spec = workers.WorkerSpec.joining(
        settings, space_file=str(space_file), results=args.results, debug=args.debug,
        location=study.storage_url(opened.study_name, args.storage, Path(args.results)),
        trial_timeout=args.trial_timeout or settings.get("trial_timeout"), max_trials=args.recycle_after,
        command=_command_line(args), precision=args.precision)
    console.print(f"worker joining study {opened.study_name} ({spec.budget} trials in total)")
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code = workers.run_local(spec, 1, on_trial=lambda study, trial: None, say=console.print).exit_code()
    except KeyboardInterrupt:
        code = workers.EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _finish(opened, folder, argparse.Namespace(**{**vars(args), "top": 10}), console, code, started)


def _precision_note(chosen: str | None) -> str:
    """Said at the start of a run whose trials train in bfloat16 on the CPU, so that nobody has to
    learn it from a trial's attributes."""
    if precision_wanted(chosen) != "bfloat16":
        return ""
    return "; on the CPU, trials train in mixed bfloat16 (--precision float32 turns it off)"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
