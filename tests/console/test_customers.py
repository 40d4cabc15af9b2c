"""The console's customer pages: the list and the 360 scoped and masked, the search by phone in a POST body
(audited without the number), the audited reveal with a reason for those who may reveal, CSRF, Chinese."""

from __future__ import annotations

import json
import re

import yaml
from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.campaigns import live
from omnibank.campaigns.spec import CampaignSpec
from omnibank.db import unit_of_work
from omnibank.leads.service import LeadRequest, create_leads
from tests.api.bank import CUSTOMERS
from tests.benefits.helpers import NOW, give
from tests.console.conftest import Console

NAMES = [c["name"] for c in CUSTOMERS]
PHONES = [c["phone"] for c in CUSTOMERS]
CAMPAIGN = """
id: seniors
name: 长者专享
period: {start: 2026-01-01, end: 2026-12-31}
eligibility: age >= 60
rules:
  - id: each_spend
    name: 每笔消费得券
    trigger: {event: card.transaction}
    threshold: {count: 1, per: week}
    reward: {benefit: voucher, face_value: "5.00", valid_days: 30}
"""


def plaintext_in(html: str) -> list[str]:
    return [v for v in [*NAMES, *PHONES] if v in html]


def entries(console, action: str) -> list[AuditEntry]:
    with unit_of_work(console.bank.settings) as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
        return list(rows)


def test_rm_a_sees_only_the_branch_customers_masked(console) -> None:
    console.signin("rm_a")
    r = console.get("/console/customers")
    assert r.status_code == 200
    shown = set(re.findall(r'href="/console/customers/(C[AB]\d)"', r.text))
    assert shown == {"CA1", "CA2"}
    assert plaintext_in(r.text) == []
    page = console.get("/console/customers/CA1")
    assert page.status_code == 200
    assert "Campaigns this customer can join now" in page.text and "Identifiers" in page.text
    assert plaintext_in(page.text) == []
    assert [e.subject_id for e in entries(console, "customer.view")] == ["CA1"]


def test_a_customer_outside_the_scope_is_not_found_by_url(console) -> None:
    console.signin("rm_a")
    assert console.get("/console/customers/CB1").status_code == 404
    assert console.get("/console/customers/CA3").status_code == 404  # unassigned, but another sub-branch
    console.client.cookies.clear()
    console.signin("agent")  # service agent of S0102: sees CA3 only
    assert console.get("/console/customers/CA1").status_code == 404
    assert console.get("/console/customers/CA3").status_code == 200


def test_search_by_phone_finds_the_customer_and_the_trail_keeps_no_number(console) -> None:
    console.signin("bm_a")
    r = console.post("/console/customers/search", {"kind": "phone", "value": "13800000002"})
    assert r.status_code == 200
    results = r.text.split('id="results"', 1)[1].split("</section>", 1)[0]
    assert re.findall(r'/console/customers/(C[AB]\d)"', results) == ["CA2"]
    assert plaintext_in(r.text) == []
    found = entries(console, "customer.find")
    assert len(found) == 1 and json.loads(found[0].detail)["matches"] == ["CA2"]
    assert "13800000002" not in found[0].detail
    miss = console.post("/console/customers/search", {"kind": "phone", "value": "13800000004"})  # CB1
    assert "No customer matches." in miss.text.split('id="results"', 1)[1]


def test_search_by_customer_id_goes_to_the_360_when_visible(console) -> None:
    console.signin("rm_a")
    r = console.post("/console/customers/search", {"kind": "customer_id", "value": "CA2"})
    assert r.status_code == 303 and r.headers["location"] == "/console/customers/CA2"
    other = console.post("/console/customers/search", {"kind": "customer_id", "value": "CB1"})
    assert other.status_code == 200 and "/console/customers/CB1" not in other.text


