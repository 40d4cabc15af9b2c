"""grant(): one item into the coupon ledger in one savepoint — stock and every budget taken, or a refusal
with its reason and nothing written; the same key never issues twice."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from omnibank.benefits import ledger, suppliers
from omnibank.benefits.ledger import BudgetKey, CapKey
from omnibank.benefits.models import BenefitStock, Budget, CapCounter, Coupon, CouponEvent, StockOut
from omnibank.db import unit_of_work
from omnibank.errors import AppError, Conflict, NotFound
from tests.benefits.helpers import NOW, TZ, give, grant_one, load, small_catalogue


@pytest.fixture
def catalogue(env, tmp_path) -> None:
    load(small_catalogue(tmp_path, stock=3))


def counts() -> tuple[int, int, int]:
    with unit_of_work() as session:
        stock = session.get(BenefitStock, "voucher")
        assert stock is not None
        coupons = session.scalar(select(func.count()).select_from(Coupon)) or 0
        events = session.scalar(select(func.count()).select_from(CouponEvent)) or 0
        return stock.available, coupons, events


def test_a_grant_takes_one_item_and_records_the_coupon_with_its_windows(catalogue) -> None:
    r = grant_one("camp:weekly:C000001:2026-W10", stage=None, branch_id="B001")
    assert r.outcome == "granted" and r.coupon is not None
    c = r.coupon
    assert (c.customer_id, c.benefit_id, c.status, c.face_value_fen) == (
        "C000001",
        "voucher",
        "granted",
        2600,
    )
    # claim until the end of grant day + 30, valid until the end of the first valid day + 30 (bank-local)
    assert c.claim_by == datetime(2026, 4, 1, 23, 59, 59, tzinfo=TZ)
    assert c.valid_from == NOW and c.valid_to == datetime(2026, 4, 1, 23, 59, 59, tzinfo=TZ)
    assert counts() == (2, 1, 1)


def test_the_face_value_comes_from_the_tier_unless_given(catalogue) -> None:
    assert grant_one("k1", tier="platinum").coupon.face_value_fen == 2900  # type: ignore[union-attr]
    assert grant_one("k2", tier="gold").coupon.face_value_fen == 2600  # type: ignore[union-attr]  # default
    assert grant_one("k3", face_value_fen=1000).coupon.face_value_fen == 1000  # type: ignore[union-attr]
    r = grant_one("k4", benefit="discount", discount_rate=Decimal("0.65"), stage=3)
    assert r.coupon is not None and r.coupon.discount_rate == Decimal("0.65") and r.coupon.stage == 3
    assert grant_one("k5", benefit="discount").coupon.discount_rate == Decimal("0.75")  # type: ignore[union-attr]


def test_the_same_key_is_issued_once(catalogue) -> None:
    first = grant_one("camp:weekly:C000001:2026-W10")
    again = grant_one("camp:weekly:C000001:2026-W10")
    assert first.outcome == "granted" and again.outcome == "duplicate"
    assert again.coupon == first.coupon
    assert counts() == (2, 1, 1)
    with pytest.raises(Conflict, match="a key names one item"):
        grant_one("camp:weekly:C000001:2026-W10", customer="C000002")


def test_stock_runs_out_exactly_and_never_goes_below_zero(catalogue) -> None:
    results = [grant_one(f"k{i}").outcome for i in range(5)]
    assert results == ["granted"] * 3 + ["refused"] * 2
    assert grant_one("k9").reason == "out_of_stock"
    assert counts() == (0, 3, 3)
    with unit_of_work() as session:
        outs = list(session.scalars(select(StockOut)))
        assert [(o.benefit_id, o.day.isoformat(), o.refusals) for o in outs] == [("voucher", "2026-03-02", 3)]
    # the database refuses a negative stock whatever the code does
    with pytest.raises(Exception, match="(?i)check"), unit_of_work() as session:
        session.execute(
            text("UPDATE benefit_stock SET available = available - 1 WHERE benefit_id = 'voucher'")
        )


def test_a_budget_refusal_leaves_nothing_half_written(catalogue) -> None:
    with unit_of_work() as session:
        ledger.set_budget(session, BudgetKey("camp"), count=10, money_fen=None, now=NOW)
        ledger.set_budget(session, BudgetKey("camp", rule="weekly"), count=1, money_fen=None, now=NOW)
    assert grant_one("k1", budgets=[BudgetKey("camp"), BudgetKey("camp", rule="weekly")]).issued
    r = grant_one("k2", budgets=[BudgetKey("camp"), BudgetKey("camp", rule="weekly")])
    assert (r.outcome, r.reason) == ("refused", "budget_exhausted:camp/rule:weekly")
    # the stock and the campaign budget taken before the rule's refused are given back by the savepoint
    assert counts() == (2, 1, 1)
    with unit_of_work() as session:
        assert session.get(Budget, "camp").count_used == 1  # type: ignore[union-attr]


def test_count_and_money_budgets_are_exact(catalogue) -> None:
    with unit_of_work() as session:
        ledger.set_budget(session, BudgetKey("camp", branch="B001"), count=None, money_fen=5500, now=NOW)
    branch = [BudgetKey("camp", branch="B001")]
    gift = {"benefit": "gift", "budgets": branch}
    # 26 + 26 = 52.00 fits 55.00; a third 26.00 does not, a 3.00 one does: 55.00 exactly
    assert (
        grant_one("a", face_value_fen=2600, **gift).issued
        and grant_one("b", face_value_fen=2600, **gift).issued
    )
    assert grant_one("c", face_value_fen=2600, **gift).reason == "budget_exhausted:camp/branch:B001"
    assert grant_one("d", face_value_fen=300, **gift).issued
    assert grant_one("e", face_value_fen=1, **gift).reason == "budget_exhausted:camp/branch:B001"
    with unit_of_work() as session:
        b = session.get(Budget, "camp/branch:B001")
        assert b is not None and (b.money_used_fen, b.money_left_fen, b.count_used) == (5500, 0, 3)
        # a limit cannot go below what is used; raising it gives room again
        with pytest.raises(Conflict, match="cannot go below"):
            ledger.set_budget(session, BudgetKey("camp", branch="B001"), count=None, money_fen=5000, now=NOW)
        ledger.set_budget(session, BudgetKey("camp", branch="B001"), count=4, money_fen=8100, now=NOW)
    assert grant_one("f", face_value_fen=2600, **gift).issued  # 81.00 of 81.00, 4 of 4 items
    assert grant_one("g", face_value_fen=0, **gift).reason == "budget_exhausted:camp/branch:B001"  # count


def test_a_budget_not_defined_does_not_limit_and_is_not_charged(catalogue) -> None:
    r = grant_one("k1", budgets=[BudgetKey("other")])
    assert r.issued and r.budgets == ()
    with pytest.raises(ValueError, match="per campaign and rule, or per campaign and branch"):
        BudgetKey("camp", rule="r", branch="b")


def test_caps_count_per_customer_and_period(catalogue) -> None:
    cap = CapKey("camp:weekly:month", "2026-03", 2)
    assert grant_one("k1", benefit="gift", caps=[cap]).issued
    assert grant_one("k2", benefit="gift", caps=[cap]).issued
    assert grant_one("k3", benefit="gift", caps=[cap]).reason == "cap:camp:weekly:month:2026-03"
    assert grant_one("k4", benefit="gift", caps=[cap], customer="C000002").issued  # another customer
    assert grant_one("k5", benefit="gift", caps=[CapKey("camp:weekly:month", "2026-04", 2)]).issued
    with unit_of_work() as session:
        assert ledger.take_cap(session, scope="s", customer_id="C1", period="p", limit=1)
        assert not ledger.take_cap(session, scope="s", customer_id="C1", period="p", limit=1)
        left = session.execute(select(CapCounter.cap_left).where(CapCounter.scope == "s")).scalar_one()
        assert left == 0


def test_an_inactive_benefit_or_a_suspended_supplier_is_refused(catalogue) -> None:
    with unit_of_work() as session:
        suppliers.set_status(session, "acme", "suspended", reason="score D", actor="t", now=NOW)
    assert grant_one("k1").reason == "supplier_suspended"
    assert grant_one("k2", benefit="discount").issued  # the bank's own benefit has no supplier
    with unit_of_work() as session:
        suppliers.set_status(session, "acme", "active", reason="rectified", actor="t", now=NOW)
        from omnibank.benefits import catalogue

        catalogue.set_benefit_status(session, "voucher", "inactive", actor="t", now=NOW)
    assert grant_one("k3").reason == "benefit_inactive"
    assert counts() == (3, 1, 1)
    with pytest.raises(NotFound, match="no benefit 'nothing'"):
        grant_one("k4", benefit="nothing")


def test_a_points_benefit_credits_the_points_once(catalogue) -> None:
    r = grant_one("camp:bonus:C000001", benefit="bonus")
    assert r.coupon is not None and r.coupon.status == "redeemed"
    assert grant_one("camp:bonus:C000001", benefit="bonus").outcome == "duplicate"
    with unit_of_work() as session:
        assert ledger.balance(session, "C000001") == 1000
        history = [e.to_status for e in ledger.coupon_history(session, r.coupon.id)]
        assert history == ["granted", "redeemed"]


def test_naive_times_and_bad_keys_are_refused(catalogue) -> None:
    with unit_of_work() as session, pytest.raises(AppError, match="naive"):
        give(session, "k", at=datetime(2026, 3, 1, 10, 0))  # noqa: DTZ001 - the point of the test
    with unit_of_work() as session, pytest.raises(AppError, match="key"):
        give(session, "")
