"""`omnibank leads …`: what a member of staff has to follow up (masked), status changes, manual leads,
escalation of overdue leads, and emitting lead events a crash left behind."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

import typer
from rich import box
from rich.markup import escape
from rich.text import Text

from omnibank.audit.service import cli_actor
from omnibank.config import Settings, get_settings
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.events.emit import Emitted
from omnibank.kit.clock import system_clock
from omnibank.kit.console import err, out
from omnibank.leads import service, views
from omnibank.leads.models import LEAD_STATUSES
from omnibank.leads.repository import Viewer
from omnibank.leads.service import Event, LeadRead, LeadRequest
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows
from omnibank.security import get_cipher

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

_DURATION = re.compile(r"(\d+)\s*([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
MOVES = ("contacted", "won", "lost")
_WIDE = 160


def parse_duration(text: str, option: str) -> timedelta:
    """``2d``, ``4h``, ``30m`` or combinations (``1d12h``) as a positive duration."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or not parts or _DURATION.sub("", compact).strip():
        raise AppError(f"{option}: {text!r} is not a duration; write e.g. 2d, 4h, 30m or 1d12h")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    if total <= timedelta(0):
        raise AppError(f"{option}: {text!r} must be longer than zero")
    if total > timedelta(days=366):
        raise AppError(f"{option}: {text!r} is more than a year")
    return total


def _local(settings: Settings, moment: datetime | None) -> str:
    return moment.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M") if moment else "—"


def _emit(settings: Settings, events: list[Event]) -> None:
    """Emit after the commit; a failure leaves the events pending (``omnibank leads emit``)."""
    if not events:
        return
    try:
        result: Emitted = service.emit_events(settings, events)
    except (AppError, OSError) as exc:
        message = exc.message if isinstance(exc, AppError) else str(exc)
        err.print(
            f"[yellow]warning:[/yellow] events not emitted yet ({escape(message)}); run: omnibank leads emit"
        )
        return
    if result.rejected:
        reasons = "; ".join(r.reason for r in result.rejects[:3])
        err.print(
            f"[yellow]warning:[/yellow] {result.rejected} events rejected by the event log: {escape(reasons)}"
        )


def _flags(lead: LeadRead, now: datetime) -> str:
    flags = []
    if lead.overdue(now):
        flags.append("[red]overdue[/red]")
    if lead.escalated_to:
        flags.append(f"escalated→{lead.escalated_to}")
    return " ".join(flags)


