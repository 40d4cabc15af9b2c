"""The console's invite-code pages: the results scoped to the signed-in person (an RM sees their own code's
figures only, a branch manager the branch's subtree, an administrator the bank), the refusals by reason, the
period picker; my code with the customers it bound (masked, the read audited) and the share-link form (CSRF
checked); the staff codes for managers. Chinese by default, English on request."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.console.pages.invites import presets
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.invites import codes
from omnibank.invites.models import ShareLink
from tests.console.conftest import Console
from tests.factories import customers_csv
from tests.invites.helpers import NEW, TZ, bind, event, load_events

# the console's clock: late November 2026, so "this month" (the default period) holds every binding below
TODAY = datetime(2026, 11, 28, 10, 0, tzinfo=TZ)
PLAINTEXT = ("陈一", "陈二", "陈四", "13700000001", "13700000002", "13700000004")


@pytest.fixture
def invites(console: Console, tmp_path: Path) -> dict[str, str]:
    """N1 bound by RM A (E00001, S0101) with a card and ¥1,234.50 of spending, N2 by the team's RM (E00009,
    T010101 under S0101), N4 by RM B (E00002, S0201); N3 used an unknown code. The codes by staff id."""
    settings = console.bank.settings
    customers_csv(tmp_path / "new.csv", NEW)
    load_file("customers", tmp_path / "new.csv", settings=settings, progress=False)
    with unit_of_work(settings) as session:
        codes.issue(session, now=TODAY.replace(day=1), actor="test")
        code = {s: c.code for s, c in codes.live_codes(session).items()}
    load_events(settings, tmp_path / "e.jsonl", [
        event("N1", "2026-11-02T09:00:00+08:00", code["E00001"], channel="wechat"),
        event("N2", "2026-11-03T09:00:00+08:00", code["E00009"]),
        event("N4", "2026-11-20T09:00:00+08:00", code["E00002"]),
        event("N3", "2026-11-20T09:00:00+08:00", "NOPE234"),
        event("N1", "2026-11-05T09:00:00+08:00", type_="card.issued", card_id="K1", product="luckin_cobrand",
              tier="gold", primary=True, new_customer=True),
        event("N1", "2026-11-06T09:00:00+08:00", type_="card.transaction", card_id="K1", amount="1234.50"),
    ])  # fmt: skip
    bind(settings, now=TODAY)
    console.bank.clock.now = TODAY
    return code


def _units(html: str) -> set[str]:
    return set(re.findall(r'<tr id="unit-([^"]+)"', html))


def test_an_administrator_sees_the_bank_in_chinese_by_default(
    console: Console, invites: dict[str, str]
) -> None:
    console.signin("admin", lang="zh")
    page = console.get("/console/invites?by=staff")
    assert page.status_code == 200, page.text
    assert "<h1>邀请码业绩" in page.text and "2026年11月1日" in page.text and "2026年11月28日" in page.text
    assert _units(page.text) == {"E00001", "E00002", "E00009"}
    assert 'id="kpi-invited">3<' in page.text and 'id="kpi-converted">1<' in page.text
    assert "¥1,234.50" in page.text  # N1's spending within 30 days of binding
    assert all(invites[s] in page.text for s in ("E00001", "E00002", "E00009"))  # the staff level's codes
    refused = page.text.split('id="refusals"', 1)[1]
    assert re.search(r"未知邀请码</td><td class=\"num\">1<", refused)
    assert all(label in refused for label in ("邀请码已作废", "本人推荐", "已绑定他人", "超出有效期"))
    assert 'data-chart="invites-by-unit-data"' in page.text
    board = page.text.split('id="leaderboard"', 1)[1]
    assert board.index("E00001") < board.index("E00009")  # ties on invited: the converted one first
    # the branch level adds up to the same total, one row per branch
    branches = console.get("/console/invites").text  # an administrator's default level: branches
    assert _units(branches) == {"B001", "B002"} and "分行" in branches


def test_a_branch_manager_sees_the_branch_subtree(console: Console, invites: dict[str, str]) -> None:
    console.signin("bm_a")
    page = console.get("/console/invites?by=staff")
    assert page.status_code == 200, page.text
    assert _units(page.text) == {"E00001", "E00009"}
    assert invites["E00002"] not in page.text and 'id="kpi-invited">2<' in page.text
    assert re.search(r"Unknown code</td><td class=\"num\">0<", page.text)  # unknown codes: bank-wide only
    assert _units(console.get("/console/invites").text) == {"S0101"}  # a manager's default: sub-branches
    staff_codes = console.get("/console/invites/codes")
    assert staff_codes.status_code == 200
    listed = set(re.findall(r'<tr id="staff-([^"]+)"', staff_codes.text))
    assert listed == {"E00001", "E00003", "E00006", "E00009"}  # B001's subtree
    assert invites["E00002"] not in staff_codes.text


def test_an_rm_sees_their_own_code_only(console: Console, invites: dict[str, str]) -> None:
    console.signin("rm_a")
    page = console.get("/console/invites?by=staff")
    assert page.status_code == 200, page.text
    assert _units(page.text) == {"E00001"} and "own code only" in page.text
    assert invites["E00009"] not in page.text and invites["E00002"] not in page.text
    assert "E00009" not in page.text and "E00002" not in page.text
    assert _units(console.get("/console/invites?by=branch").text) == {"B001"}  # their own figures, rolled up
    assert 'href="/console/invites/codes"' not in page.text
    assert console.get("/console/invites/codes").status_code == 403
    # another RM: their own figures, not RM A's
    console.client.cookies.clear()
    console.signin("rm_b")
    other = console.get("/console/invites?by=staff").text
    assert _units(other) == {"E00002"} and invites["E00001"] not in other


def test_english_on_request_and_the_nav_entry(console: Console, invites: dict[str, str]) -> None:
    console.signin("rm_a", lang="en")
    page = console.get("/console/invites")
    assert "<h1>Invite results" in page.text and "Nov 1, 2026" in page.text
    assert 'href="/console/invites" aria-current="page">Invite codes</a>' in page.text
    assert "Own referral" in page.text and "本人推荐" not in page.text
    console.client.cookies.clear()
    console.signin("auditor")
    assert 'href="/console/invites"' not in console.get("/console").text
    assert console.get("/console/invites").status_code == 403


def test_the_period_picker(console: Console, invites: dict[str, str]) -> None:
    console.signin("admin")
    october = console.get("/console/invites?from=2026-10-01&to=2026-10-31&by=staff")
    assert october.status_code == 200 and not _units(october.text) and 'id="no-rows"' in october.text
    assert _units(console.get("/console/invites?from=2026-11-03&to=2026-11-03&by=staff").text) == {"E00009"}
    assert console.get("/console/invites?from=2026-11-05&to=2026-11-01").status_code == 422
    assert console.get("/console/invites?from=yesterday").status_code == 422
    last_month = console.get("/console/invites?preset=last_month&by=staff")
    assert "Oct 1, 2026" in last_month.text and not _units(last_month.text)
    assert presets(date(2026, 1, 15)) == {
        "month": (date(2026, 1, 1), date(2026, 1, 15)),
        "last_month": (date(2025, 12, 1), date(2025, 12, 31)),
        "year": (date(2025, 1, 16), date(2026, 1, 15)),
    }


def test_my_code_and_the_customers_it_bound_masked_and_audited(
    console: Console, invites: dict[str, str]
) -> None:
    console.signin("rm_a", lang="zh")
    page = console.get("/console/invites/mine")
    assert page.status_code == 200, page.text
    assert f'value="{invites["E00001"]}" readonly' in page.text
    assert set(re.findall(r'<tr id="bound-([^"]+)"', page.text)) == {"N1"}
    assert "陈*" in page.text and "137****0001" in page.text and "微信" in page.text
    assert not [p for p in PLAINTEXT if p in page.text]
    with unit_of_work(console.bank.settings) as session:
        read = AuditEntry.action == "invites.bound_customers"
        entry = session.scalar(select(AuditEntry).where(AuditEntry.actor == "user:rm_a", read))
        assert entry is not None and entry.subject_id == "E00001" and entry.source.startswith("console:")
    # a branch manager's own code bound nobody: their page does not show their branch's customers
    console.client.cookies.clear()
    console.signin("bm_a")
    theirs = console.get("/console/invites/mine").text
    assert 'id="no-bound"' in theirs and "N1" not in theirs


def test_making_a_share_link_needs_csrf(console: Console, invites: dict[str, str]) -> None:
    console.signin("rm_a")
    form = {"kind": "benefit", "target_id": "voucher", "channel": "wechat"}
    bare = console.client.post("/console/invites/mine/links", data=form, follow_redirects=False)
    assert bare.status_code == 403
    with unit_of_work(console.bank.settings) as session:
        assert session.scalars(select(ShareLink)).first() is None
    made = console.post("/console/invites/mine/links", form)
    assert made.status_code == 303, made.text
    token = made.headers["location"].split("link=", 1)[1].split("#", 1)[0]
    shown = console.get(made.headers["location"])
    assert f"/s/{token}" in shown.text and 'id="made-link"' in shown.text
    assert console.post("/console/invites/mine/links", form).headers["location"] == made.headers["location"]
    with unit_of_work(console.bank.settings) as session:
        link = session.get(ShareLink, token)
        assert link is not None and link.staff_id == "E00001" and link.shares == 2
    home = console.post("/console/invites/mine/links", {"kind": "home", "channel": "sms"})
    assert home.status_code == 303
    # a target that is not one, or a benefit that does not exist: a friendly page, nothing made
    assert console.post("/console/invites/mine/links", {"kind": "shop", "target_id": "x", "channel": "sms"}
                        ).status_code == 422  # fmt: skip
    missing = console.post("/console/invites/mine/links",
                           {"kind": "benefit", "target_id": "nope", "channel": "sms"})  # fmt: skip
    assert missing.status_code == 404 and "<h1>" in missing.text
    # another member of staff does not see RM A's link named in a URL
    console.client.cookies.clear()
    console.signin("rm_b")
    assert f"/s/{token}" not in console.get(f"/console/invites/mine?link={token}").text
