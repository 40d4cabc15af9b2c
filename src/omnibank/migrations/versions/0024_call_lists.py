"""call lists: each ranked list for AI outbound and its members (customer id, rank, score, group)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnibank.db.types import UTCDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_lists",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("top", sa.Integer(), nullable=False),
        sa.Column("holdout_percent", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=True),
        sa.Column("segment", sa.Text(), nullable=True),
        sa.Column("listed", sa.Integer(), nullable=False),
        sa.Column("held_out", sa.Integer(), nullable=False),
        sa.Column("deferred", sa.Integer(), nullable=False),
        sa.Column("spared", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("top > 0", name=op.f("ck_call_lists_top_positive")),
        sa.CheckConstraint(
            "holdout_percent >= 0 AND holdout_percent <= 90", name=op.f("ck_call_lists_holdout_percent")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_lists")),
    )
    op.create_table(
        "call_list_members",
        sa.Column("list_id", sa.String(length=100), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("grp", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.CheckConstraint("grp IN ('treated', 'holdout', 'spared')", name=op.f("ck_call_list_members_grp")),
        sa.CheckConstraint(
            "(grp = 'spared') = (reason IS NOT NULL)", name=op.f("ck_call_list_members_reason_iff_spared")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["call_lists.id"],
            name=op.f("fk_call_list_members_list_id_call_lists"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("list_id", "customer_id", name=op.f("pk_call_list_members")),
    )


def downgrade() -> None:
    op.drop_table("call_list_members")
    op.drop_table("call_lists")
