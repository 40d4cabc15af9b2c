"""Receipts take the event log's typed append (issue 21): one dispatch of 1,000 messages puts their 1,000
receipt events in the log as one Parquet file (each emit used to run the file loader, ~0.3 s a call), and
emitting them again adds nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from omnibank.config import Settings
from omnibank.contact.channels import Outcome, Outgoing
from omnibank.contact.dispatch import dispatch
from omnibank.contact.models import ContactMessage
from omnibank.contact.outbox import submit
from omnibank.contact.policy import CHANNELS
from omnibank.contact.receipts import emit_pending
from omnibank.db import unit_of_work
from omnibank.events.log import EventLog
from tests.contact.helpers import CUSTOMERS, MONDAY, load_bank, send
from tests.events.helpers import stored


class Delivering:
    """A stand-in gateway (no I/O) that delivers every message it is handed."""

    name = "delivering"

    def __init__(self) -> None:
        self.handed = 0

    def deliver(self, messages: Sequence[Outgoing], *, now: datetime) -> list[Outcome]:
        self.handed += len(messages)
        return [Outcome(m.message_id, "delivered", None, f"gw-{m.message_id}") for m in messages]


@pytest.fixture
def bank(env, tmp_path) -> Settings:
    load_bank(env.settings, tmp_path / "bank")
    return env.settings


def test_one_dispatch_of_1000_messages_appends_its_receipts_as_one_file(bank: Settings) -> None:
    # given 1,000 queued service messages (service needs no consent and takes no marketing cap)
    sends = [send(f"k{i:04d}", CUSTOMERS[i % len(CUSTOMERS)], "sms", "service") for i in range(1000)]
    with unit_of_work() as session:
        decided = submit(session, bank, sends, now=MONDAY)
    assert [d.action for d in decided] == ["send"] * 1000
    log = EventLog(bank)
    before = log.files()
    gateway = Delivering()
    # when one worker loop dispatches them
    report = dispatch(
        bank, now=MONDAY + timedelta(minutes=1), limit=1000, adapters=dict.fromkeys(CHANNELS, gateway)
    )
    # then 1,000 receipt events are in the log, in exactly one new Parquet file
    assert gateway.handed == 1000 and report.events == 1000 and report.event_duplicates == 0
    added = sorted(set(log.files()) - set(before))
    assert len(added) == 1
    events = stored(bank)
    receipts = {k: e for k, e in events.items() if e["type"] == "message.delivered"}
    assert len(receipts) == 1000
    assert {e["customer_id"] for e in receipts.values()} == set(CUSTOMERS)
    # and emitting the same receipts again (a crash before their flags were cleared) adds nothing
    with unit_of_work() as session:
        session.execute(update(ContactMessage).values(events_pending=True))
    assert emit_pending(bank) == (0, 1000)
    assert log.files() == [*before, *added] and len(stored(bank)) == len(events)
