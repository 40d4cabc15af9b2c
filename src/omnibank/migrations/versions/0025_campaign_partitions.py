"""campaign partitions: live campaigns applied by several runs at once, each holding some partitions of the
customers with a lease; offsets per partition

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnibank.db.types import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("partitions", sa.Integer(), server_default="1", nullable=False))
    # a campaign started before applied every customer in one partition, 0
    with op.batch_alter_table("campaign_offsets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("part", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint("pk_campaign_offsets", type_="primary")
        batch_op.create_primary_key("pk_campaign_offsets", ["campaign", "part", "path"])
    op.create_table(
        "campaign_partitions",
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign"],
            ["campaigns.id"],
            name=op.f("fk_campaign_partitions_campaign_campaigns"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("campaign", "part", name=op.f("pk_campaign_partitions")),
    )


def downgrade() -> None:
    op.drop_table("campaign_partitions")
    op.execute("DELETE FROM campaign_offsets WHERE part <> 0")
    with op.batch_alter_table("campaign_offsets", schema=None) as batch_op:
        batch_op.drop_constraint("pk_campaign_offsets", type_="primary")
        batch_op.create_primary_key("pk_campaign_offsets", ["campaign", "path"])
        batch_op.drop_column("part")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("partitions")
