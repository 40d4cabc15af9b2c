"""Card numbers the store held before issue 13 become their tokens on upgrade (migration 0015), the number
kept encrypted beside a bound card's token; a store upgraded so shows and resolves the card as before."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import insert, select, text

from omnibank import db
from omnibank.contact.models import ContactMessage
from omnibank.customers.identity import card_context
from omnibank.customers.models import CustomerIdentifier
from omnibank.db import get_engine, unit_of_work
from omnibank.events.models import EventFact
from omnibank.events.protect import Protector
from omnibank.events.rewrite import protect_store
from omnibank.security import get_cipher
from tests.conftest import ON_POSTGRES

CARD = "6225880012345678"
OTHER = "6222000012345678"
NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def _legacy_rows() -> None:
    """What the earlier release stored: a bound card, mirrored events and an outbox payload, in plaintext."""
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customer_identifiers (kind, value, customer_id, source, first_seen_at) "
                "VALUES ('card_id', :card, 'C000001', 'event:i1', :t), "
                "('wechat_openid', 'oWx-1', 'C000001', 'event:l1', :t)"
            ),
            {"card": CARD, "t": NOW},
        )
        conn.execute(
            insert(EventFact.__table__),
            [
                {"event_id": f"e{i}", "type": "card.transaction", "customer_id": "C000001", "ts": NOW,
                 "local_date": date(2026, 3, 1), "card_id": card}
                for i, card in enumerate([CARD, CARD, OTHER, None])
            ],
        )  # fmt: skip
        conn.execute(
            insert(ContactMessage.__table__).values(
                key="j:C000001:1:s1", customer_id="C000001", channel="sms", purpose="marketing",
                journey="j", step="s1", template="t", payload=json.dumps({"card_id": CARD, "tier": "gold"}),
                status="queued", asked_at=NOW, submitted_at=NOW, scheduled_for=NOW, decided_at=NOW,
                updated_at=NOW, attempts=0,
            )
        )  # fmt: skip


def _assert_tokenised() -> None:
    cipher = get_cipher()
    token = Protector(cipher).card_token(CARD)
    with unit_of_work() as s:
        rows = {(r.kind, r.value): r for r in s.scalars(select(CustomerIdentifier))}
        assert set(rows) == {("card_id", token), ("wechat_openid", "oWx-1")}
        card = rows[("card_id", token)]
        assert card.value_enc is not None and card.customer_id == "C000001"
        assert cipher.decrypt(card.value_enc, context=card_context(token)) == CARD
        facts = dict(s.execute(select(EventFact.event_id, EventFact.card_id)).all())
        assert facts == {"e0": token, "e1": token, "e2": Protector(cipher).card_token(OTHER), "e3": None}
        payload = s.scalar(select(ContactMessage.payload))
        assert payload is not None and json.loads(payload) == {"card_id": token, "tier": "gold"}


@pytest.mark.empty_store
def test_migration_0015_turns_the_card_numbers_the_store_holds_into_tokens(env) -> None:
    get_cipher()  # the data home's key ring, as the earlier release made it
    if ON_POSTGRES:  # the suite's PostgreSQL database is at the head already: run what 0015 runs
        _legacy_rows()
        with get_engine().begin() as conn:
            report = protect_store(conn, Protector(get_cipher()))
    else:
        db.upgrade(revision="0014")
        _legacy_rows()
        db.upgrade()
        with get_engine().begin() as conn:
            report = protect_store(conn, Protector(get_cipher()))  # again: nothing left to do
        assert report.total == 0
    _assert_tokenised()
    if ON_POSTGRES:
        assert (report.cards, report.mirrored, report.messages) == (1, 3, 1)


def test_the_card_shows_masked_and_resolves_after_the_upgrade(cli, env, tmp_path) -> None:
    from tests.conftest import write
    from tests.events.helpers import event, jsonl
    from tests.factories import ORGS, STAFF, customer_row, customers_csv

    assert cli("load", "orgs", str(write(tmp_path / "orgs.csv", ORGS))).exit_code == 0
    assert cli("load", "staff", str(write(tmp_path / "staff.csv", STAFF))).exit_code == 0
    rows = [customer_row("C000001")]
    assert cli("load", "customers", str(customers_csv(tmp_path / "c.csv", rows))).exit_code == 0
    _legacy_rows()
    with get_engine().begin() as conn:
        protect_store(conn, Protector(get_cipher()))

    shown = cli("customer", "show", "C000001")
    path = jsonl(
        tmp_path / "e.jsonl", event("t1", "card.transaction", customer_id=None, card_id=CARD, amount="1")
    )
    loaded = cli("load", "events", str(path))

    assert "6225********5678" in shown.stdout and CARD not in shown.stdout
    assert loaded.last_line.startswith("loaded 1, rejected 0")


def test_key_rotation_reencrypts_card_numbers_and_the_old_key_retires(cli, env, tmp_path) -> None:
    from tests.events.helpers import event, jsonl

    card = event("i1", "card.issued", customer_id="C000001", card_id=CARD, product="p", tier="gold",
                 primary=True, new_customer=False)  # fmt: skip
    assert cli("load", "events", str(jsonl(tmp_path / "e.jsonl", card))).exit_code == 0

    assert cli("keys", "rotate").exit_code == 0
    retired = cli("keys", "retire", "k1")

    assert retired.exit_code == 0, retired.stdout + retired.stderr
    token = Protector(get_cipher()).card_token(CARD)
    with unit_of_work() as s:
        row = s.get(CustomerIdentifier, ("card_id", token))
        assert row is not None and row.value_enc is not None and row.value_enc[2:4] == b"k2"
        assert get_cipher().decrypt(row.value_enc, context=card_context(token)) == CARD
