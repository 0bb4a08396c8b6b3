"""The command line: argparse, and one short handler per command.

`main(argv)` is what `python -m search` and the `search` script call, and what tests call
in-process. A handler parses nothing itself and decides nothing: it hands its arguments to the
Python API of its stage (search/run.py for `run`, `worker` and `confirm`; results/ and serving/
for the rest). Every stage checks its input before it writes anything; an `InputError` becomes
one line on stderr and exit code 2, with the traceback only under `--debug`.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import sys
import unicodedata
from pathlib import Path
from typing import Any, NoReturn, TextIO, cast

from rich.console import Console
from rich.markup import escape

from search import ranges
from search.errors import EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, InputError
from search.study.cluster import LOCAL
from search.training.runtime import PRECISIONS


class UsageError(InputError):
    """A command line argparse cannot parse."""


class Redacted(io.TextIOBase):
    """A stream that shows no password: what the console writes goes through `shown`, as every error
    line does, so that a URL given where no URL belongs (`samples --out postgresql://ann:pw@db/x`) is not
    shown back by whatever line names it."""

    def __init__(self, stream: TextIO, passwords: frozenset[str]) -> None:
        self.stream, self.passwords = stream, passwords

    def write(self, text: str) -> int:
        return self.stream.write(shown(text, self.passwords))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


class Parser(argparse.ArgumentParser):
    """argparse, answering a bad argument in one line that points to --help, not with the usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see python -m {self.prog} --help)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passwords = passwords_in(argv)
    # Logs and pipes get a wide fixed width, so tables stay one row per trial there too.
    console = Console(file=cast(TextIO, Redacted(sys.stdout, passwords)), highlight=False,
                      width=None if sys.stdout.isatty() else 200)
    try:
        args = build_parser().parse_args(argv)
        _check_text(args)
        args.argv = argv
        return int(args.handler(args, console))
    except InputError as err:
        if argv[:1] == ["--debug"] and not isinstance(err, (UsageError, ranges.FlagError)):  # --debug comes first
            raise
        print(f"error: {shown(escaped(str(err)), passwords)}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:  # a Ctrl-C outside the stages that stop cooperatively (stopping.py)
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def passwords_in(argv: list[str]) -> frozenset[str]:
    """The passwords of the URLs on a command line (`user:PASSWORD@host`, with a scheme or without, as a
    value or after `--flag=`), as written: `shown` hides them wherever they appear, even split by a space
    or a line break that no URL parser would read past. Shorter than 3 characters they are left to the
    URL parsing alone, since hiding every "a" of a message would garble it."""
    found = set()
    for argument in argv:
        userinfo = argument.split("://", 1)[-1].rpartition("@")[0]
        password = userinfo.partition(":")[2]
        if len(password) >= 3:
            found.add(password)
    return frozenset(found)


def shown(text: str, passwords: frozenset[str]) -> str:
    """`text` as the console or an error line may show it: every given password, as written or escaped,
    as ***, then each word that may hold a URL through `storage.redact_text`."""
    for password in sorted(passwords, key=len, reverse=True):
        for form in (password, escaped(password), repr(password)[1:-1]):
            text = text.replace(form, "***")
    if "@" in text or "://" in text:
        from search.study.storage import redact_text  # Optuna's import, only when a line needs it

        text = redact_text(text)
    return text


def escaped(text: str) -> str:
    """`text` with every character that could end or redraw a line (a newline, a carriage return, any other
    control character, Unicode's line and paragraph separators) written as its escape: a value the user
    gave, echoed in an error, keeps the error one line."""
    return "".join(repr(char)[1:-1] if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char
                   for char in text)


NAME_BYTES = 255  # a file or folder name, on every file system Linux writes


def _check_text(args: argparse.Namespace) -> None:
    """Every text argument could be a path, and one that no file system takes (a name in it longer than
    255 bytes, a NUL byte) is refused here in one line naming it, rather than by whichever call first
    hands it to the operating system. A URL is not a path: its password may be as long as it likes."""
    for dest, values in vars(args).items():
        for value in values if isinstance(values, list) and dest not in _NAMES else [values]:
            if not isinstance(value, str) or "://" in value or dest in _NAMES:
                continue
            name = dest if dest in _POSITIONAL else "--" + dest.replace("_", "-")
            shown = repr(value) if len(value) <= 60 else f"{value[:40]!r}... ({len(value)} characters)"
            if "\0" in value:
                raise UsageError(f"{name} {shown}: holds a NUL byte, which no file name can")
            longest = max(len(os.fsencode(part)) for part in value.split("/"))
            if longest > NAME_BYTES:
                raise UsageError(f"{name} {shown}: a name in a path is at most {NAME_BYTES} bytes, this one has "
                                 f"{longest}")


_NAMES = {"study", "studies", "warm_start"}  # study names: checked as such, with what a name may hold (studies.py)
_POSITIONAL = {"space", "model", "images"}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="search", description="Hyperparameter search for MNIST digits.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or resume) a search over a space file")
    run.add_argument("space", help="space file, e.g. spaces/mlp.py")
    _number(run, "--trials", ranges.TRIALS, default=50, help="total finished trials the study should hold (50)")
    _number(run, "--timeout", ranges.SECONDS, help="stop starting trials after this many seconds")
    run.add_argument("--study", help="study name (default: the space file's name)")
    run.add_argument("--sampler", help="tpe (default), nsga2, random, cmaes or gp")
    run.add_argument("--pruner", help="median, halving, hyperband or none (default: the space file's PRUNER, "
                                       "else median)")
    _number(run, "--min-epochs", ranges.MIN_EPOCHS, help="epochs every trial trains before the pruner first judges "
                                                          "it; halving's later rungs scale with it (2)")
    run.add_argument("--engine", default="optuna", help="optuna (default) or keras-tuner (KerasTuner 1.4)")
    run.add_argument("--tuner", help="with --engine keras-tuner: hyperband (default), bayesian or random")
    _number(run, "--seed", ranges.SEED, help="base seed; trial N uses seed+N (default: random, kept in the study)")
    run.add_argument("--storage", help="Optuna storage URL (default: the journal file results/<study>/journal.log)")
    _number(run, "--epochs", ranges.EPOCHS, help="override every config's epochs (quick runs)")
    _number(run, "--train-size", ranges.TRAIN_SIZE, help="train on the first N of the 55,000 training images")
    run.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    run.add_argument("--data", help="folder of the four IDX files (plain or .gz), or a Keras mnist.npz")
    run.add_argument("--results", default="results", help="results folder (default: results)")
    _number(run, "--top", ranges.ROWS, default=20, help="rows of the leaderboard to print (20)")
    run.add_argument("--confirm", action="store_true",
                     help="then confirm the search as `confirm STUDY` does with its defaults, in the same command")
    _number(run, "--keep-top", ranges.KEEP_TOP, default=10, help="trials by validation that keep their weights (10)")
    run.add_argument("--deterministic", action="store_true", help="op determinism, one thread: `replay` is exact")
    run.add_argument("--accept-space-change", action="store_true", help="resume although the space file changed")
    run.add_argument("--objectives", default="accuracy", help="accuracy (default), or with params and/or latency: "
                                                              "a multi-objective search (no pruning)")
    _number(run, "--max-params", ranges.MAX_PARAMS, help="reject configs with more weights, before training")
    _number(run, "--max-latency-ms", ranges.LATENCY_MS, help="reject configs slower on one image (CPU, ms)")
    run.add_argument("--warm-start", metavar="STUDY", help="first queue the best configurations by validation of "
                                                            "this earlier study (same storage and results folder)")
    _number(run, "--warm-top", ranges.WARM_TOP, metavar="K", help="how many of them (5)")
    run.add_argument("--enqueue", metavar="FILE", help="first queue the configurations of this JSON file: a list of "
                                                       "{parameter: value} objects, named as `show` prints them")
    run.add_argument("--ray", nargs="?", const=LOCAL, metavar="ADDRESS",
                     help="run the workers on the Ray cluster whose head is at ADDRESS (HOST:PORT); with no address, "
                          "on a Ray instance started here (pip install 'search[ray]')")
    _number(run, "--cpus-per-worker", ranges.CPUS_PER_WORKER, default=1,
            help="with --ray: CPUs each worker asks the cluster for and trains on (1)")
    _worker_options(run, several=True, timeout=True)
    _artifacts(run, "also keep the kept trials' weights there (a folder, which may be shared, or s3://BUCKET), "
                    "for export anywhere; workers that join inherit it")
    run.set_defaults(handler=cmd_run)

    worker = commands.add_parser("worker", help="join a stored study as one more worker (any machine)")
    worker.add_argument("--study", required=True, help="the study's name")
    _worker_options(worker, several=False, timeout=True)
    _add_location(worker)
    _artifacts(worker, "this machine's path to the search's artifact store (default: the one it recorded)")
    worker.set_defaults(handler=cmd_worker)

    confirm = _study_command(commands, "confirm", cmd_confirm, "train the best configurations again, fresh seeds")
    _number(confirm, "--top", ranges.CONFIRM_TOP, default=2,
            help="the best by validation, the best baseline among them (2: the best and the best baseline)")
    _number(confirm, "--seeds", ranges.CONFIRM_SEEDS, default=3, help="trainings of each, with fresh seeds (3)")
    _worker_options(confirm, several=True, timeout=False)

    replay = _study_command(commands, "replay", cmd_replay, "train a finished trial again from its record, compare")
    _number(replay, "--trial", ranges.TRIAL, required=True, help="the trial's number")
    replay.add_argument("--deterministic", action="store_true", help="with op determinism on one thread: exact "
                                                                     "when the trial ran so (run --deterministic)")

    board = _study_command(commands, "leaderboard", cmd_leaderboard, "the ranked trials of a stored study")
    _number(board, "--top", ranges.ROWS, help="show only the first K rows")
    board.add_argument("--sort", choices=["test", "val", "params", "time"], default="test")
    board.add_argument("--state", choices=["complete", "pruned", "failed", "all"], default="all")
    board.add_argument("--format", choices=FORMATS, default="table")

    compare = commands.add_parser("compare", help="the trials several studies select, side by side")
    compare.add_argument("studies", nargs="+", help="study names or space files")
    compare.add_argument("--format", choices=FORMATS, default="table")
    _add_location(compare)
    compare.set_defaults(handler=cmd_compare)

    export = _study_command(commands, "export", cmd_export, "write a trial as .keras, SavedModel, TFLite and a card")
    _number(export, "--trial", ranges.TRIAL, help="trial number (default: the confirmed winner, else the kept "
                                                   "trial with the best validation accuracy)")
    export.add_argument("--full-train", action="store_true", help="train it again on all 60,000 images, export that")
    _number(export, "--ensemble", ranges.ENSEMBLE, metavar="K", help="one model averaging the K best kept trials")
    export.add_argument("--out", help="output folder (default: results/<study>/export/trial-N)")
    _artifacts(export, FETCH)

    report = commands.add_parser("report", help="write results/<study>/report.html and its figures as PNG; with "
                                                "several studies, one page of them side by side")
    report.add_argument("studies", nargs="+", metavar="study", help="study names or space files")
    _add_location(report)
    _artifacts(report, FETCH + "; one study only")
    report.set_defaults(handler=cmd_report)

    samples = commands.add_parser("samples", help="write real MNIST test digits as PNG files to try predict on")
    samples.add_argument("--out", required=True, help="folder to write the PNGs (and labels.json) into")
    _number(samples, "--n", ranges.SAMPLES, default=20, help="how many digits (20)")
    _number(samples, "--seed", ranges.SEED, default=0, help="which digits: a seed for the draw (0)")
    samples.set_defaults(handler=cmd_samples)

    predict = commands.add_parser("predict", help="recognize digits in your own image files")
    predict.add_argument("model", help="an export folder (its model.tflite, else model.keras), .tflite or .keras")
    predict.add_argument("images", nargs="+", help="PNG, JPEG or BMP files, any colour mode, up to 89 megapixels")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.set_defaults(handler=cmd_predict)

    seeds = commands.add_parser("baselines", help="train the five tutorials once each and compare with their papers")
    seeds.add_argument("--only", action="append", metavar="NAME", help="S1, S2, S3, S4, S4-aug or S5 (repeatable)")
    _number(seeds, "--scale", ranges.SCALE, default=1.0, help="multiply every tutorial's epochs/steps (quick runs)")
    _number(seeds, "--train-size", ranges.TRAIN_SIZE, help="train on the first N of the 55,000 training images")
    _number(seeds, "--seed", ranges.SEED, default=0)
    seeds.add_argument("--results", default="results", help="results folder whose reference store the trainings "
                                                             "join when as written (default: results)")
    seeds.set_defaults(handler=cmd_baselines)

    show = commands.add_parser("show", help="print a space file as a tree, with its dimensions")
    show.add_argument("space")
    show.set_defaults(handler=cmd_show)
    return parser


