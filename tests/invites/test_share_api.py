"""``GET /s/{token}`` (redirect, click counting, 404 page, rate limit, no raw address stored) and the
share-link API (who may make whose link; the figures each caller sees)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from omnibank.db import unit_of_work
from omnibank.invites import codes
from omnibank.invites.endpoints import share_state
from omnibank.invites.models import ShareClick
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank
from tests.benefits.helpers import NOW
from tests.invites.share_helpers import RM_A, RM_B, issue_codes

ADDRESS = "203.0.113.77"
UA = {"User-Agent": "Mozilla/5.0 (iPhone) MicroMessenger/8.0"}


@pytest.fixture
def bank(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = env.settings.model_copy(
        update={
            "api_login_per_minute": 1000,
            "share_cache_seconds": 0,
            "share_rate_per_minute": 5,
            "public_url": "https://bank.example",
        }
    )
    built = build_bank(settings, tmp_path / "bank")
    issue_codes(settings)
    with built.client:
        yield built


@pytest.fixture
def visitor(bank: Bank) -> Iterator[TestClient]:
    """A customer's phone: its own address, following no redirect."""
    with TestClient(bank.client.app, client=(ADDRESS, 4242), follow_redirects=False) as client:
        yield client


def _link(bank: Bank, user: str = "rm_a", staff: str = RM_A, target: str = "benefit:voucher") -> dict:
    r = bank.post(user, "/api/v1/invites/share-links", json={"staff_id": staff, "target": target})
    assert r.status_code == 200, r.text
    return r.json()


def _clicks(bank: Bank) -> list[ShareClick]:
    share_state(bank.client.app).recorder.flush()
    with unit_of_work(bank.settings) as session:
        return list(session.scalars(select(ShareClick)))


def test_the_link_redirects_to_the_landing_with_the_code(bank: Bank, visitor: TestClient) -> None:
    link = _link(bank)
    assert link["url"] == f"https://bank.example/s/{link['token']}" and link["shares"] == 1
    r = visitor.get(f"/s/{link['token']}", headers=UA)
    assert r.status_code == 302 and r.headers["cache-control"] == "no-store"
    url = urlsplit(r.headers["location"])
    assert url.path == "/c/benefits/voucher"
    with unit_of_work(bank.settings) as session:
        code = codes.live_code(session, RM_A)
        assert code is not None
    assert parse_qs(url.query) == {"invite_code": [code.code], "share_token": [link["token"]],
                                   "channel": ["wechat"]}  # fmt: skip


def test_a_revoked_code_still_redirects_without_a_code(bank: Bank, visitor: TestClient) -> None:
    link = _link(bank)
    with unit_of_work(bank.settings) as session:
        codes.revoke(session, RM_A, reason="test", now=NOW, actor="test")
    r = visitor.get(f"/s/{link['token']}", headers=UA)
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["location"]).query) == {"share_token": [link["token"]],
                                                               "channel": ["wechat"]}  # fmt: skip


@pytest.mark.parametrize("token", ["AAAAAAAAAA", "short", "a%2F..%2Fb", "a/b", "", "x" * 300])
def test_an_unknown_link_is_a_page_not_a_traceback(bank: Bank, visitor: TestClient, token: str) -> None:
    r = visitor.get(f"/s/{token}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html") and "<html" in r.text
    assert "Traceback" not in r.text


def test_a_device_counts_once_a_minute(bank: Bank, visitor: TestClient) -> None:
    link = _link(bank)
    path = f"/s/{link['token']}"
    assert visitor.get(path, headers=UA).status_code == 302
    bank.clock.advance(seconds=59)
    assert visitor.get(path, headers=UA).status_code == 302  # same device: not counted
    assert visitor.get(path, headers={"User-Agent": "Android WeChat"}).status_code == 302  # another device
    bank.clock.advance(seconds=1)
    assert visitor.get(path, headers=UA).status_code == 302  # a minute after the first: counted
    clicks = _clicks(bank)
    assert len(clicks) == 3 and len({c.device for c in clicks}) == 2
    assert sorted(c.at - NOW for c in clicks) == [timedelta(0), timedelta(seconds=59), timedelta(seconds=60)]
    assert {(c.staff_id, c.channel) for c in clicks} == {(RM_A, "wechat")}