@app.command("list")
def list_cmd(
    staff: str = typer.Option(..., "--staff", help="The staff id whose leads to show, e.g. E00001."),
    status: str = typer.Option(None, "--status", help="Only this status: new, contacted, won or lost."),
    overdue: bool = typer.Option(False, "--overdue", help="Only leads still new past their due time."),
    limit: int = typer.Option(200, "--limit", min=1, max=10_000, help="Rows to show."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """What a member of staff follows up: their own leads, the queue of their unit (a team member serves the
    sub-branch above the team) and, for a branch manager, the leads escalated to them. Names and phones
    masked; the view is audited."""
    if status is not None and status not in LEAD_STATUSES:
        raise AppError(f"--status: {status!r} is not a lead status; use {', '.join(LEAD_STATUSES)}")
    settings = get_settings()
    now = system_clock()
    with unit_of_work(settings) as session:
        found = views.lead_page(session, get_cipher(settings), Viewer(staff_id=staff), now=now,
                                actor=cli_actor(), audit_detail={"staff_id": staff}, status=status,
                                overdue=overdue, limit=limit)  # fmt: skip
    columns = (
        Col("lead_id", "lead"), Col("customer_id", "customer"), Col("name"), Col("phone"),
        Col("product_id", "product"), Col("source"), Col("status"), Col("due_at", "due", empty="—"),
        Col("owner", data=False), Col("owner_staff_id", table=False), Col("org_id", table=False),
        Col("flags", "", data=False), Col("overdue", table=False), Col("escalated_to", table=False),
    )  # fmt: skip
    rows = []
    for item in found.items:
        lead = item.lead
        rows.append((
            lead.lead_id, lead.customer_id, item.name, item.phone, lead.product_id, lead.source, lead.status,
            lead.due_at, lead.owner_staff_id or f"(queue {lead.org_id})", lead.owner_staff_id, lead.org_id,
            Text.from_markup(_flags(lead, now)), lead.overdue(now), lead.escalated_to,
        ))  # fmt: skip
    nothing = f"no leads for {staff}" + (f" with status {status}" if status else "") + (
        " overdue" if overdue else "")  # fmt: skip
    # a row per lead, unsqueezed: a narrow terminal wraps the lines rather than cutting ids short
    if print_rows(columns, rows, fmt, empty=nothing, tz=settings.tz, box=box.SIMPLE_HEAD, min_width=_WIDE):
        note(fmt, f"{len(found.items)} leads")


@app.command("show")
def show_cmd(
    lead_id: str = typer.Argument(..., help="A lead id (from omnibank leads list)."),
    staff: str = typer.Option(..., "--staff", help="Who is looking (must see the lead)."),
) -> None:
    """One lead and its history (the customer masked)."""
    settings = get_settings()
    now = system_clock()
    with unit_of_work(settings) as session:
        detail = views.lead_detail(session, get_cipher(settings), Viewer(staff_id=staff), lead_id, now=now,
                                   actor=cli_actor(), audit_detail={"staff_id": staff})  # fmt: skip
    lead, m, rows = detail.item.lead, detail.item, detail.history
    out.print(f"[bold]{lead.lead_id}[/bold] {lead.status} {_flags(lead, now)}")
    out.print(f"customer {lead.customer_id} {escape(m.name)} {m.phone}")
    owner = lead.owner_staff_id or "(queue)"
    out.print(f"owner {owner}, queue {lead.org_id}, due {_local(settings, lead.due_at)}")
    out.print(f"source {escape(lead.source)}, product {lead.product_id or '—'}")
    if lead.note:
        out.print(f"note: {escape(lead.note)}")
    for h in rows:
        change = (
            f"{h.from_status} → {h.to_status}" if h.from_status not in (None, h.to_status) else h.to_status
        )
        extra = f" ({escape(h.note)})" if h.note else ""
        who = f"{h.by}" + (f" / {h.staff_id}" if h.staff_id else "")
        out.print(f"  {_local(settings, h.at)}  {h.action:<10} {change:<22} {escape(who)}{extra}")


@app.command("set")
def set_cmd(
    lead_id: str = typer.Argument(..., help="A lead id (from omnibank leads list)."),
    status: str = typer.Argument(..., help="contacted, won or lost."),
    staff: str = typer.Option(..., "--staff", help="Who followed up (a staff id; must see the lead)."),
    note: str = typer.Option(None, "--note", help="What happened (no personal data; digit runs are masked)."),
) -> None:
    """Record the follow-up of a lead: new → contacted → won or lost (new → won / lost directly too). A
    closed lead cannot change. A queue lead becomes the staff member's. Audited; the event is emitted."""
    if status not in MOVES:
        raise AppError(f"status: {status!r} is not a move; use contacted, won or lost")
    settings = get_settings()
    now = system_clock()
    with unit_of_work(settings) as session:
        before, change = views.set_status(
            session,
            Viewer(staff_id=staff),
            lead_id,
            status,
            by=cli_actor(),
            staff_id=staff,
            now=now,
            note=note,
        )
    _emit(settings, change.events)
    out.print(f"lead {lead_id}: {before.status} → {change.lead.status} (by {staff})")


@app.command("add")
def add_cmd(
    customer: str = typer.Option(..., "--customer", help="The customer number, e.g. C000001."),
    due_in: str = typer.Option("2d", "--due-in", help="When contact is due: 2d, 4h, 30m, 1d12h …"),
    product: str = typer.Option(None, "--product", help="The product the lead is about, e.g. fund_a."),
    note: str = typer.Option(None, "--note", help="Context for the RM (no personal data; digits masked)."),
    key: str = typer.Option(None, "--key", help="A dedupe key: adding the same key again changes nothing."),
) -> None:
    """Add a lead by hand: it goes to the customer's RM, else to the queue of the customer's branch."""
    settings = get_settings()
    now = system_clock()
    wanted = LeadRequest(
        key=key or f"manual:{secrets.token_hex(8)}", customer_id=customer, source="manual",
        product_id=product, note=note, due_in=parse_duration(due_in, "--due-in"),
    )  # fmt: skip
    with unit_of_work(settings) as session:
        created = service.create_leads(session, [wanted], now=now, actor=cli_actor())
    _emit(settings, created.events)
    lead = created[0]
    owner = lead.owner_staff_id or f"the queue of {lead.org_id}"
    verb = "added" if created.new else "exists already:"
    due = _local(settings, lead.due_at)
    out.print(f"{verb} lead {lead.lead_id} for {lead.customer_id} → {owner}, due {due}")


@app.command("escalate")
def escalate_cmd() -> None:
    """Hand every lead still new past its due time to the nearest branch manager (once each)."""
    settings = get_settings()
    now = system_clock()
    with unit_of_work(settings) as session:
        result = service.escalate_overdue(session, now=now, actor=cli_actor())
    _emit(settings, result.events)
    per_manager: dict[str, int] = {}
    for lead in result.escalated:
        per_manager[lead.escalated_to or ""] = per_manager.get(lead.escalated_to or "", 0) + 1
    for manager, n in sorted(per_manager.items()):
        out.print(f"  {manager}: {n} leads")
    if result.unassigned:
        orgs = sorted({x.org_id for x in result.unassigned})
        err.print(
            f"[yellow]warning:[/yellow] {len(result.unassigned)} overdue leads have no branch manager at "
            f"their org or above ({', '.join(orgs[:10])}); they escalate once one is loaded"
        )
    out.print(f"escalated {len(result.escalated)} leads")


@app.command("emit")
def emit_cmd() -> None:
    """Emit lead events that were not emitted after their change committed (e.g. after a crash)."""
    result = service.emit_pending(get_settings())
    out.print(f"emitted {result.loaded} lead events ({result.duplicates} already in the log)")
    if result.rejected:
        raise AppError(f"{result.rejected} lead events were rejected by the event log")
