"""contact policy: outbox, caps, do-not-disturb

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnibank.db.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CHANNELS = (
    "channel = 'app_push' OR channel = 'sms' OR channel = 'wechat' OR channel = 'wecom' "
    "OR channel = 'ai_call' OR channel = 'human_call' OR channel = 'branch_task'"
)


def upgrade() -> None:
    op.create_table(
        "contact_caps",
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.CheckConstraint("n >= 0", name=op.f("ck_contact_caps_n_not_negative")),
        sa.PrimaryKeyConstraint("customer_id", "scope", name=op.f("pk_contact_caps")),
    )
    op.create_table(
        "contact_dnd",
        sa.Column("id", _ID, nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("removed_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint(f"(channel = 'all' OR {_CHANNELS})", name=op.f("ck_contact_dnd_channel")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_dnd")),
    )
    op.create_index("ix_contact_dnd_customer_id", "contact_dnd", ["customer_id", "channel"], unique=False)
    op.create_table(
        "contact_messages",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=True),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("asked_at", UTCDateTime(), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("failed_at", UTCDateTime(), nullable=True),
        sa.Column("clicked_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_ref", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("events_pending", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(f"({_CHANNELS})", name=op.f("ck_contact_messages_channel")),
        sa.CheckConstraint(
            "(purpose = 'marketing' OR purpose = 'service')", name=op.f("ck_contact_messages_purpose")
        ),
        sa.CheckConstraint(
            "(status = 'queued' OR status = 'deferred' OR status = 'suppressed' OR status = 'sent' "
            "OR status = 'delivered' OR status = 'failed' OR status = 'clicked')",
            name=op.f("ck_contact_messages_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_contact_messages_attempts_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_contact_messages_key")),
    )
    op.create_index(
        "ix_contact_messages_customer_id", "contact_messages", ["customer_id", "asked_at"], unique=False
    )
    op.create_index(
        op.f("ix_contact_messages_events_pending"), "contact_messages", ["events_pending"], unique=False
    )
    op.create_index("ix_contact_messages_journey", "contact_messages", ["journey", "step"], unique=False)
    op.create_index(
        "ix_contact_messages_status_scheduled_for",
        "contact_messages",
        ["status", "scheduled_for"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_contact_messages_status_scheduled_for", table_name="contact_messages")
    op.drop_index("ix_contact_messages_journey", table_name="contact_messages")
    op.drop_index(op.f("ix_contact_messages_events_pending"), table_name="contact_messages")
    op.drop_index("ix_contact_messages_customer_id", table_name="contact_messages")
    op.drop_table("contact_messages")
    op.drop_index("ix_contact_dnd_customer_id", table_name="contact_dnd")
    op.drop_table("contact_dnd")
    op.drop_table("contact_caps")
