"""audit hash chain, consent records, erasure

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 03:10:00

The audit trail becomes append-only and hash-chained. Entries written before this revision are chained
here, in id order, with the same canonical hash the application uses (a frozen copy below), so
``omnibank audit verify`` checks the whole trail from its first entry. Triggers refuse UPDATE and DELETE
on ``audit_entries`` (SQLite: a batch migration that rebuilds the table must create them again).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import omnibank.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

GENESIS = "0" * 64

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
)
_PG_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_entries is append-only'; END $$",
    "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()",
)


def _entry_hash(row: sa.Row[tuple[object, ...]], prev_hash: str) -> str:
    """Frozen copy of omnibank.audit.service.entry_hash (source and reason are '' for these entries)."""
    at: datetime = row.at
    payload = [
        "v1",
        int(row.id),
        at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        row.actor,
        row.action,
        row.subject_type,
        row.subject_id,
        row.detail,
        "",
        "",
        prev_hash,
    ]
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _chain_existing_entries() -> None:
    bind = op.get_bind()
    entries = sa.table(
        "audit_entries",
        sa.column("id", sa.BigInteger()),
        sa.column("at", omnibank.db.types.UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("subject_type", sa.String()),
        sa.column("subject_id", sa.String()),
        sa.column("detail", sa.Text()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    prev = GENESIS
    rows = bind.execute(sa.select(entries).order_by(entries.c.id)).all()
    for row in rows:
        digest = _entry_hash(row, prev)
        bind.execute(sa.update(entries).where(entries.c.id == row.id).values(prev_hash=prev, hash=digest))
        prev = digest


def upgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=80), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("reason", sa.String(length=500), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_entries()
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_entries_prev_hash"), ["prev_hash"])
        batch_op.create_unique_constraint(batch_op.f("uq_audit_entries_hash"), ["hash"])
        batch_op.create_index(batch_op.f("ix_audit_entries_actor"), ["actor"], unique=False)
    for ddl in _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS:
        op.execute(ddl)

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("erased_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=True)
        )

    op.create_table(
        "consent_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.CheckConstraint(
            "(purpose = 'marketing' OR purpose = 'profiling' OR purpose = 'data_sharing')",
            name=op.f("ck_consent_records_purpose"),
        ),
        sa.CheckConstraint(
            "(channel = 'app' OR channel = 'wechat' OR channel = 'branch' OR channel = 'phone' "
            "OR channel = 'sms' OR channel = 'web')",
            name=op.f("ck_consent_records_channel"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_consent_records_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_records_customer_purpose", ["customer_id", "purpose", "id"], unique=False
        )
        batch_op.create_index("ix_consent_records_purpose", ["purpose", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_records_purpose")
        batch_op.drop_index("ix_consent_records_customer_purpose")
    op.drop_table("consent_records")

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("erased_at")

    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries")
        op.execute("DROP FUNCTION IF EXISTS audit_entries_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_delete")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_actor"))
        batch_op.drop_constraint(batch_op.f("uq_audit_entries_hash"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_audit_entries_prev_hash"), type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("reason")
        batch_op.drop_column("source")
