"""Where studies live, and what happens to trials whose worker is gone.

Beside the study driver: `open_storage` turns `--storage` into an Optuna storage, and the checks here
stop a malformed location, or a results folder that belongs to another storage, before anything is
written. The default is a journal file, `results/<study>/journal.log` (journal.py: the file itself, its
repair when torn and its lock), which several worker processes on one machine can share (SQLite's single
writer lock is what gives parallel Optuna users "database is locked").
`postgresql://...` (or any SQLAlchemy URL) is an RDBStorage with a heartbeat, so a worker that dies on
another machine has its trial failed and retried by the others; `reap_dead` does the same for trials
whose process died on this machine. Every location shown passes through `redact`. Which trials count
toward `--trials` is the trial record's to say (record.py).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlencode

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from search.errors import InputError, one_line
from search.study import record
from search.study.journal import JOURNAL, check_not_foreign, open_journal
from search.study.journal_lock import pid_alive
from search.study.record import HOST, Attr

OWNER = "storage.txt"  # in a results folder: the storage its study is in
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60  # a trial with no heartbeat for this long belongs to a dead worker
ORPHAN_SECONDS = 60  # a RUNNING trial seen with no pid this long was never run (reap_dead)


def default_location(results: Path, name: str) -> str:
    return str(results / name / JOURNAL)


# Query parameters that may carry a secret (libpq reads `password`; drivers take others).
_SECRET_QUERY = re.compile(r"pass|pwd|secret|token|key|auth|cred", re.IGNORECASE)


def redact(location: str) -> str:
    """A storage location safe to print, log or write: the one way any of them is shown.

    A file path is itself (but for what comes before an `@`: it may be a URL without its scheme). A
    URL goes through SQLAlchemy's parser, the one the storage itself uses, and is rendered with its
    password as ***, and its query as *** if any of its keys may name a secret (`?password=`). What
    that parser cannot read unambiguously (not a URL, or one with a second `@` or one in its query,
    where it would take part of a password for the host) keeps only its scheme: `postgresql://***`."""
    if "://" not in location:  # a file path; with an @, perhaps a URL without its scheme
        return location if "@" not in location else "***@" + location.rsplit("@", 1)[1]
    scheme = location.split("://", 1)[0]
    safe = f"{scheme}://***" if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) else "***"
    if location.count("@") > 1 or "@" in location.partition("?")[2]:
        return safe  # an unescaped @ in a password: the parse would split it there, and the rest would show
    try:
        parsed = make_url(location)
    except Exception:  # SQLAlchemy's ArgumentError, or a ValueError from a bad port
        return safe
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    # The keys as written: the parser drops a key whose value is empty, and what follows it may be the secret's.
    written = [unquote_plus(part.partition("=")[0]) for part in location.partition("?")[2].split("&")]
    if any(_SECRET_QUERY.search(key) for key in [*parsed.query, *written]):
        return shown + "?***"  # all of it: an unescaped & in the secret would carry part of it into the next key
    return shown + ("?" + urlencode(parsed.query, doseq=True) if parsed.query else "")


def redact_command(argv: list[str]) -> list[str]:
    """A command line's arguments safe to print or record: each URL in it (`--storage URL` or
    `--storage=URL`) through `redact`."""
    def one(argument: str) -> str:
        flag, equals, value = argument.partition("=")
        if equals and flag.startswith("--"):
            return flag + equals + redact(value)
        return redact(argument)

    return [one(argument) for argument in argv]


def redact_text(text: str) -> str:
    """A message safe to show: each word of it that may hold a URL's password (one with `://` or `@`)
    through `redact`. The one place every error line passes on its way out (cli.main), so that a URL
    given where no URL belongs (`--only postgresql://ann:pw@db/x`) is not shown back with its password."""
    return _SECRET_WORD.sub(lambda found: redact(found[0]), text)


# A word holding `://` or `@`, without the quotes, commas or colon around it in a message.
_SECRET_WORD = re.compile(r"[^\s'\",]*(?:://|@)[^\s'\",]*?(?=[:;,.)]*(?:[\s'\",]|$))")


def check_location(location: str) -> None:
    """Reject a malformed --storage before anything is written."""
    if re.match(r"^[a-z][a-z0-9+]*://", location):
        if location.startswith("sqlite://") and not location.startswith("sqlite:///"):
            raise InputError(f"--storage {redact(location)!r}: a SQLite URL is sqlite:///path/to/file.db")
        return
    if not location.endswith(".log"):
        raise InputError(f"--storage {redact(location)!r}: expected a journal file path ending in .log, or a "
                         "database URL such as postgresql://user:password@host/db or sqlite:///path/study.db")


def check_given(location: str) -> None:
    """A --storage the user gave: well formed, and a file path (a journal, or SQLite's) in a folder
    that exists, since a typo in a path should not create folders."""
    check_location(location)
    if "://" in location and not location.startswith("sqlite:///"):
        return
    file = Path(location.removeprefix("sqlite:///"))
    if file.is_dir():
        raise InputError(f"--storage {redact(location)}: is a folder; give a file in it")
    if not file.parent.is_dir():
        raise InputError(f"--storage {redact(location)}: folder {redact(str(file.parent))} does not exist")


def check_results(results: Path) -> None:
    """--results must be a folder, or nothing yet (it is made on the first write); not under a file either.
    A command that writes there checks more (`files.check_writable`)."""
    existing = next(p for p in (results, *results.absolute().parents) if os.path.lexists(p))
    if not existing.is_dir():
        where = "" if existing == results else f" ({existing} is a file)"
        raise InputError(f"--results {results}: not a folder{where}")


def _owner(folder: Path, location: str) -> str:
    """How a results folder names the storage of its study: `journal.log` for the folder's own
    journal, else the location, file paths absolute and any password hidden."""
    if "://" not in location and Path(location).resolve() == (folder / JOURNAL).resolve():
        return JOURNAL
    if location.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(location.removeprefix("sqlite:///")).resolve())
    return redact(location) if "://" in location else str(Path(location).resolve())


def check_folder(folder: Path, location: str) -> None:
    """A study's results folder (kept weights, exports, report) belongs to one storage: refuse a study
    of the same name from another storage, whose trial numbers would clash with its files."""
    marker, wanted = folder / OWNER, _owner(folder, location)
    recorded = (marker.read_text().strip() if marker.is_file()
                else JOURNAL if wanted != JOURNAL and (folder / JOURNAL).is_file() else wanted)
    if recorded != wanted:
        held = f"the journal {folder / JOURNAL}" if recorded == JOURNAL else recorded
        raise InputError(f"{folder}: holds the files of study {folder.name!r} stored in {held}, not of the one in "
                         f"{redact(location)}: pass --results DIR to keep the two apart")


def claim_folder(folder: Path, location: str) -> None:
    """Create a study's results folder, recording which storage it belongs to (see `check_folder`)."""
    check_folder(folder, location)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OWNER
    if not marker.is_file():
        staging = marker.with_name(f".{OWNER}-{os.getpid()}")
        staging.write_text(_owner(folder, location) + "\n")
        staging.replace(marker)


def open_storage(location: str) -> BaseStorage:
    """The Optuna storage for a journal file path or a database URL. A journal is checked and, if its
    last record was cut short, repaired first (`open_journal`)."""
    check_location(location)
    check_not_foreign(location)
    if "://" not in location:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        return open_journal(location)
    if location.startswith("sqlite:///"):
        Path(location.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # Optuna marks heartbeats experimental and warns in two lines on every open.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        return RDBStorage(
            location,
            engine_kwargs={"pool_pre_ping": True},  # reconnect after a database restart
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=_heartbeat_lost,
        )
    except Exception as err:  # bad driver, host down, wrong password: one line, password hidden
        raise InputError(f"--storage {redact(location)}: cannot open: {redact(one_line(err))}") from err


def _heartbeat_lost(study: optuna.Study, trial: FrozenTrial) -> None:
    retry_lost(study, trial)  # Optuna failed it: its worker sent no heartbeat for GRACE_SECONDS


def exists(location: str) -> bool:
    """Whether a study storage is there to read (database URLs are assumed to exist)."""
    if location.startswith("sqlite:///"):
        return Path(location.removeprefix("sqlite:///")).is_file()
    return "://" in location or Path(location).is_file()


def retry_lost(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue the configuration of a trial lost with its worker once more, unless it was itself the retry
    of a lost one: a config that kills its worker (out of memory) is not run a third time; nor a surplus
    trial (started after the budget was taken), which never ran and has no place in the budget to run in."""
    if trial.user_attrs.get(Attr.SURPLUS):
        return
    source = trial.user_attrs.get(Attr.RETRY_OF)
    if source is None or not record.lost_with_worker(study.get_trials(deepcopy=False)[int(source)]):
        queue_again(study, trial.number, trial.params, trial.user_attrs)


def queue_again(study: optuna.Study, number: int, params: dict[str, Any], user_attrs: dict[str, Any]) -> None:
    """Queue trial `number`'s params once more, as its retry (RETRY_OF), which continues its checkpoint if
    it kept one (lifecycle.run). What makes it a baseline or a confirm training goes with it (a confirm
    training's seed too)."""
    attrs: dict[str, Any] = {Attr.RETRY_OF: number}
    confirming = user_attrs.get(Attr.CONFIRM_OF) is not None
    kept = (Attr.CONFIRM_OF, Attr.REPLICA, Attr.SEED) if confirming else (Attr.BASELINE,)
    attrs.update({key: user_attrs[key] for key in kept if user_attrs.get(key) is not None})
    study.enqueue_trial(params, user_attrs=attrs)


def reap_dead(study: optuna.Study, mine: bool = False, gone: Collection[tuple[str, int]] = ()) -> list[int]:
    """Fail and retry this host's RUNNING trials whose process is gone; returns their numbers.

    With `mine`, this process's own RUNNING trials are reaped too: a worker calls it when it has
    reconnected after losing its database, when none of its trials can still be running. `gone`
    names (host, pid) of workers known to be dead on any machine (a Ray node that was lost).
    A RUNNING trial that never recorded its host and pid is reaped too, whichever machine made it,
    once this process has seen it so for `ORPHAN_SECONDS`: a process killed, or whose database went
    away, inside Optuna's `ask` leaves one (the trial is created, the objective that records them
    never runs; a stop request never does, since it is only acted on at safe points), and a live one
    records them within milliseconds. The time is this process's own
    (`orphan_ages`), not the trial's start: Optuna stamps that with the local time of the machine
    that asked, which on another machine may be minutes or a time zone away.
    """
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ages = _orphans_seen(study, running)
    reaped = []
    for trial in running:
        pid = trial.user_attrs.get(Attr.PID)
        if pid is None:
            if ages[trial.number] < ORPHAN_SECONDS:
                continue
        elif (trial.user_attrs.get(Attr.HOST), pid) in gone:
            pass
        elif trial.user_attrs.get(Attr.HOST) != HOST:
            continue
        elif pid_alive(pid) and not (mine and pid == os.getpid()):
            continue
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        retry_lost(study, trial)
        reaped.append(trial.number)
    return reaped


def orphan_ages(study: optuna.Study) -> list[float]:
    """How long this process has seen each RUNNING trial that never recorded a pid (see `reap_dead`)."""
    return list(_orphans_seen(study, study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))).values())


_FIRST_SEEN: dict[tuple[str, int, Any], float] = {}  # (study, trial number, start) -> time.monotonic()


def _orphans_seen(study: optuna.Study, running: list[FrozenTrial]) -> dict[int, float]:
    """Seconds since this process first saw each of these RUNNING trials without a pid, by number;
    trials of the study no longer like that are forgotten."""
    now = time.monotonic()
    ages, keys = {}, set()
    for trial in running:
        if trial.user_attrs.get(Attr.PID) is None:
            key = (study.study_name, trial.number, trial.datetime_start)
            keys.add(key)
            ages[trial.number] = now - _FIRST_SEEN.setdefault(key, now)
    for key in [key for key in _FIRST_SEEN if key[0] == study.study_name and key not in keys]:
        del _FIRST_SEEN[key]
    return ages
