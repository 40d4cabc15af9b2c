"""The campaigns pages: the live campaigns with window and budget used, a campaign's details and budgets,
and the backtest (a stored campaign or a pasted definition) with grants and face value by month as a chart
and a table — the same figures as the API's simulate for the same input; permissions, CSRF, Chinese."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

from tests.api.test_campaigns import EXAMPLE, _definition, _events
from tests.console.conftest import Console

CAMPAIGN = "video_9yuan_2026"


def _start(console: Console) -> None:
    r = console.bank.post("cm", "/api/v1/campaigns", json={"definition": _definition()})
    assert r.status_code == 201, r.text


def _jsonl(events: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(e, ensure_ascii=False) for e in events)


def _api(console: Console, user: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    r = console.bank.post(
        user, "/api/v1/campaigns/simulate", json={"definition": _definition(), "events": events}
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _months(api: dict[str, Any]) -> dict[str, tuple[int, Decimal]]:
    months: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for x in api["by_rule_month"]:
        months[x["month"]][0] += x["grants"]
        months[x["month"]][1] += Decimal(x["face_value"])
    return {m: (n, v) for m, (n, v) in months.items()}


def _assert_same_as_api(html: str, api: dict[str, Any]) -> None:
    assert re.search(r'id="total-grants">' + str(api["grants"]) + "<", html)
    assert f'id="total-face-value">CN¥{Decimal(api["face_value"]):,.2f}<' in html
    assert f'id="sim-customers">{api["customers"]}<' in html
    rows = dict(re.findall(r'<tr class="month" data-month="([0-9-]+)">(.*?)</tr>', html, re.S))
    months = _months(api)
    assert set(rows) == set(months) and months
    for month, (n, value) in months.items():
        assert f'<td class="num">{n}</td>' in rows[month] and f"CN¥{value:,.2f}" in rows[month]
    chart = re.search(
        r'<script type="application/json" id="simulation-months-data">(.*?)</script>', html, re.S
    )
    assert chart, "the chart block"
    option = json.loads(chart.group(1))
    assert option["xAxis"]["data"] == sorted(months)
    assert [s["type"] for s in option["series"]] == ["bar", "line"]
    assert option["series"][0]["data"] == [months[m][0] for m in sorted(months)]
    assert [Decimal(v) for v in option["series"][1]["data"]] == [months[m][1] for m in sorted(months)]


def test_list_and_detail(console: Console) -> None:
    _start(console)
    console.signin("cm")
    r = console.get("/console/campaigns")
    assert r.status_code == 200
    row = re.search(rf'<tr id="campaign-{CAMPAIGN}">(.*?)</tr>', r.text, re.S)
    assert row
    assert f'href="/console/campaigns/{CAMPAIGN}"' in row.group(1) and "9元享看" in row.group(1)
    assert "Active" in row.group(1) and "Jan 1, 2026 to Dec 31, 2026" in row.group(1)
    assert "0 items · CN¥0.00" in row.group(1)  # no campaign-wide limit, nothing used yet
    detail = console.get(f"/console/campaigns/{CAMPAIGN}")
    assert detail.status_code == 200
    assert "monthly_offer" in detail.text and "0 of 20,000 items" in detail.text
    assert "age BETWEEN 18 AND 35" in detail.text
    assert console.get("/console/campaigns/nope").status_code == 404
    (api,) = console.bank.get("cm", "/api/v1/campaigns").json()  # the API's list: the same read layer
    assert (api["id"], api["status"], api["start"], api["end"]) == (
        CAMPAIGN,
        "active",
        "2026-01-01",
        "2026-12-31",
    )
    assert (api["grants"], api["used_count"], api["used_face_value"], api["budget_count"]) == (
        0,
        0,
        "0",
        None,
    )
    assert console.bank.get("rm_a", "/api/v1/campaigns").status_code == 403


def test_a_campaign_manager_simulates_a_stored_campaign(console: Console) -> None:
    _start(console)
    console.signin("cm")
    events = _events("CB1") + _events("CB2")  # CB1 (36) is eligible; CB2 (41) is not
    r = console.post(f"/console/campaigns/{CAMPAIGN}/simulate", {"events": _jsonl(events)})
    assert r.status_code == 200, r.text
    api = _api(console, "cm", events)
    assert api["grants"] == 1 and api["face_value"] == "25.00"
    _assert_same_as_api(r.text, api)
    assert 'data-month="2026-03"' in r.text


def test_simulate_a_pasted_definition_over_the_callers_customers(console: Console) -> None:
    events = _events("CB1")
    console.signin("cm")
    r = console.post("/console/campaigns/simulate", {"definition": EXAMPLE.read_text(encoding="utf-8"),
                                                     "events": _jsonl(events)})  # fmt: skip
    assert r.status_code == 200, r.text
    _assert_same_as_api(r.text, _api(console, "cm", events))
    console.signin("bm_a")  # branch A's manager: CB1 is in branch B
    r = console.post("/console/campaigns/simulate", {"definition": EXAMPLE.read_text(encoding="utf-8"),
                                                     "events": _jsonl(events)})  # fmt: skip
    assert r.status_code == 200 and 'id="total-grants">0<' in r.text
    assert _api(console, "bm_a", events)["grants"] == 0


def test_bad_input_is_named(console: Console) -> None:
    console.signin("cm")
    r = console.post("/console/campaigns/simulate", {"definition": "id: x\nrules: []", "events": ""})
    assert r.status_code == 422 and "campaign refused" in r.text and 'role="alert"' in r.text
    r = console.post("/console/campaigns/simulate",
                     {"definition": EXAMPLE.read_text(encoding="utf-8"), "events": "{not json"})  # fmt: skip
    assert r.status_code == 422 and "line 1 is not JSON" in r.text


def test_permissions_csrf_and_chinese(console: Console) -> None:
    _start(console)
    console.signin("rm_a")  # an RM has no campaigns:read
    assert console.get("/console/campaigns").status_code == 403
    assert console.get(f"/console/campaigns/{CAMPAIGN}").status_code == 403
    assert console.post(f"/console/campaigns/{CAMPAIGN}/simulate", {"events": ""}).status_code == 403
    console.signin("cm", lang="zh")
    html = console.get("/console/campaigns").text
    assert 'lang="zh-CN"' in html and "<h1>营销活动</h1>" in html and "2026年1月1日" in html
    no_token = console.client.post(f"/console/campaigns/{CAMPAIGN}/simulate", data={"events": ""},
                                   follow_redirects=False)  # fmt: skip
    assert no_token.status_code == 403
    r = console.post(f"/console/campaigns/{CAMPAIGN}/simulate", {"events": _jsonl(_events("CB1"))})
    assert r.status_code == 200 and "按月发放量与面值" in r.text and "¥25.00" in r.text
