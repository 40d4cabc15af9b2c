"""Coupons and points over the API: writes honour Idempotency-Key (same key and body → the stored answer;
same key, other body → 409); a coupon is redeemed once; a supplier acts on its own benefits only."""

from __future__ import annotations

from sqlalchemy import func, select

from omnibank.api.models import IdempotencyKey
from omnibank.benefits import ledger
from omnibank.benefits.models import Coupon, CouponEvent
from omnibank.db import unit_of_work
from tests.api.bank import Bank
from tests.benefits.helpers import NOW


def _count(bank: Bank, model: type) -> int:
    with unit_of_work(bank.settings) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _issue(bank: Bank, who: str = "rm_a", key: str | None = None, **body: str):
    headers = {"Idempotency-Key": key} if key else {}
    payload = {"customer_id": "CA1", "benefit_id": "voucher", **body}
    return bank.post(who, "/api/v1/coupons", json=payload, headers=headers)


def test_issue_with_the_same_key_twice_issues_once(bank: Bank) -> None:
    first = _issue(bank, key="issue-1")
    again = _issue(bank, key="issue-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert _count(bank, Coupon) == 1
    stock = {s["benefit_id"]: s for s in bank.get("admin", "/api/v1/benefits/stock").json()}
    assert stock["voucher"]["granted"] == 1


def test_same_key_with_another_body_is_refused(bank: Bank) -> None:
    _issue(bank, key="issue-1")
    other = _issue(bank, key="issue-1", customer_id="CA2")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert _count(bank, Coupon) == 1


def test_keys_belong_to_their_caller(bank: Bank) -> None:
    a = _issue(bank, "rm_a", key="k")
    b = _issue(bank, "bm_a", key="k")
    assert a.json()["id"] != b.json()["id"] and _count(bank, Coupon) == 2


def test_without_a_key_each_request_issues(bank: Bank) -> None:
    _issue(bank)
    _issue(bank)
    assert _count(bank, Coupon) == 2


def test_a_refused_write_stores_no_key_and_can_be_retried(bank: Bank) -> None:
    r = _issue(bank, key="k2", benefit_id="no_such_benefit")
    assert r.status_code == 404
    assert _count(bank, IdempotencyKey) == 0


def test_redeem_is_idempotent_by_key_and_a_second_redemption_is_refused(bank: Bank) -> None:
    coupon = _issue(bank).json()
    claimed = bank.post("rm_a", f"/api/v1/coupons/{coupon['id']}/claim")
    assert claimed.json()["status"] == "active"
    first = bank.post("rm_a", f"/api/v1/coupons/{coupon['id']}/redeem", headers={"Idempotency-Key": "r-1"})
    replay = bank.post("rm_a", f"/api/v1/coupons/{coupon['id']}/redeem", headers={"Idempotency-Key": "r-1"})
    assert first.status_code == replay.status_code == 200
    assert first.json()["status"] == replay.json()["status"] == "redeemed"
    second = bank.post("rm_a", f"/api/v1/coupons/{coupon['id']}/redeem", headers={"Idempotency-Key": "r-2"})
    assert second.status_code == 409 and second.json()["code"] == "coupon_refused"
    plain = bank.post("rm_a", f"/api/v1/coupons/{coupon['id']}/redeem")
    assert plain.status_code == 409
    with unit_of_work(bank.settings) as session:
        redeems = session.scalar(
            select(func.count()).select_from(CouponEvent).where(CouponEvent.action == "redeem")
        )
    assert redeems == 1


def test_supplier_redeems_its_own_coupons_and_sees_its_own_benefits(bank: Bank) -> None:
    voucher = _issue(bank).json()
    bank.post("rm_a", f"/api/v1/coupons/{voucher['id']}/claim")
    r = bank.post("acme_user", f"/api/v1/coupons/{voucher['id']}/redeem")
    assert r.status_code == 200 and r.json()["status"] == "redeemed"
    discount = _issue(bank, benefit_id="discount").json()  # the bank's own, not acme's
    bank.post("rm_a", f"/api/v1/coupons/{discount['id']}/claim")
    assert bank.post("acme_user", f"/api/v1/coupons/{discount['id']}/redeem").status_code == 404
    assert {b["id"] for b in bank.get("acme_user", "/api/v1/benefits").json()} == {"voucher", "gift"}
    assert {b["id"] for b in bank.get("admin", "/api/v1/benefits").json()} == {
        "voucher",
        "gift",
        "discount",
        "bonus",
    }
    assert _issue(bank, "acme_user").status_code == 403


def test_points_balance_and_redeem(bank: Bank) -> None:
    with unit_of_work(bank.settings) as session:
        ledger.earn(session, customer_id="CA1", amount=500, key="seed", now=NOW)
    assert bank.get("rm_a", "/api/v1/points/CA1").json()["balance"] == 500
    body = {"amount": 200, "reference": "gift"}
    r1 = bank.post("rm_a", "/api/v1/points/CA1/redeem", json=body, headers={"Idempotency-Key": "p-1"})
    r2 = bank.post("rm_a", "/api/v1/points/CA1/redeem", json=body, headers={"Idempotency-Key": "p-1"})
    assert r1.json()["balance"] == r2.json()["balance"] == 300
    too_much = bank.post("rm_a", "/api/v1/points/CA1/redeem", json={"amount": 301})
    assert too_much.status_code == 409 and too_much.json()["code"] == "insufficient_points"
    assert bank.get("rm_a", "/api/v1/points/CA1").json()["balance"] == 300
