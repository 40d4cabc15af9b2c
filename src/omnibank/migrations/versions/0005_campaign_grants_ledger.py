"""campaign grants record the coupon ledger's answer

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_grants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ledger", sa.String(length=80), nullable=False, server_default="not_in_catalogue")
        )
        batch_op.add_column(sa.Column("coupon_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign_grants", schema=None) as batch_op:
        batch_op.drop_column("coupon_id")
        batch_op.drop_column("ledger")