FORMATS = ["table", "csv", "md", "json"]
FETCH = "the artifact store to fetch a trial's weights from when they are not here (default: the search's)"


def _number(parser: argparse.ArgumentParser, flag: str, allowed: ranges.Range, **options: Any) -> None:
    """A numeric flag: its value is parsed and checked against `allowed` at once (ranges.py), so a bad
    number stops the command in one line before anything runs."""
    parser.add_argument(flag, type=allowed.flag_type(flag), **options)


def _study_command(commands: Any, name: str, handler: Any, help: str) -> argparse.ArgumentParser:
    """A command on a stored study: its name (or space file), --results and --storage."""
    command: argparse.ArgumentParser = commands.add_parser(name, help=help)
    command.add_argument("study", help="study name or its space file")
    _add_location(command)
    command.set_defaults(handler=handler)
    return command


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument("--storage", help="Optuna storage URL, if not the study's own journal file")


def _artifacts(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--artifacts", metavar="LOCATION", help=help)


def _worker_options(parser: argparse.ArgumentParser, several: bool, timeout: bool) -> None:
    """How this machine's workers train: what run, worker and confirm share."""
    if several:
        _number(parser, "--workers", ranges.WORKERS, help="worker processes here (default: one per core, at most 4; "
                                                        "1 under --engine keras-tuner; with --ray: as many as "
                                                        "the cluster holds; confirm: one per training when the "
                                                        "cores do not divide them, up to twice the cores)")
    if timeout:
        _number(parser, "--trial-timeout", ranges.SECONDS, help="fail a trial that trains longer than this (s)")
    _number(parser, "--recycle-after", ranges.RECYCLE_AFTER, default=25,
                        help="replace a worker process after this many trials: TensorFlow's memory grows (25)")
    parser.add_argument("--tensorboard", metavar="DIR", help="write each trial's curves and hyperparameters there "
                                                              "for TensorBoard (HParams); worker and confirm: "
                                                              "default the search's")
    parser.add_argument("--precision", choices=PRECISIONS, help="auto (default: bfloat16 on a CPU with AMX, else "
                                                                "float32), float32 or bfloat16; exports are float32")


def _command_line(args: argparse.Namespace) -> str:
    """The command as a person would type it, for model cards: `python -m search ...`."""
    from search.study.storage import redact_command

    return shlex.join(["python", "-m", "search", *redact_command(args.argv)])


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from search import run

    options = run.options_from(args, run.SearchOptions, space_file=args.space, command=_command_line(args))
    return run.run_search(options, console)


def cmd_confirm(args: argparse.Namespace, console: Console) -> int:
    from search import run

    return run.confirm_search(run.options_from(args, run.ConfirmOptions, command=_command_line(args)), console)


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    from search.results.replay import replay

    return replay(args.study, args.trial, args.deterministic, Path(args.results), args.storage, console, args.debug)


def cmd_worker(args: argparse.Namespace, console: Console) -> int:
    from search import run

    return run.join_search(run.options_from(args, run.JoinOptions, command=_command_line(args)), console)


def cmd_show(args: argparse.Namespace, console: Console) -> int:
    from search.engines import keras_tuner_space
    from search.space import load_space, summary, tree

    space = load_space(args.space)
    for line in (tree(space), *summary(space), f"engines: optuna; keras-tuner "
                                                            f"{escape(keras_tuner_space.support(space))}"):
        console.print(line)
    return EXIT_OK


def cmd_leaderboard(args: argparse.Namespace, console: Console) -> int:
    from search.results import leaderboard

    opened, _ = _stored(args)
    table = leaderboard.select(every := leaderboard.frame(opened), args.sort, args.state, args.top)
    title = (f"{opened.study_name} ({leaderboard.engine(opened)}): {len(table)} of {len(every)} trials, "
             f"sorted by {args.sort}")
    leaderboard.emit(table, args.format, console, title, notes=leaderboard.summary(opened, every))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from search.results import leaderboard
    from search.study import studies

    # All are opened first: one bad name fails before anything is printed.
    opened = [studies.load_study(name, Path(args.results), args.storage) for name in args.studies]
    title = "the trial each study selects by validation accuracy"
    leaderboard.emit(leaderboard.compare(opened), args.format, console, title)
    return EXIT_OK


def _writable(args: argparse.Namespace, *flags: str, results: bool = True) -> None:
    """The folders a command writes into (--results, and `flags` when given) can be written: checked
    before anything is read or written."""
    from search.files import check_writable

    for flag in (("--results",) if results else ()) + flags:
        if (value := getattr(args, flag.lstrip("-").replace("-", "_"))) is not None:
            check_writable(value, flag)


def _stored(args: argparse.Namespace) -> tuple[Any, Path]:
    """The study a command names, opened to read, and its results folder."""
    from search.study import studies

    opened = studies.load_study(args.study, Path(args.results), args.storage)
    return opened, Path(args.results) / opened.study_name


def _kept(args: argparse.Namespace) -> Any:
    """Where export and report find the study's kept trials (artifacts.Lookup); TensorFlow started after it."""
    from search.study import artifacts, studies
    from search.training.runtime import start_tensorflow

    opened, folder = _stored(args)
    kept = artifacts.Lookup(folder, opened, artifacts.store_for(opened, args.artifacts),
                            studies.storage_url(opened.study_name, args.storage, Path(args.results)))
    start_tensorflow(verbose=args.debug)
    return kept


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    _writable(args, "--out")
    kept = _kept(args)
    from search.results.export import describe, export

    out = export(kept.study_dir, args.trial, Path(args.out) if args.out else None, command=_command_line(args),
                 study=kept.study, full_train=args.full_train, ensemble=args.ensemble, store=kept.store,
                 storage=kept.storage)
    console.print(describe(out))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    if len(args.studies) > 1:
        from search.results.compared import write_compared
        from search.study import studies

        if args.artifacts:
            raise InputError(f"--artifacts {args.artifacts}: a page of several studies runs no model; give one study")
        _writable(args)
        path = write_compared(studies.load_studies(args.studies, Path(args.results), args.storage), Path(args.results))
        console.print(f"wrote {path}, {len(args.studies)} studies side by side (open it in a browser; no network "
                      f"needed), and its figures in {path.parent / 'report'}")
        return EXIT_OK
    args.study = args.studies[0]
    _writable(args)
    kept = _kept(args)
    from search.results.report import write_report

    path = write_report(kept.study, kept.study_dir, kept.store, kept.storage)
    console.print(f"wrote {path} (open it in a browser; no network needed) and its figures in {path.parent / 'report'}")
    return EXIT_OK


def cmd_baselines(args: argparse.Namespace, console: Console) -> int:
    from search.study import references

    _writable(args)
    results = Path(args.results)
    references.stored(results)  # a damaged store stops here, before anything trains
    table, data = references.reproduce(args.only, args.scale, args.seed, args.train_size, args.debug,
                                       progress=lambda line: console.print(line, highlight=False))
    console.print(references.format_table(table))
    added = references.add_baselines(table, data, args.seed, results)
    if not added:
        console.print("not the tutorials as written (shortened, or on part of the data): the reference store is "
                      "left as it was")
        return EXIT_OK
    console.print(f"added {added} training(s) to {results / references.STORE}; on this kind of machine it holds:")
    for line in references.summary(results, references.machine_here(data)):
        console.print(f"  {line}", highlight=False)
    return EXIT_OK


def cmd_samples(args: argparse.Namespace, console: Console) -> int:
    from search.serving.predict import write_samples

    _writable(args, "--out", results=False)
    written = write_samples(Path(args.out), args.n, args.seed)
    console.print(f"wrote {len(written)} real MNIST test digits to {args.out} (true labels in labels.json); try:\n"
                  f"  python -m search predict results/<study>/export/trial-N {args.out}/*.png")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace, console: Console) -> int:
    from search.results.loading import load_model
    from search.serving.predict import format_table, predict, to_json

    predictions = predict(load_model(args.model, verbose=args.debug), args.images)
    if args.json:
        sys.stdout.write(to_json(predictions) + "\n")
    else:
        console.print(format_table(predictions))
    if failed := sum(p.error is not None for p in predictions):
        print(f"{failed} of {len(predictions)} files could not be read", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
