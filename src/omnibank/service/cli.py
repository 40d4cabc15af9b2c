"""`omnibank calendar …`: the bank's business calendar day by day, and due times on it (the calendar and its
arithmetic are :mod:`omnibank.service.calendar`); `omnibank tickets …`: the service desk's tickets (the rules
are :mod:`omnibank.service.tickets`, the reading :mod:`omnibank.service.views`). This module parses options
and prints."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.errors import AppError, InputRefused
from omnibank.kit.clock import system_clock
from omnibank.kit.console import err, out, progress_enabled
from omnibank.kit.dates import parse_date, parse_moment
from omnibank.kit.loading import LoadRun
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows
from omnibank.security import get_cipher
from omnibank.service.calendar import KIND_LABELS, BusinessCalendar, bank_calendar

calendar_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

_WEEKDAYS_CN = ("一", "二", "三", "四", "五", "六", "日")
_MAX_DAYS = 3 * 366


def _warn_provisional(calendar: BusinessCalendar, years: set[int]) -> None:
    for year in sorted(years & set(calendar.provisional_years)):
        err.print(
            f"[yellow]warning:[/yellow] the holiday data for {year} in {escape(calendar.source or '')} is "
            "marked provisional: confirm it against the State Council's notice"
        )


@calendar_app.command("days")
def days_cmd(
    since: str = typer.Option(..., "--from", help="First day (YYYY-MM-DD)."),
    until: str = typer.Option(..., "--to", help="Last day (YYYY-MM-DD), at most 3 years after --from."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Each day's kind (working, weekend, holiday, adjusted working day 调休, closure), its name and the
    working hours, as the bank's calendar has them (OMNIBANK_HOLIDAYS_FILE over the chinese-calendar
    package)."""
    first, last = parse_date("--from", since), parse_date("--to", until)
    if last < first:
        raise InputRefused(f"--to ({last}) is before --from ({first})")
    if (last - first).days >= _MAX_DAYS:
        raise InputRefused(f"--from {first} --to {last}: at most {_MAX_DAYS} days at once")
    calendar = bank_calendar(get_settings())
    days = calendar.days(first, last)
    columns = (
        Col("day"), Col("weekday", "周"), Col("kind"), Col("label", "类型", data=False),
        Col("name", "名称", empty="—"), Col("hours", "营业时间", empty="—"), Col("source", table=False),
    )  # fmt: skip
    rows = [
        (d.day, _WEEKDAYS_CN[d.day.weekday()], d.kind.value, KIND_LABELS[d.kind], d.name,
         " ".join(str(w) for w in d.windows) or None, d.source)
        for d in days
    ]  # fmt: skip
    print_rows(columns, rows, fmt, title=f"business calendar {first} – {last}")
    _warn_provisional(calendar, {d.day.year for d in days})


def _local(calendar: BusinessCalendar, moment: datetime) -> str:
    local = moment.astimezone(calendar.tz)
    return local.strftime("%Y-%m-%d %H:%M") + (f":{local.second:02d}" if local.second else "")


@calendar_app.command("due")
def due_cmd(
    start: str = typer.Argument(
        ..., help="When the clock starts: YYYY-MM-DD HH:MM (bank-local unless it names its offset) or a day."
    ),
    business_hours: int | None = typer.Option(
        None, "--business-hours", min=1, max=366 * 24, help="Working hours after START."
    ),
    business_minutes: int | None = typer.Option(
        None, "--business-minutes", min=1, max=366 * 24 * 60, help="Working minutes after START."
    ),
    calendar_days: int | None = typer.Option(
        None,
        "--calendar-days",
        min=1,
        max=366,
        help="Calendar days as the law counts them: the day of START does not count; ends at 24:00, moved "
        "past a last day that is a weekend or statutory holiday.",
    ),  # fmt: skip
) -> None:
    """The due time of a target starting at START, on the bank's calendar."""
    given = [v for v in (business_hours, business_minutes, calendar_days) if v is not None]
    if len(given) != 1:
        raise InputRefused("give exactly one of --business-hours, --business-minutes, --calendar-days")
    settings = get_settings()
    calendar = bank_calendar(settings)
    began = parse_moment("START", start, settings.tz)
    if calendar_days is not None:
        due = calendar.calendar_days_due(began, calendar_days)
        last = (due - timedelta(days=1)).astimezone(calendar.tz).date()
        what = f"{calendar_days} calendar days"
        shown = f"{last} 24:00"
    else:
        minutes = business_minutes if business_minutes is not None else (business_hours or 0) * 60
        due = calendar.add_business_minutes(began, minutes)
        what = (
            f"{business_hours} business hours"
            if business_hours is not None
            else f"{minutes} business minutes"
        )
        shown = _local(calendar, due)
    out.print(f"{shown}  [dim]({what} after {_local(calendar, began)}, {calendar.tz.key})[/dim]")
    _warn_provisional(calendar, set(range(began.astimezone(calendar.tz).year, due.year + 1)))


