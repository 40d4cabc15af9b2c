"""API throughput: audit entries are chained after their commit, not under a lock held until it

An audit entry is now appended unchained and linked into the hash chain by a short chaining step once its
transaction has committed (``omnibank.audit.service.chain``): ``seq`` (its place in the chain) is new, and
``prev_hash``/``hash`` stay NULL until then. The entries already there keep their links, and their id as
``seq``. The append-only triggers now allow exactly one UPDATE of an entry: the chaining (NULL → values,
with its content unchanged); every other UPDATE, and every DELETE, is still refused. On PostgreSQL the id
sequence is moved past the ids the old appender gave out itself. Idempotency keys need no change: their
``created_at`` (indexed) gives their expiry.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_CONTENT = ("id", "at", "actor", "action", "subject_type", "subject_id", "detail", "source", "reason")
_UNCHAINED = "OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL"
_CHAINED = "NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL"

_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN "
    f"IF TG_OP = 'UPDATE' AND {_UNCHAINED} AND {_CHAINED} "
    f"AND ({', '.join('NEW.' + c for c in _CONTENT)}) IS NOT DISTINCT FROM "
    f"({', '.join('OLD.' + c for c in _CONTENT)}) THEN RETURN NEW; END IF; "
    "RAISE EXCEPTION 'audit_entries is append-only'; END $$"
)
_PG_OLD_FUNCTION = (
    "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_entries is append-only'; END $$"
)
_PG_TRIGGER = (
    "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
)
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    f"WHEN NOT ({_UNCHAINED} AND {_CHAINED} AND {' AND '.join(f'NEW.{c} IS OLD.{c}' for c in _CONTENT)}) "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
)
_SQLITE_OLD_TRIGGERS = (
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    _SQLITE_TRIGGERS[1],
)


def _drop_triggers(postgresql: bool) -> None:
    if postgresql:
        op.execute("DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_delete")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    _drop_triggers(postgresql)  # SQLite rebuilds the table below; PostgreSQL gets the new function
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=True)
    op.execute("UPDATE audit_entries SET seq = id")  # the entries there are chained in id order already
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_audit_entries_seq"), ["seq"])
        batch_op.create_index(
            "ix_audit_entries_unchained",
            ["id"],
            unique=False,
            postgresql_where=sa.text("seq IS NULL"),
            sqlite_where=sa.text("seq IS NULL"),
        )
    if postgresql:
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_entries', 'id'), "
            "COALESCE((SELECT MAX(id) FROM audit_entries), 0) + 1, false)"
        )
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        for ddl in _SQLITE_TRIGGERS:
            op.execute(ddl)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    _drop_triggers(postgresql)
    # entries not chained yet cannot be kept by the old schema's NOT NULL links: chain them first
    # (``omnibank audit verify`` does) before downgrading
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_unchained")
        batch_op.drop_constraint(batch_op.f("uq_audit_entries_seq"), type_="unique")
        batch_op.drop_column("seq")
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
    if postgresql:
        op.execute(_PG_OLD_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        for ddl in _SQLITE_OLD_TRIGGERS:
            op.execute(ddl)
