"""`omnibank benefits|suppliers|coupons|points|budgets …`: the catalogue, stock, suppliers and the ledgers."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Literal

import typer
from rich.markup import escape
from rich.table import Table

from omnibank.audit.service import cli_actor
from omnibank.benefits import ledger, service, suppliers
from omnibank.benefits.ledger import BudgetKey
from omnibank.benefits.models import COUPON_STATUSES, Budget, Supplier
from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.kit import validate as v
from omnibank.kit.clock import local_today
from omnibank.kit.console import out, progress_enabled
from omnibank.kit.loading import LoadRun
from omnibank.kit.money import MoneyError, format_cny, parse_cny, to_fen

benefits_app = typer.Typer(
    help="Benefits (权益): the catalogue from YAML, stock lots, what customers are shown.",
    no_args_is_help=True,
)
suppliers_app = typer.Typer(help="Suppliers: stock sync, issue results, the scorecard.", no_args_is_help=True)
coupons_app = typer.Typer(
    help="The coupon ledger: list, claim, redeem, revoke (audited).", no_args_is_help=True
)
points_app = typer.Typer(help="The points ledger: balances and their verification.", no_args_is_help=True)
budgets_app = typer.Typer(
    help="Budgets per campaign, rule or branch (items and face value).", no_args_is_help=True
)

EXIT_REJECTS = 3


def _now() -> datetime:
    return datetime.now(UTC)


def _local(moment: datetime | None) -> str:
    return moment.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M") if moment else "—"


def _money(text: str, option: str) -> Decimal:
    try:
        return parse_cny(text)
    except MoneyError as exc:
        raise AppError(f"{option}: {exc}") from None


# ---------------------------------------------------------------------------------------------- benefits


@benefits_app.command("load")
def benefits_load(
    path: Path = typer.Argument(..., help="A catalogue YAML file (suppliers, benefits)."),
) -> None:
    """Check and store the catalogue (nothing is stored if anything is wrong); lots are received once."""
    catalogue = service.read_catalogue(path)
    settings = get_settings()
    with unit_of_work(settings) as session:
        result = service.store_catalogue(session, catalogue, tz=settings.tz, now=_now())
    out.print(
        f"stored {len(result.benefits)} benefits and {result.suppliers} suppliers; "
        f"received {result.lots_received} new lots ({result.units_received:,} items)"
    )


@benefits_app.command("list")
def benefits_list() -> None:
    """The catalogue: type, face value (by tier), cost, supplier, stock, validity, status."""
    with unit_of_work() as session:
        rows = service.list_benefits(session)
    if not rows:
        out.print("no benefits yet (omnibank benefits load examples/benefits/catalogue.yaml)")
        return
    table = Table(
        "benefit", "type", "name", "face value", "cost", "rate", "supplier", "available", "validity", "status"
    )
    for b in rows:
        face = f"{b.face_value}" + "".join(f" {t}:{fv}" for t, fv in sorted(b.face_value_by_tier.items()))
        if b.points:
            face = f"{b.points:,} points"
        validity = " ".join(
            x
            for x in (
                f"valid {b.valid_days}d" if b.valid_days else "",
                f"claim {b.claim_days}d" if b.claim_days is not None else "",
            )
            if x
        )
        supplier = b.supplier_id or "(bank)"
        if b.supplier_status and b.supplier_status != "active":
            supplier += f" ({b.supplier_status})"
        table.add_row(
            b.id,
            b.type,
            escape(b.name),
            face,
            str(b.cost),
            str(b.discount_rate.normalize()) if b.discount_rate is not None else "",
            supplier,
            "unlimited" if b.available is None else f"{b.available:,}",
            validity,
            b.status,
        )
    out.print(table)
    out.print(f"{len(rows)} benefits")


@benefits_app.command("show")
def benefits_show(benefit_id: str = typer.Argument(..., help="A benefit id, e.g. luckin_voucher.")) -> None:
    """One benefit with the usage instructions and redemption steps the customer is shown."""
    with unit_of_work() as session:
        b = service.get_benefit(session, benefit_id)
    out.print(f"[bold]{escape(b.name)}[/bold] ({b.id}, {b.type}, {b.status})")
    out.print(
        f"face value {b.face_value} CNY"
        + "".join(f", {t} {v}" for t, v in sorted(b.face_value_by_tier.items()))
    )
    out.print(f"usage: {escape(b.usage_instructions) or '—'}")
    for i, step in enumerate(b.redemption_steps, 1):
        out.print(f"  {i}. {escape(step)}")


@benefits_app.command("stock")
def benefits_stock() -> None:
    """Stock of tracked benefits: received, granted, available, lots, average unit cost, stock-out days."""
    with unit_of_work() as session:
        lines = service.stock_report(session)
    table = Table(
        "benefit", "supplier", "received", "granted", "available", "lots", "avg unit cost", "stock-out days"
    )
    for s in lines:
        table.add_row(
            s.benefit_id,
            s.supplier_id or "(bank)",
            f"{s.received:,}",
            f"{s.granted:,}",
            f"{s.available:,}",
            str(s.lots),
            format_cny(s.average_unit_cost_fen) if s.average_unit_cost_fen is not None else "—",
            str(s.stock_out_days),
        )
    out.print(table)


@benefits_app.command("receive")
def benefits_receive(
    benefit_id: str = typer.Argument(..., help="The benefit received."),
    quantity: int = typer.Option(..., "--quantity", min=1, help="Items received."),
    unit_cost: str = typer.Option(..., "--unit-cost", help="CNY per item, e.g. 17.50."),
    ref: str = typer.Option(
        ..., "--ref", help="Delivery or order number (receiving it again changes nothing)."
    ),
    received_on: str = typer.Option(None, "--received-on", help="YYYY-MM-DD (bank-local); default today."),
) -> None:
    """Receive a lot: its quantity becomes available for grants."""
    settings = get_settings()
    at = _now()
    if received_on:
        try:
            at = datetime.combine(v.iso_date("--received-on", received_on), time(0, 0), settings.tz)
        except v.FieldError as exc:
            raise AppError(str(exc)) from None
    with unit_of_work(settings) as session:
        new = service.receive_lot(
            session,
            benefit_id=benefit_id,
            ref=ref,
            quantity=quantity,
            unit_cost=_money(unit_cost, "--unit-cost"),
            received_at=at,
            tz=settings.tz,
        )
    out.print(
        f"received lot {ref}: {quantity:,} of {benefit_id}"
        if new
        else f"lot {ref} was received before; nothing changed"
    )


def _set_status(benefit_id: str, status: Literal["active", "inactive"]) -> None:
    with unit_of_work() as session:
        service.set_benefit_status(session, benefit_id, status, actor=cli_actor(), now=_now())
    out.print(f"benefit {benefit_id} is {status}")


@benefits_app.command("activate")
def benefits_activate(benefit_id: str = typer.Argument(...)) -> None:
    """Let a benefit face customers (refused without usage instructions and redemption steps)."""
    _set_status(benefit_id, "active")


@benefits_app.command("deactivate")
def benefits_deactivate(benefit_id: str = typer.Argument(...)) -> None:
    """Stop granting a benefit (coupons granted before stay as they are)."""
    _set_status(benefit_id, "inactive")


# --------------------------------------------------------------------------------------------- suppliers


@suppliers_app.command("list")
def suppliers_list() -> None:
    """Suppliers and their states."""
    from sqlalchemy import select

    with unit_of_work() as session:
        rows = list(session.scalars(select(Supplier).order_by(Supplier.id)))
    table = Table("supplier", "name", "status", "since", "reason")
    for s in rows:
        table.add_row(s.id, escape(s.name), s.status, _local(s.status_changed_at), escape(s.status_reason))
    out.print(table)


@suppliers_app.command("sync")
def suppliers_sync(path: Path = typer.Argument(..., help="CSV: supplier_id,benefit_id,available.")) -> None:
    """Compare a supplier's stock counts with ours; print and write the discrepancy report."""
    settings = get_settings()
    with LoadRun(settings.loads_dir, "supplier-sync", path) as run, unit_of_work(settings) as session:
        result = suppliers.sync_stock(session, path, run=run, now=_now(), progress=progress_enabled())
    report = run.finish()
    table = Table("supplier", "benefit", "ours", "theirs", "difference", "outcome")
    for ln in result.lines:
        table.add_row(
            ln.supplier_id,
            ln.benefit_id,
            f"{ln.ours:,}",
            "—" if ln.theirs is None else f"{ln.theirs:,}",
            "—" if ln.difference is None else f"{ln.difference:+,}",
            ln.outcome,
        )
    out.print(table)
    line = (
        f"compared {len(result.lines)}, discrepancies {len(result.discrepancies)}, rejected {report.rejected}"
    )
    line += f" (report: {result.report_path}"
    line += f"; rejects: {report.rejects_path})" if report.rejects_path else ")"
    out.print(line)
    if report.rejected:
        raise typer.Exit(EXIT_REJECTS)


