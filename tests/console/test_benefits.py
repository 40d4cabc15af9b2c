"""The benefits pages: the catalogue with stock bars, figures and stock-out warnings (text, not colour
alone), the stock chart, the supplier scorecard; a supplier sees its own; Chinese; permissions."""

from __future__ import annotations

import json
import re
from typing import Any

from omnibank.benefits import ledger
from omnibank.benefits.stock import count_stock_out
from omnibank.db import unit_of_work
from tests.api.bank import Clock
from tests.console.conftest import Console


def _row(html: str, row_id: str) -> str:
    found = re.search(rf'<tr id="{row_id}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, row_id
    return found.group(1)


def _kpi(html: str, kpi: str) -> str:
    found = re.search(rf'id="kpi-{kpi}">([^<]*)<', html)
    assert found, kpi
    return found.group(1)


def _chart(html: str, chart_id: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>', html, re.S)
    assert found, chart_id
    option: dict[str, Any] = json.loads(found.group(1))
    return option


def _take(console: Console, benefit: str, n: int) -> None:
    with unit_of_work(console.bank.settings) as session:
        assert ledger.take_stock(session, benefit, n)


def test_catalogue_with_stock_figures_and_chart(console: Console) -> None:
    console.signin("cm")
    r = console.get("/console/benefits")
    assert r.status_code == 200
    html = r.text
    # the small bank: voucher (50 received), gift (100), the bank's discount and points (unlimited)
    assert (_kpi(html, "benefits"), _kpi(html, "stock"), _kpi(html, "warnings")) == ("4", "150", "0")
    assert "50 of 50 left" in _row(html, "benefit-voucher") and "In stock" in _row(html, "benefit-voucher")
    assert "CN¥26.00" in _row(html, "benefit-voucher")
    assert "Unlimited" in _row(html, "benefit-discount")
    chart = _chart(html, "benefit-stock")
    assert chart["xAxis"]["data"] == ["盲盒", "饮品券"]
    assert [s["data"] for s in chart["series"]] == [[0, 0], [100, 50]]  # used, left
    assert "Low stock" not in html and "Out of stock" not in html


def test_low_and_out_of_stock_are_flagged_in_words(console: Console) -> None:
    _take(console, "voucher", 46)  # 4 of 50 left: under 10 %
    console.signin("cm")
    html = console.get("/console/benefits").text
    row = _row(html, "benefit-voucher")
    assert "4 of 50 left" in row
    assert (
        "Low stock" in row and "Less than 10% of the stock received is left" in row and 'class="warn"' in row
    )
    assert _kpi(html, "warnings") == "1" and _kpi(html, "stock") == "104"
    assert _chart(html, "benefit-stock")["series"][0]["data"] == [0, 46]
    _take(console, "voucher", 4)
    row = _row(console.get("/console/benefits").text, "benefit-voucher")
    assert "0 of 50 left" in row and "Out of stock" in row and 'class="bad"' in row


def test_grants_this_week_make_a_runs_out_soon_warning(console: Console) -> None:
    _take(console, "voucher", 40)  # 10 left (20 %)
    console.signin("cm")
    assert "Low stock" not in console.get("/console/benefits").text
    for customer in ("CA1", "CA2", "CA3", "CB1", "CB2"):  # five grants today: 5 left, 7 days at that rate
        r = console.bank.post(
            "cm", "/api/v1/coupons", json={"customer_id": customer, "benefit_id": "voucher"}
        )
        assert r.status_code == 201, r.text
    row = _row(console.get("/console/benefits").text, "benefit-voucher")
    assert "5 of 50 left" in row and "Runs out within 7 days" in row


def test_a_supplier_sees_its_own_benefits(console: Console) -> None:
    console.signin("acme_user")
    html = console.get("/console/benefits").text
    assert 'id="benefit-voucher"' in html and 'id="benefit-discount"' not in html
    assert _kpi(html, "benefits") == "2"


def test_supplier_scorecard(
    console: Console,
) -> None:
    with unit_of_work(console.bank.settings) as session:
        count_stock_out(session, "voucher", Clock().now, console.bank.settings.tz)
    console.signin("cm")
    r = console.get("/console/benefits/suppliers")
    assert r.status_code == 200
    row = _row(r.text, "supplier-acme")
    assert "权益供应商" in row and ">95<" in row and ">A<" in row  # one stock-out day: 5 points off
    assert _chart(r.text, "supplier-scores")["series"][0]["data"] == [95]
    assert console.get("/console/benefits/suppliers?days=0").status_code == 422


def test_chinese_and_permissions(console: Console) -> None:
    console.signin("rm_a", lang="zh")
    html = console.get("/console/benefits").text
    assert 'lang="zh-CN"' in html and "<h1>权益</h1>" in html and "库存预警" in html
    assert "<h1>供应商评分卡</h1>" in console.get("/console/benefits/suppliers").text
    console.signin("auditor")
    assert console.get("/console/benefits").status_code == 403
    assert console.get("/console/benefits/suppliers").status_code == 403
