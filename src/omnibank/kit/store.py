"""Reading the store without SQLAlchemy, for short commands that read a handful of rows.

Importing SQLAlchemy and declaring the models costs ~0.5 s, more than all the work of a command such as
``omnibank segment count`` over a profile snapshot that is already built. :func:`read_cursor` gives such a
command a plain DB-API cursor (the standard library's ``sqlite3``, or ``psycopg``) on a store whose schema
is at the newest migration; it gives ``None`` otherwise, and the command then takes its ordinary path
(:func:`omnibank.db.unit_of_work` migrates). Only reads: nothing here writes, so the unit of work stays the
one place that commits.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omnibank.errors import ConfigError


def migrations_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "migrations"


_REVISION = re.compile(r"""^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:["']([^"']+)["']|None)""", re.M)


@functools.cache
def head_revision() -> str | None:
    """The newest migration: the revision no other migration names as its ``down_revision``, read from
    the migration files themselves (one linear history; ``tests/test_migrations.py`` checks this against
    Alembic's own answer)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (migrations_dir() / "versions").glob("*.py"):
        for kind, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            if value:
                (revisions if kind == "revision" else parents).add(value)
    heads = revisions - parents
    if len(heads) > 1:
        raise ConfigError(f"the migrations have more than one head: {', '.join(sorted(heads))}")
    return next(iter(heads), None)


def _connect(url: str) -> Any | None:
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if not path.is_file():
            return None  # a new store: the ordinary path creates and migrates it
        con = sqlite3.connect(path, timeout=30)
        con.execute("PRAGMA query_only=ON")
        return con
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        import psycopg

        return psycopg.connect("postgresql://" + url.split("://", 1)[1], autocommit=True)
    return None


@contextmanager
def read_cursor(db_url: str) -> Iterator[Any | None]:
    """A read-only DB-API cursor on the store at ``db_url`` (``Settings.db_url``) when its schema is at
    the newest migration, else ``None``."""
    con = _connect(db_url)
    if con is None:
        yield None
        return
    try:
        cur = con.cursor()
        try:
            cur.execute("SELECT version_num FROM alembic_version")
            row = cur.fetchone()
        except Exception:  # noqa: BLE001 - no version table yet: not migrated
            row = None
        yield cur if row is not None and row[0] == head_revision() else None
    finally:
        con.close()
