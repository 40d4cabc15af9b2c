"""The benefits read layer: the stock-out warning (nothing left; under 10 % of the received stock left; runs
out within 7 days at the last 7 days' grant rate) and the budgets view."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from omnibank.benefits import ledger, views
from omnibank.benefits.ledger import BudgetKey
from omnibank.benefits.stock import count_stock_out
from omnibank.db import unit_of_work
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank
from tests.benefits.helpers import NOW, grant_one, load, small_catalogue
from tests.conftest import Env


@pytest.mark.parametrize(
    ("available", "received", "recent", "expected"),
    [
        (0, 50, 0, ("out", "out_of_stock")),
        (4, 50, 0, ("low", "below_share")),  # 8 % left
        (5, 50, 0, None),  # exactly 10 % is not below it
        (20, 50, 20, ("low", "runs_out_soon")),  # 20 a week: 7 days left
        (21, 50, 20, None),  # 7.35 days left
        (30, 50, 0, None),  # no grants: no rate
        (0, 0, 0, ("out", "out_of_stock")),
    ],
)
def test_stock_warning_rule(
    available: int, received: int, recent: int, expected: tuple[str, str] | None
) -> None:
    found = views.stock_warning(available=available, received=received, granted_recently=recent)
    assert (found.level, found.reason) == expected if found else expected is None


def test_days_left_at_the_windows_rate() -> None:
    assert views.days_left(30, 14) == Decimal("15.0")
    assert views.days_left(10, 3) == Decimal("23.3")
    assert views.days_left(10, 0) is None


def test_stock_view_counts_the_last_seven_days_grants(env: Env, tmp_path: Path) -> None:
    load(small_catalogue(tmp_path, stock=12))
    for i in range(3):  # eight days ago: outside the window
        assert grant_one(f"old{i}", customer=f"C{i}", at=NOW - timedelta(days=8)).coupon is not None
    for i in range(2):
        assert grant_one(f"new{i}", customer=f"D{i}", at=NOW - timedelta(days=1)).coupon is not None
    with unit_of_work() as session:
        rows = {r.benefit_id: r for r in views.stock_view(session, now=NOW)}
        assert [r.benefit_id for r in views.stock_view(session, now=NOW, supplier_id="nobody")] == []
    voucher = rows["voucher"]
    assert (voucher.received, voucher.granted, voucher.available) == (12, 5, 7)
    assert voucher.granted_recently == 2 and voucher.days_left == Decimal("24.5")
    assert voucher.warning is None  # 7 of 12 left, 24.5 days at 2 a week
    assert rows["gift"].warning is None and set(rows) == {"voucher", "gift"}  # unlimited ones are not tracked

    for i in range(5):  # five more today: 7 in the window, 2 left → runs out within the week
        assert grant_one(f"now{i}", customer=f"E{i}").coupon is not None
    with unit_of_work() as session:
        voucher = next(r for r in views.stock_view(session, now=NOW) if r.benefit_id == "voucher")
        overview = views.overview(session, now=NOW)
    assert (voucher.available, voucher.granted_recently) == (2, 7)
    assert (voucher.warning, voucher.warning_reason) == ("low", "runs_out_soon")
    assert overview.benefits == 4 and overview.warnings == 1 and overview.stock_left == 2 + 100
    tracked = [r.benefit.id for r in overview.rows if r.stock is not None]
    assert tracked == ["gift", "voucher"]  # bonus and discount are unlimited


def test_budgets_view_shows_used_and_left(env: Env, tmp_path: Path) -> None:
    load(small_catalogue(tmp_path, stock=10))
    with unit_of_work() as session:
        ledger.set_budget(session, BudgetKey("camp", None, None), count=4, money_fen=10_000, now=NOW)
    grant_one("b1", budgets=[BudgetKey("camp", None, None)])
    with unit_of_work() as session:
        (line,) = views.budgets_view(session, campaign="camp")
        assert views.budgets_view(session, campaign="other") == []
    assert (line.count_limit, line.count_used, line.count_left) == (4, 1, 3)
    assert (line.money_limit, line.money_used, line.money_left) == (Decimal("100.00"), Decimal("26.00"),
                                                                    Decimal("74.00"))  # fmt: skip
    assert line.used_share == Decimal("0.26")


@pytest.fixture
def bank(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    """The API tests' small bank (voucher: 50 received)."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    built = build_bank(env.settings.model_copy(update={"api_login_per_minute": 1000}), tmp_path / "bank")
    with built.client:
        yield built


def test_the_api_serves_the_same_stock_warnings_and_scorecard(bank: Bank) -> None:
    with unit_of_work(bank.settings) as session:
        assert ledger.take_stock(session, "voucher", 46)
        count_stock_out(session, "voucher", NOW, bank.settings.tz)
        expected = views.scorecard_view(session, until=NOW.date(), days=90, tz=bank.settings.tz)
    stock = {s["benefit_id"]: s for s in bank.get("admin", "/api/v1/benefits/stock").json()}
    assert (stock["voucher"]["warning"], stock["voucher"]["warning_reason"]) == ("low", "below_share")
    assert stock["gift"]["warning"] is None
    r = bank.get("acme_user", "/api/v1/benefits/suppliers/scorecard", params={"days": 90})
    assert r.status_code == 200, r.text
    (line,) = r.json()
    assert (line["supplier_id"], line["score"], line["grade"]) == ("acme", 95, "A")
    assert line["score"] == expected[0].score and line["stock_outs"] == 1
    assert bank.get("auditor", "/api/v1/benefits/suppliers/scorecard").status_code == 403
