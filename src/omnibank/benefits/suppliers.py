"""Suppliers (供应商): stock sync with a discrepancy report, issue results, and the scorecard.

**Sync.** A supplier's file ``supplier_id,benefit_id,available`` is compared with our available stock;
every benefit gets a line (``match``, ``differs``, or ``missing_from_file`` for a tracked benefit of a
supplier in the file that the file does not list). The report is printed and written as
``discrepancies.csv`` beside ``report.json`` in the sync's folder under ``<home>/loads/``; rows that cannot
be used go to ``rejects.csv``. A sync reports; it changes no stock (lots do).

**Scorecard.** Over a window of bank-local days (90 by default) each supplier scores from 100 down:

* fulfilment: ``50 × (1 − success rate)`` (issue results ``ok`` over all; no results counts as 100 %);
* failed issues: 2 each, at most 20;
* stock-outs: 5 per benefit-day that refused grants for want of stock, at most 20;
* sync discrepancies: 3 per line that differs or is missing, at most 15;
* complaints: 5 each, at most 20 (service-desk complaints about the supplier's benefits opened in the window);
* late answers: 2 each, at most 10 (tickets sent to the supplier whose answer was due in the window and came
  late, or has not come).

The ticket figures come from the service desk, which sits above benefits: the caller counts them
(:func:`omnibank.service.suppliers.scorecard_tickets`) and passes them in as ``tickets``; without them they
count 0.

Grade A ≥ 90, B ≥ 75, C ≥ 60, else D; the state a grade calls for is active, warning, rectification,
suspended. ``--apply`` moves a supplier to that state when it is worse than its current one; lifting a
state is a person's decision (``omnibank suppliers status ID active --reason …``), audited either way.
A suspended supplier's benefits are refused at grant (``supplier_suspended``).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.benefits.models import (
    SUPPLIER_STATUSES,
    Benefit,
    BenefitStock,
    Coupon,
    StockOut,
    Supplier,
    SupplierFulfilment,
    SupplierSync,
    SupplierSyncLine,
)
from omnibank.errors import AppError, NotFound
from omnibank.kit.loading import LoadRun, csv_source
from omnibank.kit.masking import mask_free_text

SYNC_COLUMNS = ["supplier_id", "benefit_id", "available"]
RESULT_COLUMNS = ["coupon_id", "result", "reason"]
_SEVERITY = {s: i for i, s in enumerate(SUPPLIER_STATUSES)}
_STATE_FOR_GRADE = {"A": "active", "B": "warning", "C": "rectification", "D": "suspended"}


def _supplier(session: Session, supplier_id: str) -> Supplier:
    supplier = session.get(Supplier, supplier_id)
    if supplier is None:
        raise NotFound(f"no supplier {supplier_id!r} (suppliers come from the catalogue file)")
    return supplier


# ------------------------------------------------------------------------------------------------- sync


@dataclass(frozen=True)
class SyncLine:
    supplier_id: str
    benefit_id: str
    ours: int
    theirs: int | None
    outcome: str

    @property
    def difference(self) -> int | None:
        return None if self.theirs is None else self.theirs - self.ours


@dataclass(frozen=True)
class SyncResult:
    sync_id: int
    lines: list[SyncLine]
    rejected: int
    report_path: Path
    rejects_path: str | None

    @property
    def discrepancies(self) -> list[SyncLine]:
        return [ln for ln in self.lines if ln.outcome != "match"]


def sync_stock(
    session: Session,
    path: Path,
    *,
    run: LoadRun,
    now: datetime,
    progress: bool = True,
    encoding: str = "utf-8",
) -> SyncResult:
    """Compare a supplier's stock file with our available stock; record the sync and write the report."""
    benefits = {b.id: b for b in session.scalars(select(Benefit))}
    suppliers = set(session.scalars(select(Supplier.id)))
    available = dict(session.execute(select(BenefitStock.benefit_id, BenefitStock.available)).all())
    theirs: dict[str, tuple[str, int, int]] = {}  # benefit → (supplier, count, line)
    with csv_source(
        path, required=SYNC_COLUMNS, description="supplier stock", progress=progress, encoding=encoding
    ) as records:
        for rec in records:
            if rec.error or rec.values is None:
                run.reject(rec.line, rec.error or "unreadable", mask_free_text(rec.raw))
                continue
            row = rec.values
            sid, bid, count = row["supplier_id"], row["benefit_id"], row["available"]
            reason = None
            if sid not in suppliers:
                reason = f"supplier_id: unknown supplier {sid!r}" if sid else "supplier_id: missing"
            elif bid not in benefits:
                reason = f"benefit_id: unknown benefit {bid!r}" if bid else "benefit_id: missing"
            elif benefits[bid].supplier_id != sid:
                reason = f"benefit_id: {bid} is not supplied by {sid}"
            elif not benefits[bid].stock_tracked:
                reason = f"benefit_id: {bid} has unlimited stock; nothing to compare"
            elif not count.isdigit() or len(count) > 15:
                reason = "available: must be a whole number >= 0"
            elif bid in theirs:
                reason = f"benefit_id: {bid} appears again (first on line {theirs[bid][2]})"
            if reason:
                run.reject(rec.line, reason, rec.raw)
                continue
            theirs[bid] = (sid, int(count), rec.line)
    in_file = {sid for sid, _, _ in theirs.values()}
    lines: list[SyncLine] = []
    for bid, b in sorted(benefits.items()):
        if b.supplier_id not in in_file or not b.stock_tracked:
            continue
        ours = int(available.get(bid, 0))
        if bid in theirs:
            counted = theirs[bid][1]
            outcome = "match" if counted == ours else "differs"
            lines.append(SyncLine(b.supplier_id, bid, ours, counted, outcome))
        else:
            lines.append(SyncLine(b.supplier_id, bid, ours, None, "missing_from_file"))
    lines.sort(key=lambda ln: (ln.supplier_id, ln.benefit_id))
    sync = SupplierSync(synced_at=now, source=str(path), report_dir=str(run.dir))
    session.add(sync)
    session.flush()
    for ln in lines:
        session.add(
            SupplierSyncLine(
                sync_id=sync.id,
                benefit_id=ln.benefit_id,
                supplier_id=ln.supplier_id,
                ours=ln.ours,
                theirs=ln.theirs,
                outcome=ln.outcome,
            )
        )
    session.flush()
    report = run.dir / "discrepancies.csv"
    with report.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["supplier_id", "benefit_id", "ours", "theirs", "difference", "outcome"])
        for ln in lines:
            writer.writerow(
                [
                    ln.supplier_id,
                    ln.benefit_id,
                    ln.ours,
                    "" if ln.theirs is None else ln.theirs,
                    "" if ln.difference is None else ln.difference,
                    ln.outcome,
                ]
            )
    run.report.loaded = len(theirs)
    run.report.extra.update(
        sync_id=sync.id,
        discrepancies=sum(1 for ln in lines if ln.outcome != "match"),
        discrepancies_path=str(report),
    )
    return SyncResult(sync.id, lines, run.report.rejected, report, run.report.rejects_path)


