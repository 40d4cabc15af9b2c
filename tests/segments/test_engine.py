"""Counting on the embedded engine (DuckDB over the profile snapshot and the event log), checked against
the in-memory evaluation of the same tree: windows in bank-local days, birthdays, the org tree,
duplicates, exact sums, NULLs, merges."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from omnibank.customers.models import CustomerMerge
from omnibank.db import unit_of_work, versions
from omnibank.segments.engine import current_snapshot, customer_facts, duck_engine, parse_in
from omnibank.segments.expr import evaluate
from tests.segments.bank import load_bank

MOMENT = datetime(2026, 3, 2, 2, tzinfo=UTC)

MARCH_1 = date(2026, 3, 1)


@pytest.fixture
def bank(env, tmp_path):
    load_bank(env.settings, tmp_path / "bank")
    return env


def members(env, text: str, as_of: date = MARCH_1) -> list[str]:
    """The matching ids from DuckDB — asserted equal to the in-memory evaluation of every customer."""
    settings = env.settings
    with unit_of_work(settings) as session:
        expression = parse_in(session, text)
        with duck_engine(session, settings) as duck:
            ids = duck.ids(expression, as_of).to_pylist()
            assert duck.count(expression, as_of) == len(ids)
        facts = customer_facts(session, settings, ["C01", "C02", "C03", "C04", "C05"])
    in_memory = sorted(cid for cid, f in facts.items() if evaluate(expression, f, as_of))
    assert ids == in_memory, text
    return ids


def test_window_uses_bank_local_days(bank) -> None:
    # the login at 2026-02-28T16:30Z is 00:30 on 1 March in Shanghai
    assert members(bank, "events('app.login', 1) = 1", MARCH_1) == ["C01"]
    assert members(bank, "events('app.login', 1) = 1", date(2026, 2, 28)) == []
    # as_of − N < d ≤ as_of: C02's login on 1 February is inside 29 days back from 1 March, not 28
    assert "C02" in members(bank, "events('app.login', 29) > 0")
    assert "C02" not in members(bank, "events('app.login', 28) > 0")


def test_birthday_on_the_as_of_date_counts(bank) -> None:
    assert members(bank, "age >= 60 AND age < 61", date(2026, 3, 1)) == ["C01"]  # born 1966-03-01
    assert members(bank, "age >= 60 AND age < 61", date(2026, 3, 2)) == ["C01", "C02"]
    # born 29 February 1964: turns 62 on 1 March in a year without 29 February
    assert "C05" not in members(bank, "age >= 62", date(2026, 2, 28))
    assert "C05" in members(bank, "age >= 62", date(2026, 3, 1))


def test_in_org_covers_every_level_below(bank) -> None:
    assert members(bank, "in_org('HQ')") == ["C01", "C02", "C03", "C04", "C05"]
    assert members(bank, "in_org('B001')") == ["C01", "C02", "C03"]
    assert members(bank, "in_org('S0101')") == ["C01", "C02"]
    assert members(bank, "in_org('T010101')") == ["C02"]
    assert members(bank, "in_org('B002')") == ["C04", "C05"]


def test_duplicates_count_once_and_sums_are_exact(bank) -> None:
    assert members(bank, "events('card.transaction', 60) = 2") == ["C01", "C02"]
    assert members(bank, "amount('card.transaction', 60) = 0.3") == ["C01"]
    assert members(bank, "amount('card.transaction', 60) = 109") == ["C02"]
    assert members(bank, "amount('card.transaction', 60, merchant = '瑞幸咖啡') >= 0.3") == ["C01"]


def test_aum_boundaries_are_exact(bank) -> None:
    assert members(bank, "aum < 50000") == ["C01", "C04", "C05"]
    assert members(bank, "aum >= 50000 AND aum < 500000") == ["C02"]
    assert members(bank, "aum BETWEEN 6000000 AND 6000000.00") == ["C03"]
    assert members(bank, "aum IN (1200.5, 0)") == ["C04", "C05"]


def test_event_conditions_and_days_since(bank) -> None:
    assert members(bank, "events('app.product_view', 7, product_id LIKE 'WM%' AND duration_s >= 60) > 0") == [
        "C04"
    ]
    assert members(bank, "events('card.issued', 365, tier = 'gold' AND primary = true) = 1") == ["C03"]
    assert members(bank, "days_since('app.login') = 0") == ["C01"]
    assert members(bank, "days_since('app.login') > 60") == ["C05"]  # 1 December → 90 days
    # NULL for who never logged in: neither > 60 nor its negation
    assert "C03" not in members(bank, "NOT (days_since('app.login') > 60)")
    assert "C03" in members(bank, "days_since('app.login') IS NULL")


def test_nulls_follow_sql(bank) -> None:
    assert members(bank, "rm_id IS NULL") == ["C03", "C05"]
    assert members(bank, "NOT (rm_id = 'E00001')") == ["C04"]  # NULL is neither
    assert members(bank, "rm_id = 'E00001' OR rm_id IS NULL") == ["C01", "C02", "C03", "C05"]


def test_tenure_and_attributes(bank) -> None:
    assert members(bank, "tenure_days < 90") == ["C05"]
    assert members(bank, "gender = 'F' AND marketing_consent = false") == ["C04"]
    assert members(bank, "occupation IN ('retired', 'farmer') AND channel_pref = 'branch'") == ["C03"]


def test_a_merged_customer_counts_under_its_survivor(bank) -> None:
    with unit_of_work(bank.settings) as session:
        session.add(CustomerMerge(merged_id="C01", survivor_id="C03", merged_at=MOMENT, actor="t"))
        versions.bump(session, "merges")
    # C01's login and coffee now count for C03; C01 itself is no longer a customer to count
    assert members(bank, "events('app.login', 1) = 1") == ["C03"]
    assert members(bank, "in_org('HQ')") == ["C02", "C03", "C04", "C05"]
    assert members(bank, "amount('card.transaction', 60) = 0.3") == ["C03"]


def test_the_snapshot_is_rebuilt_only_when_the_store_moved(bank, tmp_path) -> None:
    settings = bank.settings
    with unit_of_work(settings) as session:
        first = current_snapshot(session, settings)
        assert current_snapshot(session, settings).folder == first.folder
        versions.bump(session, "customers")
        second = current_snapshot(session, settings)
    assert second.folder != first.folder
    # nothing personal reaches the snapshot
    import pyarrow.parquet as pq

    assert "name" not in pq.read_schema(second.profiles).names
    assert "phone_enc" not in pq.read_schema(second.profiles).names


def test_an_empty_log_counts_zero_events(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    assert members(env, "events('app.login', 30) = 0") == ["C01", "C02", "C03", "C04", "C05"]


def test_a_reused_engine_sees_events_loaded_after_it(bank, tmp_path) -> None:
    from omnibank.ingest.service import load_file
    from tests.events.helpers import event, jsonl

    assert members(bank, "events('app.login', 1) = 1") == ["C01"]
    more = jsonl(
        tmp_path / "more.jsonl", event("late", "app.login", customer_id="C04", ts="2026-03-01T10:00:00+08:00")
    )
    load_file("events", more, settings=bank.settings, progress=False)
    assert members(bank, "events('app.login', 1) = 1") == ["C01", "C04"]
