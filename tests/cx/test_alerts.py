"""CX alert rules (X3): owners through the org tree (an RM's customer, a customer without an RM, a branch,
nobody), the dedupe window, inflow surges, the same alerts live (through the real log and store) and in a
backtest, replays that change nothing, and rule files refused with the line and the field."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

from omnibank.config import Settings
from omnibank.cx import alerting
from omnibank.cx.alerts import (
    AlertEvent,
    AlertState,
    IndexDropRule,
    IndexReading,
    RuleSet,
    evaluate,
    load_rules,
    parse_rules,
    ruleset,
)
from omnibank.cx.backtest import backtest
from omnibank.cx.models import CxAlert
from omnibank.cx.owners import OwnerLookup, owner_lookup
from omnibank.db import unit_of_work
from omnibank.errors import Conflict, InputRefused
from omnibank.events.models import EventConsumerFile
from omnibank.ingest.service import load_file
from omnibank.orgs.models import Staff
from omnibank.service.models import SurgeAlert, Ticket
from tests.leads.helpers import load_bank

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)
EXAMPLE = Path(__file__).parents[2] / "examples" / "cx" / "alerts.yaml"

RULES = """
rules:
  - id: detractor_negative
    name: 贬损客户负面反馈
    kind: response
    when: {nps: {le: 6}, sentiment: negative}
    category: cx_detractor
    priority: high
    dedupe: {days: 7}
  - id: long_branch_wait
    name: 网点排队等候过长
    kind: event
    type: branch.visit
    where: "channel = 'branch'"
    fields: {wait_min: {gt: 30}}
    owner: branch_manager
    category: cx_branch_wait
  - id: branch_wait_storm
    name: 网点排队集中超时
    kind: event
    type: branch.visit
    fields: {wait_min: {gt: 60}}
    subject: branch
    owner: branch_manager
    category: cx_branch_wait
    dedupe: {days: 1}
  - id: complaint_surge
    name: 投诉量激增
    kind: inflow
    per: branch
    threshold: 3
    category: cx_surge
    priority: urgent