@suppliers_app.command("results")
def suppliers_results(
    path: Path = typer.Argument(..., help="CSV: coupon_id,result,reason (ok or failed)."),
) -> None:
    """Load a supplier's issue results (they count in the scorecard)."""
    settings = get_settings()
    with LoadRun(settings.loads_dir, "issue-results", path) as run, unit_of_work(settings) as session:
        suppliers.load_results(session, path, run=run, at=_now(), progress=progress_enabled())
    report = run.finish()
    out.print(report.summary_line())
    if report.rejected:
        raise typer.Exit(EXIT_REJECTS)


@suppliers_app.command("scorecard")
def suppliers_scorecard(
    days: int = typer.Option(
        90, "--days", min=1, help="The window: this many bank-local days up to --as-of."
    ),
    as_of: str = typer.Option(None, "--as-of", help="Last day of the window (YYYY-MM-DD); default today."),
    apply: bool = typer.Option(
        False, "--apply", help="Escalate suppliers to the state their grade calls for."
    ),
) -> None:
    """Score suppliers on fulfilment, failed issues, stock-outs, sync discrepancies and complaints (A–D)."""
    settings = get_settings()
    try:
        until = v.iso_date("--as-of", as_of) if as_of else local_today(settings.tz)
    except v.FieldError as exc:
        raise AppError(str(exc)) from None
    with unit_of_work(settings) as session:
        lines = suppliers.scorecard(session, until=until, days=days, tz=settings.tz)
        moved = suppliers.apply_scorecard(session, lines, actor=cli_actor(), now=_now()) if apply else []
    table = Table(
        "supplier", "name", "issued", "failed", "success", "stock-outs", "discrepancies", "complaints",
        "score", "grade", "status", "calls for",
        title=f"supplier scorecard, {days} days to {until}", title_justify="left",
    )  # fmt: skip
    for ln in lines:
        table.add_row(
            ln.supplier_id,
            escape(ln.name),
            f"{ln.issued:,}",
            f"{ln.failed:,}",
            f"{ln.success_rate * 100:.1f}%",
            str(ln.stock_outs),
            str(ln.discrepancies),
            str(ln.complaints),
            str(ln.score),
            ln.grade,
            ln.status,
            ln.recommended,
        )
    out.print(table)
    for ln in moved:
        out.print(f"{ln.supplier_id}: {ln.status} → {ln.recommended}")
    if apply and not moved:
        out.print("no supplier changed state")


