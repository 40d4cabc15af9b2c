"""invites: the staff marketing tool — invite codes, bindings and refusals, share links and clicks, the
staff reward ledger; ``staff.left_at`` (a member of staff who left has their code revoked)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnibank.db.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invite_offsets",
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_invite_offsets")),
    )
    op.create_table(
        "invite_refusals",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "(reason = 'unknown_code' OR reason = 'revoked_code' OR reason = 'self_referral' OR reason = 'already_bound' OR reason = 'outside_window')",
            name=op.f("ck_invite_refusals_reason"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_invite_refusals")),
    )
    with op.batch_alter_table("invite_refusals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invite_refusals_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_invite_refusals_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_invite_refusals_staff_id"), ["staff_id"], unique=False)

    op.create_table(
        "invite_waiting",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_invite_waiting")),
    )
    with op.batch_alter_table("invite_waiting", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invite_waiting_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "invite_codes",
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("issued_by", sa.String(length=128), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.Column("revoke_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.staff_id"], name=op.f("fk_invite_codes_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_invite_codes")),
    )
    with op.batch_alter_table("invite_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invite_codes_staff_id"), ["staff_id"], unique=False)
        batch_op.create_index(
            "uq_invite_codes_live_staff",
            ["staff_id"],
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )

    op.create_table(
        "share_links",
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("shares", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.CheckConstraint(
            "(target_kind = 'product' OR target_kind = 'campaign' OR target_kind = 'benefit' OR target_kind = 'scene' OR target_kind = 'home')",
            name=op.f("ck_share_links_target_kind"),
        ),
        sa.CheckConstraint("shares >= 0", name=op.f("ck_share_links_shares_not_negative")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.staff_id"], name=op.f("fk_share_links_staff_id_staff")),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_share_links")),
    )
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_share_links_staff_id"), ["staff_id"], unique=False)
        batch_op.create_index(
            "uq_share_links_staff_target", ["staff_id", "target_kind", "target_id", "channel"], unique=True
        )

    op.create_table(
        "staff_reward_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("basis", sa.String(length=500), nullable=False),
        sa.Column("reverses", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.CheckConstraint(
            "(direction = 'credit' OR direction = 'debit')", name=op.f("ck_staff_reward_entries_direction")
        ),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_staff_reward_entries_amount_positive")),
        sa.ForeignKeyConstraint(
            ["reverses"],
            ["staff_reward_entries.id"],
            name=op.f("fk_staff_reward_entries_reverses_staff_reward_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.staff_id"], name=op.f("fk_staff_reward_entries_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_reward_entries")),
        sa.UniqueConstraint("key", name=op.f("uq_staff_reward_entries_key")),
    )
    with op.batch_alter_table("staff_reward_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_reward_entries_period"), ["period"], unique=False)
        batch_op.create_index(batch_op.f("ix_staff_reward_entries_staff_id"), ["staff_id"], unique=False)

    op.create_table(
        "invite_bindings",
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("org_path", sa.String(length=2000), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("share_token", sa.String(length=16), nullable=True),
        sa.Column("bound_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("first_card_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["code"], ["invite_codes.code"], name=op.f("fk_invite_bindings_code_invite_codes")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_invite_bindings")),
    )
    with op.batch_alter_table("invite_bindings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invite_bindings_bound_at"), ["bound_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_invite_bindings_code"), ["code"], unique=False)
        batch_op.create_index(batch_op.f("ix_invite_bindings_org_path"), ["org_path"], unique=False)
        batch_op.create_index(batch_op.f("ix_invite_bindings_share_token"), ["share_token"], unique=False)
        batch_op.create_index("ix_invite_bindings_staff_bound", ["staff_id", "bound_at"], unique=False)

    op.create_table(
        "share_clicks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token"], ["share_links.token"], name=op.f("fk_share_clicks_token_share_links")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_clicks")),
    )
    with op.batch_alter_table("share_clicks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_share_clicks_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_share_clicks_staff_id"), ["staff_id"], unique=False)
        batch_op.create_index("ix_share_clicks_token_device_at", ["token", "device", "at"], unique=False)

    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("left_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("left_at")

    with op.batch_alter_table("share_clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_share_clicks_token_device_at")
        batch_op.drop_index(batch_op.f("ix_share_clicks_staff_id"))
        batch_op.drop_index(batch_op.f("ix_share_clicks_at"))

    op.drop_table("share_clicks")
    with op.batch_alter_table("invite_bindings", schema=None) as batch_op:
        batch_op.drop_index("ix_invite_bindings_staff_bound")
        batch_op.drop_index(batch_op.f("ix_invite_bindings_share_token"))
        batch_op.drop_index(batch_op.f("ix_invite_bindings_org_path"))
        batch_op.drop_index(batch_op.f("ix_invite_bindings_code"))
        batch_op.drop_index(batch_op.f("ix_invite_bindings_bound_at"))

    op.drop_table("invite_bindings")
    with op.batch_alter_table("staff_reward_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_reward_entries_staff_id"))
        batch_op.drop_index(batch_op.f("ix_staff_reward_entries_period"))

    op.drop_table("staff_reward_entries")
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.drop_index("uq_share_links_staff_target")
        batch_op.drop_index(batch_op.f("ix_share_links_staff_id"))

    op.drop_table("share_links")
    with op.batch_alter_table("invite_codes", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_invite_codes_live_staff",
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_invite_codes_staff_id"))

    op.drop_table("invite_codes")
    with op.batch_alter_table("invite_waiting", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_waiting_customer_id"))

    op.drop_table("invite_waiting")
    with op.batch_alter_table("invite_refusals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_refusals_staff_id"))
        batch_op.drop_index(batch_op.f("ix_invite_refusals_customer_id"))
        batch_op.drop_index(batch_op.f("ix_invite_refusals_at"))

    op.drop_table("invite_refusals")
    op.drop_table("invite_offsets")
