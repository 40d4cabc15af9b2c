"""The console's customer-experience pages (体验): the experience index of a journey map per branch, a
survey's results with the negative topics, the alerts with their owners (scoped: a branch manager does not
see another branch's customers' alerts), the funnels; Chinese by default, English on request, and a query
the read layers refuse shown with its message, never a 500."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from omnibank.contact.models import ContactMessage
from omnibank.cx.models import CxAlert
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from tests.api.bank import Bank
from tests.benefits.helpers import NOW
from tests.console.conftest import Console

HX = {"HX-Request": "true"}
MARCH = "2026-03"  # NOW is 2026-03-02 10:00 bank time


def _event(n: int, type_: str, customer: str, hours_before: float, **fields: Any) -> dict[str, Any]:
    at = NOW - timedelta(hours=hours_before)
    return {"event_id": f"cx{n:03d}", "type": type_, "customer_id": customer, "ts": at.isoformat(), **fields}


def experience(bank: Bank, tmp: Path) -> None:
    """March: CA1 (branch A, 桃城支行 S0101) three happy NPS answers and a short wait; CB1 (branch B,
    长安支行 S0201) two detractors with angry comments and a long wait. Alerts: one about CA1 (owner RM A),
    one about CB1 (owner RM B), one about the branch S0201 (owner its manager), one closed about CA3."""
    rows = [
        _event(1, "survey.response", "CA1", 30, channel="app", survey="nps_card", nps=10, csat=5, ces=2),
        _event(2, "survey.response", "CA1", 29, channel="app", survey="nps_card", nps=9, csat=5, ces=2),
        _event(3, "survey.response", "CA1", 28, channel="wechat", survey="nps_card", nps=9, csat=4),
        _event(4, "survey.response", "CB1", 27, channel="sms", survey="nps_card", nps=2, csat=1,
               comment="网点排队太久了，服务态度很差"),
        _event(5, "survey.response", "CB1", 26, channel="sms", survey="nps_card", nps=3, csat=2,
               comment="信用卡分期手续费太高，非常不满意"),
        _event(6, "branch.visit", "CA1", 25, channel="branch", branch_id="S0101", wait_min=5, service="开户"),
        _event(7, "branch.visit", "CB1", 24, channel="branch", branch_id="S0201", wait_min=70,
               service="理财咨询"),
    ]  # fmt: skip
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "cx-events.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert load_file("events", path, settings=bank.settings, progress=False).rejected == 0

    def alert(key: str, customer: str | None, branch: str, owner: str, hours: float, **kw: Any) -> CxAlert:
        at = NOW - timedelta(hours=hours)
        return CxAlert(
            key=key, rule_id=kw.pop("rule", "detractor_negative"), rule_kind=kw.pop("kind", "response"),
            subject_kind="customer" if customer else "branch", subject_id=customer or branch,
            customer_id=customer, branch_id=branch, owner_staff_id=owner, owner_queue=None,
            reason=kw.pop("reason", "the customer's RM"), event_id=None, context=kw.pop("context", "NPS 2"),
            raised_at=at, window_start=at, recorded_at=at, due_at=at + timedelta(days=1), **kw,
        )  # fmt: skip

    with unit_of_work(bank.settings) as session:
        session.add_all([
            alert("k-ca1", "CA1", "S0101", "E00001", 3, ticket_id="T-CA1"),
            alert("k-cb1", "CB1", "S0201", "E00002", 4, context="NPS 3 其他网点"),
            alert("k-s0201", None, "S0201", "E00008", 5, rule="long_branch_wait", kind="event",
                  reason="the manager of branch S0201", context="排队 70 分钟"),
            alert("k-ca3", "CA3", "S0102", "E00006", 50, closed_at=NOW - timedelta(hours=20),
                  action="已致电客户并致歉", closed_by="user:agent"),
        ])  # fmt: skip


def test_the_index_page_and_its_table_for_an_admin_in_chinese(console: Console, tmp_path: Path) -> None:
    experience(console.bank, tmp_path)
    console.signin("admin", lang="zh")
    page = console.get(f"/console/cx?map=credit_card&by=branch&period={MARCH}")
    assert page.status_code == 200, page.text
    assert "<h1>体验指数</h1>" in page.text and ">体验</a>" in page.text  # the nav entry after 工单
    nav = page.text.split('class="side"', 1)[1]
    assert nav.index("/console/tickets") < nav.index('href="/console/cx"')
    assert 'hx-get="/console/cx/index?map=credit_card&amp;by=branch&amp;period=2026-03"' in page.text
    assert "正在计算体验指数" in page.text
    table = console.get(f"/console/cx/index?map=credit_card&by=branch&period={MARCH}", headers=HX)
    assert table.status_code == 200, table.text
    assert "<html" not in table.text  # a fragment for htmx
    assert 'id="group-S0101"' in table.text and "桃城支行" in table.text
    assert 'id="group-S0201"' in table.text and "长安支行" in table.text
    header = table.text.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert re.findall(r"<th scope=\"col\"[^>]*>([^<]+)", header)[:3] == ["网点", "体验指数", "申卡"]
    # the happy branch scores above the unhappy one on the map; every score cell has its band's class
    s0101 = table.text.split('id="group-S0101"', 1)[1].split("</tr>", 1)[0]
    s0201 = table.text.split('id="group-S0201"', 1)[1].split("</tr>", 1)[0]
    first = re.compile(r'<td class="num (score-\w+) map">([\d.—]+)')
    (band_a, score_a), (band_b, score_b) = first.search(s0101).groups(), first.search(s0201).groups()  # type: ignore[union-attr]
    assert float(score_a) > float(score_b), (score_a, score_b)
    assert {band_a, band_b} <= {"score-good", "score-fair", "score-poor"} and "style=" not in table.text
    full = console.get(f"/console/cx/index?map=credit_card&by=whole&period={MARCH}")
    assert full.status_code == 422 and "by: &#39;whole&#39; is not one of branch, channel, all" in full.text
    whole = console.get(f"/console/cx/index?map=wealth&by=all&period={MARCH}")  # no htmx: the whole page
    assert whole.status_code == 200 and "<h1>体验指数</h1>" in whole.text and 'id="group-all"' in whole.text


def test_english_on_request_and_bad_queries_say_why(console: Console) -> None:
    console.signin("bm_a", lang="en")
    page = console.get("/console/cx")
    assert (
        page.status_code == 200 and "<h1>Experience index</h1>" in page.text and "体验指数" not in page.text
    )
    assert ">Experience</a>" in page.text
    unknown = console.get("/console/cx?map=nope")
    assert unknown.status_code == 404 and "no map &#39;nope&#39;" in unknown.text
    assert "credit_card" in unknown.text and 'id="index-form"' in unknown.text  # the form to correct it
    month = console.get("/console/cx?map=credit_card&period=2026-13")
    assert month.status_code == 422 and "period: &#39;2026-13&#39; is not a month" in month.text
    fragment = console.get("/console/cx/index?map=credit_card&period=11/2026", headers=HX)
    assert fragment.status_code == 422 and 'id="cx-error"' in fragment.text and "<html" not in fragment.text
    assert console.get("/console/cx/surveys?period=bad").status_code == 422
    assert console.get("/console/cx/surveys?survey=Bad-Id").status_code == 422
    assert console.get("/console/cx/alerts?state=maybe").status_code == 422
    assert console.get("/console/cx/funnel?by=segment").status_code == 422
    assert console.get("/console/cx/funnel?journey=no_such_journey").status_code == 404


def test_the_survey_results_and_the_negative_topics(console: Console, tmp_path: Path) -> None:
    experience(console.bank, tmp_path)
    console.signin("admin", lang="zh")
    page = console.get(f"/console/cx/surveys?survey=nps_card&by=branch&period={MARCH}")
    assert page.status_code == 200, page.text
    assert "<h1>满意度调查</h1>" in page.text and "负面话题" in page.text
    assert all(
        s in page.text for s in ("nps_card", "csat_branch", "ces_service")
    )  # no surveys file: the demo's
    a = page.text.split('id="survey-S0101"', 1)[1].split("</tr>", 1)[0]
    b = page.text.split('id="survey-S0201"', 1)[1].split("</tr>", 1)[0]
    assert "桃城支行" in a and ">100.0<" in a and "3 / 0 / 0" in a  # three promoters: NPS 100
    assert ">-100.0<" in b and "0.0%" in b  # two detractors, none satisfied
    topics = page.text.split('id="topics"', 1)[1].split("</table>", 1)[0]
    assert "S0201" in topics and MARCH in topics and "100.0%" in topics
    empty = console.get("/console/cx/surveys?survey=ces_service&period=2026-01")
    assert empty.status_code == 200 and 'id="survey-empty"' in empty.text


def test_alerts_are_scoped_and_show_their_owners(console: Console, tmp_path: Path) -> None:
    experience(console.bank, tmp_path)
    console.signin("bm_a", lang="zh")  # branch A: CA1's alert; not CB1's, nor the branch S0201's
    page = console.get("/console/cx/alerts")
    assert page.status_code == 200, page.text
    assert "<h1>体验预警</h1>" in page.text and "负责人" in page.text
    rows = page.text.split('id="alerts"', 1)[1]
    assert 'data-key="k-ca1"' in rows and "k-cb1" not in rows and "k-s0201" not in rows
    assert "CB1" not in rows and "其他网点" not in rows
    assert 'href="/console/tickets/T-CA1"' in rows and "E00001" in rows and "客户经理" in rows
    assert "截止时间" in page.text  # the read layer carries due_at: the column is shown
    counts = page.text.split('id="alert-counts"', 1)[1].split("</div>\n</div>", 1)[0]
    assert re.findall(r'class="value[^"]*">(\d+)<', counts) == ["1", "1"]
    home = console.get("/console").text.split('id="kpi-alerts"', 1)[1]
    assert "未结体验预警" in home and re.search(r'class="value[^"]*">1<', home)  # CA1's, in branch A
    closed = console.get("/console/cx/alerts?state=closed").text.split('id="alerts"', 1)[1]
    assert 'data-key="k-ca3"' in closed and "已致电客户并致歉" in closed and "k-ca1" not in closed
    console.client.cookies.clear()
    console.signin("admin", lang="en")
    every = console.get("/console/cx/alerts?state=all").text
    assert all(f'data-key="{k}"' in every for k in ("k-ca1", "k-cb1", "k-s0201", "k-ca3"))
    assert "Action taken" in every and "长安支行" in every  # the branch alert names the branch
    only = console.get("/console/cx/alerts?state=all&rule=long_branch_wait").text
    assert 'data-key="k-s0201"' in only and "k-ca1" not in only


def sends(bank: Bank) -> None:
    """Journey welcome, step s1 by SMS: CA1 (branch A) delivered and clicked, CB1 (branch B) delivered, CA3
    suppressed (do not disturb)."""

    def message(key: str, customer: str, status: str, **at: bool) -> ContactMessage:
        went = status != "suppressed"
        return ContactMessage(
            key=key, customer_id=customer, channel="sms", purpose="marketing", journey="welcome", step="s1",
            template="t", payload="{}", status=status, reason=None if went else "dnd", asked_at=NOW,
            submitted_at=NOW, scheduled_for=NOW, decided_at=NOW, sent_at=NOW if went else None,
            delivered_at=NOW if went else None, clicked_at=NOW if at.get("clicked") else None,
            attempts=1 if went else 0, events_pending=False, updated_at=NOW,
        )  # fmt: skip

    with unit_of_work(bank.settings) as session:
        session.add_all([message("m1", "CA1", "clicked", clicked=True), message("m2", "CB1", "delivered"),
                         message("m3", "CA3", "suppressed")])  # fmt: skip


def test_the_funnel_is_scoped_with_rates_as_percentages(console: Console) -> None:
    console.signin("admin", lang="zh")
    assert "尚未向您服务的客户发送旅程消息" in console.get("/console/cx/funnel").text  # nothing sent yet
    sends(console.bank)
    page = console.get("/console/cx/funnel?by=channel&journey=welcome")
    assert page.status_code == 200 and "<h1>转化漏斗</h1>" in page.text and "触达率" in page.text
    row = page.text.split('id="funnel"', 1)[1].split("<tbody>", 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r"<td[^>]*>([^<]*)", row)
    assert cells[:9] == ["welcome", "s1", "短信", "2", "2", "100.0%", "1", "50.0%", "0"], cells
    assert "dnd 1" in row
    console.client.cookies.clear()
    console.signin("bm_a", lang="zh")  # branch A: CA1's and CA3's messages only
    mine = console.get("/console/cx/funnel?by=branch").text.split('id="funnel"', 1)[1]
    assert "S0101" in mine and "桃城支行" in mine and "S0201" not in mine


def test_the_permission(console: Console) -> None:
    console.client.cookies.clear()
    console.signin("auditor")  # no customers:read
    for path in ("/console/cx", "/console/cx/index", "/console/cx/surveys", "/console/cx/alerts",
                 "/console/cx/funnel"):  # fmt: skip
        assert console.get(path).status_code == 403, path
    assert 'href="/console/cx"' not in console.get("/console").text
