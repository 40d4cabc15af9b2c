"""The events a campaign reads from a file: one parse counts the file's lines and unusable lines, keeps the
campaign's types, the first line of a repeated event_id, bank-local days and exact amounts, in time order."""

from __future__ import annotations

import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from omnibank.events.reader import ReadStats as SourceStats
from omnibank.events.reader import _line_counts, read_events
from tests.campaigns.helpers import card, spend
from tests.events.helpers import event, jsonl


def test_one_parse_keeps_the_first_of_a_repeated_id_in_time_order_and_counts_unusable_lines(
    env, tmp_path
) -> None:
    path = jsonl(
        tmp_path / "events.jsonl",
        spend("t2", "C1", "2026-03-02T00:30:00+08:00", "98.99"),  # 16:30 UTC the day before
        card("c1", "C1", "2026-03-01T10:00:00+08:00"),
        spend("t1", "C1", "2026-03-01T23:59:59+08:00", "0.01"),
        spend("t2", "C1", "2026-03-05T10:00:00+08:00", "500.00"),  # a repeat: the first line counts
        event("l1", "app.login", customer_id="C1"),  # usable, of another type
        "this line is not JSON",
        event("x1", "card.transaction", customer_id="C1", ts="yesterday"),  # no readable time
        event(None, "card.transaction", customer_id="C1"),  # no id
        "",
        spend("t3", "C2", "2026-03-03T10:00:00+08:00", "99.00"),
    )
    stats = SourceStats()
    got = list(
        read_events(
            env.settings, types={"card.issued", "card.transaction"}, fields=["amount"], path=path, stats=stats
        )
    )
    assert [(e.event_id, e.customer_id, e.local_date) for e in got] == [
        ("c1", "C1", date(2026, 3, 1)),
        ("t1", "C1", date(2026, 3, 1)),
        ("t2", "C1", date(2026, 3, 2)),
        ("t3", "C2", date(2026, 3, 3)),
    ]
    assert [e.fields.get("amount") for e in got] == [
        None,
        Decimal("0.01"),
        Decimal("98.99"),
        Decimal("99.00"),
    ]
    assert all(isinstance(e.fields["amount"], Decimal) for e in got[1:])
    assert (stats.lines, stats.unusable, stats.read) == (9, 3, 4)


def test_only_card_holders_events_are_read_when_every_rule_needs_a_card(env, tmp_path) -> None:
    path = jsonl(
        tmp_path / "events.jsonl",
        card("c1", "C1", "2026-03-01T10:00:00+08:00"),
        card("c2", "C2", "2026-03-01T10:00:00+08:00", product="other"),
        spend("t1", "C1", "2026-03-02T10:00:00+08:00"),
        spend("t2", "C2", "2026-03-02T10:00:00+08:00"),
        spend("t3", "C3", "2026-03-02T10:00:00+08:00"),
    )
    got = read_events(
        env.settings,
        types={"card.issued", "card.transaction"},
        fields=["product"],
        holders="product = 'luckin_cobrand'",
        path=path,
    )
    assert [e.event_id for e in got] == ["c1", "t1"]


@settings(max_examples=200, deadline=None)
@given(content=st.binary().map(lambda b: bytes(b"ab\n"[x % 3] for x in b)), chunk=st.integers(1, 9))
def test_property_non_blank_lines_are_counted_across_chunk_boundaries(content: bytes, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_bytes(content)
        stats = SourceStats()
        _line_counts(path, stats, chunk_size=chunk)
    assert stats.lines == sum(1 for line in content.split(b"\n") if line)