# ------------------------------------------------------------------------------------------------ tickets

tickets_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

_SLA_COLUMNS = (
    "ticket_id",
    "kind",
    "category",
    "priority",
    "status",
    "owner",
    "target",
    "spec",
    "clock",
    "due_at",
    "used_minutes",
    "paused_minutes",
    "percent_used",
    "state",
    "breached",
    "level",
    "error",
)


def _viewer(staff: str | None) -> Any:
    from omnibank.customers.repository import Scope
    from omnibank.service.views import Viewer

    return Viewer(staff_id=staff) if staff else Viewer(scope=Scope.whole_bank())


def _emit_tickets(settings: Any) -> None:
    """Emit after the commit; a failure leaves the events pending (``omnibank tickets run``)."""
    from omnibank.service.tickets import emit_pending

    try:
        emit_pending(settings)
    except (AppError, OSError) as exc:
        message = exc.message if isinstance(exc, AppError) else str(exc)
        err.print(
            f"[yellow]warning:[/yellow] ticket events not emitted yet ({escape(message)}); "
            "run: omnibank tickets run"
        )


def _when(settings: Any, moment: datetime | None) -> str:
    return moment.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M") if moment else "—"


def _print_ticket(settings: Any, t: Any, name: str, phone: str) -> None:
    flag = " [red]SLA breached[/red]" if t.sla_breached else ""
    out.print(f"[bold]{t.ticket_id}[/bold] {t.kind}/{t.category} {t.priority} [bold]{t.status}[/bold]{flag}")
    out.print(f"customer {t.customer_id} {escape(name)} {phone}, via {t.channel}, source {escape(t.source)}")
    out.print(f"owner {escape(t.owner)}, queue {t.queue}, opened {_when(settings, t.opened_at)}")
    out.print(f"subject: {escape(t.subject)}")
    if t.benefit_id:
        sup = f", supplier {t.supplier_id}" if t.supplier_id else ""
        out.print(f"benefit {t.benefit_id}" + (f", coupon {t.coupon_id}" if t.coupon_id else "") + sup)


@tickets_app.command("open")
def open_cmd(
    customer: str = typer.Option(..., "--customer", help="The customer's number, e.g. C000001."),
    kind: str = typer.Option("complaint", "--kind", help="complaint, inquiry or request."),
    category: str = typer.Option(..., "--category", help="e.g. benefit, card, app, branch, wealth."),
    subject: str = typer.Option(..., "--subject", help="A few words (digit runs are masked)."),
    priority: str = typer.Option("normal", "--priority", help="low, normal, high or urgent."),
    channel: str = typer.Option("phone_hotline", "--channel", help="Where it came from (regulator, app, …)."),
    description: str = typer.Option(None, "--description", help="The customer's words (stored encrypted)."),
    benefit: str = typer.Option(
        None, "--benefit", help="The benefit it is about (its supplier hears of it)."
    ),
    coupon: str = typer.Option(None, "--coupon", help="The coupon it is about (its number)."),
    key: str = typer.Option(None, "--key", help="A key of your own: the same key again opens nothing."),
) -> None:
    """Open a ticket: routed to its queue and given to the least-loaded agent on shift."""
    from omnibank.service import tickets

    settings = get_settings()
    now = system_clock()
    request = tickets.TicketRequest(
        kind=kind,
        category=category,
        customer_id=customer,
        channel=channel,
        subject=subject,
        priority=priority,
        description=description,
        benefit_id=benefit,
        coupon_id=coupon,
        key=key,
        source="cli",
    )
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        opened = tickets.open_ticket(session, desk, get_cipher(settings), request, by=cli_actor(), now=now)
    _emit_tickets(settings)
    t = opened.ticket
    verb = "opened" if opened.created else "already open (same key)"
    due = f", resolution due {_when(settings, t.sla_due_at)}" if t.sla_due_at else ""
    out.print(f"{verb}: [bold]{t.ticket_id}[/bold] → {escape(t.owner)} ({t.status}){due}")


