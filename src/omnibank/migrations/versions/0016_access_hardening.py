"""access: sessions an access token is checked against on every request (revocable at once)

``user_sessions`` holds one row per signed-in session: its id is the family of the session's refresh tokens
and the ``sid`` claim of its access tokens. Sign-out, a refresh token presented twice and a lock set its
``revoked_at``, and every request with an access token reads that row (a primary-key lookup joined to the
user), so a revoked session's access tokens stop working at once in every server process.

The sessions of the refresh tokens issued before this revision are made from them (revoked if their family
was). Access tokens issued before it carry no ``sid`` and are refused: their holders sign in again (or
refresh: the refreshed token carries the session).

The 管户 scoping (an RM sees their own customers and the unassigned ones of their unit) needs no change to
the store: ``customers.rm_id`` is indexed already.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from omnibank.db.types import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"], unique=False)
    # the sessions of the refresh tokens issued so far (one family, one user); revoked if any was
    op.execute(
        "INSERT INTO user_sessions (id, user_id, created_at, revoked_at) "
        "SELECT family, MIN(user_id), MIN(created_at), MAX(revoked_at) FROM refresh_tokens GROUP BY family"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
