"""assistant: the questions asked of the answering assistant (digit runs masked, no names), answered or not

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 06:22:54
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnibank.db.types import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assistant_questions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("asked_at", UTCDateTime(), nullable=False),
        sa.Column("question", sa.String(length=500), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Numeric(precision=12, scale=4), nullable=True),
        sa.Column("confidence", sa.Numeric(precision=6, scale=4), nullable=True),
        sa.Column("top_source", sa.String(length=300), nullable=True),
        sa.Column("intent", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=True),
        sa.Column("handed_off", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_questions")),
    )
    with op.batch_alter_table("assistant_questions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_assistant_questions_answered_asked_at", ["answered", "asked_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assistant_questions_asked_at"), ["asked_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_assistant_questions_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("assistant_questions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assistant_questions_customer_id"))
        batch_op.drop_index(batch_op.f("ix_assistant_questions_asked_at"))
        batch_op.drop_index("ix_assistant_questions_answered_asked_at")
    op.drop_table("assistant_questions")
