"""`omnibank contact …`: do-not-disturb, the outbox, dispatching queued messages."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import typer
from rich.table import Table

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.contact import service
from omnibank.contact.models import DND_CHANNELS, STATUSES
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.kit.clock import system_clock
from omnibank.kit.console import out

app = typer.Typer(
    help="Contact policy: do-not-disturb, the outbox of messages and their dispatch to channels.",
    no_args_is_help=True,
)
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
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AppError(f"--until: {value!r} is not a date YYYY-MM-DD or an ISO datetime") from None
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
        row = service.add_dnd(session, customer_id, channel=channel, reason=reason, until=_until(until),
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
        n = service.remove_dnd(session, customer_id, channel=channel, actor=cli_actor(), now=system_clock())
    out.print(f"{customer_id}: {n} do-not-disturb entr{'y' if n == 1 else 'ies'} removed")


@dnd_app.command("list")
def dnd_list(
    customer_id: str | None = typer.Option(None, "--customer", help="Only this customer."),
    history: bool = typer.Option(False, "--history", help="Also ended and removed entries."),
    limit: int = typer.Option(100, "--limit", min=1, max=100_000),
) -> None:
    """Do-not-disturb entries, newest first (open ones by default)."""
    now = system_clock()
    with unit_of_work() as session:
        rows = service.list_dnd(
            session, customer_id=customer_id, active_at=None if history else now, limit=limit
        )
    table = Table("entry", "customer", "channel", "since", "until", "reason", "by", "removed",
                  title="do-not-disturb", title_justify="left")  # fmt: skip
    for r in rows:
        removed = f"{_local(r.removed_at)} by {r.removed_by}" if r.removed_at else ""
        table.add_row(str(r.id), r.customer_id, r.channel, _local(r.since), _local(r.until) or "open",
                      r.reason, r.created_by, removed)  # fmt: skip
    out.print(table)
    out.print(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")


@app.command("outbox")
def outbox(
    status: str | None = typer.Option(None, "--status", help=f"One of: {', '.join(STATUSES)}."),
    customer_id: str | None = typer.Option(None, "--customer", help="Only this customer."),
    journey: str | None = typer.Option(None, "--journey", help="Only this journey."),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000),
) -> None:
    """Messages in the outbox, newest first, with their decision and what became of them (no personal
    data: customer numbers and template names only)."""
    with unit_of_work() as session:
        rows = service.list_messages(session, status=status, customer_id=customer_id, journey=journey,
                                     limit=limit)  # fmt: skip
        counts = service.status_counts(session, journey=journey)
    table = Table("id", "customer", "channel", "purpose", "journey/step", "template", "status", "reason",
                  "asked (bank-local)", "goes / went", title="outbox", title_justify="left")  # fmt: skip
    for m in rows:
        where = "/".join(x for x in (m.journey, m.step) if x)
        table.add_row(str(m.id), m.customer_id, m.channel, m.purpose, where, m.template or "", m.status,
                      m.reason or "", _local(m.asked_at), _local(m.sent_at or m.scheduled_for))  # fmt: skip
    out.print(table)
    total = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s))
    out.print(f"{len(rows)} shown; in all: {total or 'none'}")


@app.command("dispatch")
def dispatch(
    limit: int = typer.Option(1000, "--limit", min=1, max=1_000_000, help="Messages at most."),
) -> None:
    """Hand due messages to their channels (deferred ones are decided again first) and emit receipts."""
    report = service.dispatch(get_settings(), now=system_clock(), limit=limit)
    out.print(report.summary())
