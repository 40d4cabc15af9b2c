"""The read layer of benefits: the catalogue, the stock with stock-out warnings, the supplier scorecard and
the budgets, as the CLI, the API and the console show them (one function per view).

**Stock-out warning.** A tracked benefit is flagged when

* ``out``: nothing is left (``available == 0``);
* ``low``: less than :data:`LOW_SHARE` (10 %) of what was received is left, or, at the rate of the last
  :data:`RATE_DAYS` (7) days' grants, it runs out within :data:`RUNWAY_DAYS` (7) days
  (``available / (granted in the window / RATE_DAYS) <= RUNWAY_DAYS``).

Unlimited benefits are never flagged. The rate counts the coupons granted in the window (one aggregate
over the coupon ledger); the catalogue holds no personal data, so nothing here is scoped by organisation: a
supplier's user sees its own benefits only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.benefits import catalogue, stock, suppliers
from omnibank.benefits.models import Budget, Coupon
from omnibank.benefits.schemas import BenefitRead
from omnibank.benefits.stock import StockLine
from omnibank.benefits.suppliers import ScoreLine
from omnibank.kit.money import from_fen

LOW_SHARE = Decimal("0.10")  # of the received stock
RATE_DAYS = 7  # the window of the grant rate
RUNWAY_DAYS = 7  # flag a benefit that runs out within this many days at that rate

Warning = Literal["out", "low"]
WarningReason = Literal["out_of_stock", "below_share", "runs_out_soon"]


@dataclass(frozen=True)
class StockWarning:
    level: Warning
    reason: WarningReason


def stock_warning(*, available: int, received: int, granted_recently: int) -> StockWarning | None:
    """The warning of a tracked benefit (see the module's text), or None."""
    if available <= 0:
        return StockWarning("out", "out_of_stock")
    if received > 0 and Decimal(available) < LOW_SHARE * received:
        return StockWarning("low", "below_share")
    if granted_recently > 0 and available * RATE_DAYS <= granted_recently * RUNWAY_DAYS:
        return StockWarning("low", "runs_out_soon")
    return None


def days_left(available: int, granted_recently: int) -> Decimal | None:
    """Days of stock left at the window's grant rate (one decimal), None without grants in the window."""
    if granted_recently <= 0:
        return None
    return (Decimal(available) * RATE_DAYS / granted_recently).quantize(Decimal("0.1"), ROUND_HALF_UP)


@dataclass(frozen=True)
class StockRow(StockLine):
    """A stock line with the window's grants, the days left at that rate and the warning."""

    granted_recently: int
    days_left: Decimal | None
    warning: Warning | None
    warning_reason: WarningReason | None

    @property
    def used_share(self) -> Decimal:
        return Decimal(self.granted) / self.received if self.received else Decimal(0)


def catalogue_view(session: Session, *, supplier_id: str | None = None) -> list[BenefitRead]:
    """The catalogue (``supplier_id``: that supplier's benefits only)."""
    rows = catalogue.list_benefits(session)
    return [b for b in rows if b.supplier_id == supplier_id] if supplier_id else rows


def stock_view(session: Session, *, now: datetime, supplier_id: str | None = None) -> list[StockRow]:
    """The tracked benefits' stock with their warnings (``supplier_id``: its benefits only)."""
    since = now - timedelta(days=RATE_DAYS)
    recent = {
        bid: int(n)
        for bid, n in session.execute(
            select(Coupon.benefit_id, func.count())
            .where(Coupon.granted_at >= since, Coupon.granted_at <= now)
            .group_by(Coupon.benefit_id)
        )
    }
    rows = []
    for line in stock.stock_report(session):
        if supplier_id and line.supplier_id != supplier_id:
            continue
        n = recent.get(line.benefit_id, 0)
        warning = stock_warning(available=line.available, received=line.received, granted_recently=n)
        rows.append(
            StockRow(
                **vars(line), granted_recently=n, days_left=days_left(line.available, n),
                warning=warning.level if warning else None,
                warning_reason=warning.reason if warning else None,
            )
        )  # fmt: skip
    return rows


@dataclass(frozen=True)
class CatalogueRow:
    benefit: BenefitRead
    stock: StockRow | None  # None: unlimited


@dataclass(frozen=True)
class Overview:
    rows: list[CatalogueRow]

    @property
    def benefits(self) -> int:
        return len(self.rows)

    @property
    def stock_left(self) -> int:
        return sum(r.stock.available for r in self.rows if r.stock)

    @property
    def warnings(self) -> int:
        return sum(1 for r in self.rows if r.stock and r.stock.warning)


def overview(session: Session, *, now: datetime, supplier_id: str | None = None) -> Overview:
    """The catalogue with each tracked benefit's stock and warning (the console's benefits page)."""
    lines = {s.benefit_id: s for s in stock_view(session, now=now, supplier_id=supplier_id)}
    return Overview([
        CatalogueRow(b, lines.get(b.id) if b.stock_tracked else None)
        for b in catalogue_view(session, supplier_id=supplier_id)
    ])  # fmt: skip


def scorecard_view(
    session: Session,
    *,
    until: date,
    days: int,
    tz: ZoneInfo,
    supplier_id: str | None = None,
    tickets: Mapping[str, tuple[int, int]] | None = None,
) -> list[ScoreLine]:
    """The supplier scorecard over the ``days`` bank-local days to ``until`` (``supplier_id``: its line);
    ``tickets``: supplier → (complaints, late answers), from
    :func:`omnibank.service.suppliers.scorecard_tickets` (the service desk sits above benefits)."""
    lines = suppliers.scorecard(session, until=until, days=days, tz=tz, tickets=tickets)
    return [ln for ln in lines if ln.supplier_id == supplier_id] if supplier_id else lines


@dataclass(frozen=True)
class BudgetLine:
    id: str
    scope: str
    campaign: str
    rule: str | None
    branch_id: str | None
    count_limit: int | None
    count_used: int
    count_left: int | None
    money_limit: Decimal | None
    money_used: Decimal
    money_left: Decimal | None

    @property
    def used_share(self) -> Decimal | None:
        """The larger share used of the limits set (0..1), None without limits."""
        shares = []
        if self.count_limit:
            shares.append(Decimal(self.count_used) / self.count_limit)
        if self.money_limit:
            shares.append(self.money_used / self.money_limit)
        return max(shares) if shares else None


def _money(fen: int | None) -> Decimal | None:
    return None if fen is None else from_fen(fen)


def budgets_view(session: Session, *, campaign: str | None = None) -> list[BudgetLine]:
    """Budgets with what is used and left (``campaign``: of that campaign)."""
    stmt = select(Budget).order_by(Budget.id)
    if campaign:
        stmt = stmt.where(Budget.campaign == campaign)
    return [
        BudgetLine(
            id=b.id, scope=b.scope, campaign=b.campaign, rule=b.rule, branch_id=b.branch_id,
            count_limit=b.count_limit, count_used=b.count_used, count_left=b.count_left,
            money_limit=_money(b.money_limit_fen), money_used=from_fen(b.money_used_fen),
            money_left=_money(b.money_left_fen),
        )
        for b in session.scalars(stmt)
    ]  # fmt: skip
