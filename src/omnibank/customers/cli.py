"""`omnibank customer …`: find and show customers (masked)."""

from __future__ import annotations

import typer
from rich.table import Table

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.customers import service
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.kit.clock import local_today
from omnibank.kit.console import out
from omnibank.security import get_cipher

app = typer.Typer(
    help="Customers: find by phone or ID number, show the profile (masked).", no_args_is_help=True
)


def _plain(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@app.command("find")
def find(
    phone: str = typer.Option(None, "--phone", help="11-digit mobile number."),
    id_number: str = typer.Option(None, "--id-number", help="18-character resident ID number."),
) -> None:
    """Find customers by exact phone or ID number (through the blind index; the search is audited)."""
    if bool(phone) == bool(id_number):
        raise AppError("give exactly one of --phone or --id-number")
    cipher = get_cipher()
    with unit_of_work() as session:
        found = service.find_customers(session, cipher, actor=cli_actor(), phone=phone, id_number=id_number)
        table = Table("customer_id", "branch", "rm", "registered")
        for c in found:
            table.add_row(c.customer_id, c.branch_id, c.rm_id or "", str(c.registered_at))
    if not found:
        out.print("no customer matches")
        raise typer.Exit(1)
    out.print(table)
    out.print(f"{len(found)} match{'es' if len(found) != 1 else ''}")


@app.command("show")
def show(customer_id: str = typer.Argument(..., help="The bank's customer number, e.g. C000001.")) -> None:
    """Show a customer's profile with personal fields masked, and recent events."""
    settings = get_settings()
    cipher = get_cipher()
    with unit_of_work(settings) as session:
        p = service.masked_profile(
            session, cipher, customer_id, actor=cli_actor(), today=local_today(settings.tz)
        )
    table = Table(show_header=False, title=f"customer {p.customer_id}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("name", p.name),
        ("gender", p.gender),
        ("birth date", f"{p.birth_date} (age {p.age})"),
        ("phone", p.phone),
        ("id number", p.id_number),
        ("branch", f"{p.branch_id} {p.branch_name}"),
        ("rm", p.rm_id or "—"),
        ("aum (CNY)", p.aum),
        ("occupation", p.occupation),
        ("risk tolerance", p.risk_tolerance),
        ("channel preference", p.channel_pref),
        ("marketing consent", "yes" if p.marketing_consent else "no"),
        ("registered", str(p.registered_at)),
    ]
    for k, val in rows:
        table.add_row(k, val)
    out.print(table)
    from omnibank.events.log import EventLog

    recent = EventLog(settings).recent(customer_id, limit=10)
    if recent:
        ev = Table(
            "time (bank-local)", "type", "channel", "details", title="recent events", title_justify="left"
        )
        for e in recent:
            details = ", ".join(
                f"{k}={_plain(val)}" for k, val in e.items() if k not in {"event_id", "type", "ts", "channel"}
            )
            ev.add_row(
                e["ts"].astimezone(settings.tz).strftime("%Y-%m-%d %H:%M"),
                e["type"],
                e.get("channel") or "",
                details,
            )
        out.print(ev)
    else:
        out.print("no events yet")
