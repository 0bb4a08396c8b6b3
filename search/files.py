"""Writing a file so that a reader never sees half of it: the one way every stage writes its outputs; and
the one check of a folder a command is told to write into (`--results`, `--out`, `--tensorboard`,
`--artifacts`), made at the edge before anything is written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from search.errors import InputError


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file beside it, renamed over it once complete: a
    reader sees the old file or the new one, never a part, even if the process is killed here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(partial, 0o644)  # mkstemp's 0600 would hide the file from other users
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def check_writable(path: str | Path, flag: str) -> Path:
    """Refuse, in one line naming `flag`, a folder that a command would write into but could not: one
    that is a file or lies under one, or under a folder this user may not write or where no folder can be
    made (/proc, a read-only mount). Nothing is left made: whether a folder can be made is tried with an
    empty one, removed at once. Returns the folder, absolute."""
    folder = Path(path).absolute()
    existing = next(p for p in (folder, *folder.parents) if os.path.lexists(p))
    too_long = [part for part in folder.relative_to(existing).parts if len(os.fsencode(part)) > _NAME_BYTES]
    if too_long:
        raise InputError(f"{flag} {path}: a folder's name is at most {_NAME_BYTES} bytes, "
                         f"{too_long[0][:40]}... is {len(os.fsencode(too_long[0]))}")
    if not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file)"
        raise InputError(f"{flag} {path}: not a folder{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {path}: {existing} is not writable")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".search-", dir=existing))
    except OSError as err:
        raise InputError(f"{flag} {path}: no folder can be made in {existing} ({err.strerror})") from err
    return folder


_NAME_BYTES = 255  # a file or folder name, on every file system Linux writes
