"""Signing in to the console: the API's accounts and lock-out, cookies that scripts and other sites cannot
use, CSRF on every form, a session that ends by itself, and the language."""

from __future__ import annotations

import re

from omnibank.console.web import ACCESS_COOKIE, REFRESH_COOKIE
from tests.api.bank import PASSWORD
from tests.console.conftest import Console


def _cookie_headers(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def test_sign_in_sets_httponly_secure_strict_cookies_for_the_console_only(console: Console) -> None:
    r = console.signin("rm_a")
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookies = _cookie_headers(r)
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        header = cookies[name].lower()
        assert "httponly" in header and "secure" in header and "samesite=strict" in header
        assert "path=/console" in header
    home = console.get("/console")
    assert home.status_code == 200
    assert "rm_a · Relationship manager" in home.text
    # personal data never cached, and scripts only from our own files
    assert home.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in home.headers["content-security-policy"]


def test_not_signed_in_goes_to_the_sign_in_page_and_comes_back(console: Console) -> None:
    r = console.get("/console/customers?after=CA1")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/signin?next=/console/customers%3Fafter%3DCA1"
    htmx = console.get("/console", headers={"HX-Request": "true"})
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].startswith("/console/signin")


def test_a_wrong_password_is_refused_and_five_lock_the_account(console: Console) -> None:
    for _ in range(5):
        r = console.signin("rm_a", "not the password")
        assert r.status_code == 401
        assert "Wrong user name or password" in r.text
        assert ACCESS_COOKIE not in _cookie_headers(r)
    locked = console.signin("rm_a", PASSWORD)  # the right password, but locked: the same answer
    assert locked.status_code == 401 and "Wrong user name or password" in locked.text
    console.bank.clock.advance(minutes=16)
    assert console.signin("rm_a", PASSWORD).status_code == 303


def test_the_sign_in_form_needs_its_own_token(console: Console) -> None:
    console.client.get("/console/signin")
    r = console.client.post("/console/signin", data={"username": "rm_a", "password": PASSWORD,
                            "presign": "forged"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    assert ACCESS_COOKIE not in _cookie_headers(r)


def test_sign_in_never_sends_you_to_another_site(console: Console) -> None:
    console.client.cookies.set("ob_lang", "en")
    page = console.client.get("/console/signin?next=//evil.example/x")
    token = re.search(r'name="presign" value="([^"]+)"', page.text)
    assert token and 'name="next" value="/console"' in page.text
    r = console.client.post("/console/signin", data={"username": "rm_a", "password": PASSWORD,
                            "presign": token.group(1), "next": "https://evil.example/"},
                            follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == "/console"


def test_a_form_without_this_sessions_csrf_token_is_refused(console: Console) -> None:
    console.signin("rm_a")
    assert console.client.post("/console/signout", follow_redirects=False).status_code == 403
    wrong = console.client.post("/console/signout", data={"csrf_token": "0" * 64}, follow_redirects=False)
    assert wrong.status_code == 403
    other_site = console.client.post(
        "/console/signout",
        data={"csrf_token": console.csrf()},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert other_site.status_code == 403
    assert console.get("/console").status_code == 200  # still signed in
    assert console.post("/console/signout").status_code == 303
    assert console.get("/console").status_code == 303  # signed out


def test_signing_out_ends_the_session_for_a_copied_cookie_too(console: Console) -> None:
    console.signin("rm_a")
    stolen = console.client.cookies.get(ACCESS_COOKIE)
    console.post("/console/signout")
    console.client.cookies.set(ACCESS_COOKIE, stolen, path="/console")
    assert console.get("/console").status_code == 303


def test_an_expired_access_token_is_renewed_while_the_console_is_in_use(console: Console) -> None:
    console.signin("rm_a")
    console.bank.clock.advance(minutes=20)  # the 15-minute access token expired 5 minutes ago
    r = console.get("/console")
    assert r.status_code == 200
    assert {ACCESS_COOKIE, REFRESH_COOKIE} <= set(_cookie_headers(r))
    console.bank.clock.advance(minutes=20)
    assert console.get("/console").status_code == 200  # renewed again with the new pair


def test_a_console_left_alone_signs_out_by_itself(console: Console) -> None:
    console.signin("rm_a")
    console.bank.clock.advance(minutes=31)  # expired 16 minutes ago: past the 15 idle minutes
    r = console.get("/console")
    assert r.status_code == 303 and "reason=expired" in r.headers["location"]
    assert "Your session has ended" in console.client.get(r.headers["location"]).text


def test_a_session_ends_after_its_hours_however_busy(console: Console) -> None:
    console.signin("rm_a")
    for _ in range(12 * 4):  # every 14 minutes for 11 hours 12 minutes
        console.bank.clock.advance(minutes=14)
        assert console.get("/console").status_code == 200
    console.bank.clock.advance(minutes=55)
    assert console.get("/console").status_code == 303


def test_chinese_by_default_english_from_the_browser_or_the_switch(console: Console) -> None:
    assert "<h1>登录</h1>" in console.client.get("/console/signin").text
    en = console.client.get("/console/signin", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert "<h1>Sign in</h1>" in en.text
    zh = console.client.get("/console/signin", headers={"Accept-Language": "fr, zh-CN;q=0.8, en;q=0.7"})
    assert "<h1>登录</h1>" in zh.text
    switched = console.client.get("/console/lang/en?next=/console/signin", follow_redirects=False)
    assert switched.headers["location"] == "/console/signin"
    assert "<h1>Sign in</h1>" in console.client.get("/console/signin").text
    away = console.client.get("/console/lang/zh?next=https://evil.example", follow_redirects=False)
    assert away.headers["location"] == "/console"


def test_a_missing_page_is_an_html_page_not_json(console: Console) -> None:
    console.signin("rm_a")
    r = console.get("/console/no-such-page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    api = console.client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/json")
