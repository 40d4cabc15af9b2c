"""A backtest split by customer over worker processes writes the same grants, in the same order, with the
same cost summary as one process — and a campaign with a budget across customers is never split."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from omnibank.campaigns.simulate import independent, simulate
from omnibank.campaigns.spec import Budget, load_campaign
from omnibank.demo.generator import generate
from tests.campaigns.helpers import LUCKIN


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    generate(out, customers=3000, seed=7, progress=False)
    return out / "events.jsonl"


def test_split_by_customer_equals_one_process(env, demo_events) -> None:
    spec = load_campaign(LUCKIN)
    assert independent(spec)
    one, two = io.BytesIO(), io.BytesIO()
    single = simulate(spec, env.settings, events=demo_events, out=one, workers=1)
    seen: list[int] = []
    split = simulate(
        spec, env.settings, events=demo_events, out=two, workers=2, parallel_from=0, on_progress=seen.append
    )
    assert single.grants > 100  # the demo bank's card holders earn grants of every kind
    assert {rule for rule, _ in single.by_rule_month} >= {"welcome", "weekly", "checkin_map"}
    assert two.getvalue() == one.getvalue()
    for name in ("events", "grants", "face_value", "by_rule_month", "refusals", "customers"):
        assert getattr(split, name) == getattr(single, name), name
    assert (split.source.lines, split.source.unusable, split.source.read) == (
        single.source.lines,
        single.source.unusable,
        single.source.read,
    )
    assert seen == sorted(seen)


def test_a_budget_across_customers_keeps_one_process(env, demo_events) -> None:
    spec = load_campaign(LUCKIN)
    limited = spec.model_copy(update={"budget": Budget(count=50)})
    assert not independent(limited)
    one, two = io.BytesIO(), io.BytesIO()
    single = simulate(limited, env.settings, events=demo_events, out=one, workers=1)
    split = simulate(limited, env.settings, events=demo_events, out=two, workers=2, parallel_from=0)
    assert single.grants == split.grants == 50  # the first 50 items in time order, bank-wide
    assert two.getvalue() == one.getvalue()
    assert split.face_value == single.face_value > Decimal(0)
