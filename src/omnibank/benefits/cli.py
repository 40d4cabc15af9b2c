"""`omnibank benefits|suppliers|coupons|points|budgets …`: the catalogue, stock, suppliers and the ledgers."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Literal

import typer
from rich.markup import escape

from omnibank.audit.service import cli_actor
from omnibank.benefits import catalogue, granting, ledger, loading, stock, suppliers, views
from omnibank.benefits.ledger import BudgetKey
from omnibank.benefits.models import COUPON_STATUSES, Budget, Supplier
from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.ingest.cli import EncodingOpt
from omnibank.kit import validate as v
from omnibank.kit.clock import local_today, system_clock
from omnibank.kit.console import out, progress_enabled
from omnibank.kit.dates import check_date
from omnibank.kit.loading import LoadRun, encoding_name
from omnibank.kit.money import MoneyError, format_cny, from_fen, parse_cny, to_fen
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows

benefits_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS
suppliers_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS
coupons_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS
points_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS
budgets_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

EXIT_REJECTS = 3


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
    catalogue = loading.read_catalogue(path)
    settings = get_settings()
    with unit_of_work(settings) as session:
        result = loading.store_catalogue(session, catalogue, tz=settings.tz, now=system_clock())
    out.print(
        f"stored {len(result.benefits)} benefits and {result.suppliers} suppliers; "
        f"received {result.lots_received} new lots ({result.units_received:,} items)"
    )


_BENEFIT_COLUMNS = (
    Col("id", "benefit"),
    Col("type"),
    Col("name"),
    Col("face", "face value", data=False),
    Col("face_value", table=False),
    Col("face_value_by_tier", table=False),
    Col("points", table=False),
    Col("cost", show=str),
    Col("discount_rate", "rate"),
    Col("supplier", data=False),
    Col("supplier_id", table=False),
    Col("supplier_status", table=False),
    Col("available", empty="unlimited"),
    Col("validity", data=False),
    Col("valid_days", table=False),
    Col("claim_days", table=False),
    Col("status"),
)


@benefits_app.command("list")
def benefits_list(fmt: OutputFormat = FormatOpt) -> None:
    """The catalogue: type, face value (by tier), cost, supplier, stock, validity, status."""
    with unit_of_work() as session:
        rows = views.catalogue_view(session)
    listed: list[dict[str, object]] = []
    for b in rows:
        by_tier = " ".join(f"{t}:{fv}" for t, fv in sorted(b.face_value_by_tier.items()))
        face = f"{b.face_value} {by_tier}" if by_tier else f"{b.face_value}"
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
        listed.append({
            "id": b.id, "type": b.type, "name": b.name, "face": face, "face_value": b.face_value,
            "face_value_by_tier": by_tier or None, "points": b.points, "cost": b.cost,
            "discount_rate": b.discount_rate.normalize() if b.discount_rate is not None else None,
            "supplier": supplier, "supplier_id": b.supplier_id, "supplier_status": b.supplier_status,
            "available": b.available, "validity": validity, "valid_days": b.valid_days,
            "claim_days": b.claim_days, "status": b.status,
        })  # fmt: skip
    empty = "no benefits yet (omnibank benefits load examples/benefits/catalogue.yaml)"
    if print_rows(_BENEFIT_COLUMNS, listed, fmt, empty=empty):
        note(fmt, f"{len(rows)} benefits")


@benefits_app.command("show")
def benefits_show(benefit_id: str = typer.Argument(..., help="A benefit id, e.g. luckin_voucher.")) -> None:
    """One benefit with the usage instructions and redemption steps the customer is shown."""
    with unit_of_work() as session:
        b = catalogue.get_benefit(session, benefit_id)
    out.print(f"[bold]{escape(b.name)}[/bold] ({b.id}, {b.type}, {b.status})")
    out.print(
        f"face value {b.face_value} CNY"
        + "".join(f", {t} {v}" for t, v in sorted(b.face_value_by_tier.items()))
    )
    out.print(f"usage: {escape(b.usage_instructions) or '—'}")
    for i, step in enumerate(b.redemption_steps, 1):
        out.print(f"  {i}. {escape(step)}")


@benefits_app.command("stock")
def benefits_stock(fmt: OutputFormat = FormatOpt) -> None:
    """Stock of tracked benefits: received, granted, available, lots, average unit cost, stock-out days, and
    the warning (out_of_stock; below_share: under 10 % left; runs_out_soon: in 7 days at the last 7 days'
    grant rate)."""
    with unit_of_work() as session:
        lines = views.stock_view(session, now=system_clock())
    columns = (
        Col("benefit_id", "benefit"),
        Col("supplier_id", "supplier", empty="(bank)"),
        Col("received"),
        Col("granted"),
        Col("available"),
        Col("lots", show=str),
        Col("average_unit_cost", "avg unit cost", empty="—"),
        Col("stock_out_days", "stock-out days", show=str),
        Col("warning", empty=""),
    )
    print_rows(
        columns,
        (
            (s.benefit_id, s.supplier_id, s.received, s.granted, s.available, s.lots,
             from_fen(s.average_unit_cost_fen) if s.average_unit_cost_fen is not None else None,
             s.stock_out_days, s.warning_reason)
            for s in lines
        ),
        fmt,
    )  # fmt: skip


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
    at = system_clock()
    if received_on:
        try:
            day = check_date("--received-on", v.iso_date("--received-on", received_on))
            at = datetime.combine(day, time(0, 0), settings.tz)
        except v.FieldError as exc:
            raise AppError(str(exc)) from None
    with unit_of_work(settings) as session:
        new = stock.receive_lot(
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
        catalogue.set_benefit_status(session, benefit_id, status, actor=cli_actor(), now=system_clock())
    out.print(f"benefit {benefit_id} is {status}")


@benefits_app.command("activate")
def benefits_activate(benefit_id: str = typer.Argument(...)) -> None:
    """Let a benefit face customers (refused without usage instructions and redemption steps)."""
    _set_status(benefit_id, "active")


@benefits_app.command("deactivate")
def benefits_deactivate(benefit_id: str = typer.Argument(...)) -> None:
    """Stop granting a benefit (coupons granted before stay as they are)."""
    _set_status(benefit_id, "inactive")


@benefits_app.command("recommend")
def benefits_recommend(
    customer_id: str = typer.Argument(..., help="A customer id, e.g. C000001."),
    n: int = typer.Option(5, "-n", min=1, help="How many benefits."),
    campaign: str = typer.Option(
        None, "--campaign", help="Leave out what this campaign's budget cannot pay for."
    ),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """The benefits to offer a customer, best first, with the reason (similar customers' redemptions,
    age band and spending); only what could be granted now. Reads only."""
    from omnibank.benefits.recommend import recommend

    settings = get_settings()
    budgets = [BudgetKey(campaign)] if campaign else []
    with unit_of_work(settings) as session:
        rows = recommend(session, settings, customer_id, n=n, budgets=budgets)
    columns = (
        Col("rank", show=str), Col("benefit_id", "benefit"), Col("name"), Col("score"),
        Col("source", table=False), Col("reason"),
    )  # fmt: skip
    print_rows(
        columns,
        ((i, r.benefit_id, r.name, r.score, r.source, r.reason) for i, r in enumerate(rows, 1)),
        fmt,
        empty=f"nothing to recommend to {customer_id}: no active benefit with stock left",
    )


# --------------------------------------------------------------------------------------------- suppliers


@suppliers_app.command("list")
def suppliers_list(fmt: OutputFormat = FormatOpt) -> None:
    """Suppliers and their states."""
    from sqlalchemy import select

    settings = get_settings()
    with unit_of_work(settings) as session:
        rows = list(session.scalars(select(Supplier).order_by(Supplier.id)))
    columns = (
        Col("id", "supplier"),
        Col("name"),
        Col("status"),
        Col("status_changed_at", "since", empty="—"),
        Col("status_reason", "reason"),
    )
    print_rows(
        columns, ((s.id, s.name, s.status, s.status_changed_at, s.status_reason) for s in rows), fmt,
        tz=settings.tz,
    )  # fmt: skip


@suppliers_app.command("sync")
def suppliers_sync(
    path: Path = typer.Argument(..., help="CSV: supplier_id,benefit_id,available."),
    fmt: OutputFormat = FormatOpt,
    encoding: str = EncodingOpt,
) -> None:
    """Compare a supplier's stock counts with ours; print and write the discrepancy report."""
    settings = get_settings()
    encoding = encoding_name(encoding)
    with LoadRun(settings.loads_dir, "supplier-sync", path) as run, unit_of_work(settings) as session:
        result = suppliers.sync_stock(
            session, path, run=run, now=system_clock(), progress=progress_enabled(), encoding=encoding
        )
    report = run.finish()
    columns = (
        Col("supplier_id", "supplier"),
        Col("benefit_id", "benefit"),
        Col("ours"),
        Col("theirs", empty="—"),
        Col("difference", empty="—", show=lambda d: f"{d:+,}"),
        Col("outcome"),
    )
    print_rows(
        columns,
        ((x.supplier_id, x.benefit_id, x.ours, x.theirs, x.difference, x.outcome) for x in result.lines),
        fmt,
    )
    line = (
        f"compared {len(result.lines)}, discrepancies {len(result.discrepancies)}, rejected {report.rejected}"
    )
    line += f" (report: {result.report_path}"
    line += f"; rejects: {report.rejects_path})" if report.rejects_path else ")"
    note(fmt, line)
    if report.rejected:
        raise typer.Exit(EXIT_REJECTS)


