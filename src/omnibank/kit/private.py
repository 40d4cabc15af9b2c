"""Files only their owner can read. The data home holds the store (SQLite), the event log, the keys, the
load reports and rejects, snapshots and backups made into it: the commands and the server create every
file 0600 and every folder 0700, whatever library writes it (SQLite with its WAL and SHM files, DuckDB,
pyarrow), by a process umask of 077 set once at their start (:func:`private_files`; processes they start
inherit it). The data home itself is created 0700 (:func:`ensure_home`); one that already exists and that
others may read is used as it is, with a warning that says how to close it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
log = logging.getLogger("omnibank.home")
_checked: set[Path] = set()


def private_files() -> None:
    """From now on, what this process creates is its owner's only: files 0600, folders 0700."""
    os.umask(PRIVATE_UMASK)


def exposed(home: Path) -> int | None:
    """The mode of a data home that its group or others may use, or None."""
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None


def ensure_home(home: Path) -> Path:
    """The data home, created 0700 when missing; an existing one that others may read is warned about
    (once a process), not refused: the operator decides."""
    if not home.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(home, 0o700)  # mkdir's mode passes through the umask, which may not be ours
    elif home not in _checked:
        mode = exposed(home)
        if mode is not None:
            log.warning(
                "warning: the data home %s can be read by others (mode %o) and holds the store, the event "
                "log, the keys and the load reports; close it: chmod -R go-rwx %s",
                home, mode, home,
            )  # fmt: skip
    _checked.add(home)
    return home