@suppliers_app.command("status")
def suppliers_status(
    supplier_id: str = typer.Argument(...),
    status: str = typer.Argument(..., help="active, warning, rectification or suspended."),
    reason: str = typer.Option(..., "--reason", help="Why (kept with the state and in the audit trail)."),
) -> None:
    """Put a supplier in a state by hand (e.g. lift a suspension after rectification); audited."""
    with unit_of_work() as session:
        changed = suppliers.set_status(
            session, supplier_id, status, reason=reason, actor=cli_actor(), now=_now()
        )
    out.print(f"supplier {supplier_id} is {status}" + ("" if changed else " (unchanged)"))


# ----------------------------------------------------------------------------------------------- coupons


@coupons_app.command("list")
def coupons_list(
    customer: str = typer.Option(None, "--customer", help="A customer id, e.g. C000123."),
    campaign: str = typer.Option(None, "--campaign"),
    status: str = typer.Option(None, "--status", help=", ".join(COUPON_STATUSES)),
    limit: int = typer.Option(200, "--limit", min=1),
) -> None:
    """Coupons, oldest first (bank-local times)."""
    if status and status not in COUPON_STATUSES:
        raise AppError(f"--status: {status!r} is not one of {', '.join(COUPON_STATUSES)}")
    if not (customer or campaign):
        raise AppError("give --customer or --campaign")
    with unit_of_work() as session:
        rows = service.list_coupons(
            session, customer_id=customer, campaign=campaign, status=status, limit=limit
        )
    table = Table("id", "customer", "campaign · rule", "benefit", "value", "stage", "status", "granted",
                  "claim by", "valid")  # fmt: skip
    for c in rows:
        value = format_cny(c.face_value_fen) if c.face_value_fen else ""
        if c.discount_rate is not None:
            value = f"×{c.discount_rate.normalize()}"
        table.add_row(
            str(c.id),
            c.customer_id,
            f"{c.campaign} · {c.rule}",
            c.benefit_id,
            value,
            str(c.stage) if c.stage is not None else "",
            c.status,
            _local(c.granted_at),
            _local(c.claim_by),
            f"{_local(c.valid_from)} – {_local(c.valid_to)}",
        )
    out.print(table)
    out.print(f"{len(rows)} coupons")