# ---------------------------------------------------------------------------------------- issue results


def record_fulfilment(session: Session, *, coupon_id: int, ok: bool, reason: str, at: datetime) -> None:
    """Record a supplier's result of issuing a coupon (append-only; a retry is a new result)."""
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise NotFound(f"no coupon {coupon_id}")
    benefit = session.get(Benefit, coupon.benefit_id)
    if benefit is None or benefit.supplier_id is None:
        raise AppError(f"coupon {coupon_id} is for {coupon.benefit_id}, which no supplier issues")
    session.add(
        SupplierFulfilment(supplier_id=benefit.supplier_id, coupon_id=coupon_id, ok=ok, reason=reason, at=at)
    )
    session.flush()


def load_results(
    session: Session,
    path: Path,
    *,
    run: LoadRun,
    at: datetime,
    progress: bool = True,
    encoding: str = "utf-8",
) -> int:
    """Load a supplier's issue results ``coupon_id,result,reason`` (result ``ok`` or ``failed``)."""
    loaded = 0
    with csv_source(
        path, required=RESULT_COLUMNS, description="issue results", progress=progress, encoding=encoding
    ) as records:
        for rec in records:
            if rec.error or rec.values is None:
                run.reject(rec.line, rec.error or "unreadable", mask_free_text(rec.raw))
                continue
            row = rec.values
            reason = None
            cid = int(row["coupon_id"]) if row["coupon_id"].isdigit() and len(row["coupon_id"]) < 19 else None
            found = (
                session.execute(
                    select(Benefit.supplier_id)
                    .join(Coupon, Coupon.benefit_id == Benefit.id)
                    .where(Coupon.id == cid)
                ).first()
                if cid is not None
                else None
            )
            if found is None:
                reason = f"coupon_id: unknown coupon {row['coupon_id']!r}"
            elif found[0] is None:
                reason = f"coupon_id: coupon {cid} is not issued by a supplier"
            elif row["result"] not in ("ok", "failed"):
                reason = "result: must be ok or failed"
            elif row["result"] == "failed" and not row["reason"]:
                reason = "reason: missing (say why the issue failed)"
            if reason or cid is None:
                run.reject(rec.line, reason or "coupon_id: missing", mask_free_text(rec.raw))
                continue
            record_fulfilment(session, coupon_id=cid, ok=row["result"] == "ok", reason=row["reason"], at=at)
            loaded += 1
    run.report.loaded = loaded
    return loaded


# -------------------------------------------------------------------------------------------- scorecard


@dataclass(frozen=True)
class ScoreLine:
    supplier_id: str
    name: str
    issued: int
    failed: int
    success_rate: Decimal  # 0..1
    stock_outs: int
    discrepancies: int
    complaints: int
    late_answers: int
    score: int
    grade: str
    status: str  # now
    recommended: str  # the state the grade calls for


