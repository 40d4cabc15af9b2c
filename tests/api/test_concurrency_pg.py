"""On PostgreSQL: 200 concurrent redemptions of one coupon through the API succeed exactly once (the
ledger's compare-and-set decides; every other request is refused with 409, none fails with 500)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from omnibank.benefits.models import Coupon, CouponEvent
from omnibank.db import unit_of_work
from tests.api.bank import build_bank

pytestmark = pytest.mark.postgres_only
WORKERS = 200


def test_200_concurrent_redeems_of_one_coupon_succeed_once(env, tmp_path: Path) -> None:
    bank = build_bank(
        env.settings.model_copy(update={"api_rate_per_minute": 10_000, "api_login_per_minute": 1000}),
        tmp_path / "bank",
        raise_server_exceptions=False,
    )
    coupon = bank.post("rm_a", "/api/v1/coupons", json={"customer_id": "CA1", "benefit_id": "voucher"}).json()
    assert bank.post("rm_a", f"/api/v1/coupons/{coupon['id']}/claim").json()["status"] == "active"
    headers = bank.auth("rm_a")
    gate = threading.Barrier(WORKERS)

    def redeem(i: int) -> int:
        gate.wait()
        r = bank.client.post(
            f"/api/v1/coupons/{coupon['id']}/redeem", headers={**headers, "Idempotency-Key": f"k-{i}"}
        )
        return r.status_code

    with ThreadPoolExecutor(WORKERS) as pool:
        statuses = Counter(pool.map(redeem, range(WORKERS)))
    assert statuses == {200: 1, 409: WORKERS - 1}
    with unit_of_work(bank.settings) as session:
        assert session.scalar(select(Coupon.status).where(Coupon.id == coupon["id"])) == "redeemed"
        redeems = session.scalar(
            select(func.count()).select_from(CouponEvent).where(CouponEvent.action == "redeem")
        )
    assert redeems == 1
