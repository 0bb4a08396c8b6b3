"""The process a space file is imported under, which ends every process the file starts.

load.py imports a space file in a child process in a session of its own and kills that session's
process group when the import ends; but a process the file detaches into a session of its own
(`os.setsid()` after a fork, `subprocess.Popen(..., start_new_session=True)`, a daemon's double
fork) leaves the group. So on Linux the child first makes itself a child subreaper
(`prctl(PR_SET_CHILD_SUBREAPER)`): an orphaned process below it, detached or not, becomes its child
instead of init's. It then forks (`keep`): the fork imports the file, and the child keeps it: when the
import ends, or when load.py's SIGTERM says it ran out of time, it kills every process left below
it (read from /proc), then exits as the import did (its exit code, or killed by the same signal), so
load.py reads the outcome as before. Off Linux, or where prctl is refused, `keep` returns at once
and the group kill is all there is. A process that asks another (a service manager, `at`) to start
something is beyond this.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
import time
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
ENDING_SECONDS = 2.0  # killing what is left takes milliseconds; past this a process will not die (stuck in I/O)


def keep() -> None:
    """Return in a fork of this process, which does the import; this process keeps it and never returns."""
    if not _become_subreaper():
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # until the keeper can act on it
    try:
        worker = os.fork()
    except OSError:  # no room for another process: import here, and let the group kill do
        worker = 0
    if worker == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # the import itself ends as any process does
        return
    # load.py's SIGTERM: the import ran out of time. Killing it wakes the wait below, which leaves it a
    # zombie, so that its pid cannot name another process while this handler may still run.
    signal.signal(signal.SIGTERM, lambda number, frame: os.kill(worker, signal.SIGKILL))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    ended = os.waitid(os.P_PID, worker, os.WEXITED | os.WNOWAIT)
    assert ended is not None  # not WNOHANG: waitid waits
    _end_descendants(worker)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.waitpid(worker, 0)
    if ended.si_code == os.CLD_EXITED:
        os._exit(ended.si_status)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the import's crash dumped its core already
    with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
        signal.signal(ended.si_status, signal.SIG_DFL)
    os.kill(os.getpid(), ended.si_status)
    os._exit(128 + ended.si_status)  # a signal that does not end a process: say which, as a shell does


def _become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                              ctypes.c_ulong(0))) == 0
    except (OSError, AttributeError):  # no libc to load, or no prctl in it
        return False


def _end_descendants(worker: int) -> None:
    """Kill every live process below this one, parents before their children, in rounds until none is
    left: a process started while a round kills its parent is orphaned to this one and found by the next."""
    deadline = time.monotonic() + ENDING_SECONDS
    while time.monotonic() < deadline:
        processes = _processes()
        below = _below(os.getpid(), processes)
        alive = [pid for pid in below if processes[pid][1] != "Z"]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in below:  # reap the ones orphaned to this process (the import itself is reaped by `keep`)
            if pid != worker and processes[pid][0] == os.getpid():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
        if not alive:
            return
        time.sleep(0.001)  # a killed process takes a moment to die


def _processes() -> dict[int, tuple[int, str]]:
    """Every process's parent and state ("Z": a zombie), from /proc/<pid>/stat."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # ended while being read
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # after the name, which may hold ")"
            found[int(entry.name)] = (int(fields[1]), fields[0])
    return found


def _below(root: int, processes: dict[int, tuple[int, str]]) -> list[int]:
    """The processes below `root`, each after its parent."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found = list(children.get(root, []))
    seen = set(found)
    for pid in found:  # the list grows as it is read: breadth first
        below = [child for child in children.get(pid, []) if child not in seen]  # a pid reused mid-read: no loop
        found += below
        seen.update(below)
    return found
