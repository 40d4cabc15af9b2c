"""Data versions: a counter per kind of data that snapshots are built from.

Each writer bumps its counter in the same transaction as the change (customers loaded or erased, orgs
moved, tags computed, customers merged, consent recorded). A snapshot remembers the versions it was built
at, so telling whether it is stale costs one tiny query instead of scanning the data."""

from __future__ import annotations

from sqlalchemy import BigInteger, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from omnibank.db.base import Base
from omnibank.db.upsert import insert_for

KINDS = ("customers", "orgs", "tags", "merges", "consent", "scores")


class DataVersion(Base):
    __tablename__ = "data_versions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


def bump(session: Session, name: str) -> None:
    """Count one change of ``name``; atomic (no read-modify-write). The first change of a kind inserts its
    row: an upsert, so two transactions making that first change together both count (PostgreSQL would
    refuse the second plain INSERT)."""
    if name not in KINDS:
        raise ValueError(f"unknown data kind {name!r}")
    stmt = insert_for(session, DataVersion).values(name=name, version=1)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[DataVersion.name], set_={"version": DataVersion.version + 1}
        )
    )


def current(session: Session) -> dict[str, int]:
    rows = dict(session.execute(select(DataVersion.name, DataVersion.version)).all())
    return {k: int(rows.get(k, 0)) for k in KINDS}