def grade_for(score: int) -> str:
    return "A" if score >= 90 else "B" if score >= 75 else "C" if score >= 60 else "D"


def score_for(
    *, issued: int, failed: int, stock_outs: int, discrepancies: int, complaints: int, late_answers: int = 0
) -> tuple[int, Decimal]:
    rate = Decimal(issued - failed) / Decimal(issued) if issued else Decimal(1)
    penalty = (
        (Decimal(50) * (1 - rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        + min(20, 2 * failed)
        + min(20, 5 * stock_outs)
        + min(15, 3 * discrepancies)
        + min(20, 5 * complaints)
        + min(10, 2 * late_answers)
    )
    return max(0, 100 - int(penalty)), rate


def scorecard_window(*, until: date, days: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The scorecard's window: from the start of bank-local day ``until - days + 1`` to the end of
    ``until`` (exclusive)."""
    if days < 1:
        raise AppError("the scorecard window is at least one day")
    first = until - timedelta(days=days - 1)
    return datetime.combine(first, time(0, 0), tz), datetime.combine(
        until + timedelta(days=1), time(0, 0), tz
    )


def scorecard(
    session: Session,
    *,
    until: date,
    days: int,
    tz: ZoneInfo,
    tickets: Mapping[str, tuple[int, int]] | None = None,
) -> list[ScoreLine]:
    """Score every supplier over the bank-local days ``until - days + 1`` … ``until``; ``tickets``:
    supplier → (complaints, late answers) in that window, counted by the service desk."""
    start, end = scorecard_window(until=until, days=days, tz=tz)
    first = start.date()
    issued: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for sid, ok, n in session.execute(
        select(SupplierFulfilment.supplier_id, SupplierFulfilment.ok, func.count())
        .where(SupplierFulfilment.at >= start, SupplierFulfilment.at < end)
        .group_by(SupplierFulfilment.supplier_id, SupplierFulfilment.ok)
    ):
        issued[sid] += int(n)
        if not ok:
            failed[sid] += int(n)
    outs = Counter(
        dict(
            session.execute(
                select(StockOut.supplier_id, func.count())
                .where(StockOut.day >= first, StockOut.day <= until, StockOut.supplier_id.is_not(None))
                .group_by(StockOut.supplier_id)
            ).all()
        )
    )
    discrepancies = Counter(
        dict(
            session.execute(
                select(SupplierSyncLine.supplier_id, func.count())
                .join(SupplierSync, SupplierSync.id == SupplierSyncLine.sync_id)
                .where(
                    SupplierSync.synced_at >= start,
                    SupplierSync.synced_at < end,
                    SupplierSyncLine.outcome != "match",
                )
                .group_by(SupplierSyncLine.supplier_id)
            ).all()
        )
    )
    lines = []
    for s in session.scalars(select(Supplier).order_by(Supplier.id)):
        complaints, late_answers = (tickets or {}).get(s.id, (0, 0))
        score, rate = score_for(
            issued=issued[s.id],
            failed=failed[s.id],
            stock_outs=int(outs[s.id]),
            discrepancies=int(discrepancies[s.id]),
            complaints=complaints,
            late_answers=late_answers,
        )
        grade = grade_for(score)
        lines.append(
            ScoreLine(
                supplier_id=s.id,
                name=s.name,
                issued=issued[s.id],
                failed=failed[s.id],
                success_rate=rate,
                stock_outs=int(outs[s.id]),
                discrepancies=int(discrepancies[s.id]),
                complaints=complaints,
                late_answers=late_answers,
                score=score,
                grade=grade,
                status=s.status,
                recommended=_STATE_FOR_GRADE[grade],
            )
        )
    return lines


def set_status(
    session: Session, supplier_id: str, status: str, *, reason: str, actor: str, now: datetime
) -> bool:
    """Put a supplier in a state (active, warning, rectification, suspended); audited. False: it was there."""
    if status not in SUPPLIER_STATUSES:
        raise AppError(f"status: {status!r} is not one of {', '.join(SUPPLIER_STATUSES)}")
    if not reason.strip():
        raise AppError("a supplier's state changes with a reason")
    supplier = _supplier(session, supplier_id)
    if supplier.status == status:
        return False
    before = supplier.status
    supplier.status = status
    supplier.status_reason = reason
    supplier.status_changed_at = now
    supplier.updated_at = now
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="supplier.status",
        subject_type="supplier",
        subject_id=supplier_id,
        detail={"from": before, "to": status, "reason": reason},
    )
    return True


def apply_scorecard(
    session: Session, lines: list[ScoreLine], *, actor: str, now: datetime
) -> list[ScoreLine]:
    """Escalate each supplier whose grade calls for a worse state than its own; returns those moved."""
    moved = []
    for ln in lines:
        if _SEVERITY[ln.recommended] > _SEVERITY[ln.status]:
            set_status(
                session,
                ln.supplier_id,
                ln.recommended,
                reason=f"scorecard: score {ln.score}, grade {ln.grade}",
                actor=actor,
                now=now,
            )
            moved.append(ln)
    return moved