"""


def negative_if_bad(texts: Sequence[str]) -> list[str]:
    """A stand-in for omnibank.cx.text: 差/慢 read negative."""
    return ["negative" if ("差" in t or "慢" in t) else "positive" for t in texts]


def ev(
    n: int, type_: str, customer: str, at: datetime, channel: str | None = "app", **fields: object
) -> AlertEvent:
    return AlertEvent(f"e{n:04d}", type_, customer, at, channel, fields)


LOOKUP = OwnerLookup(
    rm={"CA1": "E00001"},
    home={"CA1": "S0101", "CA3": "S0102", "CB2": "B002"},
    managers={"S0101": "E00003", "S0102": "E00003", "B001": "E00003", "S0201": "E00008", "B002": "E00008"},
    default_queue="desk",
    desk_org="HQ",
)


def rules() -> RuleSet:
    return parse_rules(RULES, source="rules.yaml")


def run(events: list[AlertEvent], state: AlertState | None = None) -> list:
    return evaluate(
        rules(), events, owners=LOOKUP, state=state or AlertState(), tz=TZ, sentiment=negative_if_bad
    )


# --------------------------------------------------------------------------------------------- owners


def test_each_alert_has_one_owner_rm_then_branch_manager_then_the_default_queue() -> None:
    # given a detractor with a negative comment from an RM's customer, and one from a customer without an RM
    events = [
        ev(1, "survey.response", "CA1", MONDAY, survey="nps_visit", nps=3, comment="服务太差了"),
        ev(2, "survey.response", "CA3", MONDAY, survey="nps_visit", nps=5, comment="办理太慢"),
        ev(3, "survey.response", "CX9", MONDAY, survey="nps_visit", nps=0, comment="差"),  # unknown customer
        ev(4, "survey.response", "CA1", MONDAY, survey="nps_visit", nps=9, comment="差"),  # a promoter
        ev(5, "survey.response", "CB2", MONDAY, survey="nps_visit", nps=2, comment="很好"),  # positive
    ]
    alerts = run(events)
    assert [(a.subject_id, a.owner, a.event_id) for a in alerts] == [
        ("CA1", "E00001", "e0001"),
        ("CA3", "E00003", "e0002"),
        ("CX9", "queue:desk", "e0003"),
    ]
    assert alerts[1].reason == "no active RM: the manager of the customer's branch S0102"
    assert "default queue desk" in alerts[2].reason
    assert alerts[0].key == "cx:detractor_negative:c:CA1:20260302T020000Z"
    assert alerts[0].context == "NPS 3 · 负面评价"  # never the comment itself


def test_a_branch_alert_goes_to_the_branch_manager_nearest_up_the_tree() -> None:
    # given long waits at two sub-branches: the manager of each one's branch hears of it
    events = [
        ev(1, "branch.visit", "CA1", MONDAY, "branch", branch_id="S0201", wait_min=75),
        ev(2, "branch.visit", "CA3", MONDAY, "branch", branch_id="S0102", wait_min=Decimal("61.5")),
        ev(3, "branch.visit", "CA1", MONDAY, "app", branch_id="S0102", wait_min=45),  # not at a branch
        ev(4, "branch.visit", "CA3", MONDAY, "branch", wait_min=20),
    ]
    alerts = run(events)
    by_rule = {(a.rule_id, a.subject_kind, a.subject_id): a.owner for a in alerts}
    assert by_rule == {
        ("long_branch_wait", "customer", "CA1"): "E00008",  # the visited branch S0201 (B002), not the RM
        ("branch_wait_storm", "branch", "S0201"): "E00008",
        ("long_branch_wait", "customer", "CA3"): "E00003",
        ("branch_wait_storm", "branch", "S0102"): "E00003",
    }
    branch = next(a for a in alerts if a.subject_kind == "branch")
    assert branch.customer_id is None and branch.branch_id == "S0201"
    assert LOOKUP.of_branch("HQ").queue == "desk"  # nobody at or above HQ: the default queue, and why
    assert "no branch manager at or above HQ" in LOOKUP.of_branch("HQ").reason


def test_owners_read_from_the_store_skip_an_rm_or_manager_who_left(settings: Settings) -> None:
    with unit_of_work(settings) as session:
        session.execute(update(Staff).where(Staff.staff_id.in_(["E00001", "E00008"])).values(left_at=MONDAY))
    with unit_of_work(settings) as session:
        lookup = owner_lookup(session, customers=["CA1", "CA3", "CB1", "CB2", "NOBODY"])
    assert lookup.of_customer("CA1").label == "E00003"  # the RM left: the manager of S0101's branch
    assert lookup.of_customer("CA3").label == "E00003"
    assert lookup.of_customer("CB2").label == "queue:desk"  # B002's manager left, nobody above
    assert lookup.of_branch("T010101").label == "E00003"  # a team: up to B001
    assert lookup.of_customer("NOBODY").queue == "desk"


# --------------------------------------------------------------------------------------------- dedupe


def test_one_alert_per_customer_per_rule_per_window_and_replaying_raises_the_same_keys() -> None:
    storm = [
        ev(i, "survey.response", "CA1", MONDAY + timedelta(hours=i), survey="s", nps=1, comment="差")
        for i in range(50)
    ]
    later = ev(
        99, "survey.response", "CA1", MONDAY + timedelta(days=7, hours=1), survey="s", nps=1, comment="慢"
    )
    state = AlertState()
    first = run([*storm, later], state)
    assert [a.event_id for a in first] == ["e0000", "e0099"]  # the storm opens one; a week later, another
    assert [a.key for a in run([*storm, later])] == [a.key for a in first]  # deterministic
    assert run([*storm, later], state) == []  # with what was raised remembered, nothing again


def test_complaint_inflow_above_the_threshold_raises_one_surge_per_branch_and_hour() -> None:
    hour = MONDAY.replace(minute=0)
    events = [ev(i, "complaint.filed", "CA1", hour + timedelta(minutes=i)) for i in range(6)]
    events += [ev(10 + i, "complaint.filed", "CB2", hour + timedelta(minutes=i)) for i in range(3)]
    events += [ev(20 + i, "complaint.filed", "CA3", hour + timedelta(hours=1, minutes=i)) for i in range(4)]
    alerts = run(events)
    assert [(a.subject_id, a.owner, a.event_id, a.key) for a in alerts] == [
        ("S0101", "E00003", "e0003", "cx:complaint_surge:b:S0101:20260302T10"),  # the 4th of the hour
        ("S0102", "E00003", "e0023", "cx:complaint_surge:b:S0102:20260302T11"),
    ]  # B002's 3 complaints are not more than 3


def test_an_index_drop_of_more_than_the_points_alerts_the_branch_manager() -> None:
    rule = IndexDropRule.model_validate(
        {"id": "drop", "name": "体验指数下降", "kind": "index_drop", "map": "m.yaml", "points": 5,
         "category": "cx_index"}
    )  # fmt: skip
    week = MONDAY.date() - timedelta(days=7)
    readings = [
        IndexReading("drop", week, "S0101", Decimal("80"), Decimal("74.9"), MONDAY),
        IndexReading("drop", week, "S0201", Decimal("80"), Decimal("75"), MONDAY),  # exactly 5: no
        IndexReading("drop", week, "S0102", None, Decimal("40"), MONDAY),  # no week before
    ]
    state = AlertState()
    got = evaluate(ruleset([rule]), [], owners=LOOKUP, state=state, tz=TZ, readings=readings)
    assert [(a.subject_id, a.owner, a.key) for a in got] == [("S0101", "E00003", "cx:drop:b:S0101:2026W09")]
    assert evaluate(ruleset([rule]), [], owners=LOOKUP, state=state, tz=TZ, readings=readings) == []


# --------------------------------------------------------------------------------------------- rule files


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - id: a\n    name: 甲\n    kind: nope\n    category: x\n",
            "rules.0.kind (line 4): give one of",
        ),
        (
            "rules:\n  - id: a\n    name: 甲\n    kind: response\n    category: x\n"
            "    when: {nps: {lte: 6}}\n",
            "rules.0.when.nps.lte (line 6): Extra inputs are not permitted",
        ),
        (
            "rules:\n  - id: a\n    name: 甲\n    kind: event\n    type: branch.visit\n    category: x\n"
            '    where: "wait_min > 30"\n',
            "rules.0.where (line 7): unknown event field `wait_min`",
        ),
        (
            "rules:\n  - id: a\n    name: 甲\n    kind: inflow\n    category: Bad\n    threshold: 0\n",
            "rules.0.category (line 5)",
        ),
        (
            "rules:\n  - {id: a, name: 甲, kind: inflow, category: x, threshold: 3}\n"
            "  - {id: a, name: 乙, kind: inflow, category: x, threshold: 3}\n",
            "rules.1.id (line 3): a is also rule 0's id",
        ),
        (
            "rules:\n  - id: a\n    name: 甲\n    kind: index_drop\n    category: x\n"
            "    map: no.yaml\n    points: 5\n",
            "rules.0.map (line 6): no journey map file",
        ),
    ],
)
def test_bad_rule_files_are_refused_naming_the_file_line_and_field(
    text: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputRefused) as refused:
        load_rules(path)
    assert refused.value.message.startswith(f"{path}: alert rules refused:")
    assert expected in refused.value.message


def test_the_example_rules_are_valid() -> None:
    if not (EXAMPLE.parent / "credit_card_map.yaml").is_file():
        pytest.skip("examples/cx/credit_card_map.yaml is not written yet")
    example = load_rules(EXAMPLE)
    assert [r.kind for r in example.rules] == ["response", "index_drop", "event", "inflow"]
    assert example.types == {"survey.response", "branch.visit", "complaint.filed"}


# ------------------------------------------------------------------------------------------ live and backtest


@pytest.fixture
def settings(env, tmp_path: Path) -> Settings:
    s: Settings = env.settings
    load_bank(s, tmp_path / "bank")
    return s


def _line(n: int, type_: str, customer: str, at: datetime, **fields: object) -> dict[str, object]:
    return {"event_id": f"x{n:03d}", "type": type_, "customer_id": customer, "ts": at.isoformat(), **fields}


def _events_file(tmp_path: Path) -> Path:
    at = MONDAY - timedelta(hours=2)
    lines = [
        _line(1, "survey.response", "CA1", at, channel="app", survey="nps_visit", nps=2, comment="太慢了"),
        _line(2, "survey.response", "CA1", at + timedelta(minutes=5), channel="app", survey="nps_visit",
              nps=1, comment="服务差"),  # within the week: deduplicated
        _line(3, "survey.response", "CA3", at, channel="wechat", survey="nps_visit", nps=4, comment="差"),
        _line(4, "survey.response", "CB1", at, channel="sms", survey="nps_visit", nps=10, comment="很好"),
        _line(5, "branch.visit", "CB2", at, channel="branch", branch_id="S0201", wait_min=95, service="开户"),
        *[_line(10 + i, "complaint.filed", "CA2", at + timedelta(minutes=i), channel="app", category="card",
                subject="卡片问题") for i in range(4)],
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    text = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines)
    path.write_text(text + "\n{not json\n", encoding="utf-8")
    return path


def test_live_and_backtest_raise_the_same_alerts_and_replaying_changes_nothing(settings, tmp_path) -> None:
    path = _events_file(tmp_path)
    assert load_file("events", path, settings=settings, progress=False).loaded == 9
    ruleset = rules()
    # backtest: the file, nothing stored
    with unit_of_work(settings) as session:
        tested = backtest(ruleset, path, session, settings, sentiment=negative_if_bad)
    assert (tested.lines, tested.events, tested.rejected) == (10, 9, 1)
    assert tested.rejects == [(10, "not valid JSON")]
    assert tested.per_rule == {"detractor_negative": 2, "long_branch_wait": 1, "branch_wait_storm": 1,
                               "complaint_surge": 1}  # fmt: skip
    assert tested.per_owner == {"E00008": 2, "E00001": 1, "E00003": 2}
    # live: the same events through the log and the store
    with unit_of_work(settings) as session:
        live = alerting.run_alerts(session, settings, now=MONDAY, rules=ruleset, sentiment=negative_if_bad)
    assert sorted((a.key, a.owner, a.event_id) for a in live.raised) == sorted(
        (a.key, a.owner, a.event_id) for a in tested.raised
    )
    assert (live.alerts, live.tickets, live.recorded_only, live.surges) == (5, 3, 2, 1)
    with unit_of_work(settings) as session:
        found = {
            (t.customer_id, t.kind, t.category, t.priority, t.owner_staff_id, t.source)
            for t in session.scalars(select(Ticket))
        }
        surge = session.scalars(select(SurgeAlert)).one()
        assert (surge.queue, surge.to_staff_id) == ("cx:complaint_surge:T010101", "E00003")
    assert found == {
        ("CA1", "alert", "cx_detractor", "high", "E00001", "cx_alert"),
        ("CA3", "alert", "cx_detractor", "high", "E00003", "cx_alert"),
        ("CB2", "alert", "cx_branch_wait", "normal", "E00008", "cx_alert"),
    }
    # replay: nothing new to read; and reading every file again records nothing twice
    with unit_of_work(settings) as session:
        again = alerting.run_alerts(session, settings, now=MONDAY, rules=ruleset, sentiment=negative_if_bad)
    assert (again.files, again.alerts) == (0, 0)
    with unit_of_work(settings) as session:
        session.execute(delete(EventConsumerFile))
    with unit_of_work(settings) as session:
        replay = alerting.run_alerts(session, settings, now=MONDAY, rules=ruleset, sentiment=negative_if_bad)
        counts = (session.scalar(select(func.count()).select_from(CxAlert)),
                  session.scalar(select(func.count()).select_from(Ticket)))  # fmt: skip
    assert (replay.events, replay.alerts) == (9, 0)  # deduplicated by the state the store remembers
    assert counts == (5, 3)


def test_alerts_are_closed_with_the_action_taken(settings, tmp_path) -> None:
    from omnibank.service import tickets

    path = _events_file(tmp_path)
    load_file("events", path, settings=settings, progress=False)
    with unit_of_work(settings) as session:
        alerting.run_alerts(session, settings, now=MONDAY, rules=rules(), sentiment=negative_if_bad)
    with unit_of_work(settings) as session:
        branch = session.scalars(select(CxAlert).where(CxAlert.subject_kind == "branch")).first()
        with_ticket = session.scalars(select(CxAlert).where(CxAlert.customer_id == "CA1")).one()
        assert branch is not None and with_ticket.ticket_id is not None
        branch_key, ticket_id, ticket_key = branch.key, with_ticket.ticket_id, with_ticket.key
    with unit_of_work(settings) as session, pytest.raises(InputRefused):
        alerting.close_alert(session, branch_key, action="  ", by="E00008", now=MONDAY)
    with unit_of_work(settings) as session, pytest.raises(Conflict):
        alerting.close_alert(session, ticket_key, action="已回访", by="E00001", now=MONDAY)
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        with pytest.raises(InputRefused, match="the action taken"):  # resolving an alert needs a note
            tickets.set_status(session, desk, ticket_id, "resolved", by="E00001", now=MONDAY)
    with unit_of_work(settings) as session:
        alerting.close_alert(session, branch_key, action="增开窗口两个", by="E00008", now=MONDAY)
        desk = tickets.desk_of(session, settings)
        tickets.set_status(
            session, desk, ticket_id, "resolved", by="E00001", now=MONDAY, note="已致电客户致歉"
        )
    with unit_of_work(settings) as session:
        assert alerting.sync_closed(session) == 1
        done = session.scalars(select(CxAlert).where(CxAlert.closed_at.is_not(None))).all()
        assert sorted(a.action or "" for a in done) == ["增开窗口两个", "已致电客户致歉"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["survey.response", "branch.visit", "complaint.filed"]),
            st.sampled_from(["CA1", "CA3", "CB2", "CX9"]),
            st.integers(0, 60 * 24 * 20),  # minutes over 20 days
            st.integers(0, 90),
        ),
        max_size=60,
    ),
    st.lists(st.integers(1, 59), max_size=4),
)
@hsettings(max_examples=30, deadline=None)
def test_passes_over_consecutive_batches_raise_what_one_pass_over_all_raises(draws, cuts) -> None:
    # the worker evaluates the log pass by pass, carrying its state; a backtest evaluates it at once
    events = sorted(
        (
            ev(n, t, c, MONDAY + timedelta(minutes=m), "branch", survey="s", nps=v % 11, wait_min=v,
               comment="差" if v % 2 else "好")
            for n, (t, c, m, v) in enumerate(draws)
        ),
        key=lambda e: (e.ts, e.event_id),
    )  # fmt: skip
    at_once = run(events)
    state = AlertState()
    in_passes = []
    bounds = [0, *sorted(c for c in cuts if c < len(events)), len(events)]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        in_passes += run(events[lo:hi], state)
    assert [(a.key, a.owner) for a in in_passes] == [(a.key, a.owner) for a in at_once]
