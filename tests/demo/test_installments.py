"""The demo bank's bill installments (issue 19): offers on statement bills and acceptances that follow what
the bank could see before the offer — the data behind examples/models/installment/."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omnibank.demo.generator import generate
from omnibank.demo.installments import MIN_BILL_FEN, TERMS
from omnibank.events.columns import Checked, check
from omnibank.journeys.spec import load_journey
from omnibank.marketing.models import load_model_spec

# the year-long bank of tests/demo/test_demo_generator.py
START = date(2026, 1, 1)
CUSTOMERS = 1_500
TZ = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "models" / "installment"


@dataclass
class Bank:
    events: list[dict[str, Any]]
    customers: dict[str, dict[str, str]]
    by_type: dict[str, int]


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Bank:
    out = tmp_path_factory.mktemp("demo")
    summary = generate(out, customers=CUSTOMERS, seed=7, start=START, days=365, progress=False)
    with summary.events_jsonl.open(encoding="utf-8") as fh:
        events = [json.loads(line) for line in fh]
    with summary.customers_csv.open(encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
        customers = {}
        for line in fh:
            row = dict(zip(header, line.strip().split(","), strict=True))
            customers[row["customer_id"]] = row
    return Bank(events, customers, summary.events_by_type)


def _ts(e: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(e["ts"])


def _of(bank: Bank, type_: str) -> list[dict[str, Any]]:
    return [e for e in bank.events if e["type"] == type_]


def test_installment_events_are_written_and_follow_the_contract(bank: Bank) -> None:
    offers, accepts = _of(bank, "installment.offered"), _of(bank, "installment.accepted")
    assert len(offers) > 200
    assert 0.05 * len(offers) < len(accepts) < 0.6 * len(offers)
    assert bank.by_type["installment.offered"] == len(offers)
    assert bank.by_type["installment.accepted"] == len(accepts)
    for e in offers + accepts:
        assert isinstance(check(e, TZ), Checked), e
    assert all(int(float(e["amount"]) * 100 + 0.5) >= MIN_BILL_FEN for e in offers)
    assert {e["terms"] for e in accepts} <= set(TERMS)
    # every card offered on is a card the customer used (its transactions name it)
    used = {(e["customer_id"], e["card_id"]) for e in _of(bank, "card.transaction")}
    assert all((e["customer_id"], e["card_id"]) in used for e in offers)


def test_each_acceptance_takes_an_earlier_offer_of_the_same_bill(bank: Bank) -> None:
    offers = defaultdict(list)
    for e in _of(bank, "installment.offered"):
        offers[(e["customer_id"], e["card_id"], e["amount"])].append(_ts(e))
    for a in _of(bank, "installment.accepted"):
        before = [t for t in offers[(a["customer_id"], a["card_id"], a["amount"])] if t < _ts(a)]
        assert before, a
        assert _ts(a) - max(before) <= timedelta(days=15)


def _offer_outcomes(bank: Bank) -> list[tuple[dict[str, Any], bool, float]]:
    """Each offer, whether it was taken, and the customer's card spend in the 90 days before it."""
    spend: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for e in _of(bank, "card.transaction"):
        spend[e["customer_id"]].append((_ts(e), float(e["amount"])))
    taken = {(e["customer_id"], e["card_id"], e["amount"]) for e in _of(bank, "installment.accepted")}
    out = []
    for o in _of(bank, "installment.offered"):
        at = _ts(o)
        before = sum(a for t, a in spend[o["customer_id"]] if at - timedelta(days=90) <= t < at)
        out.append((o, (o["customer_id"], o["card_id"], o["amount"]) in taken, before))
    return out


def _rate(rows: list[tuple[dict[str, Any], bool, float]]) -> float:
    return sum(took for _, took, _ in rows) / len(rows)


def test_big_spenders_take_more_offers_than_small_ones(bank: Bank) -> None:
    rows = sorted(_offer_outcomes(bank), key=lambda r: r[2])
    low, high = rows[: len(rows) // 3], rows[-(len(rows) // 3) :]
    assert _rate(high) > 1.5 * _rate(low)


def test_the_young_and_earlier_takers_accept_more_the_old_and_wealthy_less(bank: Bank) -> None:
    rows = _offer_outcomes(bank)

    def age(cid: str) -> int:
        return START.year - int(bank.customers[cid]["birth_date"][:4])

    young = [r for r in rows if age(r[0]["customer_id"]) < 35]
    old = [r for r in rows if age(r[0]["customer_id"]) >= 60]
    assert young and old
    assert _rate(young) > 1.5 * _rate(old)
    wealthy = [r for r in rows if float(bank.customers[r[0]["customer_id"]]["aum"]) >= 500_000]
    modest = [r for r in rows if float(bank.customers[r[0]["customer_id"]]["aum"]) < 20_000]
    assert wealthy and modest
    assert _rate(modest) > _rate(wealthy)
    # the habit: an offer to someone who took one before is taken more often than a first-time taker's
    seen: set[str] = set()
    again, first = [], []
    for r in sorted(rows, key=lambda r: r[0]["ts"]):
        (again if r[0]["customer_id"] in seen else first).append(r)
        if r[1]:
            seen.add(r[0]["customer_id"])
    assert _rate(again) > 2 * _rate(first)


def test_no_events_asked_for_writes_no_installments(tmp_path: Path) -> None:
    summary = generate(tmp_path, customers=200, days=60, events_per_customer=0.0, progress=False)
    assert (
        summary.events_by_type["installment.offered"] == summary.events_by_type["installment.accepted"] == 0
    )


def test_the_example_feature_set_and_journey_are_valid_and_see_no_label() -> None:
    spec = load_model_spec(EXAMPLE / "features.yaml")
    assert spec.baseline == "spend_90d"
    assert {"taken_365d", "offers_90d"} <= set(spec.features.columns)
    journey = load_journey(EXAMPLE / "journey.yaml")
    first = journey.steps[0].send
    assert first is not None and first.channel == "ai_call"
    assert journey.conversion is not None and journey.conversion.event == "installment.accepted"
    assert journey.conversion.within == timedelta(days=30)
    assert journey.control_percent > 0
