"""The demo year's books, through the ledgers' own services: the catalogue, stock lots and budgets, the
suppliers' stock syncs and issue results, customers' claims and redemptions of their coupons with the
sweep between them, and the co-brand card's points ledger. Decisions come from
:mod:`omnibank.demo.behaviour`; every moment from :class:`omnibank.demo.year.Calendar`."""

from __future__ import annotations

import heapq
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.demo import behaviour
from omnibank.demo.year import ACTOR, EXAMPLES, Calendar, Year
from omnibank.events.log import EventLog, sql_string

CATALOGUE = EXAMPLES / "benefits" / "catalogue.yaml"
POINTS_EACH = 1000  # what a co-brand voucher costs in points (the campaign's points_each)
REVERSED_SHARE = 0.03  # card statements corrected by reversal


def open_books(settings: Settings, cal: Calendar, customers: int) -> None:
    """On the year's first morning: the example catalogue stored (its lots received), its benefits
    activated, and the campaigns' budgets set, per campaign and per rule."""
    from omnibank.benefits import ledger, loading
    from omnibank.benefits.catalogue import set_benefit_status
    from omnibank.benefits.ledger import BudgetKey
    from omnibank.kit.money import to_fen

    catalogue = loading.read_catalogue(CATALOGUE)
    opening = cal.at(cal.first, 9)
    with unit_of_work(settings) as session:
        loading.store_catalogue(session, catalogue, tz=cal.tz, now=opening)
        for b in catalogue.benefits:
            set_benefit_status(session, b.id, "active", actor=ACTOR, now=opening)
        # sized to the bank: room for the year's grants, so the figures show what is used and left
        budgets = {
            BudgetKey("luckin2026"): (None, Decimal(max(customers * 30, 30_000))),
            BudgetKey("luckin2026", rule="weekly"): (max(customers // 2, 600), None),
            BudgetKey("red_friday_2026"): (None, Decimal(max(customers * 2, 1_500))),
            BudgetKey("video_9yuan_2026", rule="monthly_offer"): (max(customers * 3 // 4, 800), None),
        }
        for key, (count, money) in budgets.items():
            ledger.set_budget(
                session, key, count=count, money_fen=None if money is None else to_fen(money), now=opening
            )


class Operations:
    """The bank's routines at month starts (reorder supplier stock that would not last the month) and month
    ends (the suppliers' stock counts synced), run in time order as the year's events are applied."""

    def __init__(self, settings: Settings, cal: Calendar, seed: int, folder: Path, year: Year):
        self.settings, self.cal, self.seed, self.folder, self.year = settings, cal, seed, folder, year
        starts = [(cal.at(m, 8), "reorder", m) for m in cal.months()[1:]]
        ends = [(cal.at(min(month_end(m), cal.last), 20), "sync", m) for m in cal.months()]
        self.todo = sorted(starts + ends)
        self.granted: dict[str, int] = {}  # per benefit: granted at the last reorder

    def until(self, moment: datetime) -> None:
        while self.todo and self.todo[0][0] <= moment:
            at, what, month = self.todo.pop(0)
            with unit_of_work(self.settings) as session:
                if what == "reorder":
                    self._reorder(session, at, month)
                else:
                    self._sync(session, at, month)

    def _reorder(self, session: Session, at: datetime, month: date) -> None:
        from omnibank.benefits import stock
        from omnibank.benefits.models import Benefit, BenefitStock
        from omnibank.kit.money import from_fen

        final = month == self.cal.months()[-1]
        rows = session.execute(
            select(
                Benefit.id,
                Benefit.supplier_id,
                Benefit.cost_fen,
                BenefitStock.available,
                BenefitStock.granted,
            )
            .join(BenefitStock, BenefitStock.benefit_id == Benefit.id)
            .where(Benefit.supplier_id.is_not(None))
            .order_by(Benefit.id)
        ).all()
        for bid, supplier, cost, available, granted in rows:
            last_month = granted - self.granted.get(bid, 0)
            self.granted[bid] = granted
            need = -(-last_month * 13 // 10 // 100) * 100  # 130% of last month's grants, in hundreds
            if available >= need:
                continue
            quantity = need - available
            if final and supplier == "quanyi":
                quantity = int(quantity * behaviour.SHORT_DELIVERY) // 100 * 100
            if quantity > 0:
                stock.receive_lot(
                    session,
                    benefit_id=bid,
                    ref=f"DEMO-{bid}-{month:%Y%m}",
                    quantity=quantity,
                    unit_cost=from_fen(cost),
                    received_at=at,
                    tz=self.cal.tz,
                )
                self.year.lots += 1

    def _sync(self, session: Session, at: datetime, month: date) -> None:
        from omnibank.benefits import suppliers
        from omnibank.benefits.models import Benefit, BenefitStock
        from omnibank.kit.loading import LoadRun

        rows = session.execute(
            select(Benefit.supplier_id, Benefit.id, BenefitStock.available)
            .join(BenefitStock, BenefitStock.benefit_id == Benefit.id)
            .where(Benefit.supplier_id.is_not(None), Benefit.stock_tracked.is_(True))
            .order_by(Benefit.supplier_id, Benefit.id)
        ).all()
        self.folder.mkdir(parents=True, exist_ok=True)
        for supplier in sorted({r[0] for r in rows if r[0] is not None}):
            path = self.folder / f"stock-{supplier}-{at.date()}.csv"
            lines = ["supplier_id,benefit_id,available"]
            for sid, bid, ours in rows:
                if sid == supplier:
                    theirs = behaviour.supplier_count(
                        self.seed, supplier, bid, ours, month, off_from=self.cal.scorecard_from
                    )
                    lines.append(f"{supplier},{bid},{theirs}")
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            with LoadRun(self.settings.loads_dir, "supplier-sync", path) as run:
                suppliers.sync_stock(session, path, run=run, now=at, progress=False)
            run.finish()
            self.year.syncs += 1


def month_end(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def use_coupons(settings: Settings, cal: Calendar, seed: int, year: Year) -> None:
    """Customers' claims and redemptions, in time order, with the sweep between them."""
    from omnibank.benefits import ledger
    from omnibank.benefits.ledger import CouponRefused
    from omnibank.benefits.models import Benefit, Coupon

    with unit_of_work(settings) as session:
        rows = session.execute(
            select(
                Coupon.id,
                Coupon.grant_key,
                Coupon.customer_id,
                Coupon.rule,
                Coupon.benefit_id,
                Benefit.supplier_id,
                Coupon.granted_at,
                Coupon.claim_by,
                Coupon.valid_from,
                Coupon.valid_to,
            )
            .join(Benefit, Benefit.id == Coupon.benefit_id)
            .where(Coupon.status == "granted")
            .order_by(Coupon.id)
        ).all()
    owner = {r.id: r.customer_id for r in rows}
    moves = sorted(
        m
        for r in rows
        for m in behaviour.coupon_moves(
            seed,
            behaviour.CouponFacts(
                r.id,
                r.grant_key,
                r.rule,
                r.benefit_id,
                r.supplier_id,
                r.granted_at,
                r.claim_by,
                r.valid_from,
                r.valid_to,
            ),
            until=cal.end,
            tz=cal.tz,
        )
    )
    sweeps = sorted(
        {datetime.combine(d, behaviour.SWEEP_AT, cal.tz) for d in behaviour.sweep_days(cal.first, cal.last)}
        | {cal.end}
    )
    steps: list[tuple[datetime, int, behaviour.CouponMove | None]] = [(s, 0, None) for s in sweeps]
    steps += [(m.at, 1, m) for m in moves]
    steps.sort(key=lambda s: (s[0], s[1], s[2].coupon_id if s[2] else 0))
    for i in range(0, len(steps), 2000):
        with unit_of_work(settings) as session:
            for at, _, move in steps[i : i + 2000]:
                if move is None:
                    swept = ledger.sweep(session, now=at)
                    year.swept["activated"] += swept.activated
                    year.swept["expired"] += swept.expired
                    continue
                actor = f"customer:{owner[move.coupon_id]}"
                try:
                    if move.action == "claim":
                        ledger.claim(session, move.coupon_id, now=at, actor=actor, source="app")
                    else:
                        ledger.redeem(session, move.coupon_id, now=at, actor=actor, source="app")
                    year.moves[move.action] += 1
                except CouponRefused:
                    year.moves["refused"] += 1


def issue_results(settings: Settings, cal: Calendar, seed: int, folder: Path, year: Year) -> None:
    """Each supplier's monthly issue results (``suppliers results``) for the coupons of its benefits claimed
    that month, over the scorecard's days."""
    from omnibank.benefits import suppliers
    from omnibank.benefits.models import Benefit, Coupon, CouponEvent
    from omnibank.kit.loading import LoadRun

    since = cal.at(cal.scorecard_from)
    with unit_of_work(settings) as session:
        rows = session.execute(
            select(Benefit.supplier_id, Coupon.id, CouponEvent.at)
            .join(Coupon, Coupon.benefit_id == Benefit.id)
            .join(CouponEvent, CouponEvent.coupon_id == Coupon.id)
            .where(Benefit.supplier_id.is_not(None), CouponEvent.action == "claim", CouponEvent.at >= since)
            .order_by(Benefit.supplier_id, Coupon.id)
        ).all()
    files: dict[tuple[date, str], list[str]] = {}
    for supplier, coupon_id, at in rows:
        if supplier is None:
            continue
        month = at.astimezone(cal.tz).date().replace(day=1)
        failed = behaviour.issue_failed(seed, supplier, coupon_id)
        line = f"{coupon_id},failed,{failed}" if failed else f"{coupon_id},ok,"
        files.setdefault((month, supplier), []).append(line)
    folder.mkdir(parents=True, exist_ok=True)
    for (month, supplier), lines in sorted(files.items()):
        moment = cal.at(min(month_end(month), cal.last), 20)
        path = folder / f"results-{supplier}-{month:%Y-%m}.csv"
        path.write_text("coupon_id,result,reason\n" + "\n".join(lines) + "\n", encoding="utf-8")
        with LoadRun(settings.loads_dir, "issue-results", path) as run, unit_of_work(settings) as session:
            year.results += suppliers.load_results(session, path, run=run, at=moment, progress=False)
        run.finish()


# ----------------------------------------------------------------------------------------------------- points


def points_ledger(settings: Settings, cal: Calendar, seed: int, year: Year) -> None:
    """The co-brand card's points ledger: balances carried over at the launch, then the window's statements
    and exchanges, a few statements reversed."""
    from omnibank.benefits import ledger

    launch = cal.launched
    log = EventLog(settings)
    con = log.connect()
    try:
        scan = log.scan_sql()
        holders = (  # gold and platinum co-brand card holders who exchange points for vouchers
            f"SELECT customer_id FROM {scan} WHERE type = 'card.issued' AND product = "
            f"{sql_string('luckin_cobrand')} AND is_primary AND tier IN ('gold', 'platinum') "
            f"INTERSECT SELECT customer_id FROM {scan} WHERE type = 'points.redeem'"
        )
        opening = con.execute(
            f"SELECT customer_id, sum(CASE WHEN type = 'points.earned' THEN points ELSE "
            f"-{POINTS_EACH} * quantity END) FROM {scan} WHERE type IN ('points.earned', 'points.redeem') "
            f"AND ts < ? AND customer_id IN ({holders}) GROUP BY customer_id ORDER BY customer_id",
            [launch],
        ).fetchall()
        window = con.execute(
            f"SELECT event_id, type, customer_id, ts, coalesce(points, 0), coalesce(quantity, 0) FROM {scan} "
            "WHERE type IN ('points.earned', 'points.redeem') AND ts >= ? AND ts <= ? "
            f"AND customer_id IN ({holders}) ORDER BY ts, event_id",
            [launch, cal.end],
        ).fetchall()
    finally:
        con.close()
    reversals: list[tuple[datetime, int]] = []  # (when, the posting to reverse), in time order
    with unit_of_work(settings) as session:
        for cid, balance in opening:
            if balance > 0:
                ledger.earn(
                    session,
                    customer_id=cid,
                    amount=int(balance),
                    key=f"demo:opening:{cid}",
                    now=launch,
                    reference="联名卡积分余额迁移",
                )
                year.postings["earn"] += 1
        for event_id, kind, cid, ts, points, quantity in window:
            at = ts.astimezone(cal.tz)
            while reversals and reversals[0][0] <= at:
                _reverse(session, *heapq.heappop(reversals), year)
            if kind == "points.earned" and points > 0:
                p = ledger.earn(
                    session,
                    customer_id=cid,
                    amount=int(points),
                    key=f"event:{event_id}",
                    now=at,
                    reference="信用卡消费积分",
                )
                year.postings["earn"] += 1
                fix = at + timedelta(days=2)
                if behaviour.share(seed, "reverse", event_id) < REVERSED_SHARE and fix <= cal.end:
                    heapq.heappush(reversals, (fix, p.posting_id))
            elif kind == "points.redeem" and quantity > 0:
                try:
                    ledger.spend(
                        session,
                        customer_id=cid,
                        amount=POINTS_EACH * int(quantity),
                        key=f"event:{event_id}",
                        now=at,
                        reference="积分兑换瑞幸饮品券",
                    )
                    year.postings["redeem"] += 1
                except ledger.InsufficientPoints:
                    year.postings["refused"] += 1
        while reversals:
            _reverse(session, *heapq.heappop(reversals), year)


def _reverse(session: Session, at: datetime, posting_id: int, year: Year) -> None:
    """A statement corrected by its reversal, audited as ``omnibank points reverse`` does."""
    from omnibank.audit import service as audit
    from omnibank.benefits import ledger

    reason = "消费退货, 积分冲正"
    try:
        r = ledger.reverse(session, posting_id=posting_id, now=at, reason=reason)
    except ledger.InsufficientPoints:
        year.postings["refused"] += 1
        return
    audit.record(
        session,
        actor=ACTOR,
        action="points.reverse",
        subject_type="points_posting",
        subject_id=str(posting_id),
        detail={"customer_id": r.customer_id, "reversal": r.posting_id, "reason": reason},
        at=at,
    )
    year.postings["reverse"] += 1
