"""The journal's lock: Optuna's open-lock with its holder written in it, so that a lock left by a process
of this machine that died is broken at once instead of after Optuna's grace period (`pid_alive`, which
storage's `reap_dead` asks too)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path

from optuna.storages.journal import JournalFileOpenLock

from search.internals import of_optuna
from search.study.record import HOST

LOCK_GRACE_SECONDS = 30  # Optuna's: a lock whose holder is unknown, unchanged this long, is taken over


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
                if holder is not None and holder[0] == HOST and not pid_alive(holder[1]) and self._break(holder):
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


def pid_alive(pid: int) -> bool:
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
