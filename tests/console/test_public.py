"""The customer-facing benefit page (/c/benefits/...): what it shows, the signed link that makes it know the
customer, 长辈版 (elder mode) on by default for customers of 60 or more, and claiming exactly once."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from omnibank.audit.models import AuditEntry
from omnibank.benefits.models import Coupon
from omnibank.console.links import customer_link_token, read_link_token
from omnibank.db import unit_of_work
from tests.console.conftest import Console

NAMES = ("张三丰", "李四光", "王五岳", "赵六合", "钱七星")
PHONES = tuple(f"1380000000{i}" for i in range(1, 6))


def token(console: Console, customer_id: str, **kw: Any) -> str:
    return customer_link_token(console.bank.settings, customer_id, now=console.bank.clock(), **kw)


def page(console: Console, path: str = "/c/benefits/voucher", **params: str) -> Any:
    return console.client.get(path, params=params, follow_redirects=False)


def is_elder(html: str) -> bool:
    return re.search(r'<html[^>]*class="elder"', html) is not None


def claim_form(html: str) -> dict[str, str] | None:
    if 'action="/c/benefits/voucher/claim"' not in html:
        return None
    found = dict(re.findall(r'<input type="hidden" name="(k|csrf)" value="([^"]*)"', html))
    return found


def coupons(console: Console, customer_id: str) -> list[Coupon]:
    with unit_of_work(console.bank.settings) as session:
        rows = session.scalars(select(Coupon).where(Coupon.customer_id == customer_id)).all()
        session.expunge_all()
        return list(rows)


def test_the_page_shows_what_it_is_how_to_use_it_its_steps_and_validity(console: Console) -> None:
    r = page(console)
    assert r.status_code == 200
    html = r.text
    assert '<html lang="zh-CN"' in html  # Chinese by default
    assert "饮品券" in html and "权益供应商" in html  # the name and the supplier
    assert "价值¥26.00" in html
    assert "使用说明" in html and "每单限用1张" in html  # the usage instructions
    assert "核销步骤" in html and "领取" in html and "使用" in html  # the redemption steps, with pictures
    assert "/console/static/public/claim.svg" in html and "/console/static/public/coupon-code.svg" in html
    assert "到账之日起30天内有效" in html and "发放后30天内可领取" in html  # validity
    assert '<meta name="viewport"' in html
    assert "Operations console" not in html and "运营" not in html  # not the staff frame
    # nobody known: how to get the link, no claim button
    assert "如何领取" in html and claim_form(html) is None
    assert not is_elder(html)


def test_an_unknown_or_inactive_benefit_is_not_found(console: Console) -> None:
    assert page(console, "/c/benefits/nope").status_code == 404
    assert "未找到该权益" in page(console, "/c/benefits/nope").text
    assert page(console, "/c/benefits/bad%20id").status_code == 404


def test_english_on_request(console: Console) -> None:
    r = console.client.get("/c/benefits/voucher", headers={"accept-language": "en-US,en;q=0.9"})
    assert '<html lang="en"' in r.text and "How to use it" in r.text and "Worth CN¥26.00" in r.text
    assert "<span lang=zh-CN>每单限用1张" in r.text or "<p lang=zh-CN>每单限用1张" in r.text  # catalogue text
    switched = console.client.get("/console/lang/zh?next=/c/benefits/voucher", follow_redirects=False)
    assert switched.headers["location"] == "/c/benefits/voucher"
    console.client.cookies.set("ob_lang", "zh")
    assert "使用说明" in page(console).text


def test_elder_mode_is_on_by_default_for_a_customer_of_60_or_more(console: Console) -> None:
    older = page(console, k=token(console, "CA1"))  # born 1960: 66
    assert older.status_code == 200 and is_elder(older.text)
    younger = page(console, k=token(console, "CA2"))  # born 1970
    assert not is_elder(younger.text)
    # elder mode: one action on the page (the claim), the steps in words, the pictures on their own screens
    assert claim_form(older.text) is not None
    assert older.text.count('class="button"') == 1
    assert "claim.svg" not in older.text


def test_the_switch_is_remembered_and_overrides_the_default(console: Console) -> None:
    k = token(console, "CA1")
    r = console.client.get(
        "/c/elder/off", params={"next": f"/c/benefits/voucher?k={k}"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == f"/c/benefits/voucher?k={k}"
    cookie = r.headers["set-cookie"]
    assert "ob_elder=0" in cookie and "Max-Age=31536000" in cookie and "SameSite=lax" in cookie
    assert not is_elder(page(console, k=k).text)
    console.client.get("/c/elder/on", params={"next": "/c/benefits/voucher"})
    assert is_elder(page(console).text)  # on for anyone who asks, known or not
    assert is_elder(page(console, k=token(console, "CA2")).text)
    # only back to a customer page
    away = console.client.get("/c/elder/on", params={"next": "https://evil.example/"}, follow_redirects=False)
    assert away.headers["location"] == "/c/"
    assert console.client.get("/c/elder/on", params={"next": "//evil.example/c/"},
                              follow_redirects=False).headers["location"] == "/c/"  # fmt: skip


def test_a_tampered_or_expired_token_is_ignored(console: Console) -> None:
    settings, now = console.bank.settings, console.bank.clock()
    good = token(console, "CA1")
    assert read_link_token(settings, good, now) == "CA1"
    payload, mac = good.split(".")
    forged = customer_link_token(settings, "CA2", now=now).split(".")[0] + "." + mac
    expired = token(console, "CA1", days=1)
    later = now + timedelta(days=2)
    assert read_link_token(settings, forged, now) is None
    assert read_link_token(settings, expired, later) is None
    assert read_link_token(settings, payload, now) is None
    assert read_link_token(settings, "x" * 500, now) is None
    i = len(good) - 10  # a character inside the MAC (all six of its bits count, unlike the last one's)
    flipped = good[:i] + ("Z" if good[i] != "Z" else "Y") + good[i + 1 :]
    for bad in (forged, flipped, "not-a-token"):
        r = page(console, k=bad)
        assert r.status_code == 200 and claim_form(r.text) is None and not is_elder(r.text)
        assert bad not in r.text  # a bad token is not passed on in the page's links
    console.bank.clock.advance(days=2)
    assert claim_form(page(console, k=expired).text) is None


def test_claiming_issues_exactly_one_coupon_even_when_posted_twice(console: Console) -> None:
    k = token(console, "CA2")
    form = claim_form(page(console, k=k).text)
    assert form is not None and form["k"] == k and form["csrf"]
    assert console.client.cookies.get("ob_pcsrf") == form["csrf"]
    for _ in range(2):
        r = console.client.post("/c/benefits/voucher/claim", data=form, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/c/benefits/voucher/claimed?k={k}"
    got = coupons(console, "CA2")
    assert len(got) == 1 and got[0].benefit_id == "voucher" and got[0].status == "active"
    done = page(console, "/c/benefits/voucher/claimed", k=k)
    assert done.status_code == 200 and "领取成功" in done.text and "有效期至2026年4月1日" in done.text
    again = page(console, k=k).text
    assert claim_form(again) is None and "您已领取该权益" in again
    with unit_of_work(console.bank.settings) as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "customer:CA2")).all()
    assert sorted(actions) == ["coupon.claim", "coupon.grant"]


def test_a_coupon_a_campaign_granted_is_claimed_not_issued_again(console: Console) -> None:
    from omnibank.benefits import granting

    with unit_of_work(console.bank.settings) as session:
        granting.grant(session, key="camp:CA1", campaign="camp", rule="r", customer_id="CA1",
                       benefit_id="voucher", granted_at=console.bank.clock(),
                       tz=console.bank.settings.tz)  # fmt: skip
    k = token(console, "CA1")
    form = claim_form(page(console, k=k).text)
    assert form is not None
    console.client.post("/c/benefits/voucher/claim", data=form, follow_redirects=False)
    got = coupons(console, "CA1")
    assert [(c.grant_key, c.status) for c in got] == [("camp:CA1", "active")]


def test_a_claim_without_the_csrf_cookie_or_the_token_issues_nothing(console: Console) -> None:
    k = token(console, "CA2")
    form = claim_form(page(console, k=k).text)
    assert form is not None
    refused = console.client.post("/c/benefits/voucher/claim", data={**form, "csrf": "x" * 43},
                                  follow_redirects=False)  # fmt: skip
    assert refused.status_code == 403 and "请再按一次按钮" in refused.text
    assert claim_form(refused.text) is not None  # the button again, with a fresh check
    no_token = console.client.post(
        "/c/benefits/voucher/claim", data={**form, "k": ""}, follow_redirects=False
    )
    assert no_token.status_code == 403 and claim_form(no_token.text) is None
    cross = console.client.post("/c/benefits/voucher/claim", data=form, follow_redirects=False,
                                headers={"origin": "https://evil.example"})  # fmt: skip
    assert cross.status_code == 403
    assert coupons(console, "CA2") == []


def test_the_guide_is_a_step_a_screen_in_elder_mode(console: Console) -> None:
    k = token(console, "CA1")
    form = claim_form(page(console, k=k).text)
    assert form is not None
    done = console.client.post("/c/benefits/voucher/claim", data=form, follow_redirects=True)
    assert "领取成功" in done.text and done.text.count('class="button"') == 1
    assert "/c/benefits/voucher/guide?k=" in done.text
    first = page(console, "/c/benefits/voucher/guide", k=k, step="1").text
    assert "第1步（共2步）" in first and "claim.svg" in first and "coupon-code.svg" not in first
    assert "下一步" in first and first.count('class="button"') == 1
    last = page(console, "/c/benefits/voucher/guide", k=k, step="2").text
    assert "coupon-code.svg" in last and "看完了，返回权益页面" in last and "上一步" in last
    console.client.cookies.set("ob_elder", "0")
    every = page(console, "/c/benefits/voucher/guide", k=k).text
    assert "claim.svg" in every and "coupon-code.svg" in every


def test_no_personal_data_on_the_pages(console: Console) -> None:
    k = token(console, "CA1")
    assert "CA1" not in k and all(n not in k for n in NAMES)
    form = claim_form(page(console, k=k).text)
    assert form is not None
    texts = [page(console, k=k).text,
             console.client.post("/c/benefits/voucher/claim", data=form, follow_redirects=True).text,
             page(console, "/c/benefits/voucher/guide", k=k).text]  # fmt: skip
    for html in texts:
        for personal in (*NAMES, *PHONES, "1960", "66岁"):
            assert personal not in html


def test_a_claim_refused_for_want_of_stock_says_so(console: Console) -> None:
    with unit_of_work(console.bank.settings) as session:
        from omnibank.benefits.models import BenefitStock

        session.get(BenefitStock, "voucher").available = 0  # type: ignore[union-attr]
    k = token(console, "CB1")
    form = claim_form(page(console, k=k).text)
    assert form is not None
    r = console.client.post("/c/benefits/voucher/claim", data=form, follow_redirects=False)
    assert r.status_code == 409 and "已被领完" in r.text and claim_form(r.text) is None
    with unit_of_work(console.bank.settings) as session:
        assert session.scalar(select(func.count()).select_from(Coupon)) == 0


def test_a_page_that_does_not_exist_answers_as_a_customers_page(console: Console) -> None:
    console.client.cookies.set("ob_elder", "1")
    r = console.client.get("/c/no-such-page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert 'class="elder"' in r.text and "ask at any branch" not in r.text  # Chinese by default
    assert "到任一网点咨询" in r.text
    assert "Sign out" not in r.text and "退出登录" not in r.text  # no staff frame
