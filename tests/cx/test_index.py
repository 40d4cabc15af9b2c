"""The experience index: a worked example scored by hand at every level, per branch (the event's branch_id
before the customer's home branch), per channel, for the whole bank, and over a saved segment; an indicator
without data for a group is left out and its siblings rescaled; the CSV and the alert helper."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omnibank.config import Settings
from omnibank.cx.index import CSV_COLUMNS, IndexResult, compute_index, index_values, parse_period, write_csv
from omnibank.cx.maps import JourneyMap, load_map, parse_map
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.ingest.service import load_file
from omnibank.segments import service as segments
from tests.factories import ORGS, customer_row, customers_csv

TZ = ZoneInfo("Asia/Shanghai")
D = Decimal
STAFF = "staff_id,org_id,name,role,phone\nE00001,S0101,周慧敏,rm,13911112222\nE00002,S0201,吴承恩,rm,\n"
# C1, C2 at home in S0101 (C2 with little AUM); C3, C4 in S0201
CUSTOMERS = [
    customer_row("C1", phone="13800000001", branch_id="S0101", rm_id="E00001", aum="523000.00"),
    customer_row("C2", phone="13800000002", branch_id="S0101", rm_id="E00001", aum="50000.00"),
    customer_row("C3", phone="13800000003", branch_id="S0201", rm_id="E00002", aum="523000.00"),
    customer_row("C4", phone="13800000004", branch_id="S0201", rm_id="E00002", aum="800000.00"),
]

MAP = """\
id: test_map
name: 测试旅程
stages:
  - id: s1
    name: 阶段一
    weight: 0.6
    touchpoints:
      - id: t1
        name: 触点一
        weight: 1
        experience_points:
          - id: p1
            name: 体验点一
            weight: 0.5
            indicators:
              - id: nps
                name: 净推荐值
                weight: 0.5
                direction: higher_better
                target: 50
                floor: -50
                survey: {id: nps_card, metric: nps}
              - id: login_fail
                name: 登录失败率
                weight: 0.5
                direction: lower_better
                target: 0
                floor: 20
                events: {count: app.login_failed, per: app.login}
          - id: p2
            name: 体验点二
            weight: 0.5
            indicators:
              - id: wait
                name: 网点平均排队时长
                weight: 1
                direction: lower_better
                target: 5
                floor: 25
                events: {mean: wait_min, of: branch.visit, where: "channel = 'branch'"}
  - id: s2
    name: 阶段二
    weight: 0.4
    touchpoints:
      - id: t2
        name: 触点二
        weight: 1
        experience_points:
          - id: p3
            name: 体验点三
            weight: 1
            indicators:
              - id: approved_3d
                name: 3天内审批通过率
                weight: 0.5
                direction: higher_better
                target: 100
                floor: 0
                within: {start: card.application_submitted, end: card.application_approved, days: 3}
              - id: wealthy
                name: 高净值客户占比
                weight: 0.25
                direction: higher_better
                target: 100
                floor: 0
                customers: {of: "true", share: "aum >= 100000"}
              - id: complaints
                name: 千户投诉量
                weight: 0.25
                direction: lower_better
                target: 0
                floor: 1000
                tickets: {metric: complaints_per_1000}
