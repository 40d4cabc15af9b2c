"""Live campaigns: `campaign start` + `campaign run` over the event log give exactly what `campaign
simulate` gives over the same events; running again grants nothing twice; a run that dies in the middle
of a file leaves nothing of it, and the next run completes it."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from omnibank.campaigns import live, partitions
from omnibank.campaigns.models import CampaignGrant, CampaignOffset
from omnibank.campaigns.simulate import simulate
from omnibank.campaigns.spec import load_campaign
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from tests.campaigns.helpers import LUCKIN, card, exchange, points, spend
from tests.events.helpers import jsonl


def month_of_events(month: int) -> list[dict]:
    start = date(2026, month, 1)
    events = []
    if month == 1:
        events += [card("c1", "A", "2026-01-02T10:00:00+08:00"), card("c2", "B", "2026-01-03T10:00:00+08:00",
                                                                       tier="platinum")]  # fmt: skip
        events += [points("p1", "A", "2026-01-02T11:00:00+08:00", 20_000)]
    for d in range(28):
        day = start + timedelta(days=d)
        for c in ("A", "B"):
            if d % 2 == 0 or c == "A":
                events.append(
                    spend(f"s{month}-{d}-{c}", c, f"{day}T12:{d:02d}:00+08:00", "120.00" if d == 3 else "30")
                )
    events.append(exchange(f"x{month}", "A", f"{start}T09:00:00+08:00", 2))
    return events


def grants_of(env) -> list[dict]:
    from omnibank.campaigns.cli import _contract

    with unit_of_work(env.settings) as session:
        rows = session.scalars(select(CampaignGrant).order_by(CampaignGrant.granted_at, CampaignGrant.key))
        return [_contract(g, env.settings) for g in rows]


def start(env) -> None:
    spec = load_campaign(LUCKIN)
    with unit_of_work(env.settings) as session:
        live.start(session, spec, source_text=LUCKIN.read_text(encoding="utf-8"))


def test_live_equals_simulate_and_never_grants_twice(cli, env, tmp_path) -> None:
    start(env)
    everything = []
    for month in (1, 2, 3):  # three loads, one a month: the live engine applies each as it arrives
        events = month_of_events(month)
        everything += events
        load_file(
            "events", jsonl(tmp_path / f"m{month}.jsonl", *events), settings=env.settings, progress=False
        )
        r = cli("campaign", "run")
        assert r.exit_code == 0, r.stderr
    live_grants = grants_of(env)
    buf = io.BytesIO()
    simulate(load_campaign(LUCKIN), env.settings, events=jsonl(tmp_path / "all.jsonl", *everything), out=buf)
    simulated = sorted(
        (json.loads(x) for x in buf.getvalue().splitlines()), key=lambda g: (g["granted_at"], g["rule"])
    )
    assert len(live_grants) > 20
    key = lambda g: (g["granted_at"], g["rule"], g["benefit"], g.get("stage") or 0, g["customer_id"])  # noqa: E731
    assert sorted(live_grants, key=key) == sorted(simulated, key=key)

    again = cli("campaign", "run")
    assert "0 new files, 0 events, 0 grants" in again.stdout
    assert grants_of(env) == live_grants
    listing = cli("campaign", "list")
    assert "luckin2026" in listing.stdout and "active" in listing.stdout


def test_a_run_that_dies_mid_file_leaves_nothing_and_the_next_completes_it(env, tmp_path) -> None:
    start(env)
    load_file(
        "events", jsonl(tmp_path / "m1.jsonl", *month_of_events(1)), settings=env.settings, progress=False
    )
    part = partitions.part_of("A", partitions.DEFAULT_PARTITIONS)  # customer A's share of the customers
    with unit_of_work(env.settings) as session:
        (rel,) = live.pending_files(session, env.settings, "luckin2026", part)
    report = live.RunReport(campaign="luckin2026")
    with pytest.raises(RuntimeError, match="simulated crash"), unit_of_work(env.settings) as session:
        live.apply_file(
            session, env.settings, "luckin2026", rel, eligible=None, report=report, part=part, fail_after=20
        )
    with unit_of_work(env.settings) as session:
        assert session.scalar(select(func.count()).select_from(CampaignGrant)) == 0
        assert session.scalar(select(func.count()).select_from(CampaignOffset)) == 0
    live.run_once(env.settings)
    first = grants_of(env)
    assert len(first) > 10
    live.run_once(env.settings)
    assert grants_of(env) == first


def test_a_stopped_campaign_does_not_run(cli, env, tmp_path) -> None:
    start(env)
    assert cli("campaign", "stop", "luckin2026").exit_code == 0
    load_file(
        "events", jsonl(tmp_path / "m1.jsonl", *month_of_events(1)), settings=env.settings, progress=False
    )
    r = cli("campaign", "run")
    assert r.exit_code == 0 and r.stdout.strip() == ""
    assert grants_of(env) == []
    bad = cli("campaign", "run", "--campaign", "nope")
    assert bad.exit_code == 1 and "no campaign 'nope'" in bad.stderr


def test_state_round_trips(env, tmp_path) -> None:
    from omnibank.campaigns.engine import CampaignState, Decider
    from omnibank.campaigns.spec import compile_campaign
    from omnibank.events.reader import read_events

    decider = Decider(compile_campaign(load_campaign(LUCKIN)), env.settings.tz)
    state = CampaignState()
    path = jsonl(tmp_path / "m.jsonl", *month_of_events(1))
    for e in read_events(env.settings, types=decider.types, fields=decider.columns, path=path):
        decider.decide(state, e)
    for cid, cust in state.customers.items():
        assert live.load_customer(cid, live.dump_customer(cust)) == cust
    again = CampaignState()
    live.load_totals(live.dump_totals(state), again)
    assert (again.rule_items, again.rule_value, again.campaign_items) == (
        state.rule_items,
        state.rule_value,
        state.campaign_items,
    )


def test_live_grants_are_issued_as_coupons_within_ledger_budgets(cli, env, tmp_path) -> None:
    from omnibank.benefits.models import Coupon

    catalogue = Path(__file__).resolve().parents[2] / "examples" / "benefits" / "catalogue.yaml"
    assert cli("benefits", "load", str(catalogue)).exit_code == 0
    assert (
        cli("budgets", "set", "--campaign", "luckin2026", "--rule", "weekly", "--count", "3").exit_code == 0
    )
    start(env)
    load_file(
        "events", jsonl(tmp_path / "m1.jsonl", *month_of_events(1)), settings=env.settings, progress=False
    )
    r = cli("campaign", "run")
    assert r.exit_code == 0, r.stderr
    with unit_of_work(env.settings) as session:
        rows = list(session.scalars(select(CampaignGrant)))
        coupons = {c.grant_key: c for c in session.scalars(select(Coupon))}
    issued = [g for g in rows if g.ledger == "issued"]
    assert {g.key for g in issued} == set(coupons)  # one coupon per issued grant, same key
    weekly = [g for g in rows if g.rule == "weekly"]
    assert sum(1 for g in weekly if g.ledger == "issued") == 3  # the ledger's budget for the rule
    refused = {g.ledger for g in weekly if g.ledger != "issued"}
    assert len(refused) == 1
    assert refused.pop().startswith("refused:budget_exhausted:")
    assert len(weekly) > 3
    assert all(coupons[g.key].face_value_fen == g.face_value_fen for g in issued)
    assert "coupons issued" in r.stdout
    again = cli("campaign", "run")  # nothing new: no coupon twice
    assert "0 grants, 0 coupons issued" in again.stdout