@tickets_app.command("list")
def list_tickets_cmd(
    staff: str = typer.Option(None, "--staff", help="What this member of staff works on (default: all)."),
    status: str = typer.Option(None, "--status", help="Only this status."),
    all_: bool = typer.Option(False, "--all", help="Closed and resolved tickets too."),
    kind: str = typer.Option(None, "--kind", help="complaint, inquiry or request."),
    queue: str = typer.Option(None, "--queue", help="Only tickets routed to this queue."),
    breached: bool = typer.Option(False, "--breached", help="Only tickets past a target."),
    customer: str = typer.Option(None, "--customer", help="Only this customer's tickets."),
    limit: int = typer.Option(200, "--limit", min=1, max=10_000, help="Rows to show."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Tickets (names and phones masked; the view is audited)."""
    from omnibank.service import tickets, views

    settings = get_settings()
    now = system_clock()
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        page = views.ticket_page(
            session,
            get_cipher(settings),
            desk,
            _viewer(staff),
            now=now,
            actor=cli_actor(),
            status=status,
            open_only=not all_ and status is None,
            kind=kind,
            queue=queue,
            breached=True if breached else None,
            customer_id=customer,
            limit=limit,
        )
    columns = (
        Col("ticket_id", "ticket"),
        Col("kind"),
        Col("category"),
        Col("priority"),
        Col("customer_id", "customer"),
        Col("name"),
        Col("status"),
        Col("owner"),
        Col("opened_at", "opened"),
        Col("sla_due_at", "due", empty="—"),
        Col("sla_level", "level", empty="—"),
        Col("sla_breached", "breached"),
    )
    rows = [
        (
            i.ticket.ticket_id,
            i.ticket.kind,
            i.ticket.category,
            i.ticket.priority,
            i.ticket.customer_id,
            i.name,
            i.ticket.status,
            i.ticket.owner,
            i.ticket.opened_at,
            i.ticket.sla_due_at,
            i.ticket.sla_level,
            i.ticket.sla_breached,
        )
        for i in page.items
    ]
    if print_rows(columns, rows, fmt, empty="no tickets", tz=settings.tz):
        note(fmt, f"{len(rows)} tickets")


@tickets_app.command("show")
def show_ticket_cmd(
    ticket_id: str = typer.Argument(..., help="A ticket id."),
    staff: str = typer.Option(None, "--staff", help="Who is looking (must see the ticket)."),
) -> None:
    """One ticket: its fields (the customer masked), its SLA clocks now and its history."""
    from omnibank.service import tickets, views

    settings = get_settings()
    now = system_clock()
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        d = views.ticket_detail(
            session, get_cipher(settings), desk, _viewer(staff), ticket_id, now=now, actor=cli_actor()
        )
    _print_ticket(settings, d.item.ticket, d.item.name, d.item.phone)
    if d.sla_error:
        err.print(f"[yellow]SLA:[/yellow] {escape(d.sla_error)}")
    for name, s in d.sla.items():
        level = f" [red]{s.level}[/red]" if s.level else ""
        pause = " (paused)" if s.paused else ""
        out.print(
            f"  SLA {name:<15} {s.spec:<20} due {_when(settings, s.due_at)}  {s.state}{pause}  "
            f"{s.percent_used}% used, {s.paused_minutes} min paused{level}"
        )
    for h in d.history:
        change = (
            f"{h.from_status} → {h.to_status}" if h.from_status not in (None, h.to_status) else h.to_status
        )
        who = h.by + (f" / {h.staff_id}" if h.staff_id else "") + (f" / queue {h.queue}" if h.queue else "")
        extra = "".join(f" ({escape(x)})" for x in (h.detail, h.note) if x)
        out.print(f"  {_when(settings, h.at)}  {h.action:<17} {change:<30} {escape(who)}{extra}")


def _change(ticket_id: str, apply: Any) -> None:
    from omnibank.service import tickets

    settings = get_settings()
    now = system_clock()
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        t = apply(session, desk, now)
    _emit_tickets(settings)
    out.print(f"{t.ticket_id}: {t.status}, owner {escape(t.owner)}")


@tickets_app.command("assign")
def assign_cmd(
    ticket_id: str = typer.Argument(..., help="A ticket id."),
    to_staff: str = typer.Option(None, "--to-staff", help="A member of staff."),
    to_queue: str = typer.Option(None, "--to-queue", help="A queue of the routing file."),
    note_: str = typer.Option(None, "--note", help="Why (digit runs are masked)."),
) -> None:
    """Give a ticket to a member of staff or a queue."""
    from omnibank.service import tickets

    _change(
        ticket_id,
        lambda s, desk, now: tickets.assign(
            s, desk, ticket_id, staff_id=to_staff, queue=to_queue, by=cli_actor(), now=now, note=note_
        ),
    )


@tickets_app.command("status")
def status_cmd(
    ticket_id: str = typer.Argument(..., help="A ticket id."),
    status: str = typer.Argument(
        ..., help="in_progress, waiting_customer, waiting_supplier, resolved, closed, reopened."
    ),
    note_: str = typer.Option(None, "--note", help="What was done (digit runs are masked)."),
) -> None:
    """Move a ticket along its status flow (a move the flow has not is refused)."""
    from omnibank.service import tickets

    _change(
        ticket_id,
        lambda s, desk, now: tickets.set_status(
            s, desk, ticket_id, status, by=cli_actor(), now=now, note=note_
        ),
    )


@tickets_app.command("respond")
def respond_cmd(
    ticket_id: str = typer.Argument(..., help="A ticket id."),
    note_: str = typer.Option(..., "--note", help="What the customer was told (digit runs are masked)."),
) -> None:
    """Record an answer to the customer (stops the first-response clock)."""
    from omnibank.service import tickets

    _change(
        ticket_id,
        lambda s, desk, now: tickets.answer(
            s, desk, ticket_id, "responded", by=cli_actor(), now=now, note=note_
        ),
    )


@tickets_app.command("update")
def update_cmd(
    ticket_id: str = typer.Argument(..., help="A ticket id."),
    note_: str = typer.Option(..., "--note", help="The progress (digit runs are masked)."),
) -> None:
    """Record a progress update (starts the next-update clock again)."""
    from omnibank.service import tickets

    _change(
        ticket_id,
        lambda s, desk, now: tickets.answer(
            s, desk, ticket_id, "updated", by=cli_actor(), now=now, note=note_
        ),
    )


@tickets_app.command("supplier-answer")
def supplier_answer_cmd(
    ticket_id: str = typer.Argument(..., help="A ticket id."),
    note_: str = typer.Option(None, "--note", help="What the supplier said (digit runs are masked)."),
) -> None:
    """Record the supplier's answer to a ticket sent to it (late answers count on its scorecard)."""
    from omnibank.service import suppliers

    _change(
        ticket_id,
        lambda s, desk, now: suppliers.record_answer(s, desk, ticket_id, by=cli_actor(), now=now, note=note_),
    )


@tickets_app.command("reveal")
def reveal_cmd(
    ticket_id: str = typer.Argument(..., help="A ticket id."),
    reason: str = typer.Option(..., "--reason", help="Why you need the customer's own words (audited)."),
) -> None:
    """The complaint's own words (they may name people): audited with your reason."""
    from omnibank.service import tickets, views

    if not reason.strip():
        raise InputRefused("--reason: say why")
    settings = get_settings()
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        text = views.reveal_description(
            session,
            get_cipher(settings),
            desk,
            _viewer(None),
            ticket_id,
            actor=cli_actor(),
            source="cli",
            reason=reason,
            now=system_clock(),
        )
    out.print(escape(text) if text is not None else "(no description)")


@tickets_app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., help="A ticket history file (JSONL, see docs/data-contract.md)."),
) -> None:
    """Load past tickets' history (opened, assigned, answers, status changes with their times); rejects go to
    rejects.csv in the load's folder; loading the same file again changes nothing."""
    from omnibank.service import intake, tickets

    settings = get_settings()
    if not path.is_file():
        raise InputRefused(f"{path}: no such file")
    with LoadRun(settings.loads_dir, "tickets", path) as run:
        with unit_of_work(settings) as session:
            desk = tickets.desk_of(session, settings)
            report = intake.import_history(session, desk, get_cipher(settings), path, run, now=system_clock())
        run.finish()
    _emit_tickets(settings)
    out.print(f"tickets opened {report.tickets:,}; {run.report.summary_line()}")


