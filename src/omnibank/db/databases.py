"""Empty PostgreSQL databases on a server, for the test suite and the benchmarks (each run its own)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def fresh_database(url: str, name: str) -> str:
    """``url`` with its database replaced by an empty one called ``name`` (dropped first if it exists)."""
    base = make_url(url)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_databases(url: str, names: Iterable[str]) -> None:
    """Drop the databases ``names`` on ``url``'s server (those that exist)."""
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
