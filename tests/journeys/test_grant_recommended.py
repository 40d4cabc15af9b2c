"""``grant: {benefit: recommended}``: the worker grants each customer's top recommendation that a grant
accepts now (the next one when the batch took the last item), skips the step with a record when there is
none, and never issues twice for the same step run; simulation resolves it from the store as it stands."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import select

from omnibank.benefits import ledger
from omnibank.benefits.ledger import BudgetKey
from omnibank.benefits.models import Coupon
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.ingest.service import load_file
from omnibank.journeys import runtime
from omnibank.journeys.machine import Action
from omnibank.journeys.models import JourneyEntry, JourneyStepRun
from omnibank.journeys.simulate import simulate
from omnibank.journeys.spec import parse_journey
from omnibank.worker.loop import work_once
from tests.benefits.helpers import NOW, give, load, small_catalogue
from tests.events.helpers import jsonl
from tests.journeys.helpers import card, load_bank

TZ = ZoneInfo("Asia/Shanghai")
JOURNEY = """
id: welcome_gift
name: 新卡礼遇
trigger: {event: card.issued}
steps:
  - id: gift
    grant: {benefit: recommended, valid_days: 30}
  - id: mark
    tag: {add: [welcomed]}
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture
def bank(env, tmp_path: Path):
    # given the journeys' small bank and a catalogue whose voucher has 2 items; S1 (71) took one and
    # redeemed it, so the voucher is the bank's favourite and 1 is left
    load_bank(env.settings, tmp_path / "bank")
    load(small_catalogue(tmp_path, stock=2))
    with unit_of_work(env.settings) as session:
        coupon = give(session, "s1-voucher", customer="S1", benefit="voucher").coupon
        assert coupon is not None
        ledger.claim(session, coupon.id, now=NOW + timedelta(hours=1), actor="test")
        ledger.redeem(session, coupon.id, now=NOW + timedelta(hours=2), actor="test")
    with unit_of_work(env.settings) as session:
        runtime.start(
            session, env.settings, parse_journey(JOURNEY), source_text=JOURNEY, now=at("2026-03-01T00:00:00")
        )
    return env


def issue(env, tmp: Path, *customers: str, ts: str = "2026-03-03T09:00:00+08:00") -> None:
    path = jsonl(
        tmp / f"ev-{len(list(tmp.glob('ev-*')))}.jsonl", *(card(f"c{c}{ts}", c, ts) for c in customers)
    )
    assert load_file("events", path, settings=env.settings, progress=False).rejected == 0


def grants(env) -> dict[str, list[str]]:
    with unit_of_work(env.settings) as session:
        rows = session.execute(
            select(Coupon.customer_id, Coupon.benefit_id).where(Coupon.campaign == "journey:welcome_gift")
        ).all()
    out: dict[str, list[str]] = {}
    for c, b in rows:
        out.setdefault(c, []).append(b)
    return out


def step_runs(env, kind: str) -> list[JourneyStepRun]:
    with unit_of_work(env.settings) as session:
        q = select(JourneyStepRun).where(JourneyStepRun.kind == kind).order_by(JourneyStepRun.customer_id)
        return list(session.scalars(q))


def test_recommended_takes_one_item_at_the_catalogues_face_value() -> None:
    for extra in ("quantity: 2", 'face_value: "5.00"'):
        with pytest.raises(InputRefused, match="benefit: recommended grants one item"):
            parse_journey(JOURNEY.replace("valid_days: 30}", f"valid_days: 30, {extra}}}"))


def test_each_customer_gets_their_top_recommendation_the_next_when_the_batch_took_the_last(
    bank, tmp_path
) -> None:
    env = bank
    # when K1 and K2 get a card in the same batch
    issue(env, tmp_path, "K1", "K2")
    r = work_once(env.settings, now=at("2026-03-03T10:00:00"), dispatch=False)
    # then K1 gets the voucher (the top recommendation, its last item) and K2 the next one, not a refusal
    assert grants(env) == {"K1": ["voucher"], "K2": ["discount"]}
    assert r.grants == 2
    runs = step_runs(env, "grant")
    assert [(x.customer_id, x.outcome, x.ref) for x in runs] == [
        ("K1", "granted", "voucher"),
        ("K2", "granted", "discount"),
    ]
    with unit_of_work(env.settings) as session:
        coupon = session.scalars(select(Coupon).where(Coupon.customer_id == "K1")).one()
        assert coupon.valid_to == at("2026-03-03T09:00:00") + timedelta(days=30)  # the step's valid_days
        statuses = set(session.scalars(select(JourneyEntry.status)))
    assert statuses == {"done"}  # the tag step after it ran too


