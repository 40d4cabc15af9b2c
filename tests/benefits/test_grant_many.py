"""Issuing a batch (live campaigns issue a log file's grants at once) has exactly the outcome of issuing
each item in order: the same coupons, the same refusals on the same items, the same stock and budgets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from omnibank.benefits import granting, ledger
from omnibank.benefits.batch import grant_many
from omnibank.benefits.grant import Grant
from omnibank.benefits.ledger import BudgetKey
from omnibank.benefits.models import BenefitStock, Budget, Coupon, CouponEvent, StockOut
from omnibank.db import unit_of_work
from tests.benefits.helpers import NOW, TZ, load, small_catalogue

BUDGETS = (BudgetKey("camp"), BudgetKey("camp", rule="weekly"))


def request(i: int, benefit: str = "voucher", **extra: Any) -> Grant:
    return Grant(
        key=f"camp:weekly:C{i:03d}:2026-W10",
        campaign="camp",
        rule="weekly",
        customer_id=f"C{i:03d}",
        benefit_id=benefit,
        granted_at=NOW + timedelta(minutes=i),
        budgets=BUDGETS,
        **extra,
    )


def one_by_one(session: Session, requests: list[Grant]) -> list[granting.GrantResult]:
    return [
        granting.grant(
            session,
            key=r.key,
            campaign=r.campaign,
            rule=r.rule,
            customer_id=r.customer_id,
            benefit_id=r.benefit_id,
            face_value_fen=r.face_value_fen,
            granted_at=r.granted_at,
            budgets=r.budgets,
            tz=TZ,
            actor="test",
        )
        for r in requests
    ]


def state(session: Session) -> tuple[Any, ...]:
    coupons = [
        (c.grant_key, c.customer_id, c.benefit_id, c.face_value_fen, c.status, c.claim_by, c.valid_to)
        for c in session.scalars(select(Coupon).order_by(Coupon.grant_key))
    ]
    stock = [(s.benefit_id, s.available, s.granted) for s in session.scalars(select(BenefitStock))]
    budgets = [(b.id, b.count_left, b.money_left_fen, b.count_used) for b in session.scalars(select(Budget))]
    outs = [(o.benefit_id, o.refusals) for o in session.scalars(select(StockOut))]
    history = len(list(session.scalars(select(CouponEvent))))
    return coupons, sorted(stock), sorted(budgets), outs, history


def outcomes(results: list[granting.GrantResult]) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [(r.outcome, r.reason, r.budgets) for r in results]


def test_a_batch_within_stock_and_budgets_is_issued_whole(env, tmp_path) -> None:
    load(small_catalogue(tmp_path, stock=10))
    with unit_of_work() as session:
        ledger.set_budget(session, BUDGETS[1], count=10, money_fen=None, now=NOW)
        results = grant_many(session, [request(i) for i in range(8)] + [request(8, "discount")], actor="t")
    assert [r.outcome for r in results] == ["granted"] * 9
    assert {r.budgets for r in results} == {("camp/rule:weekly",)}
    with unit_of_work() as session:
        coupons, stock, budgets, _, history = state(session)
        assert len(coupons) == 9 and history == 9
        assert ("voucher", 2, 8) in stock
        assert budgets == [("camp/rule:weekly", 1, None, 9)]
        first = session.scalars(select(Coupon).where(Coupon.grant_key == results[0].coupon.grant_key)).one()
        assert first.id == results[0].coupon.id
        assert first.claim_by == results[0].coupon.claim_by  # the catalogue's claim window, bank-local
        assert first.claim_by.astimezone(TZ).date() == (NOW + timedelta(days=30)).date()


def test_what_runs_out_falls_on_the_same_items_as_one_by_one(env, tmp_path) -> None:
    load(small_catalogue(tmp_path, stock=5))
    batch = [request(i) for i in range(8)]
    with unit_of_work() as session:
        together = outcomes(grant_many(session, batch, tz=TZ, actor="t"))
        after_batch = state(session)
        session.rollback()
    with unit_of_work() as session:
        alone = outcomes(one_by_one(session, batch))
        assert state(session) == after_batch
    assert together == alone
    assert [o for o, _, _ in together] == ["granted"] * 5 + ["refused"] * 3


def test_a_key_granted_before_is_a_duplicate_and_the_rest_are_issued(env, tmp_path) -> None:
    load(small_catalogue(tmp_path, stock=10))
    with unit_of_work() as session:
        grant_many(session, [request(1)], actor="t")
    with unit_of_work() as session:
        results = grant_many(session, [request(0), request(1), request(2)], actor="t")
    assert [r.outcome for r in results] == ["granted", "duplicate", "granted"]
    with unit_of_work() as session:
        assert len(state(session)[0]) == 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    picks=st.lists(st.sampled_from(["voucher", "gift", "discount"]), min_size=1, max_size=12),
    stock=st.integers(0, 6),
    count=st.one_of(st.none(), st.integers(0, 10)),
    money=st.one_of(st.none(), st.integers(0, 30_000)),
)
def test_property_a_batch_equals_one_by_one(env, tmp_path, picks, stock, count, money) -> None:
    with unit_of_work() as session:
        loaded = session.get(BenefitStock, "voucher") is not None
    if not loaded:
        load(small_catalogue(tmp_path))
    with unit_of_work() as session:  # a fresh ledger: vouchers in stock as drawn
        for table in (CouponEvent, Coupon, StockOut, Budget):
            session.execute(delete(table))
        session.execute(update(BenefitStock).values(available=stock, granted=0))
        session.execute(update(BenefitStock).where(BenefitStock.benefit_id == "gift").values(available=100))
    batch = [request(i, b) for i, b in enumerate(picks)]
    with unit_of_work() as session:
        if count is not None or money is not None:
            ledger.set_budget(session, BUDGETS[0], count=count, money_fen=money, now=NOW)
    with unit_of_work() as session:
        together = outcomes(grant_many(session, batch, tz=TZ, actor="t"))
        after_batch = state(session)
        session.rollback()
    with unit_of_work() as session:
        alone = outcomes(one_by_one(session, batch))
        assert state(session) == after_batch
        session.rollback()
    assert together == alone
