"""Concurrency on PostgreSQL (SQLite has one writer at a time): counters taken by conditional UPDATE stay
exact when many transactions race for them — a budget of N vouchers from 8 workers ends at exactly N, one
coupon redeemed by 50 at once is redeemed once, one key granted by 8 at once is issued once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from omnibank.benefits import ledger
from omnibank.benefits.ledger import BudgetKey, CouponRefused, InsufficientPoints
from omnibank.benefits.models import BenefitStock, Budget, Coupon, CouponEvent
from omnibank.db import unit_of_work
from tests.benefits.helpers import NOW, TZ, give, grant_one, load, small_catalogue

pytestmark = pytest.mark.postgres_only
T = TypeVar("T")


@pytest.fixture
def engine(env, tmp_path) -> Iterator[Engine]:
    load(small_catalogue(tmp_path, stock=1000))
    assert env.database_url
    eng = create_engine(env.database_url, pool_size=60, max_overflow=0)
    yield eng
    eng.dispose()


def race(engine: Engine, workers: int, work: Callable[[Session, int], T]) -> list[T | Exception]:
    """Run ``work`` in ``workers`` threads, each in its own transaction on its own connection, all released
    at once; each commits, or rolls back and returns its exception."""
    gate = threading.Barrier(workers)

    def one(i: int) -> T | Exception:
        with engine.connect() as conn:
            session = Session(bind=conn, expire_on_commit=False)  # the pool connected it already
            gate.wait()
            try:
                result = work(session, i)
                session.commit()
                return result
            except Exception as exc:  # noqa: BLE001 - handed back to the test
                session.rollback()
                return exc
            finally:
                session.close()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(workers)))


def test_a_budget_of_n_from_8_concurrent_workers_ends_at_exactly_n(engine) -> None:
    n = 25
    with unit_of_work() as session:
        ledger.set_budget(session, BudgetKey("luckin2026", rule="weekly"), count=n, money_fen=None, now=NOW)
    budgets = [BudgetKey("luckin2026"), BudgetKey("luckin2026", rule="weekly")]  # the first is not defined

    def worker(session: Session, w: int) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        for i in range(12):  # 8 × 12 = 96 attempts for 25 vouchers, each its own transaction
            r = give(session, f"luckin2026:weekly:C{w:03d}{i:03d}:2026-W10", budgets=budgets)
            session.commit()
            outcomes[r.reason or r.outcome] += 1
        return outcomes

    results = race(engine, 8, worker)
    total: Counter[str] = Counter()
    for r in results:
        assert isinstance(r, Counter), r
        total += r
    assert total == Counter({"granted": n, "budget_exhausted:luckin2026/rule:weekly": 96 - n})
    with unit_of_work() as session:
        budget = session.get(Budget, "luckin2026/rule:weekly")
        assert budget is not None and (budget.count_used, budget.count_left) == (n, 0)
        assert session.scalar(select(func.count()).select_from(Coupon)) == n
        assert session.get(BenefitStock, "voucher").available == 1000 - n  # type: ignore[union-attr]


def test_stock_from_8_concurrent_workers_ends_at_zero_never_below(engine) -> None:
    from omnibank.benefits.stock import receive_lot

    with unit_of_work() as session:  # 100 gifts in the catalogue, one more received
        receive_lot(
            session, benefit_id="gift", ref="X", quantity=1, unit_cost=Decimal(0), received_at=NOW, tz=TZ
        )

    def worker(session: Session, w: int) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        for i in range(15):  # 8 × 15 = 120 attempts for 101 gifts
            r = give(session, f"gift:{w}:{i}", benefit="gift")
            session.commit()
            outcomes[r.reason or r.outcome] += 1
        return outcomes

    total: Counter[str] = Counter()
    for r in race(engine, 8, worker):
        assert isinstance(r, Counter), r
        total += r
    assert total == Counter({"granted": 101, "out_of_stock": 19})
    with unit_of_work() as session:
        stock = session.get(BenefitStock, "gift")
        assert stock is not None and (stock.available, stock.granted, stock.received) == (0, 101, 101)


def test_50_concurrent_redeems_of_one_coupon_succeed_exactly_once(engine) -> None:
    coupon = grant_one("one", benefit="gift").coupon
    assert coupon is not None
    with unit_of_work() as session:
        ledger.claim(session, coupon.id, now=NOW, actor="t")
    at = NOW + timedelta(hours=1)
    results = race(
        engine, 50, lambda session, i: ledger.redeem(session, coupon.id, now=at, actor=f"till-{i}")
    )
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and won[0].status == "redeemed"
    assert len(lost) == 49 and all(isinstance(e, CouponRefused) for e in lost), {type(e) for e in lost}
    with unit_of_work() as session:
        redeemed = session.scalar(
            select(func.count()).select_from(CouponEvent).where(CouponEvent.to_status == "redeemed")
        )
        assert redeemed == 1


def test_one_key_granted_by_8_at_once_is_issued_once(engine) -> None:
    results = race(engine, 8, lambda session, i: give(session, "luckin2026:welcome:C000001:campaign:1"))
    outcomes = Counter(r.outcome for r in results if not isinstance(r, Exception))
    assert outcomes == Counter({"granted": 1, "duplicate": 7}), results
    ids = {r.coupon.id for r in results if not isinstance(r, Exception) and r.coupon}
    assert len(ids) == 1
    with unit_of_work() as session:
        assert session.get(BenefitStock, "voucher").available == 999  # type: ignore[union-attr]


def test_20_concurrent_spends_never_overdraw_the_points(engine) -> None:
    with unit_of_work() as session:
        ledger.earn(session, customer_id="C1", amount=1000, key="seed", now=NOW)

    def spend(session: Session, i: int) -> Any:
        return ledger.spend(session, customer_id="C1", amount=100, key=f"spend:{i}", now=NOW)

    results = race(engine, 20, spend)
    assert sum(not isinstance(r, Exception) for r in results) == 10
    assert all(isinstance(r, InsufficientPoints) for r in results if isinstance(r, Exception))
    with unit_of_work() as session:
        assert ledger.balance(session, "C1") == 0
        assert ledger.verify_points(session)[1] == []
