"""card numbers tokenised and personal data out of the event log (issue 13, event log)

A card identifier is kept as its token (the keyed blind index the event log holds too) with the number
encrypted beside it (``customer_identifiers.value_enc``). Card numbers the store already holds — bound
cards, the mirror ``event_facts``, journey entries' and outbox payloads' ``card_id`` — become their tokens
here, with the data home's key ring (``omnibank.events.rewrite.protect_store``); a store holding none needs
no key. The event log's Parquet files are rewritten by ``omnibank events protect``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import context, op

if TYPE_CHECKING:
    from omnibank.kit.crypto import FieldCipher

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_HOLDS_CARDS = (
    "SELECT 1 FROM customer_identifiers WHERE kind = 'card_id' AND value NOT LIKE '⟨card:%' "
    "UNION ALL SELECT 1 FROM event_facts WHERE card_id IS NOT NULL AND card_id NOT LIKE '⟨card:%' "
    "UNION ALL SELECT 1 FROM journey_entries WHERE state LIKE '%\"card_id\"%' "
    "UNION ALL SELECT 1 FROM contact_messages WHERE payload LIKE '%\"card_id\"%'"
)


def _cipher() -> FieldCipher:
    from omnibank.config import get_settings
    from omnibank.errors import ConfigError
    from omnibank.security import get_cipher

    settings = context.config.attributes.get("settings") or get_settings()
    if settings.master_key is None and not settings.key_file.exists():
        raise ConfigError(
            "migration 0015 turns the card numbers the store holds into their tokens and needs the data "
            f"home's key ring, but there is none ({settings.key_file} is missing and OMNIBANK_MASTER_KEY is "
            "not set): give it the key ring the store was written with, then run `omnibank db upgrade`"
        )
    return get_cipher(settings)


def upgrade() -> None:
    with op.batch_alter_table("customer_identifiers") as batch:
        batch.add_column(sa.Column("value_enc", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    if conn.execute(sa.text(f"SELECT 1 FROM ({_HOLDS_CARDS}) AS found LIMIT 1")).first() is None:
        return
    from omnibank.events.protect import Protector
    from omnibank.events.rewrite import protect_store

    protect_store(conn, Protector(_cipher()))


def downgrade() -> None:
    # bound cards get their numbers back (the tokens elsewhere stay: they are opaque ids that still compare)
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT value, value_enc FROM customer_identifiers WHERE kind = 'card_id' AND value_enc IS NOT NULL"
        )
    ).all()
    if rows:
        from omnibank.customers.identity import card_context

        cipher = _cipher()
        for token, enc in rows:
            conn.execute(
                sa.text("UPDATE customer_identifiers SET value = :v WHERE kind = 'card_id' AND value = :t"),
                {"v": cipher.decrypt(enc, context=card_context(token)), "t": token},
            )
    with op.batch_alter_table("customer_identifiers") as batch:
        batch.drop_column("value_enc")
