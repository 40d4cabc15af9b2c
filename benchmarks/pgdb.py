"""A PostgreSQL database of its own for one benchmark run (the benchmarks import this as a sibling)."""

from __future__ import annotations


def fresh_database(url: str, name: str) -> str:
    """``url`` with its database replaced by an empty one called ``name`` (dropped first if it exists)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)
