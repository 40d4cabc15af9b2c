"""The console's customer 360 shows the recommended benefits (B2) with the reason, in Chinese by default and
in English on request; nothing personal is added to the page."""

from __future__ import annotations

import re
from datetime import timedelta

from omnibank.benefits import catalogue, ledger
from omnibank.db import unit_of_work
from tests.api.bank import CUSTOMERS
from tests.benefits.helpers import NOW, give
from tests.console.conftest import Console


def _redeemed_gift(console: Console) -> None:
    with unit_of_work(console.bank.settings) as session:
        coupon = give(session, "cb1-gift", customer="CB1", benefit="gift").coupon
        assert coupon is not None
        ledger.claim(session, coupon.id, now=NOW + timedelta(hours=1), actor="test")
        ledger.redeem(session, coupon.id, now=NOW + timedelta(hours=2), actor="test")


def _section(html: str) -> str:
    found = re.search(r'<section class="card" aria-labelledby="recommended">(.*?)</section>', html, re.S)
    assert found, "no recommended section"
    return found.group(1)


def test_the_360_lists_the_recommendations_with_the_reason_in_chinese(console: Console) -> None:
    _redeemed_gift(console)
    console.signin("rm_a", lang="zh")
    page = console.get("/console/customers/CA1")
    assert page.status_code == 200
    part = _section(page.text)
    assert "推荐权益" in part
    rows = re.findall(r"<tr><td class=\"num\">(\d)</td><td>([^<]+) <span", part)
    assert rows == [("1", "盲盒"), ("2", "分期折扣券"), ("3", "饮品券")]
    assert part.index("同年龄段热门") < part.index("热门权益</td>")
    assert not [v for c in CUSTOMERS for v in (c["name"], c["phone"]) if v in page.text]


def test_in_english_and_when_there_is_nothing_to_recommend(console: Console) -> None:
    _redeemed_gift(console)
    console.signin("rm_a")
    part = _section(console.get("/console/customers/CA1").text)
    assert "Recommended benefits" in part and "Popular in the same age band" in part
    with unit_of_work(console.bank.settings) as session:
        for benefit in ("voucher", "gift", "discount"):
            catalogue.set_benefit_status(session, benefit, "inactive", actor="test", now=NOW)
    part = _section(console.get("/console/customers/CA1").text)
    assert "Nothing to recommend" in part and "<table>" not in part
