"""The coupon lane (PostgreSQL): plain issue, claim and redeem requests go straight to the fast path, past
FastAPI; what it answers must be what the endpoints answer, and everything unusual must reach them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.bank import Bank, build_bank

pg = pytest.mark.postgres_only
_VARYING = ("id", "grant_key", "date")


def _served(bank: Bank) -> int:
    return int(bank.client.app.state.lane_served)  # type: ignore[attr-defined]


def _issue(bank: Bank, who: str = "rm_a", key: str | None = None, **body: Any) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return bank.post(who, "/api/v1/coupons", json={"customer_id": "CA1", "benefit_id": "voucher", **body},
                     headers=headers)  # fmt: skip


def _same(a: Any, b: Any) -> None:
    """Two answers alike but for what differs between two coupons."""
    assert a.status_code == b.status_code
    assert {k: v for k, v in a.headers.items() if k not in _VARYING and k != "content-length"} == {
        k: v for k, v in b.headers.items() if k not in _VARYING and k != "content-length"
    }
    assert {k: v for k, v in a.json().items() if k not in _VARYING} == {
        k: v for k, v in b.json().items() if k not in _VARYING
    }


@pg
def test_the_lane_answers_as_the_endpoints_do(bank: Bank) -> None:
    by_endpoint = _issue(bank)  # the token is not cached yet: the endpoint authenticates and answers
    assert _served(bank) == 0
    by_lane = _issue(bank)
    assert _served(bank) == 1
    _same(by_endpoint, by_lane)
    assert by_lane.headers["cache-control"] == "no-store" and by_lane.headers["x-frame-options"] == "DENY"
    ids = [by_endpoint.json()["id"], by_lane.json()["id"]]
    claims = [bank.post("rm_a", f"/api/v1/coupons/{i}/claim") for i in ids]
    redeems = [bank.post("acme_user", f"/api/v1/coupons/{i}/redeem") for i in ids]
    assert _served(bank) == 1 + 2 + 1  # the supplier's first request authenticated at the endpoint
    _same(*claims)
    _same(*redeems)
    assert [r.json()["status"] for r in (*claims, *redeems)] == ["active", "active", "redeemed", "redeemed"]
    again = bank.post("acme_user", f"/api/v1/coupons/{ids[0]}/redeem")  # declined: the endpoint refuses
    assert again.status_code == 409 and again.json()["code"] == "coupon_refused"
    assert _served(bank) == 4


@pg
def test_a_signed_out_session_is_not_served_by_the_lane(bank: Bank) -> None:
    tokens = bank.login("rm_a")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    body = {"customer_id": "CA1", "benefit_id": "voucher"}
    assert bank.client.post("/api/v1/coupons", json=body, headers=bearer).status_code == 201
    assert bank.client.post("/api/v1/coupons", json=body, headers=bearer).status_code == 201
    assert _served(bank) == 1  # the second request: the token was cached, the session live
    out = bank.client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.json() == {"revoked": True}
    refused = bank.client.post("/api/v1/coupons", json=body, headers=bearer)
    assert refused.status_code == 401 and _served(bank) == 1


@pg
def test_unusual_requests_reach_the_endpoints(bank: Bank) -> None:
    _issue(bank)  # caches rm_a's token
    served = _served(bank)
    missing = _issue(bank, customer_id=None)
    assert missing.status_code == 422 and missing.json()["code"] == "invalid_request"
    assert "customer_id" in missing.json()["message"]
    extra = _issue(bank, colour="red")
    assert extra.status_code == 422
    broken = bank.post(
        "rm_a", "/api/v1/coupons", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    text = bank.post("rm_a", "/api/v1/coupons", content=b'{"customer_id": "CA1", "benefit_id": "voucher"}',
                     headers={"content-type": "text/plain"})  # fmt: skip
    assert text.status_code == 422
    assert (
        bank.client.post("/api/v1/coupons", json={"customer_id": "CA1", "benefit_id": "voucher"}).status_code
        == 401
    )
    bank.post("acme_user", "/api/v1/coupons/1/redeem")  # caches the supplier's token
    refused = _issue(bank, "acme_user")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert bank.post("rm_a", "/api/v1/coupons/0/claim").status_code == 422
    long_key = _issue(bank, key="k" * 201)
    assert long_key.status_code in (400, 422) and long_key.json()["code"] == "invalid_request"
    assert _served(bank) == served  # none of these was the lane's
    assert _issue(bank).status_code == 201 and _served(bank) == served + 1


@pg
def test_a_request_counts_once_against_the_rate(env, tmp_path: Path) -> None:
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000, "api_rate_per_minute": 4})
    bank = build_bank(settings, tmp_path / "bank")
    with bank.client:
        bank.auth("rm_a")  # signing in is limited apart
        assert _issue(bank, grant_key="dup").status_code == 201  # 1, at the endpoint
        dup = _issue(bank, grant_key="dup")  # 2: the lane declines, the endpoint answers
        assert dup.status_code == 200 and dup.json()["duplicate"] is True
        assert _issue(bank).status_code == 201  # 3, the lane's
        assert _issue(bank).status_code == 201  # 4
        limited = _issue(bank)
        assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert _served(bank) == 2


def test_without_a_fast_path_the_lane_passes_everything_on(bank: Bank) -> None:
    if bank.settings.db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL has the fast path")
    assert [_issue(bank).status_code for _ in range(3)] == [201, 201, 201]
    assert _served(bank) == 0
