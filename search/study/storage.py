"""Where studies live, and what happens to trials whose worker is gone.

Beside the study driver: `open_storage` turns `--storage` into an Optuna storage. The default is
a journal file, `results/<study>/journal.log`: Optuna's JournalFileBackend appends one record per
change under a file lock and fsyncs it before going on, so several worker processes on one machine
can share it (SQLite's single writer lock is what gives parallel Optuna users "database is
locked"), and a trial's end is on disk before anyone reads it as finished. A power cut or a full
disk can still leave the last record cut short: `repair_journal` moves such a torn tail aside on
open, and refuses a journal damaged anywhere else; a record that a full disk cuts short as it is
written is taken back at once (`Journal`), and the command stops with one line (`DiskFull`). The
journal's lock (`JournalLock`) names its holder, so that a lock left by a process that died is
broken at once instead of after Optuna's grace period. `postgresql://...` (or any
SQLAlchemy URL) is an RDBStorage with a heartbeat, so a worker that dies on another machine has its
trial failed and retried by the others; `reap_dead` does the same for trials whose process died on
this machine. Which trials count toward `--trials` is the trial record's to say (record.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlencode

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from search.errors import DiskFull, InputError, disk_full, one_line
from search.internals import of_optuna
from search.study import record
from search.study.record import HOST, Attr

JOURNAL = "journal.log"
OWNER = "storage.txt"  # in a results folder: the storage its study is in
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60  # a trial with no heartbeat for this long belongs to a dead worker
ORPHAN_SECONDS = 60  # a RUNNING trial seen with no pid this long was never run (reap_dead)
LOCK_GRACE_SECONDS = 30  # Optuna's: a lock whose holder is unknown, unchanged this long, is taken over


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


_SQLITE_START = b"SQLite format 3\x00"
_FIRST_LINE = 65_536  # more than any study-creating record needs


def _journal_start(head: bytes) -> bool:
    """Whether `head` begins as every Optuna journal does: with a whole line that is the record creating
    its study (operation 0, a writer, the study's name and directions)."""
    line, newline, _ = head.partition(b"\n")
    record = _parsed(line) if newline else None
    return (isinstance(record, dict) and record.get("op_code") == 0 and type(record.get("op_code")) is int
            and isinstance(record.get("worker_id"), str) and isinstance(record.get("study_name"), str)
            and isinstance(record.get("directions"), list))


def check_not_foreign(location: str) -> None:
    """A file at the storage's place that `search` (through Optuna) did not make is refused, and never
    read further, locked, repaired or written: a journal path must hold nothing or an Optuna journal, a
    SQLite path nothing or a SQLite database. Database URLs have no file here to check."""
    if "://" in location and not location.startswith("sqlite:///"):
        return
    path = Path(location.removeprefix("sqlite:///"))
    try:
        with open(path, "rb") as file:
            head = file.read(_FIRST_LINE)
    except (FileNotFoundError, IsADirectoryError):
        return  # nothing there yet (a folder is check_given's to refuse)
    except OSError as err:
        raise InputError(f"{path}: cannot be read: {one_line(err)}") from err
    kind, ours = (("a SQLite database", head.startswith(_SQLITE_START)) if location.startswith("sqlite:///")
                  else ("an Optuna journal", _journal_start(head)))
    if head and not ours:
        raise InputError(f"{path}: exists and is not {kind}, so search leaves it as it is: give --storage a new "
                         "file, or the study's own")


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
    last record was cut short, repaired first (`repair_journal`)."""
    check_location(location)
    check_not_foreign(location)
    if "://" not in location:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        lock = JournalLock(location)
        repaired = repair_journal(Path(location), lock)
        journal = _replayed(Path(location), lock)
        if repaired is not None:
            print(f"warning: {repaired.describe(journal)}", file=sys.stderr, flush=True)
        return journal
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


class JournalLock(JournalFileOpenLock):
    """Optuna's open-lock (the journal's `.lock` file, made with O_EXCL and removed on release: it works on
    every filesystem, NFS included, and Optuna's own lock still excludes ours), with its holder, `host
    pid`, written in the file. A lock whose holder is a process of this machine that is gone is broken at
    once; one whose holder is unknown (left by Optuna's own lock, or a write that a full disk refused) or
    on another machine is taken over after Optuna's grace period, as Optuna does."""

    def __init__(self, journal: str, grace_period: int = LOCK_GRACE_SECONDS) -> None:
        super().__init__(journal, grace_period)
        self.journal, self.grace = journal, grace_period
        self.file = of_optuna.journal_lock_file(journal)

    def acquire(self) -> bool:
        pause, mtime, since = 0.001, None, time.monotonic()
        while True:
            try:
                handle = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = lock_holder(self.file)
                if holder is not None and holder[0] == HOST and not _pid_alive(holder[1]) and self._break(holder):
                    continue
                with contextlib.suppress(FileNotFoundError):  # released meanwhile: try again at once
                    changed = os.stat(self.file).st_mtime
                    if changed != mtime:
                        mtime, since = changed, time.monotonic()
                    elif time.monotonic() - since > self.grace:
                        print(f"warning: {self.file}: held for {self.grace} s by "
                              f"{'pid {1} on {0}'.format(*holder) if holder else 'an unknown process'}; taken over",
                              file=sys.stderr, flush=True)
                        with contextlib.suppress(RuntimeError):  # another waiter took it over first
                            self.release()
                        continue
                    time.sleep(pause)
                    pause = min(2 * pause, 0.1)
                continue
            try:
                with contextlib.suppress(OSError):  # a full disk: the lock holds, its holder unnamed
                    os.write(handle, f"{HOST} {os.getpid()}\n".encode())
            finally:
                os.close(handle)
            return True

    def _break(self, holder: tuple[str, int]) -> bool:
        """Remove the lock of a dead `holder`, if it is still that one; whether it could be looked at. Waiters
        break it one at a time, under an flock of the journal (released by the kernel when a process dies),
        so that none removes the lock another waiter has just taken."""
        try:
            guard = os.open(self.journal, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)
            if lock_holder(self.file) == holder:
                os.unlink(self.file)
        except OSError:  # no flock here (some network filesystems): wait out the grace period instead
            return False
        finally:
            os.close(guard)  # closing releases the flock
        return True


def lock_holder(file: str) -> tuple[str, int] | None:
    """(host, pid) written in a journal's lock file by `JournalLock`; None when it names none."""
    try:
        with open(file, "rb") as lock:
            host, pid = lock.read(300).decode().split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


class Journal(JournalFileBackend):
    """Optuna's journal file, but a record that cannot be written whole (a full disk) is taken back at
    once, and the write stops with `DiskFull`: the journal always ends with a whole record. Each record
    is one line of compact JSON, as Optuna writes it, appended under the journal's lock and fsynced."""

    def __init__(self, path: str, lock: JournalLock) -> None:
        super().__init__(path, lock_obj=lock)
        self.path, self.journal_lock = path, lock

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self.journal_lock.acquire()
        try:
            size = os.path.getsize(self.path)
            try:
                with open(self.path, "ab") as journal:
                    journal.write(text)
                    journal.flush()
                    os.fsync(journal.fileno())
            except OSError as err:
                os.truncate(self.path, size)  # what was written of it is not a record
                if disk_full(err):
                    raise DiskFull(f"{Path(self.path).parent}: no space left on its disk to write the study's "
                                   "journal: free some space, then run the same command to resume") from err
                raise
        finally:
            self.journal_lock.release()


def _replayed(path: Path, lock: JournalLock | None = None, shown: Path | None = None) -> JournalStorage:
    """The journal at `path`, opened: Optuna replays every record, and one that parses but says nothing
    sensible stops it, in one line naming the file (`shown`, if `path` is a copy of it)."""
    try:
        return JournalStorage(Journal(str(path), lock or JournalLock(str(path))))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise InputError(f"{shown or path}: a record of this journal cannot be replayed ({one_line(err)}): restore "
                         "the file from a copy, or start another --study") from err


@dataclass(frozen=True)
class Repair:
    """A torn last record that `repair_journal` moved aside, and what its bytes show of it: each field
    None where the cut came before it."""

    journal: Path
    moved_to: Path | None  # None: the disk is full, so it stays where it is (readers skip it)
    size: int
    operation: int | None  # Optuna's journal operation
    trial_id: int | None  # the trial whose state it set, when it set one
    state: int | None  # the state it set (Optuna's TrialState value)

    def describe(self, storage: BaseStorage) -> str:
        if self.moved_to is None:
            return (f"{self.journal}: its last record was cut short ({self.size} bytes) and stays: no space left on "
                    "its disk to move it aside; the records before it are read, and a command that writes repairs it "
                    "once there is space")
        return (f"{self.journal}: its last record was cut short ({self.size} bytes, as a power cut or a full disk "
                f"leaves it) and is moved to {self.moved_to.name}; {self.lost(storage)}")

    def lost(self, storage: BaseStorage) -> str:
        """What the torn record took with it, read against the journal as repaired: a trial it set running
        is waiting again, and one it ended is running again, which the next run fails and replaces (`reap_dead`),
        unless it never ran (surplus: started after the budget was taken)."""
        again = "shows as running, and the next run fails it and runs its place again"
        if self.operation is None:
            return f"what it held cannot be read: if it ended a trial, that trial {again}"
        if self.operation != of_optuna.journal_set_trial_state():
            return "it set no trial's state: no finished trial was lost"
        if self.trial_id is None:
            return f"it set a trial's state but was cut before naming the trial: if it ended one, that trial {again}"
        try:
            trial = storage.get_trial(self.trial_id)
        except KeyError:
            return f"it set the state of a trial (id {self.trial_id}) this journal does not hold"
        if trial.state == TrialState.WAITING:
            return f"trial {trial.number} lost its start: it waits to run"
        if trial.state != TrialState.RUNNING:
            return f"no finished trial was lost (trial {trial.number} is {trial.state.name.lower()})"
        if trial.user_attrs.get(Attr.SURPLUS):
            return (f"it ended trial {trial.number}, which was started after the budget was taken and never ran: "
                    "nothing was lost, and nothing is run again")
        ended = f" ({_FINISHED_STATES[self.state]})" if self.state in _FINISHED_STATES else ""
        return f"trial {trial.number} lost its end{ended}: the next run fails it and runs its place again"


_FINISHED_STATES = {state.value: state.name.lower() for state in (TrialState.COMPLETE, TrialState.PRUNED,
                                                                   TrialState.FAIL)}


def repair_journal(path: Path, lock: JournalLock) -> Repair | None:
    """Check a journal file under its lock: a last line cut short (no newline, or not a record) is
    moved to a file beside it, never deleted, and the journal truncated to its last whole record; any
    other line that is not a journal record stops with one line naming the file and the line. A file
    that does not begin as an Optuna journal does is refused untouched, before its lock is taken, and so
    is one whose whole records Optuna could not replay: it would be refused after the repair. On a full
disk nothing is changed and no file is left behind: the torn tail stays, which Optuna's reader skips."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    check_not_foreign(str(path))
    if not lock.acquire():  # it waits for the lock, and breaks one its holder left behind
        raise InputError(f"{path}: cannot take the journal's lock")
    try:
        data = path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: empty when the file ends whole
        operations = of_optuna.journal_operations()
        damaged = f"{path}: line {{}} is not a journal record: the study cannot be read safely; restore the " \
                  "file from a copy, or start another --study"
        for number, line in enumerate(lines, 1):
            if _record(line, operations):
                continue
            # Only the last record can be cut short, and what is cut short is not JSON: the rest is damage.
            if number < len(lines) or tail or _parses(line):
                raise InputError(damaged.format(number))
            tail = line + b"\n"  # the last line has its newline but not all of its record
        if not tail:
            return None
        if _parses(tail) and not _record(tail, operations):
            raise InputError(damaged.format(len(lines) + 1))
        if _record(tail, operations):  # whole but for its newline: nothing to move aside
            with open(path, "ab") as journal:
                journal.write(b"\n")
                os.fsync(journal.fileno())
            return None
        with tempfile.TemporaryDirectory() as folder:  # a journal that would be refused anyway stays untouched
            copy = Path(folder) / JOURNAL
            copy.write_bytes(data[:len(data) - len(tail)])
            _replayed(copy, shown=path)
        moved = path.with_name(f"{path.name}.torn-{datetime.now():%Y%m%d-%H%M%S}")
        while moved.exists():
            moved = moved.with_name(moved.name + "+")
        try:
            with open(moved, "wb") as aside:
                aside.write(tail)
                aside.flush()
                os.fsync(aside.fileno())
        except OSError as err:
            moved.unlink(missing_ok=True)
            if not disk_full(err):
                raise
            return Repair(path, None, len(tail), None, None, None)
        with open(path, "r+b") as journal:
            journal.truncate(len(data) - len(tail))
            os.fsync(journal.fileno())
    finally:
        lock.release()
    # What the cut left of each field: a number counts only when what follows it shows it whole.
    op, trial, state = (re.search(rb'"%s":\s*(\d+)[,}]' % key, tail) for key in (b"op_code", b"trial_id", b"state"))
    return Repair(path, moved, len(tail), *(int(found[1]) if found else None for found in (op, trial, state)))


def _record(line: bytes, operations: frozenset[int]) -> bool:
    """Whether a line is a journal record: a JSON object with a known operation and its writer."""
    record = _parsed(line)
    return (isinstance(record, dict) and type(record.get("op_code")) is int and record["op_code"] in operations
            and isinstance(record.get("worker_id"), str))


def _parses(line: bytes) -> bool:
    return _parsed(line) is not _UNPARSED


_UNPARSED = object()


def _parsed(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return _UNPARSED


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
        elif _pid_alive(pid) and not (mine and pid == os.getpid()):
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


def _pid_alive(pid: int) -> bool:
    """Whether a process of this machine runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True
