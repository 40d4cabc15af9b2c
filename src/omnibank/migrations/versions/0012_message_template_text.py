"""an outbox message's template holds the message text (up to 500 characters), not only a short id

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_messages") as batch:
        batch.alter_column(
            "template",
            existing_type=sa.String(length=64),
            type_=sa.String(length=500),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_messages") as batch:
        batch.alter_column(
            "template",
            existing_type=sa.String(length=500),
            type_=sa.String(length=64),
            existing_nullable=True,
        )
