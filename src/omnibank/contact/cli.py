"""`omnibank contact …`: do-not-disturb, the outbox, dispatching queued messages."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import typer

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.contact import dnd, views
from omnibank.contact.dispatch import dispatch as dispatch_outbox
from omnibank.contact.models import DND_CHANNELS, STATUSES
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.kit.clock import system_clock
from omnibank.kit.console import out
from omnibank.kit.dates import check_date
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS
dnd_app = typer.Typer(help="Do-not-disturb: customers not to be contacted (marketing or service).",
                      no_args_is_help=True)  # fmt: skip
app.add_typer(dnd_app, name="dnd")

CustomerArg = typer.Argument(..., help="The bank's customer number, e.g. C000001.")


def _until(text: str | None) -> datetime | None:
    """``YYYY-MM-DD`` (through the end of that bank-local day) or an ISO datetime with an offset."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    tz = get_settings().tz
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        check_date("--until", day)
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AppError(f"--until: {value!r} is not a date YYYY-MM-DD or an ISO datetime") from None
    check_date("--until", moment)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def _local(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M")


@dnd_app.command("add")
def dnd_add(
    customer_id: str = CustomerArg,
    reason: str = typer.Option(..., "--reason", help="Why, e.g. 客户来电要求勿扰 (no personal data)."),
    channel: str = typer.Option("all", "--channel", help=f"One of: {', '.join(DND_CHANNELS)}."),
    until: str | None = typer.Option(
        None,
        "--until",
        help="Last day (YYYY-MM-DD, bank-local, inclusive) or an ISO datetime; default: open.",
    ),
) -> None:
    """Put a customer on do-not-disturb (audited): no marketing and no service sends on that channel."""
    now = system_clock()
    with unit_of_work() as session:
        row = dnd.add_dnd(session, customer_id, channel=channel, reason=reason, until=_until(until),
                          actor=cli_actor(), now=now)  # fmt: skip
        ends = f" until {_local(row.until)}" if row.until else " until removed"
    out.print(f"{customer_id}: do-not-disturb on {channel}{ends} (entry {row.id})")


@dnd_app.command("remove")
def dnd_remove(
    customer_id: str = CustomerArg,
    channel: str | None = typer.Option(None, "--channel", help="Only this one (default: every open one)."),
) -> None:
    """End a customer's do-not-disturb now (audited; the history stays)."""
    with unit_of_work() as session:
        n = dnd.remove_dnd(session, customer_id, channel=channel, actor=cli_actor(), now=system_clock())
    out.print(f"{customer_id}: {n} do-not-disturb entr{'y' if n == 1 else 'ies'} removed")


@dnd_app.command("list")
def dnd_list(
    customer_id: str | None = typer.Option(None, "--customer", help="Only this customer."),
    history: bool = typer.Option(False, "--history", help="Also ended and removed entries."),
    limit: int = typer.Option(100, "--limit", min=1, max=100_000),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Do-not-disturb entries, newest first (open ones by default)."""
    now = system_clock()
    with unit_of_work() as session:
        rows = views.dnd_entries(session, customer_id=customer_id, active_at=None if history else now,
                                 limit=limit)  # fmt: skip
    columns = (
        Col("id", "entry", show=str), Col("customer_id", "customer"), Col("channel"), Col("since"),
        Col("until", empty="open"), Col("reason"), Col("created_by", "by"), Col("removed", data=False),
        Col("removed_at", table=False), Col("removed_by", table=False),
    )  # fmt: skip
    print_rows(
        columns,
        (
            (r.id, r.customer_id, r.channel, r.since, r.until, r.reason, r.created_by,
             f"{_local(r.removed_at)} by {r.removed_by}" if r.removed_at else "", r.removed_at, r.removed_by)
            for r in rows
        ),
        fmt,
        title="do-not-disturb",
    )  # fmt: skip
    note(fmt, f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")


@app.command("outbox")
def outbox(
    status: str | None = typer.Option(None, "--status", help=f"One of: {', '.join(STATUSES)}."),
    customer_id: str | None = typer.Option(None, "--customer", help="Only this customer."),
    journey: str | None = typer.Option(None, "--journey", help="Only this journey."),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Messages in the outbox, newest first, with their decision and what became of them (no personal
    data: customer numbers and template names only)."""
    with unit_of_work() as session:
        rows = views.list_messages(session, status=status, customer_id=customer_id, journey=journey,
                                   limit=limit)  # fmt: skip
        counts = views.status_counts(session, journey=journey)
    columns = (
        Col("id", show=str), Col("customer_id", "customer"), Col("channel"), Col("purpose"),
        Col("journey_step", "journey/step", data=False), Col("journey", table=False),
        Col("step", table=False), Col("template"), Col("status"), Col("reason"),
        Col("asked_at", "asked (bank-local)"), Col("goes_went", "goes / went", data=False),
        Col("scheduled_for", table=False), Col("sent_at", table=False),
    )  # fmt: skip
    print_rows(
        columns,
        (
            (m.id, m.customer_id, m.channel, m.purpose, "/".join(x for x in (m.journey, m.step) if x),
             m.journey, m.step, m.template, m.status, m.reason, m.asked_at, m.sent_at or m.scheduled_for,
             m.scheduled_for, m.sent_at)
            for m in rows
        ),
        fmt,
        title="outbox",
    )  # fmt: skip
    total = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s))
    note(fmt, f"{len(rows)} shown; in all: {total or 'none'}")


@app.command("dispatch")
def dispatch(
    limit: int = typer.Option(1000, "--limit", min=1, max=1_000_000, help="Messages at most."),
) -> None:
    """Hand due messages to their channels (deferred ones are decided again first) and emit receipts."""
    report = dispatch_outbox(get_settings(), now=system_clock(), limit=limit)
    out.print(report.summary())