@suppliers_app.command("results")
def suppliers_results(
    path: Path = typer.Argument(..., help="CSV: coupon_id,result,reason (ok or failed)."),
    encoding: str = EncodingOpt,
) -> None:
    """Load a supplier's issue results (they count in the scorecard)."""
    settings = get_settings()
    encoding = encoding_name(encoding)
    with LoadRun(settings.loads_dir, "issue-results", path) as run, unit_of_work(settings) as session:
        suppliers.load_results(
            session, path, run=run, at=system_clock(), progress=progress_enabled(), encoding=encoding
        )
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
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Score suppliers on fulfilment, failed issues, stock-outs, sync discrepancies, complaints and late
    answers to tickets (A–D)."""
    settings = get_settings()
    try:
        until = check_date("--as-of", v.iso_date("--as-of", as_of)) if as_of else local_today(settings.tz)
    except v.FieldError as exc:
        raise AppError(str(exc)) from None
    from omnibank.service.suppliers import scorecard_tickets

    with unit_of_work(settings) as session:
        now = system_clock()
        tickets = scorecard_tickets(session, until=until, days=days, tz=settings.tz, now=now)
        lines = views.scorecard_view(session, until=until, days=days, tz=settings.tz, tickets=tickets)
        moved = suppliers.apply_scorecard(session, lines, actor=cli_actor(), now=now) if apply else []
    columns = (
        Col("supplier_id", "supplier"), Col("name"), Col("issued"), Col("failed"),
        Col("success", data=False), Col("success_rate", table=False),
        Col("stock_outs", "stock-outs", show=str), Col("discrepancies", show=str),
        Col("complaints", show=str), Col("late_answers", "late answers", show=str), Col("score", show=str),
        Col("grade"), Col("status"),
        Col("recommended", "calls for"),
    )  # fmt: skip
    print_rows(
        columns,
        (
            (ln.supplier_id, ln.name, ln.issued, ln.failed, f"{ln.success_rate * 100:.1f}%",
             ln.success_rate.quantize(Decimal("0.0001")), ln.stock_outs, ln.discrepancies,
             ln.complaints, ln.late_answers, ln.score, ln.grade, ln.status, ln.recommended)
            for ln in lines
        ),
        fmt,
        title=f"supplier scorecard, {days} days to {until}",
    )  # fmt: skip
    for ln in moved:
        note(fmt, f"{ln.supplier_id}: {ln.status} → {ln.recommended}")
    if apply and not moved:
        note(fmt, "no supplier changed state")


@suppliers_app.command("status")
def suppliers_status(
    supplier_id: str = typer.Argument(...),
    status: str = typer.Argument(..., help="active, warning, rectification or suspended."),
    reason: str = typer.Option(..., "--reason", help="Why (kept with the state and in the audit trail)."),
) -> None:
    """Put a supplier in a state by hand (e.g. lift a suspension after rectification); audited."""
    with unit_of_work() as session:
        changed = suppliers.set_status(
            session, supplier_id, status, reason=reason, actor=cli_actor(), now=system_clock()
        )
    out.print(f"supplier {supplier_id} is {status}" + ("" if changed else " (unchanged)"))


# ----------------------------------------------------------------------------------------------- coupons


@coupons_app.command("list")
def coupons_list(
    customer: str = typer.Option(None, "--customer", help="A customer id, e.g. C000123."),
    campaign: str = typer.Option(None, "--campaign"),
    status: str = typer.Option(None, "--status", help=", ".join(COUPON_STATUSES)),
    limit: int = typer.Option(200, "--limit", min=1),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Coupons, oldest first (bank-local times)."""
    if status and status not in COUPON_STATUSES:
        raise AppError(f"--status: {status!r} is not one of {', '.join(COUPON_STATUSES)}")
    if not (customer or campaign):
        raise AppError("give --customer or --campaign")
    settings = get_settings()
    with unit_of_work(settings) as session:
        rows = granting.list_coupons(
            session, customer_id=customer, campaign=campaign, status=status, limit=limit
        )
    columns = (
        Col("id", show=str), Col("customer_id", "customer"), Col("campaign", table=False),
        Col("rule", table=False), Col("campaign_rule", "campaign · rule", data=False),
        Col("benefit_id", "benefit"), Col("value", data=False), Col("face_value", table=False),
        Col("discount_rate", table=False), Col("stage", show=str), Col("status"),
        Col("granted_at", "granted", empty="—"), Col("claim_by", "claim by", empty="—"),
        Col("valid", data=False), Col("valid_from", table=False), Col("valid_to", table=False),
    )  # fmt: skip
    listed: list[dict[str, object]] = []
    for c in rows:
        value = format_cny(c.face_value_fen) if c.face_value_fen else ""
        if c.discount_rate is not None:
            value = f"×{c.discount_rate.normalize()}"
        listed.append({
            "id": c.id, "customer_id": c.customer_id, "campaign": c.campaign, "rule": c.rule,
            "campaign_rule": f"{c.campaign} · {c.rule}", "benefit_id": c.benefit_id, "value": value,
            "face_value": from_fen(c.face_value_fen) if c.face_value_fen is not None else None,
            "discount_rate": c.discount_rate.normalize() if c.discount_rate is not None else None,
            "stage": c.stage, "status": c.status, "granted_at": c.granted_at, "claim_by": c.claim_by,
            "valid": f"{_local(c.valid_from)} – {_local(c.valid_to)}", "valid_from": c.valid_from,
            "valid_to": c.valid_to,
        })  # fmt: skip
    print_rows(columns, listed, fmt, tz=settings.tz)
    note(fmt, f"{len(rows)} coupons")


