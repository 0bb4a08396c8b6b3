"""The journal file, `results/<study>/journal.log`: recognizing one, writing it, and repairing one torn at
its end.

Beside storage.py, which opens every kind of storage and opens a journal through `open_journal`. Optuna's
JournalFileBackend appends one record per change under a file lock and fsyncs it before going on, so
several worker processes on one machine can share the file, and a trial's end is on disk before anyone
reads it as finished. A file at a storage's place that Optuna did not make is refused untouched
(`check_not_foreign`). A power cut or a full disk can still leave the last record cut short:
`repair_journal` moves such a torn tail aside on open, says what it took (`Repair`), and refuses a journal
damaged anywhere else; a record that a full disk cuts short as it is written is taken back at once
(`Journal`), the journal's reserve beside it is freed so that the records ending every running trial
still fit, and the command stops with one line (`DiskFull`). Its lock is journal_lock.py's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from search.errors import DiskFull, InputError, disk_full, one_line
from search.internals import of_optuna
from search.study.journal_lock import JournalLock
from search.study.record import Attr

JOURNAL = "journal.log"
RESERVE, RESERVE_BYTES = ".reserve", 32 * 1024  # room kept for the records that end a run on a full disk


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


def open_journal(location: str) -> JournalStorage:
    """The journal file at `location` as an Optuna storage. If its last record was cut short, it is
    repaired first (`repair_journal`), with one line of warning saying what the cut took."""
    lock = JournalLock(location)
    repaired = repair_journal(Path(location), lock)
    journal = _replayed(Path(location), lock)
    if repaired is not None:
        print(f"warning: {repaired.describe(journal)}", file=sys.stderr, flush=True)
    return journal


class Journal(JournalFileBackend):
    """Optuna's journal file, but a record that cannot be written whole (a full disk) is taken back at
    once, and the write stops with `DiskFull`: the journal always ends with a whole record. Each record
    is one line of compact JSON, as Optuna writes it, appended under the journal's lock and fsynced."""

    def __init__(self, path: str, lock: JournalLock) -> None:
        super().__init__(path, lock_obj=lock)
        self.path, self.journal_lock = path, lock
        self.reserved = False  # whether this process has seen to the reserve (`_keep_reserve`)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self.journal_lock.acquire()
        try:
            try:
                self._append(text)
            except OSError as err:
                if not disk_full(err) or not _spend_reserve(self.path):
                    raise
                self._append(text)  # in the reserve's room, and the records that end the stop after it
        except OSError as err:
            if disk_full(err):
                raise DiskFull(f"{Path(self.path).parent}: no space left on its disk to write the study's "
                               "journal: free some space, then run the same command to resume") from err
            raise
        finally:
            self.journal_lock.release()
        if not self.reserved:
            self.reserved = True
            _keep_reserve(self.path)

    def _append(self, text: bytes) -> None:
        size = os.path.getsize(self.path)
        try:
            with open(self.path, "ab") as journal:
                journal.write(text)
                journal.flush()
                os.fsync(journal.fileno())
        except OSError:
            os.truncate(self.path, size)  # what was written of it is not a record
            raise


def _keep_reserve(journal: str) -> None:
    """Keep RESERVE_BYTES of the journal's disk taken by a file beside it (`<journal>.reserve`), made
    once by the first process that writes the journal: when the disk fills up, the journal frees it
    (`_spend_reserve`) so that the records saying how every running trial ended still fit, and no trial
    is left RUNNING. A disk without that much room keeps no reserve."""
    path = journal + RESERVE
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError:
        return  # kept already (or the folder refuses it: then there is none)
    try:
        os.posix_fallocate(handle, 0, RESERVE_BYTES)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(path)
    finally:
        os.close(handle)


def _spend_reserve(journal: str) -> bool:
    """Free the journal's reserve (`_keep_reserve`); whether there was one to free."""
    try:
        os.remove(journal + RESERVE)
    except OSError:
        return False
    return True


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
