"""Over real HTTP, against a uvicorn server on PostgreSQL: requests that truly run at once (200 connections
released together) still redeem a coupon exactly once and issue exactly a budget's worth of coupons; the
audit entries they append end up in one unbroken chain."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from omnibank.audit import service as audit
from omnibank.audit.models import AuditEntry
from omnibank.benefits import ledger
from omnibank.benefits.models import BenefitStock, Budget, Coupon, CouponEvent
from omnibank.db import get_engine, unit_of_work
from tests.api.bank import Bank, build_bank
from tests.api.server import serve
from tests.benefits.helpers import NOW

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def live(env, tmp_path: Path) -> Iterator[tuple[Bank, str]]:
    settings = env.settings.model_copy(update={"api_rate_per_minute": 100_000, "api_login_per_minute": 1000})
    bank = build_bank(settings, tmp_path / "bank", raise_server_exceptions=False)
    with serve(bank.client.app) as url:  # type: ignore[arg-type]
        yield bank, url


def _all_at_once(
    url: str, headers: dict[str, str], requests: list[tuple[str, dict[str, Any] | None, str]]
) -> list[httpx.Response]:
    """POST every (path, body, idempotency key) on its own connection, all released together."""
    gate = threading.Barrier(len(requests))

    def send(request: tuple[str, dict[str, Any] | None, str]) -> httpx.Response:
        path, body, key = request
        with httpx.Client(base_url=url, timeout=120) as client:
            client.get("/healthz")  # the connection is open before the gate
            gate.wait()
            return client.post(path, json=body, headers={**headers, "Idempotency-Key": key})

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def test_200_concurrent_redeems_over_http_succeed_exactly_once(live: tuple[Bank, str]) -> None:
    bank, url = live
    headers = bank.auth("rm_a")
    with httpx.Client(base_url=url, headers=headers) as client:
        coupon = client.post("/api/v1/coupons", json={"customer_id": "CA1", "benefit_id": "voucher"}).json()
        assert client.post(f"/api/v1/coupons/{coupon['id']}/claim").json()["status"] == "active"
    responses = _all_at_once(
        url, headers, [(f"/api/v1/coupons/{coupon['id']}/redeem", None, f"r-{i}") for i in range(200)]
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: 199}
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"coupon_refused"}
    with unit_of_work(bank.settings) as session:
        assert session.scalar(select(Coupon.status).where(Coupon.id == coupon["id"])) == "redeemed"
        redeems = session.scalar(
            select(func.count()).select_from(CouponEvent).where(CouponEvent.action == "redeem")
        )
        audited = session.scalar(select(func.count()).where(AuditEntry.action == "coupon.redeem"))
    assert redeems == 1 and audited == 1
    with get_engine(bank.settings).connect() as conn:
        verdict = audit.verify_all(conn)
    assert verdict.intact and verdict.unchained == 0
    assert verdict.entries >= 2  # the claim and the redemption at least


def test_a_budget_of_n_under_10n_concurrent_issues_over_http_issues_exactly_n(live: tuple[Bank, str]) -> None:
    bank, url = live
    n = 10
    with unit_of_work(bank.settings) as session:
        ledger.set_budget(session, ledger.BudgetKey("api"), count=n, money_fen=None, now=NOW)
        granted_before = session.scalar(
            select(BenefitStock.granted).where(BenefitStock.benefit_id == "voucher")
        )
    body = {"customer_id": "CA1", "benefit_id": "voucher"}
    responses = _all_at_once(
        url, bank.auth("rm_a"), [("/api/v1/coupons", body, f"i-{i}") for i in range(10 * n)]
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: n, 409: 9 * n}
    refusals = {r.json()["details"]["reason"] for r in responses if r.status_code == 409}
    assert refusals == {"budget_exhausted:api"}
    with unit_of_work(bank.settings) as session:
        budget = session.get(Budget, "api")
        assert budget is not None
        assert (budget.count_used, budget.count_left) == (n, 0)
        assert budget.money_used_fen == n * 2600
        assert session.scalar(select(func.count()).select_from(Coupon)) == n
        granted = session.scalar(select(BenefitStock.granted).where(BenefitStock.benefit_id == "voucher"))
    assert granted == granted_before + n