@coupons_app.command("show")
def coupons_show(coupon_id: int = typer.Argument(...)) -> None:
    """A coupon and its history."""
    with unit_of_work() as session:
        c = ledger.get_coupon(session, coupon_id)
        history = ledger.coupon_history(session, coupon_id)
    out.print(f"coupon {c.id} · {c.benefit_id} for {c.customer_id} · {c.status} · key {c.grant_key}")
    table = Table("at", "action", "from", "to", "actor", "detail")
    for e in history:
        table.add_row(
            _local(e.at), e.action, e.from_status or "", e.to_status, escape(e.actor), escape(e.detail)
        )
    out.print(table)


@coupons_app.command("claim")
def coupons_claim(coupon_id: int = typer.Argument(...)) -> None:
    """Claim a granted coupon for its customer (active at once once it has taken effect); audited."""
    with unit_of_work() as session:
        c = ledger.claim(session, coupon_id, now=_now(), actor=cli_actor())
    out.print(f"coupon {c.id} is {c.status}")


@coupons_app.command("redeem")
def coupons_redeem(coupon_id: int = typer.Argument(...)) -> None:
    """Redeem an active coupon (exactly once); audited."""
    with unit_of_work() as session:
        c = ledger.redeem(session, coupon_id, now=_now(), actor=cli_actor())
    out.print(f"coupon {c.id} is {c.status}")


@coupons_app.command("revoke")
def coupons_revoke(
    coupon_id: int = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the history and the audit trail)."),
) -> None:
    """Revoke a coupon not yet redeemed; audited."""
    with unit_of_work() as session:
        c = ledger.revoke(session, coupon_id, now=_now(), actor=cli_actor(), reason=reason)
    out.print(f"coupon {c.id} is {c.status}")


@coupons_app.command("sweep")
def coupons_sweep() -> None:
    """Activate claimed coupons that took effect; expire those past their claim window or validity."""
    with unit_of_work() as session:
        result = ledger.sweep(session, now=_now())
    out.print(f"activated {result.activated}, expired {result.expired}")


# ------------------------------------------------------------------------------------------------ points