@coupons_app.command("show")
def coupons_show(coupon_id: int = typer.Argument(...), fmt: OutputFormat = FormatOpt) -> None:
    """A coupon and its history (with csv and json, the history's rows)."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        c = ledger.get_coupon(session, coupon_id)
        history = ledger.coupon_history(session, coupon_id)
    note(fmt, escape(f"coupon {c.id} · {c.benefit_id} for {c.customer_id} · {c.status} · key {c.grant_key}"))
    columns = (
        Col("at", empty="—"), Col("action"), Col("from_status", "from"), Col("to_status", "to"), Col("actor"),
        Col("detail"),
    )  # fmt: skip
    print_rows(
        columns,
        ((e.at, e.action, e.from_status, e.to_status, e.actor, e.detail) for e in history),
        fmt,
        tz=settings.tz,
    )


@coupons_app.command("claim")
def coupons_claim(coupon_id: int = typer.Argument(...)) -> None:
    """Claim a granted coupon for its customer (active at once once it has taken effect); audited."""
    with unit_of_work() as session:
        c = ledger.claim(session, coupon_id, now=system_clock(), actor=cli_actor())
    out.print(f"coupon {c.id} is {c.status}")


@coupons_app.command("redeem")
def coupons_redeem(coupon_id: int = typer.Argument(...)) -> None:
    """Redeem an active coupon (exactly once); audited."""
    with unit_of_work() as session:
        c = ledger.redeem(session, coupon_id, now=system_clock(), actor=cli_actor())
    out.print(f"coupon {c.id} is {c.status}")


@coupons_app.command("revoke")
def coupons_revoke(
    coupon_id: int = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the history and the audit trail)."),
) -> None:
    """Revoke a coupon not yet redeemed; audited."""
    with unit_of_work() as session:
        c = ledger.revoke(session, coupon_id, now=system_clock(), actor=cli_actor(), reason=reason)
    out.print(f"coupon {c.id} is {c.status}")


@coupons_app.command("sweep")
def coupons_sweep() -> None:
    """Activate claimed coupons that took effect; expire those past their claim window or validity."""
    with unit_of_work() as session:
        result = ledger.sweep(session, now=system_clock())
    out.print(f"activated {result.activated}, expired {result.expired}")


# ------------------------------------------------------------------------------------------------ points


@points_app.command("balance")
def points_balance(customer_id: str = typer.Argument(...), fmt: OutputFormat = FormatOpt) -> None:
    """A customer's points balance and latest postings (with csv and json, the postings' rows)."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        balance = ledger.balance(session, customer_id)
        rows = ledger.postings(session, customer_id)
    columns = (
        Col("id", "posting", show=str), Col("created_at", "at", empty="—"), Col("kind"),
        Col("direction", table=False), Col("amount", data=False), Col("points", table=False),
        Col("ref", "reference", data=False), Col("reference", table=False), Col("reverses_id", table=False),
    )  # fmt: skip
    listed: list[dict[str, object]] = []
    for p in rows:
        sign = "+" if p.direction == "credit" else "−"
        ref = p.reference + (f" (reverses {p.reverses_id})" if p.reverses_id else "")
        listed.append({
            "id": p.id, "created_at": p.created_at, "kind": p.kind, "direction": p.direction,
            "amount": f"{sign}{p.amount:,}", "points": p.amount if p.direction == "credit" else -p.amount,
            "ref": ref, "reference": p.reference, "reverses_id": p.reverses_id,
        })  # fmt: skip
    if rows or fmt is not OutputFormat.table:
        print_rows(columns, listed, fmt, tz=settings.tz)
    note(fmt, f"{customer_id}: {balance:,} points")


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
        r = ledger.reverse(session, posting_id=posting_id, now=system_clock(), reason=reason)
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
            now=system_clock(),
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
def budgets_list(campaign: str = typer.Option(None, "--campaign"), fmt: OutputFormat = FormatOpt) -> None:
    """Budgets with what is used and left."""
    with unit_of_work() as session:
        listed = [vars(b) for b in views.budgets_view(session, campaign=campaign)]
    columns = (
        Col("id", "budget"), Col("scope"), Col("campaign", table=False), Col("rule", table=False),
        Col("branch_id", table=False), Col("count_limit", table=False), Col("count_used", "items used"),
        Col("count_left", "items left", empty="—"), Col("money_limit", table=False),
        Col("money_used", "face value used"), Col("money_left", "face value left", empty="—"),
    )  # fmt: skip
    print_rows(columns, listed, fmt)
