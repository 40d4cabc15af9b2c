"""The customer read layer: the 360's contents (scoped, masked, audited once) and J6 — which live campaigns a
customer can join now, by the campaigns' own eligibility and consent rule, for that one customer."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.campaigns import live
from omnibank.campaigns.spec import CampaignSpec
from omnibank.customer_ops.view import customer_360, customer_page, search_customers
from omnibank.customers.repository import Scope, staff_scope
from omnibank.db import unit_of_work
from omnibank.errors import NotFound
from omnibank.leads.service import LeadRequest, create_leads
from omnibank.security import get_cipher
from tests.api.bank import CUSTOMERS, build_bank
from tests.benefits.helpers import NOW, give

TODAY = date(2026, 3, 2)
CAMPAIGN = """
id: {id}
name: {name}
period: {{start: {start}, end: {end}}}
{extra}
rules:
  - id: each_spend
    name: 每笔消费得券
    trigger: {{event: card.transaction}}
    threshold: {{count: 1, per: week}}
    reward: {{benefit: voucher, face_value: "5.00", valid_days: 30}}
"""


@pytest.fixture
def bank(env, tmp_path: Path):
    return build_bank(env.settings, tmp_path / "bank")


def start(settings, cid: str, *, name: str = "活动", start: str = "2026-01-01", end: str = "2026-12-31",
          extra: str = "", stop: bool = False) -> None:  # fmt: skip
    text = CAMPAIGN.format(id=cid, name=name, start=start, end=end, extra=extra)
    with unit_of_work(settings) as session:
        live.start(session, CampaignSpec.model_validate(yaml.safe_load(text)), source_text=text, now=NOW)
        if stop:
            live.stop(session, cid)


def view(settings, customer_id: str, scope: Scope | None = None):
    with unit_of_work(settings) as session:
        return customer_360(session, settings, get_cipher(settings), customer_id, actor="user:t", today=TODAY,
                            scope=scope, source="test", now=NOW)  # fmt: skip


def test_j6_lists_live_campaigns_with_the_campaigns_own_rule_for_one_customer(bank) -> None:
    s = bank.settings
    start(s, "seniors", name="长者专享", extra="eligibility: age >= 60")  # CA1 (66) yes, CA2 (56) no
    start(s, "partners", name="合作伙伴", extra="purpose: data_sharing")  # nobody shared data
    start(s, "everyone", name="全员有礼")
    start(s, "over", name="已结束", start="2025-01-01", end="2025-12-31")  # not live today
    start(s, "halted", name="已停止", stop=True)
    ca1 = {c.campaign_id: c for c in view(s, "CA1").campaigns}
    assert sorted(ca1) == ["everyone", "partners", "seniors"]
    assert ca1["seniors"].joinable and ca1["everyone"].joinable
    assert not ca1["partners"].joinable and ca1["partners"].why_not == "consent:data_sharing"
    ca2 = view(s, "CA2")
    assert [c.campaign_id for c in ca2.joinable] == ["everyone"]
    assert {c.campaign_id: c.why_not for c in ca2.campaigns}["seniors"] == "eligibility"


def test_the_360_holds_coupons_leads_and_is_masked_scoped_and_audited_once(bank) -> None:
    s = bank.settings
    with unit_of_work(s) as session:
        give(session, "k1", customer="CA1", face_value_fen=2600)
        give(session, "k2", customer="CB1")
        create_leads(session, [LeadRequest(key="l1", customer_id="CA1", product_id="fund")], now=NOW)
    v = view(s, "CA1")
    assert [c.benefit_id for c in v.coupons] == ["voucher"] and v.coupons[0].face_value == "26.00"
    assert [(x.product_id, x.status) for x in v.leads] == [("fund", "new")]
    assert v.points == 0 and v.journeys == [] and v.contacts == [] and v.events == []
    assert v.profile.name != "张三丰" and "13800000001" not in v.profile.phone
    assert {i.kind for i in v.identity.identifiers} >= {"phone", "id_number"}
    with unit_of_work(s) as session:
        views = session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.view",
                                                         AuditEntry.subject_id == "CA1")).all()  # fmt: skip
        assert len(views) == 1
        rm_a = staff_scope(session, org_id="S0101", staff_id="E00001", role="rm")
    with pytest.raises(NotFound):
        view(s, "CB1", rm_a)


def test_page_and_search_stay_in_scope_and_the_search_keeps_no_number(bank) -> None:
    s = bank.settings
    cipher = get_cipher(s)
    with unit_of_work(s) as session:
        rm_a = staff_scope(session, org_id="S0101", staff_id="E00001", role="rm")
        page = customer_page(session, cipher, rm_a, after=None, limit=1, actor="user:t", source="test")
        assert [c.customer_id for c in page.items] == ["CA1"] and page.total == 2 and page.next_after == "CA1"
        assert page.items[0].phone != "13800000001"
        hit = search_customers(session, cipher, rm_a, kind="phone", value="13800000002", actor="user:t",
                               source="test")  # fmt: skip
        assert [c.customer_id for c in hit.items] == ["CA2"]
        other = search_customers(session, cipher, rm_a, kind="phone", value="13800000004", actor="user:t",
                                 source="test")  # fmt: skip
        assert other.items == []  # CB1 exists, but not for rm_a
        assert search_customers(session, cipher, rm_a, kind="customer_id", value="CB1", actor="user:t",
                                source="test").items == []  # fmt: skip
    with unit_of_work(s) as session:
        finds = session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.find")).all()
        assert len(finds) == 2
        assert all("138000" not in str(e.detail) for e in finds)
    assert len(CUSTOMERS) == 5
