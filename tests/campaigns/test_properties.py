"""Properties of the campaign engine over random event streams (hypothesis): no cap, budget or points
balance is ever exceeded, a stage unlocks at most once and in order, and the same events in any line
order give the same grants."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omnibank.campaigns.engine import period_key
from omnibank.campaigns.spec import Budget, load_campaign
from tests.campaigns.helpers import LUCKIN, card, exchange, of, points, run, spend

CUSTOMERS = ["A", "B", "C"]
START = datetime(2026, 1, 1, 8, 0)  # noqa: DTZ001 - written out with +08:00 below


@st.composite
def streams(draw: st.DrawFn) -> list[dict]:
    events = []
    for c in CUSTOMERS:
        if draw(st.booleans()) or c == "A":
            tier = draw(st.sampled_from(["gold", "platinum", "classic"]))
            at = START + timedelta(days=draw(st.integers(-30, 40)))
            new, primary = draw(st.booleans()) or c == "A", draw(st.booleans()) or c == "A"
            events.append(
                card(f"card-{c}", c, f"{at:%Y-%m-%dT%H:%M:%S}+08:00", tier=tier, new=new, primary=primary)
            )
    n = draw(st.integers(0, 250))
    for i in range(n):
        c = draw(st.sampled_from(CUSTOMERS))
        at = START + timedelta(minutes=draw(st.integers(-60 * 24 * 10, 60 * 24 * 120)))
        ts = f"{at:%Y-%m-%dT%H:%M:%S}+08:00"
        kind = draw(st.sampled_from(["spend", "spend", "spend", "points", "exchange"]))
        if kind == "spend":
            amount = draw(st.sampled_from(["5.00", "25.00", "98.99", "99.00", "300.00"]))
            events.append(spend(f"e{i}", c, ts, amount))
        elif kind == "points":
            events.append(points(f"e{i}", c, ts, draw(st.integers(1, 5000))))
        else:
            events.append(exchange(f"e{i}", c, ts, draw(st.integers(1, 4))))
        if draw(st.integers(0, 20)) == 0:
            events.append(dict(events[-1]))  # a repeated event
    return events


EVERY_RULE = [
    card("card-A", "A", "2026-01-05T10:00:00+08:00", tier="gold"),
    spend("w1", "A", "2026-01-06T10:00:00+08:00", "99.00"),
    spend("w2", "A", "2026-01-07T10:00:00+08:00"),
    spend("w3", "A", "2026-01-08T10:00:00+08:00"),
    points("p1", "A", "2026-01-09T10:00:00+08:00", 3000),
    exchange("x1", "A", "2026-01-10T10:00:00+08:00", 2),
]


def check_limits(grants: list[dict], budget_items: int) -> None:
    weekly, monthly, yearly, per_customer = Counter(), Counter(), Counter(), Counter()
    for g in grants:
        day = datetime.fromisoformat(g["granted_at"]).date()
        assert date(2026, 1, 1) <= day <= date(2026, 12, 31)
        if g["rule"] == "weekly":
            weekly[(g["customer_id"], period_key("week", day))] += 1
            yearly[(g["customer_id"], "weekly")] += 1
        if g["rule"] == "points_exchange":
            monthly[(g["customer_id"], period_key("month", day))] += 1
            yearly[(g["customer_id"], "points_exchange")] += 1
        per_customer[(g["customer_id"], g["rule"], g.get("stage"), g["benefit"])] += 1
    assert all(n == 1 for n in weekly.values())
    assert all(n <= 3 for n in monthly.values())
    assert all(n <= (52 if rule == "weekly" else 36) for (_, rule), n in yearly.items())
    assert all(n <= 6 for (c, rule, stage, b), n in per_customer.items() if rule == "welcome")
    assert all(n == 1 for (c, rule, stage, b), n in per_customer.items() if rule == "checkin_map")
    assert len(of(grants, "weekly")) <= budget_items


def test_limits_hold_and_line_order_does_not_matter(env, tmp_path_factory) -> None:
    spec = load_campaign(LUCKIN)
    rules = [r.model_copy(update={"budget": Budget(count=7)}) if r.id == "weekly" else r for r in spec.rules]
    spec = spec.model_copy(update={"rules": rules, "budget": Budget(face_value=Decimal("900.00"))})
    seen: Counter[str] = Counter()  # which rules the examples exercised

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(events=streams(), seed=st.integers(0, 1000))
    @example(events=EVERY_RULE, seed=1)  # random streams reach every rule only most of the time
    def check(events: list[dict], seed: int) -> None:
        tmp = tmp_path_factory.mktemp("stream")
        grants, report = run(env.settings, tmp, events, spec)
        check_limits(grants, budget_items=7)
        seen.update(g["rule"] for g in grants)
        assert sum(Decimal(g.get("face_value", "0")) for g in grants) <= Decimal("900.00")
        # points: never more vouchers than the points earned buy
        for c in CUSTOMERS:
            earned = sum(
                e["points"] for e in events if e["type"] == "points.earned" and e["customer_id"] == c
            )
            assert 1000 * sum(1 for g in of(grants, "points_exchange") if g["customer_id"] == c) <= earned
        shuffled = list(events)
        random.Random(seed).shuffle(shuffled)
        again, _ = run(env.settings, tmp, shuffled, spec)
        # the first line of a repeated id wins, so only streams without repeats compare in any order
        if len({e["event_id"] for e in events}) == len(events):
            assert again == grants

    check()
    assert {"welcome", "weekly", "points_exchange"} <= set(seen)  # the streams were not all trivial


def test_live_equals_simulate_for_random_streams(env, tmp_path_factory) -> None:
    """Events loaded in two parts and applied live, part by part, grant exactly what one simulation of
    all of them grants (customers and ids are made unique per example: the log is shared)."""
    from sqlalchemy import select

    from omnibank.campaigns import live
    from omnibank.campaigns.cli import _contract
    from omnibank.campaigns.models import CampaignGrant
    from omnibank.db import unit_of_work
    from omnibank.ingest.service import load_file
    from tests.events.helpers import jsonl

    base = load_campaign(LUCKIN)
    counter = iter(range(1000))

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(events=streams())
    def check(events: list[dict]) -> None:
        n = next(counter)
        tmp = tmp_path_factory.mktemp("live")
        mine = [
            {**e, "event_id": f"x{n}-{e['event_id']}", "customer_id": f"x{n}_{e['customer_id']}"}
            for e in events
        ]
        spec = base.model_copy(update={"id": f"luckin_{n}"})
        with unit_of_work(env.settings) as session:  # two partitions: the customers applied apart, in turn
            live.start(session, spec, source_text=yaml_of(spec), partitions=2)
        ordered = sorted(mine, key=lambda e: e["ts"])
        half = len(ordered) // 2
        for part, chunk in enumerate((ordered[:half], ordered[half:])):
            if chunk:
                load_file(
                    "events", jsonl(tmp / f"p{part}.jsonl", *chunk), settings=env.settings, progress=False
                )
                live.run_once(env.settings, campaign_id=spec.id)
        with unit_of_work(env.settings) as session:
            rows = session.scalars(
                select(CampaignGrant).where(
                    CampaignGrant.campaign == spec.id,
                    CampaignGrant.customer_id.startswith(f"x{n}_", autoescape=True),
                )
            )
            got = sorted(json.dumps(_contract(g, env.settings), sort_keys=True) for g in rows)
        simulated, _ = run(env.settings, tmp, mine, spec)
        assert got == sorted(json.dumps(g, sort_keys=True) for g in simulated)

    check()


def yaml_of(spec) -> str:  # type: ignore[no-untyped-def]
    import yaml

    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), allow_unicode=True)