def test_no_raw_address_is_stored_or_logged(bank: Bank, visitor: TestClient,
                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    link = _link(bank)
    with caplog.at_level(logging.DEBUG):
        visitor.get(f"/s/{link['token']}", headers=UA)
        _clicks(bank)
    with unit_of_work(bank.settings) as session:
        rows = session.execute(text("SELECT * FROM share_clicks")).all()
    assert rows and ADDRESS not in repr(rows) and "MicroMessenger" not in repr(rows)
    assert ADDRESS not in caplog.text
    db_file = bank.settings.home_dir / "omnibank.db"
    if db_file.exists():
        for f in [db_file, *db_file.parent.glob("omnibank.db-*")]:
            assert ADDRESS.encode() not in f.read_bytes()


def test_too_many_requests_from_one_address_get_429(bank: Bank, visitor: TestClient) -> None:
    link = _link(bank)
    answers = [visitor.get(f"/s/{link['token']}").status_code for _ in range(7)]
    assert answers[:5] == [302] * 5 and answers[5:] == [429, 429]
    r = visitor.get(f"/s/{link['token']}")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    with TestClient(bank.client.app, client=("198.51.100.1", 1), follow_redirects=False) as other:
        assert other.get(f"/s/{link['token']}").status_code == 302  # another address is not held back


def test_staff_make_their_own_links_managers_anyones(bank: Bank) -> None:
    assert _link(bank)["staff_id"] == RM_A
    r = bank.post("rm_a", "/api/v1/invites/share-links", json={"staff_id": RM_B, "target": "benefit:voucher"})
    assert r.status_code == 403 and "for yourself only" in r.json()["message"]
    assert _link(bank, user="cm", staff=RM_B, target="scene:car_loan")["target_kind"] == "scene"
    again = _link(bank, user="admin", staff=RM_B, target="scene:car_loan")
    assert again["shares"] == 2
    bad = bank.post("cm", "/api/v1/invites/share-links", json={"staff_id": RM_B, "target": "coupon:x"})
    assert bad.status_code >= 400 and "not a target kind" in bad.json()["message"]
    missing = bank.post("cm", "/api/v1/invites/share-links", json={"staff_id": RM_B, "target": "benefit:no"})
    assert missing.status_code == 404


def test_stats_over_the_api_are_scoped(bank: Bank, visitor: TestClient) -> None:
    mine = _link(bank)
    _link(bank, user="cm", staff=RM_B, target="scene:car_loan")
    visitor.get(f"/s/{mine['token']}", headers=UA)
    _clicks(bank)
    rm = bank.get("rm_a", "/api/v1/invites/share-stats")
    assert rm.status_code == 200
    assert [(i["staff_id"], i["clicks"], i["unique_clickers"]) for i in rm.json()["items"]] == [(RM_A, 1, 1)]
    assert bank.get("rm_a", f"/api/v1/invites/share-stats?staff_id={RM_B}").status_code == 403
    everyone = bank.get("admin", "/api/v1/invites/share-stats?by=target").json()["items"]
    assert {(i["target_kind"], i["target_id"]) for i in everyone} == {
        ("benefit", "voucher"),
        ("scene", "car_loan"),
    }
    branch_a = bank.get("bm_a", "/api/v1/invites/share-stats").json()["items"]
    assert [i["staff_id"] for i in branch_a] == [RM_A]
    assert bank.get("bm_a", "/api/v1/invites/share-stats?org=B002").status_code == 404
    assert bank.get("auditor", "/api/v1/invites/share-stats").status_code == 403
