"""leads for branch staff

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnibank.db.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("lead_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=True),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("product_id", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("owner_staff_id", sa.String(length=32), nullable=True),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("contacted_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("escalated_at", UTCDateTime(), nullable=True),
        sa.Column("escalated_to", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "(status = 'new' OR status = 'contacted' OR status = 'won' OR status = 'lost')",
            name=op.f("ck_leads_status"),
        ),
        sa.CheckConstraint(
            "(closed_at IS NULL AND (status = 'new' OR status = 'contacted')) "
            "OR (closed_at IS NOT NULL AND (status = 'won' OR status = 'lost'))",
            name=op.f("ck_leads_closed_when_won_or_lost"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.customer_id"], name=op.f("fk_leads_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["owner_staff_id"], ["staff.staff_id"], name=op.f("fk_leads_owner_staff_id_staff")
        ),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.org_id"], name=op.f("fk_leads_org_id_orgs")),
        sa.ForeignKeyConstraint(
            ["escalated_to"], ["staff.staff_id"], name=op.f("fk_leads_escalated_to_staff")
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_leads")),
        sa.UniqueConstraint("key", name=op.f("uq_leads_key")),
    )
    op.create_index(op.f("ix_leads_customer_id"), "leads", ["customer_id"], unique=False)
    op.create_index(op.f("ix_leads_owner_staff_id"), "leads", ["owner_staff_id"], unique=False)
    op.create_index(op.f("ix_leads_escalated_to"), "leads", ["escalated_to"], unique=False)
    op.create_index("ix_leads_status_due_at", "leads", ["status", "due_at"], unique=False)
    op.create_index("ix_leads_org_id_status", "leads", ["org_id", "status"], unique=False)
    op.create_table(
        "lead_history",
        sa.Column("id", _ID, nullable=False),
        sa.Column("lead_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("staff_id", sa.String(length=32), nullable=True),
        sa.Column("emitted_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "(action = 'created' OR action = 'contacted' OR action = 'won' OR action = 'lost' "
            "OR action = 'escalated')",
            name=op.f("ck_lead_history_action"),
        ),
        sa.CheckConstraint(
            "(to_status = 'new' OR to_status = 'contacted' OR to_status = 'won' OR to_status = 'lost')",
            name=op.f("ck_lead_history_to_status"),
        ),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.lead_id"], name=op.f("fk_lead_history_lead_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_history")),
    )
    op.create_index(op.f("ix_lead_history_lead_id"), "lead_history", ["lead_id"], unique=False)
    op.create_index(op.f("ix_lead_history_emitted_at"), "lead_history", ["emitted_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_lead_history_emitted_at"), table_name="lead_history")
    op.drop_index(op.f("ix_lead_history_lead_id"), table_name="lead_history")
    op.drop_table("lead_history")
    op.drop_index("ix_leads_org_id_status", table_name="leads")
    op.drop_index("ix_leads_status_due_at", table_name="leads")
    op.drop_index(op.f("ix_leads_escalated_to"), table_name="leads")
    op.drop_index(op.f("ix_leads_owner_staff_id"), table_name="leads")
    op.drop_index(op.f("ix_leads_customer_id"), table_name="leads")
    op.drop_table("leads")