def test_a_replayed_step_run_issues_nothing_more_and_keeps_its_benefit(bank, tmp_path) -> None:
    env = bank
    issue(env, tmp_path, "K1")
    work_once(env.settings, now=at("2026-03-03T10:00:00"), dispatch=False)
    assert grants(env) == {"K1": ["voucher"]}
    (run,) = step_runs(env, "grant")
    # when the same step run is applied again (K1 now holds the voucher: the recommender would pick another)
    detail = {"benefit": "recommended", "quantity": 1, "face_value": None, "valid_days": 30}
    action = Action("grant", run.key, "welcome_gift", "K1", "gift", run.at, detail=detail)
    records: list[dict] = []
    with unit_of_work(env.settings) as session:
        issued = runtime._apply_grants(
            session, env.settings, [(action, run.entry_id or 0)], records, at("2026-03-03T11:00:00")
        )
    # then nothing is issued and the record names the benefit granted the first time
    assert issued == 0 and [(x["outcome"], x["ref"]) for x in records] == [("granted", "voucher")]
    assert grants(env) == {"K1": ["voucher"]}
    # and the worker run again changes nothing
    work_once(env.settings, now=at("2026-03-04T10:00:00"), dispatch=False)
    assert grants(env) == {"K1": ["voucher"]} and len(step_runs(env, "grant")) == 1


def test_with_nothing_to_recommend_the_step_is_recorded_skipped_and_the_journey_goes_on(
    bank, tmp_path
) -> None:
    env = bank
    # given the journey's budget is used up
    with unit_of_work(env.settings) as session:
        ledger.set_budget(session, BudgetKey("journey:welcome_gift"), count=0, money_fen=None, now=NOW)
    issue(env, tmp_path, "K3")
    work_once(env.settings, now=at("2026-03-03T10:00:00"), dispatch=False)
    assert grants(env) == {}
    assert [(x.customer_id, x.outcome, x.reason) for x in step_runs(env, "grant")] == [
        ("K3", "skipped", "no_recommendation")
    ]
    assert [x.customer_id for x in step_runs(env, "tag")] == ["K3"]


def test_simulation_grants_the_recommendation_and_writes_a_skip_when_there_is_none(bank, tmp_path) -> None:
    env = bank
    events = jsonl(tmp_path / "sim.jsonl", card("s1", "K1", "2026-03-03T09:00:00+08:00"),
                   card("s2", "K2", "2026-03-03T09:05:00+08:00"))  # fmt: skip
    spec = parse_journey(JOURNEY)
    out = io.BytesIO()
    report = simulate([spec], env.settings, events=events, out=out)
    rows = [orjson.loads(x) for x in out.getvalue().splitlines()]
    granted = [(x["customer_id"], x["benefit"], x.get("recommended")) for x in rows if x["action"] == "grant"]
    # stock is not drawn down by a simulation: both would get the voucher
    assert granted == [("K1", "voucher", True), ("K2", "voucher", True)]
    assert report.journeys["welcome_gift"].grants == 2
    assert grants(env) == {}  # nothing written
    with unit_of_work(env.settings) as session:
        ledger.set_budget(
            session, BudgetKey("journey:welcome_gift", rule="gift"), count=0, money_fen=None, now=NOW
        )
    out = io.BytesIO()
    report = simulate([spec], env.settings, events=events, out=out)
    rows = [orjson.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["customer_id"], x["action"], x["reason"]) for x in rows if x.get("step") == "gift"] == [
        ("K1", "skip", "no_recommendation"), ("K2", "skip", "no_recommendation")
    ]  # fmt: skip
    assert report.journeys["welcome_gift"].grants == 0
