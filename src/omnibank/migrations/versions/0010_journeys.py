"""journeys: definitions, entries, step runs

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import omnibank.db.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journeys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ticked_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status = 'active' OR status = 'stopped'", name=op.f("ck_journeys_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journeys")),
    )
    op.create_table(
        "journey_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("entry_no", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("control", sa.Boolean(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("next_due_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("entered_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("converted_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'control', 'done', 'exited', 'converted')",
            name=op.f("ck_journey_entries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["journey"], ["journeys.id"], name=op.f("fk_journey_entries_journey_journeys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_entries")),
    )
    with op.batch_alter_table("journey_entries", schema=None) as batch_op:
        batch_op.create_index("ix_journey_entries_due", ["next_due_at"], unique=False)
        batch_op.create_index(
            "ux_journey_entries_customer", ["journey", "customer_id", "entry_no"], unique=True
        )
    op.create_table(
        "journey_step_runs",
        sa.Column("key", sa.String(length=240), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.Column("control", sa.Boolean(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=True),
        sa.Column("at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["journey"],
            ["journeys.id"],
            name=op.f("fk_journey_step_runs_journey_journeys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_journey_step_runs")),
    )
    with op.batch_alter_table("journey_step_runs", schema=None) as batch_op:
        batch_op.create_index("ix_journey_step_runs_entry", ["entry_id"], unique=False)
        batch_op.create_index("ix_journey_step_runs_journey_step", ["journey", "step", "kind"], unique=False)
    op.create_table(
        "journey_offsets",
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["journey"], ["journeys.id"], name=op.f("fk_journey_offsets_journey_journeys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("journey", "path", name=op.f("pk_journey_offsets")),
    )


def downgrade() -> None:
    op.drop_table("journey_offsets")
    with op.batch_alter_table("journey_step_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_step_runs_journey_step")
        batch_op.drop_index("ix_journey_step_runs_entry")
    op.drop_table("journey_step_runs")
    with op.batch_alter_table("journey_entries", schema=None) as batch_op:
        batch_op.drop_index("ux_journey_entries_customer")
        batch_op.drop_index("ix_journey_entries_due")
    op.drop_table("journey_entries")
    op.drop_table("journeys")
