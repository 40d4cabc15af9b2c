"""Properties (hypothesis) over random sequences of grants, redemptions, earnings, spending and reversals,
each in its own transaction: the store agrees with a plain model of what should happen, stock and budgets
never go below zero, nothing is issued twice, and every balance equals the sum of its postings."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from omnibank.benefits import ledger
from omnibank.benefits.ledger import BudgetKey, CouponRefused, InsufficientPoints
from omnibank.benefits.models import (
    BenefitStock,
    Budget,
    CapCounter,
    Coupon,
    CouponEvent,
    InventoryLot,
    PointsBalance,
    PointsPosting,
    StockOut,
)
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from tests.benefits.helpers import NOW, give, load, small_catalogue

CUSTOMERS = ["C1", "C2", "C3"]
BENEFITS = {"voucher": 2600, "gift": 3900}
BUDGETS = [BudgetKey("camp"), BudgetKey("camp", rule="weekly")]
STOCK = 2  # vouchers; gifts: 100
COUNT_LIMIT, MONEY_LIMIT = 5, 18_000  # items for the campaign; face value (fen) for the rule
SEEN: Counter[str] = Counter()  # outcomes met, to check the sequences reach every case

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("grant"), st.sampled_from(CUSTOMERS), st.sampled_from(list(BENEFITS)), st.integers(0, 4)
        ),
        st.tuples(st.just("redeem"), st.integers(0, 20)),
        st.tuples(st.just("earn"), st.sampled_from(CUSTOMERS), st.integers(0, 5)),
        st.tuples(st.just("spend"), st.sampled_from(CUSTOMERS), st.integers(0, 5)),
        st.tuples(st.just("reverse"), st.integers(0, 30)),
    ),
    min_size=10,
    max_size=60,
)


@dataclass
class Model:
    stock: dict[str, int]
    count_left: int = COUNT_LIMIT
    money_left: int = MONEY_LIMIT
    coupons: dict[str, int] = field(default_factory=dict)  # key → coupon id
    order: list[int] = field(default_factory=list)  # coupon ids in grant order
    redeemed: set[int] = field(default_factory=set)
    balances: dict[str, int] = field(default_factory=dict)
    postings: list[tuple[int, str, str, int, bool]] = field(
        default_factory=list
    )  # id, customer, dir, amount, rev
    keys: set[str] = field(default_factory=set)
    reversed: set[int] = field(default_factory=set)


def reset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work() as session:
        for model in (CouponEvent, StockOut, Coupon, InventoryLot, BenefitStock, Budget, CapCounter):
            session.execute(delete(model))
        session.execute(delete(PointsPosting).where(PointsPosting.reverses_id.is_not(None)))
        session.execute(delete(PointsPosting))
        session.execute(delete(PointsBalance))
    load(small_catalogue(tmp_path, stock=STOCK))
    with unit_of_work() as session:
        ledger.set_budget(session, BUDGETS[0], count=COUNT_LIMIT, money_fen=None, now=NOW)
        ledger.set_budget(session, BUDGETS[1], count=None, money_fen=MONEY_LIMIT, now=NOW)


def apply(m: Model, op: tuple) -> None:  # type: ignore[type-arg]
    kind = op[0]
    if kind == "grant":
        _, customer, benefit, n = op
        key = f"camp:weekly:{customer}:{benefit}:{n}"
        with unit_of_work() as session:
            r = give(session, key, customer=customer, benefit=benefit, budgets=BUDGETS)
        value = BENEFITS[benefit]
        SEEN[r.reason or r.outcome] += 1
        if key in m.coupons:
            assert r.outcome == "duplicate" and r.coupon is not None and r.coupon.id == m.coupons[key]
        elif m.stock[benefit] < 1:
            assert r.reason == "out_of_stock"
        elif m.count_left < 1:
            assert r.reason == "budget_exhausted:camp"
        elif m.money_left < value:
            assert r.reason == "budget_exhausted:camp/rule:weekly"
        else:
            assert r.outcome == "granted" and r.coupon is not None
            m.stock[benefit] -= 1
            m.count_left -= 1
            m.money_left -= value
            m.coupons[key] = r.coupon.id
            m.order.append(r.coupon.id)
    elif kind == "redeem":
        if not m.order:
            return
        cid = m.order[op[1] % len(m.order)]
        try:
            with unit_of_work() as session:
                if ledger.get_coupon(session, cid).status == "granted":
                    ledger.claim(session, cid, now=NOW + timedelta(hours=1), actor="p")
                ledger.redeem(session, cid, now=NOW + timedelta(hours=1), actor="p")
            assert cid not in m.redeemed
            m.redeemed.add(cid)
            SEEN["redeemed"] += 1
        except CouponRefused:
            assert cid in m.redeemed
            SEEN["redeemed twice"] += 1
    elif kind in ("earn", "spend"):
        _, customer, n = op
        key = f"{kind}:{customer}:{n}"
        amount = (n + 1) * (100 if kind == "earn" else 150)
        fn = ledger.earn if kind == "earn" else ledger.spend
        try:
            with unit_of_work() as session:
                r = fn(session, customer_id=customer, amount=amount, key=key, now=NOW)
        except InsufficientPoints:
            assert key not in m.keys and m.balances.get(customer, 0) < amount
            SEEN["insufficient"] += 1
            return
        if key in m.keys:
            assert r.duplicate
            return
        assert not r.duplicate
        sign = 1 if kind == "earn" else -1
        assert m.balances.get(customer, 0) + sign * amount >= 0
        m.balances[customer] = m.balances.get(customer, 0) + sign * amount
        m.keys.add(key)
        m.postings.append((r.posting_id, customer, "credit" if kind == "earn" else "debit", amount, False))
    elif kind == "reverse":
        if not m.postings:
            return
        pid, customer, direction, amount, is_reversal = m.postings[op[1] % len(m.postings)]
        try:
            with unit_of_work() as session:
                r = ledger.reverse(session, posting_id=pid, now=NOW)
        except InsufficientPoints:
            assert direction == "credit" and m.balances[customer] < amount and pid not in m.reversed
            return
        except AppError:
            assert is_reversal
            return
        assert not is_reversal
        if pid in m.reversed:
            assert r.duplicate
            return
        m.reversed.add(pid)
        SEEN["reversed"] += 1
        m.balances[customer] += amount if direction == "debit" else -amount
        m.postings.append(
            (r.posting_id, customer, "debit" if direction == "credit" else "credit", amount, True)
        )


def check_invariants(m: Model) -> None:
    with unit_of_work() as session:
        stock = {s.benefit_id: s for s in session.scalars(select(BenefitStock))}
        for benefit, left in m.stock.items():
            s = stock[benefit]
            issued = session.scalar(
                select(func.count()).select_from(Coupon).where(Coupon.benefit_id == benefit)
            )
            assert s.available == left >= 0
            assert s.available + s.granted == s.received and s.granted == issued
        budgets = {b.id: b for b in session.scalars(select(Budget))}
        assert budgets["camp"].count_left == m.count_left >= 0
        assert budgets["camp"].count_used == len(m.coupons) <= COUNT_LIMIT
        assert budgets["camp/rule:weekly"].money_left_fen == m.money_left >= 0
        keys = list(session.scalars(select(Coupon.grant_key)))
        assert len(keys) == len(set(keys)) == len(m.coupons)
        redeemed = session.scalars(
            select(CouponEvent.coupon_id).where(CouponEvent.to_status == "redeemed")
        ).all()
        assert sorted(redeemed) == sorted(m.redeemed)
        checked, differences = ledger.verify_points(session)
        assert differences == []
        balances = {b.customer_id: b.balance for b in session.scalars(select(PointsBalance))}
        assert all(v >= 0 for v in balances.values())
        assert {c: v for c, v in balances.items()} == {c: m.balances.get(c, 0) for c in balances}
        assert {c for c, v in m.balances.items() if v} <= set(balances)


def test_random_sequences_keep_every_ledger_exact(env, tmp_path) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(sequence=ops)
    @example(  # stock, then the campaign's item count run out; a duplicate; a coupon redeemed twice
        sequence=[("grant", "C1", "voucher", 0), ("grant", "C2", "voucher", 0), ("grant", "C3", "voucher", 0),
                  ("grant", "C1", "voucher", 0), ("grant", "C1", "gift", 0), ("grant", "C2", "gift", 0),
                  ("grant", "C3", "gift", 0), ("grant", "C3", "gift", 1), ("redeem", 0), ("redeem", 0),
                  ("earn", "C1", 1), ("spend", "C1", 3), ("spend", "C1", 0), ("reverse", 1), ("reverse", 0)]
    )  # fmt: skip
    @example(  # the rule's face value runs out: 4 gifts are 156.00 of 180.00, a fifth would make 195.00
        sequence=[("grant", c, "gift", n) for n in (0, 1) for c in ("C1", "C2", "C3")]
    )
    def run(sequence: list[tuple]) -> None:  # type: ignore[type-arg]
        reset(tmp_path)
        m = Model(stock={"voucher": STOCK, "gift": 100})
        for op in sequence:
            apply(m, op)
        check_invariants(m)

    SEEN.clear()
    run()
    for outcome in ("granted", "duplicate", "out_of_stock", "budget_exhausted:camp",
                    "budget_exhausted:camp/rule:weekly", "redeemed", "redeemed twice", "insufficient",
                    "reversed"):  # fmt: skip
        assert SEEN[outcome] > 0, (outcome, SEEN)