@points_app.command("balance")
def points_balance(customer_id: str = typer.Argument(...)) -> None:
    """A customer's points balance and latest postings."""
    with unit_of_work() as session:
        balance = ledger.balance(session, customer_id)
        rows = ledger.postings(session, customer_id)
    table = Table("posting", "at", "kind", "amount", "reference")
    for p in rows:
        sign = "+" if p.direction == "credit" else "−"
        ref = p.reference + (f" (reverses {p.reverses_id})" if p.reverses_id else "")
        table.add_row(str(p.id), _local(p.created_at), p.kind, f"{sign}{p.amount:,}", escape(ref))
    if rows:
        out.print(table)
    out.print(f"{customer_id}: {balance:,} points")


@points_app.command("verify")
def points_verify() -> None:
    """Recompute every balance from the postings; exit 1 if any differs."""
    with unit_of_work() as session:
        checked, differences = ledger.verify_points(session)
    for d in differences:
        recorded = "no balance row" if d.recorded is None else f"balance {d.recorded:,}"
        out.print(f"{d.customer_id}: {recorded}, postings sum to {d.computed:,}")
    if differences:
        out.print(f"{len(differences)} of {checked} balances differ from their postings")
        raise typer.Exit(1)
    out.print(f"all {checked} balances equal the sum of their postings")


@points_app.command("reverse")
def points_reverse(
    posting_id: int = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="Why (the reversal's reference)."),
) -> None:
    """Correct a posting by posting its opposite (the original stays); audited."""
    from omnibank.audit import service as audit

    with unit_of_work() as session:
        r = ledger.reverse(session, posting_id=posting_id, now=_now(), reason=reason)
        if not r.duplicate:
            audit.record(
                session,
                actor=cli_actor(),
                action="points.reverse",
                subject_type="points_posting",
                subject_id=str(posting_id),
                detail={"customer_id": r.customer_id, "reversal": r.posting_id, "reason": reason},
            )
        balance = ledger.balance(session, r.customer_id)
    state = "was reversed before" if r.duplicate else f"reversed by posting {r.posting_id}"
    out.print(f"posting {posting_id} {state}; {r.customer_id}: {balance:,} points")


# ----------------------------------------------------------------------------------------------- budgets


@budgets_app.command("set")
def budgets_set(
    campaign: str = typer.Option(..., "--campaign"),
    rule: str = typer.Option(None, "--rule", help="A budget of this rule of the campaign."),
    branch: str = typer.Option(None, "--branch", help="A budget of this branch in the campaign."),
    count: int = typer.Option(None, "--count", min=0, help="At most this many items."),
    money: str = typer.Option(None, "--money", help="At most this much face value (CNY)."),
) -> None:
    """Create a budget or change its limits (never below what is used)."""
    if rule and branch:
        raise AppError("give --rule or --branch, not both")
    money_fen = to_fen(_money(money, "--money")) if money is not None else None
    with unit_of_work() as session:
        b = ledger.set_budget(
            session,
            BudgetKey(campaign, rule or None, branch or None),
            count=count,
            money_fen=money_fen,
            now=_now(),
        )
        out.print(f"budget {b.id}: {_budget_text(b)}")


def _budget_text(b: Budget) -> str:
    parts = []
    if b.count_limit is not None:
        parts.append(f"{b.count_used:,} of {b.count_limit:,} items used")
    if b.money_limit_fen is not None:
        parts.append(f"{format_cny(b.money_used_fen)} of {format_cny(b.money_limit_fen)} CNY used")
    return ", ".join(parts)


@budgets_app.command("list")
def budgets_list(campaign: str = typer.Option(None, "--campaign")) -> None:
    """Budgets with what is used and left."""
    from sqlalchemy import select

    with unit_of_work() as session:
        stmt = select(Budget).order_by(Budget.id)
        if campaign:
            stmt = stmt.where(Budget.campaign == campaign)
        rows = list(session.scalars(stmt))
        table = Table("budget", "scope", "items used", "items left", "face value used", "face value left")
        for b in rows:
            table.add_row(
                b.id,
                b.scope,
                f"{b.count_used:,}",
                "—" if b.count_left is None else f"{b.count_left:,}",
                format_cny(b.money_used_fen),
                "—" if b.money_left_fen is None else format_cny(b.money_left_fen),
            )
    out.print(table)
