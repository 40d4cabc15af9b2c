"""cx alerts: every alert of a CX rule with its one owner, and the weeks index-drop rules were evaluated

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import omnibank.db.types

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return "(" + " OR ".join(f"{column} = '{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "cx_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("rule_id", sa.String(length=48), nullable=False),
        sa.Column("rule_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=True),
        sa.Column("branch_id", sa.String(length=32), nullable=True),
        sa.Column("owner_staff_id", sa.String(length=32), nullable=True),
        sa.Column("owner_queue", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("context", sa.String(length=100), nullable=False),
        sa.Column("raised_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("window_start", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ticket_id", sa.String(length=40), nullable=True),
        sa.Column("due_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", omnibank.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("action", sa.String(length=500), nullable=True),
        sa.Column("closed_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "(owner_staff_id IS NULL) <> (owner_queue IS NULL)", name=op.f("ck_cx_alerts_exactly_one_owner")
        ),
        sa.CheckConstraint(
            _one_of("rule_kind", ("response", "event", "index_drop", "inflow")),
            name=op.f("ck_cx_alerts_rule_kind"),
        ),
        sa.CheckConstraint(
            _one_of("subject_kind", ("customer", "branch", "bank")), name=op.f("ck_cx_alerts_subject_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cx_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_cx_alerts_key")),
    )
    with op.batch_alter_table("cx_alerts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cx_alerts_rule_subject",
            ["rule_id", "subject_kind", "subject_id", "window_start"],
            unique=False,
        )
        batch_op.create_index("ix_cx_alerts_owner_closed", ["owner_staff_id", "closed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_cx_alerts_ticket_id"), ["ticket_id"], unique=False)
    op.create_table(
        "cx_alert_weeks",
        sa.Column("rule_id", sa.String(length=48), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("branches", sa.Integer(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "week", name=op.f("pk_cx_alert_weeks")),
    )


def downgrade() -> None:
    op.drop_table("cx_alert_weeks")
    with op.batch_alter_table("cx_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cx_alerts_ticket_id"))
        batch_op.drop_index("ix_cx_alerts_owner_closed")
        batch_op.drop_index("ix_cx_alerts_rule_subject")
    op.drop_table("cx_alerts")