@tickets_app.command("sla")
def sla_cmd(
    as_of: str = typer.Option(
        None,
        "--as-of",
        help="The moment to compute at (default: now), bank-local unless it names its offset; a day alone: "
        "its end.",
    ),
    out_path: Path = typer.Option(None, "--out", help="Write every ticket's targets to this CSV file."),
    open_only: bool = typer.Option(False, "--open", help="Open tickets only."),
) -> None:
    """Per ticket and target: due time, business minutes used, paused minutes, breached or not — recomputed
    from the history with today's calendar and policy."""
    from omnibank.service import tickets, views

    settings = get_settings()
    # a day alone means its end: "as of 31 December" counts what happened that day
    moment = parse_moment("--as-of", as_of, settings.tz, day_means="end") if as_of else system_clock()
    label = f"the end of {as_of.strip()}" if as_of and len(as_of.strip()) == 10 else _when(settings, moment)
    counts: dict[str, int] = {"tickets": 0, "met": 0, "running": 0, "breached": 0, "error": 0}
    seen = ""
    handle = out_path.open("w", encoding="utf-8", newline="") if out_path else None
    try:
        writer = csv.writer(handle) if handle else None
        if writer:
            writer.writerow(_SLA_COLUMNS)
        with unit_of_work(settings) as session, _progress() as bar:
            desk = tickets.desk_of(session, settings)
            total = views.ticket_count(session, desk, _viewer(None), open_only=open_only)
            task = bar.add_task("SLA clocks", total=total)
            processes = 2 if total >= _PARALLEL_FROM else 1  # a pool costs ~1 s to start
            rows = views.sla_report(session, desk, _viewer(None), as_of=moment, open_only=open_only,
                                    processes=processes, on_batch=lambda n: bar.advance(task, n))  # fmt: skip
            for row in rows:
                if row.ticket_id != seen:
                    counts["tickets"] += 1
                    seen = row.ticket_id
                counts[row.state] += 1
                if writer:
                    writer.writerow([_csv_value(getattr(row, c), settings) for c in _SLA_COLUMNS])
    finally:
        if handle:
            handle.close()
    out.print(
        f"{counts['tickets']:,} tickets at {label}: targets met {counts['met']:,}, "
        f"running {counts['running']:,}, breached {counts['breached']:,}"
        + (f", not computable {counts['error']:,}" if counts["error"] else "")
    )
    if out_path:
        out.print(f"written: {out_path}")


