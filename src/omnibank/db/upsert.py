"""Idempotent bulk upsert: a row whose fingerprint has not changed is left untouched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session


def upsert_changed(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: str,
    keep_on_update: Sequence[str] = (),
) -> int:
    """Insert ``rows``, or update the existing row with the same ``key`` where its ``fingerprint``
    differs. Returns how many rows were inserted or changed; the rest already stood as given."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    else:  # pragma: no cover - config refuses other databases
        raise RuntimeError(f"no upsert for {dialect}")
    stmt = insert(table)
    skip = {key, *keep_on_update}
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[key]],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in skip},
        where=table.c.fingerprint != stmt.excluded.fingerprint,
    )
    if dialect == "postgresql":
        # psycopg reports no row count for a batch; RETURNING yields exactly the inserted or changed rows.
        # (Callers keep keys unique within one batch, which a multi-row upsert requires.)
        return len(session.execute(stmt.returning(table.c[key]), list(rows)).all())
    result = session.execute(stmt, list(rows))
    return int(result.rowcount)  # type: ignore[attr-defined]
