"""The staff console in a real browser: sign-in, the language switch, scoping by URL, accessibility."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import OUT, Site, follow

pytestmark = pytest.mark.e2e


def test_sign_in_in_chinese_then_switch_to_english(site: Site) -> None:
    page = site.page()
    page.goto(f"{site.url}/console")  # not signed in: to the sign-in form, which comes back here
    assert "/console/signin" in page.url
    assert page.locator("h1").inner_text() == "登录"
    assert site.axe(page) == []
    site.shot(page, "signin-zh")
    page.fill("#username", "rm_a")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert "用户名或密码错误" in page.locator("[role=alert]").inner_text()
    from tests.api.bank import PASSWORD

    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console$"))
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "客户经理" in page.locator(".user").inner_text()
    site.shot(page, "home-zh")
    follow(page, "text=English")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Relationship manager" in page.locator(".user").inner_text()
    site.shot(page, "home-en")
    page.goto(f"{site.url}/console")  # remembered
    assert page.locator("html").get_attribute("lang") == "en"
    assert site.errors == []


def test_the_browser_language_decides_until_the_switch(site: Site) -> None:
    page = site.page(lang="en")
    page.goto(f"{site.url}/console/signin")
    assert page.locator("h1").inner_text() == "Sign in"


def test_signing_out_ends_the_session(site: Site) -> None:
    page: Any = site.page("rm_a")
    follow(page, "button:has-text('退出登录')")
    assert "/console/signin" in page.url
    page.goto(f"{site.url}/console")
    assert "/console/signin" in page.url


PLAINTEXT = ("张三丰", "李四光", "王五岳", "赵六合", "钱七星", "13800000001", "13800000002")


def test_an_rm_sees_only_their_branchs_customers_masked(site: Site) -> None:
    page = site.page("rm_a")
    page.click("nav.side >> text=客户")
    rows = page.locator("table tbody tr")
    ids = sorted(page.locator("table tbody tr td:first-child").all_inner_texts())
    assert [i.strip()[:3] for i in ids] == ["CA1", "CA2"], ids
    html = page.content()
    assert not [p for p in PLAINTEXT if p in html]
    assert "张*" in html  # masked, not hidden
    assert rows.count() == 2
    site.shot(page, "customers-zh")
    page.click("text=CA1")
    page.wait_for_url(re.compile(r".*/console/customers/CA1$"))
    assert not [p for p in PLAINTEXT if p in page.content()]
    assert page.locator("#reveal-reason").count() == 0  # an RM has no reveal permission
    recommended = page.locator("section[aria-labelledby=recommended]")
    assert recommended.locator("h2").inner_text() == "推荐权益"
    names = recommended.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert [n.split()[0] for n in names] == ["分期折扣券", "盲盒", "饮品券"]  # nobody redeemed: ties by id
    assert set(recommended.locator("tbody tr td:nth-child(3)").all_inner_texts()) == {"热门权益"}
    OUT.mkdir(parents=True, exist_ok=True)
    recommended.screenshot(path=str(OUT / "customer-360-recommended-zh.png"))
    site.shot(page, "customer-360-zh")
    assert site.axe(page) == []


def test_a_customer_outside_the_subtree_cannot_be_opened_by_url(site: Site) -> None:
    page = site.page("agent")  # a service agent in sub-branch S0102 of branch B001
    for outside in ("CB1", "CA1"):  # another branch; another sub-branch of the same branch
        response = page.goto(f"{site.url}/console/customers/{outside}")
        assert response is not None and response.status == 404
        assert page.locator("h1").inner_text() == "未找到"
    inside = page.goto(f"{site.url}/console/customers/CA3")
    assert inside is not None and inside.status == 200


def test_reveal_asks_for_a_reason_and_lands_in_the_audit_trail(site: Site) -> None:
    page = site.page("bm_a")
    page.goto(f"{site.url}/console/customers/CA1")
    page.select_option("#reveal-field", "phone")
    page.click("button:has-text('查看明文')")
    # the browser refuses the form without a reason: nothing revealed
    assert page.locator("#revealed").inner_text().strip() == ""
    page.fill("#reveal-reason", "客户来电核实身份，工单 T-2026-001")
    page.click("button:has-text('查看明文')")
    page.locator("#revealed", has_text="13800000001").wait_for()
    site.shot(page, "reveal-zh")
    auditor = site.page("auditor")
    auditor.goto(f"{site.url}/console/audit?action=customer.reveal")
    trail = auditor.content()
    assert "customer.reveal" in trail and "CA1" in trail and "工单 T-2026-001" in trail
    assert "13800000001" not in trail  # the reason, never the value
    site.shot(auditor, "audit-zh")
    assert site.axe(auditor) == []