def test_a_branch_manager_reveals_with_a_reason_and_it_is_audited(console) -> None:
    console.signin("bm_a")
    page = console.get("/console/customers/CA1")
    assert 'name="reason"' in page.text
    r = console.post("/console/customers/CA1/reveal", {"field": "phone", "reason": "customer called, verify"},
                     headers={"HX-Request": "true"})  # fmt: skip
    assert r.status_code == 200 and "13800000001" in r.text and "<html" not in r.text
    assert r.headers["cache-control"] == "no-store"
    (entry,) = entries(console, "customer.reveal")
    assert entry.subject_id == "CA1" and entry.reason == "customer called, verify"
    assert json.loads(entry.detail)["revealed"] == ["phone"]
    refused = console.post("/console/customers/CA1/reveal", {"field": "phone", "reason": ""},
                           headers={"HX-Request": "true"})  # fmt: skip
    assert "13800000001" not in refused.text and 'role="alert"' in refused.text
    assert len(entries(console, "customer.reveal")) == 1
    outside = console.post("/console/customers/CB1/reveal", {"field": "name", "reason": "looking around"})
    assert outside.status_code == 404 and "赵六合" not in outside.text


def test_an_rm_has_no_reveal_form_and_a_reveal_post_is_forbidden(console) -> None:
    console.signin("rm_a")
    assert 'name="reason"' not in console.get("/console/customers/CA1").text
    r = console.post("/console/customers/CA1/reveal", {"field": "name", "reason": "just curious"})
    assert r.status_code == 403 and "张三丰" not in r.text
    assert entries(console, "customer.reveal") == []


def test_a_post_without_the_csrf_token_is_refused(console) -> None:
    console.signin("bm_a")
    r = console.client.post("/console/customers/CA1/reveal", data={"field": "name", "reason": "good reason"},
                            follow_redirects=False)  # fmt: skip
    assert r.status_code == 403 and "张三丰" not in r.text
    s = console.client.post("/console/customers/search", data={"kind": "phone", "value": "13800000001"},
                            follow_redirects=False)  # fmt: skip
    assert s.status_code == 403
    assert entries(console, "customer.reveal") == [] and entries(console, "customer.find") == []


def test_the_chinese_pages(console) -> None:
    console.signin("rm_a", lang="zh")
    r = console.get("/console/customers")
    assert '<html lang="zh-CN">' in r.text and "<h1>客户</h1>" in r.text and "查找客户" in r.text
    detail = console.get("/console/customers/CA1").text
    assert "此客户当前可参加的活动" in detail and "Campaigns this customer" not in detail


def test_the_360_shows_coupons_leads_and_the_campaigns_to_join(console) -> None:
    s = console.bank.settings
    text = CAMPAIGN
    with unit_of_work(s) as session:
        give(session, "k1", customer="CA1", face_value_fen=2600)
        create_leads(session, [LeadRequest(key="l1", customer_id="CA1", product_id="fund")], now=NOW)
        live.start(session, CampaignSpec.model_validate(yaml.safe_load(text)), source_text=text, now=NOW)
    console.signin("rm_a")
    page = console.get("/console/customers/CA1").text
    coupons = page.split('id="coupons"', 1)[1].split("</section>", 1)[0]
    assert "饮品券" in coupons and "¥26.00" in coupons and "Granted" in coupons
    leads = page.split('id="leads"', 1)[1].split("</section>", 1)[0]
    assert "fund" in leads and "Not contacted yet" in leads
    campaigns = page.split('id="campaigns"', 1)[1].split("</section>", 1)[0]
    assert "长者专享" in campaigns and "✓" in campaigns  # CA1 is 66
    other = console.get("/console/customers/CA2").text.split('id="campaigns"', 1)[1].split("</section>", 1)[0]
    assert "Outside the campaign&#39;s eligibility" in other or "Outside the campaign's eligibility" in other


def test_the_recent_events_come_after_the_page_and_keep_the_scope(console: Console) -> None:
    from tests.events.helpers import txn

    r = console.bank.post("admin", "/api/v1/events", json=txn("e-ca1", "88.00", customer_id="CA1",
                          ts="2026-03-01T12:00:00+08:00"))  # fmt: skip
    assert r.status_code in (200, 201, 202), r.text
    console.signin("rm_a")
    page = console.get("/console/customers/CA1")
    assert 'hx-get="/console/customers/CA1/events"' in page.text
    fragment = console.get("/console/customers/CA1/events", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "card.transaction" in fragment.text and 'data-chart="events-by-month-data"' in fragment.text
    full = console.get("/console/customers/CA1/events")  # without htmx: a page of its own
    assert full.status_code == 200 and "<html" in full.text and "card.transaction" in full.text
    assert console.get("/console/customers/CB1/events").status_code == 404  # another branch's customer