"""


def at(day: int, hour: int = 10) -> str:
    return datetime(2026, 11, day, hour, tzinfo=TZ).isoformat()


def event(n: int, type_: str, customer: str, ts: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"e{n:04d}", "type": type_, "customer_id": customer, "ts": ts, **fields}


def events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(type_: str, customer: str, ts: str, **fields: Any) -> None:
        out.append(event(len(out), type_, customer, ts, **fields))

    # NPS at S0101: 5 promoters, 3 passives, 2 detractors → 30; by channel app 9,9,9,9,9,7 / wechat 8,8,3,5
    for i, (score, channel) in enumerate(
        [(9, "app"), (10, "app"), (9, "app"), (10, "app"), (9, "app"), (7, "app")]
        + [(8, "wechat"), (8, "wechat"), (3, "wechat"), (5, "wechat")]
    ):
        add(
            "survey.response",
            "C1" if i % 2 else "C2",
            at(3 + i),
            channel=channel,
            survey="nps_card",
            nps=score,
        )
    add("survey.response", "C3", at(4), channel="app", survey="other", nps=0)  # another survey: not counted
    # logins: S0101 10 and 1 failed (10%); S0201 4, none failed (0%)
    for i in range(10):
        add("app.login", "C1", at(1 + i), channel="app")
    add("app.login_failed", "C2", at(12), channel="app")
    for i in range(4):
        add("app.login", "C3", at(1 + i), channel="app")
    # waits: S0101 10 and 20 (mean 15); C1 (home S0101) visits S0201 and waits 15
    add("branch.visit", "C2", at(5), channel="branch", branch_id="S0101", wait_min=10)
    add("branch.visit", "C2", at(6), channel="branch", branch_id="S0101", wait_min=20)
    add("branch.visit", "C1", at(7), channel="branch", branch_id="S0201", wait_min=15)
    add("branch.visit", "C2", at(8), channel="app", branch_id="S0101", wait_min=100)  # not counted: where
    # applications: S0101 one within 3 days, one not (50%); S0201 one within (100%)
    add("card.application_submitted", "C1", at(2), channel="app", application_id="A1")
    add("card.application_approved", "C1", at(4), channel="app", application_id="A1")
    add("card.application_submitted", "C2", at(10), channel="app", application_id="A2")
    add("card.application_approved", "C2", at(20), channel="app", application_id="A2")
    add("card.application_submitted", "C3", at(5), channel="app", application_id="A3")
    add("card.application_approved", "C3", at(6), channel="app", application_id="A3")
    # October: outside the period
    add("app.login_failed", "C3", datetime(2026, 10, 30, 10, tzinfo=TZ).isoformat(), channel="app")
    return out


def build_bank(settings: Settings, tmp: Path, rows: list[dict[str, Any]]) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    customers_csv(tmp / "customers.csv", CUSTOMERS)
    for kind in ("orgs", "staff", "customers"):
        assert load_file(kind, tmp / f"{kind}.csv", settings=settings, progress=False).rejected == 0, kind
    path = tmp / "events.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in rows), encoding="utf-8")
    assert load_file("events", path, settings=settings, progress=False).rejected == 0


@pytest.fixture
def settings(env: Any, tmp_path: Path) -> Settings:
    settings: Settings = env.settings
    build_bank(settings, tmp_path / "bank", events())
    return settings


@pytest.fixture
def spec() -> JourneyMap:
    return parse_map(MAP, source="test_map.yaml")


def run(settings: Settings, spec: JourneyMap, by: str | None, period: str | None = "2026-11") -> IndexResult:
    with unit_of_work(settings) as session:
        return compute_index(session, settings, spec, by=by, period=period)


def scores(result: IndexResult, group: str) -> dict[str, tuple[Decimal | None, Decimal | None, Decimal]]:
    return {r.path: (r.raw, r.score, r.coverage) for r in result.rows if r.group == group}


def test_weighted_index_by_branch_at_every_level_with_rescaling(settings: Settings, spec: JourneyMap) -> None:
    result = run(settings, spec, "branch")
    assert result.groups == ["S0101", "S0201"]
    a = scores(result, "S0101")
    # indicators: raw → score
    assert a["s1/t1/p1/nps"][:2] == (D(30), D(80))  # (30 − (−50)) / 100
    assert a["s1/t1/p1/login_fail"][:2] == (D(10), D(50))  # 1 failed per 10 logins
    assert a["s1/t1/p2/wait"][:2] == (D(15), D(50))  # the visit to S0201 counts there
    assert a["s2/t2/p3/approved_3d"][:2] == (D(50), D(50))
    assert a["s2/t2/p3/wealthy"][:2] == (D(50), D(50))
    assert a["s2/t2/p3/complaints"][:2] == (D(0), D(100))
    # up the tree
    assert a["s1/t1/p1"][1] == D(65)  # 0.5·80 + 0.5·50
    assert a["s1/t1"][1] == D("57.5")  # 0.5·65 + 0.5·50
    assert a["s1"][1] == D("57.5")
    assert a["s2/t2/p3"][1] == D("62.5")  # 0.5·50 + 0.25·50 + 0.25·100
    assert a[""][1:] == (D("59.5"), D(1))  # 0.6·57.5 + 0.4·62.5, all covered

    # an indicator without data for a group is left out and its siblings rescaled
    b = scores(result, "S0201")
    assert b["s1/t1/p1/nps"] == (None, None, D(0))  # no answer from S0201
    assert b["s1/t1/p1"][1:] == (D(100), D("0.5"))  # login failures alone (0%), half the weight
    assert b["s1/t1/p2/wait"][:2] == (D(15), D(50))
    assert b["s1/t1"][1:] == (D(75), D("0.75"))  # 0.5·100 + 0.5·50; coverage 0.5·0.5 + 0.5·1
    assert b["s2/t2/p3"][1] == D(100)
    assert b[""][1:] == (D(85), D("0.85"))  # 0.6·75 + 0.4·100; coverage 0.6·0.75 + 0.4


def test_by_channel_whole_bank_segment_and_period(settings: Settings, spec: JourneyMap) -> None:
    by_channel = run(settings, spec, "channel")
    app, wechat = scores(by_channel, "app"), scores(by_channel, "wechat")
    assert app["s1/t1/p1/nps"][0] is not None
    assert round(app["s1/t1/p1/nps"][0], 2) == D("83.33")  # 5 promoters of 6
    assert wechat["s1/t1/p1/nps"][0] == D(-50)  # 2 passives, 2 detractors
    assert app["s2/t2/p3/wealthy"] == (None, None, D(0))  # customers have no channel
    whole = scores(run(settings, spec, None), "all")
    assert whole["s1/t1/p1/nps"][0] == D(30)
    assert whole["s1/t1/p1/login_fail"][0] == D(1) * 100 / 14  # October's failure is outside
    assert whole["s2/t2/p3/approved_3d"][0] == D(2) * 100 / 3

    with unit_of_work(settings) as session:
        segments.save(session, name="wealthy", text="aum >= 500000", description="", actor="test")
    result = run(settings, spec, "segment:wealthy")
    assert result.groups == ["not wealthy", "wealthy"]
    assert scores(result, "wealthy")["s2/t2/p3/wealthy"][0] == D(100)
    assert scores(result, "not wealthy")["s2/t2/p3/wealthy"][0] == D(0)
    october = run(settings, spec, None, "2026-10")
    assert scores(october, "all")["s1/t1/p1/login_fail"][0] is None  # a failure, but no login to divide by


def test_csv_and_alert_helper(settings: Settings, spec: JourneyMap, tmp_path: Path) -> None:
    result = run(settings, spec, "branch")
    out = tmp_path / "index.csv"
    assert write_csv(result, out) == len(result.rows) == 2 * 14
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0] == {
        "map": "test_map", "period": "2026-11", "group": "S0101", "level": "map", "path": "",
        "id": "test_map", "name": "测试旅程", "weight": "1", "raw": "", "score": "59.50",
        "coverage": "1.0000", "n": "",
    }  # fmt: skip
    assert rows[2]["level"] == "touchpoint"
    with unit_of_work(settings) as session:
        values = index_values(
            session, settings, spec, by="branch", start=date(2026, 11, 1), end=date(2026, 12, 1)
        )
    assert values == {"S0101": D("59.5"), "S0201": D(85)}
    assert result.warnings == []
    # the examples run over this small bank: every source kind, and warnings for types it never saw
    examples = Path(__file__).resolve().parents[2] / "examples" / "cx"
    with unit_of_work(settings) as session:
        card = compute_index(session, settings, load_map(examples / "credit_card_map.yaml"), by="branch")
        wealth = compute_index(session, settings, load_map(examples / "wealth_map.yaml"), by=None)
    assert card.period == "2026-10-30..2026-11-20"  # the whole log
    assert card.row("S0101", "apply/online_apply/approval_speed/approved_3d").raw == D(50)
    assert "card.activated: no such event in the log yet" in card.warnings
    assert wealth.row("all", "hold/accompany/rm_care/rm_assigned").raw == D(100)


def test_periods() -> None:
    assert parse_period("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    assert parse_period("2026-W01") == (date(2025, 12, 29), date(2026, 1, 5))
    with pytest.raises(InputRefused, match="not a month"):
        parse_period("2026-13")
