"""event consumers' read files, surveys as a purpose of contact, holds on a purpose (a survey waits while a complaint is open), alert tickets

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 10:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import omnibank.db.types

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return "(" + " OR ".join(f"{column} = '{v}'" for v in values) + ")"


def _check(table: str, column: str, values: tuple[str, ...]) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
        batch.create_check_constraint(column, _one_of(column, values))


def upgrade() -> None:
    op.create_table(
        "contact_holds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ref", sa.String(length=80), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("since", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            _one_of("purpose", ("marketing", "service", "survey")), name=op.f("ck_contact_holds_purpose")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_holds")),
        sa.UniqueConstraint("ref", name=op.f("uq_contact_holds_ref")),
    )
    op.create_table(
        "event_consumer_files",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("read_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "path", name=op.f("pk_event_consumer_files")),
    )
    op.create_index("ix_contact_holds_customer_id", "contact_holds", ["customer_id", "purpose"], unique=False)
    _check("contact_messages", "purpose", ("marketing", "service", "survey"))
    _check("tickets", "kind", ("complaint", "inquiry", "request", "alert"))


def downgrade() -> None:
    _check("tickets", "kind", ("complaint", "inquiry", "request"))
    _check("contact_messages", "purpose", ("marketing", "service"))
    op.drop_index("ix_contact_holds_customer_id", table_name="contact_holds")
    op.drop_table("contact_holds")
    op.drop_table("event_consumer_files")
