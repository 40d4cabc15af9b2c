"""The one event reader: campaigns and journeys read the same events with the same typed columns (Decimal
amounts, aware times, bank-local days), from a file or from the log, the first line of a repeated id
winning; a window and a set of customers (merged ones renamed to their survivor) narrow what is read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from omnibank.campaigns.engine import Event
from omnibank.events.log import EventLog
from omnibank.events.reader import EventRow, ReadStats, read_events, read_rows
from omnibank.ingest.service import load_file
from omnibank.journeys.source import read_journey_events, types_sql
from tests.events.helpers import event, jsonl
from tests.journeys.helpers import card, load_bank, login, spend

LINES = [
    spend("t2", "C1", "2026-03-02T00:30:00+08:00", "98.99"),  # 16:30 UTC the day before
    card("c1", "C2", "2026-03-01T10:00:00+08:00"),
    spend("t1", "C1", "2026-03-01T23:59:59+08:00", "0.01"),
    spend("t2", "C1", "2026-03-05T10:00:00+08:00", "500.00"),  # a repeat: the first line counts
    login("l1", "C3", "2026-03-03T08:00:00+08:00"),
    "not JSON",
]
TYPES = {"card.transaction", "card.issued", "app.login"}


def test_campaigns_and_journeys_read_the_same_events_with_the_same_columns(env, tmp_path) -> None:
    path = jsonl(tmp_path / "events.jsonl", *LINES)
    stats = ReadStats()
    rows = list(read_rows(env.settings, Event, types=TYPES, path=path, stats=stats))
    journey = list(read_journey_events(env.settings, where=types_sql(TYPES), path=path))
    assert [r.event_id for r in rows] == ["c1", "t1", "t2", "l1"] == [e.event_id for e in journey]
    assert all(type(r) is Event for r in rows)
    assert (stats.read, stats.lines, stats.unusable) == (4, 6, 1)
    tz = env.settings.tz
    for r, e in zip(rows, journey, strict=True):
        assert (r.type, r.customer_id, r.at(tz)) == (e.type, e.customer_id, e.ts)
        assert e.ts.tzinfo is not None and r.local_date == e.fields["local_date"] == e.ts.date()
        assert {k: v for k, v in r.fields.items() if v is not None and k != "weekday"} == {
            k: v for k, v in e.fields.items() if k != "local_date"
        }
    t2 = rows[2]
    assert t2.fields["amount"] == Decimal("98.99") and isinstance(t2.fields["amount"], Decimal)
    assert t2.local_date == date(2026, 3, 2) and t2.fields["weekday"] == 1  # bank-local Monday
    assert rows[1].fields["amount"] == Decimal("0.01")


def test_the_log_read_by_window_and_customers_renames_merged_ones_to_their_survivor(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    path = jsonl(tmp_path / "events.jsonl", *[line for line in LINES if isinstance(line, dict)])
    assert load_file("events", path, settings=env.settings, progress=False).rejected == 0
    files = EventLog(env.settings).files()
    assert files
    everything = list(read_events(env.settings, types=TYPES))
    assert [r.event_id for r in everything] == ["c1", "t1", "t2", "l1"]
    assert everything == list(read_events(env.settings, types=TYPES, files=files))
    assert list(read_events(env.settings, types=TYPES, files=[])) == []
    window = read_events(
        env.settings,
        since=datetime(2026, 3, 1, 15, 0, tzinfo=UTC),
        until=datetime(2026, 3, 3, 0, 0, tzinfo=UTC),
    )
    assert [r.event_id for r in window] == ["t1", "t2", "l1"]
    mine = list(read_events(env.settings, customers={"C1": "C9", "C3": "C3"}))
    assert [(r.event_id, r.customer_id) for r in mine] == [("t1", "C9"), ("t2", "C9"), ("l1", "C3")]
    plain = list(read_events(env.settings, customers=["C2"]))
    assert [(r.event_id, r.customer_id) for r in plain] == [("c1", "C2")]
    assert all(isinstance(r, EventRow) and r.at(env.settings.tz).tzinfo is not None for r in plain)


def test_an_unknown_field_of_another_type_is_not_invented(env, tmp_path) -> None:
    path = jsonl(tmp_path / "events.jsonl", event("x1", "app.login", customer_id="C1", channel="app"))
    (e,) = read_journey_events(env.settings, where="TRUE", path=path)
    assert e.fields == {"channel": "app", "local_date": date(2026, 3, 1)}