_PARALLEL_FROM = 100_000  # tickets from which the report uses two processes


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not progress_enabled())  # fmt: skip


def _csv_value(value: Any, settings: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(settings.tz).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


@tickets_app.command("run")
def run_cmd() -> None:
    """What the worker does for the desk, once now: tickets from the log's complaint.filed and
    service.request events, queue-owned tickets to agents on shift, SLA warnings and escalations, surge
    alerts, and the ticket events still to emit."""
    from omnibank.service import jobs

    settings = get_settings()
    counts = jobs.desk_pass(settings, system_clock())
    out.print(", ".join(f"{k} {v:,}" for k, v in counts.items()))


@tickets_app.command("surges")
def surges_cmd(
    days: int = typer.Option(7, "--days", min=1, max=366, help="Alerts of the last N days."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Surge alerts: queues whose inflow in an hour exceeded their usual rate."""
    from omnibank.service import escalation

    settings = get_settings()
    since = system_clock() - timedelta(days=days)
    with unit_of_work(settings) as session:
        alerts = escalation.surge_alerts(session, since=since)
        rows = [(a.queue, a.hour, a.inflow, a.usual_per_hour, a.to_staff_id) for a in alerts]
    columns = (
        Col("queue"),
        Col("hour"),
        Col("inflow"),
        Col("usual_per_hour", "usual/h"),
        Col("to_staff_id", "manager", empty="—"),
    )
    print_rows(columns, rows, fmt, empty=f"no surge alerts in the last {days} days", tz=settings.tz)
