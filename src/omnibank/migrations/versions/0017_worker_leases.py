"""worker: a row per background job — its lease, its schedule and its last run

``omnibank worker`` runs the background jobs of every domain (``omnibank.worker``). Several workers may run
against one PostgreSQL store: a job's row is its lease (``holder``, ``expires_at``, taken by one conditional
UPDATE or INSERT, so two workers never run one job at once; a killed worker's lease expires and another
takes it), its shared schedule and back-off (``next_run_at``) and what ``omnibank worker status`` shows.
Rows are made by the first run of each job; nothing to fill in here.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnibank.db.types import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_leases",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("next_run_at", UTCDateTime(), nullable=True),
        sa.Column("last_holder", sa.String(length=128), nullable=True),
        sa.Column("last_started_at", UTCDateTime(), nullable=True),
        sa.Column("last_finished_at", UTCDateTime(), nullable=True),
        sa.Column("last_duration_ms", sa.Integer(), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.String(length=128), nullable=True),
        sa.Column("runs", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failures", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failures_in_row", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "(last_outcome = 'ok' OR last_outcome = 'failed')", name=op.f("ck_worker_leases_last_outcome")
        ),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_worker_leases")),
    )


def downgrade() -> None:
    op.drop_table("worker_leases")
