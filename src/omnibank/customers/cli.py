"""`omnibank customer …`: find and show customers (masked), merge, and the data rights (export, erase)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.customer_ops import rights
from omnibank.customer_ops.merge import merge_customers
from omnibank.customer_ops.view import customer_360
from omnibank.customers import service
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.kit.clock import local_today
from omnibank.kit.console import out
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows
from omnibank.security import get_cipher

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


@app.command("find")
def find(
    phone: str = typer.Option(None, "--phone", help="11-digit mobile number."),
    id_number: str = typer.Option(None, "--id-number", help="18-character resident ID number."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Find customers by exact phone or ID number (through the blind index; the search is audited)."""
    if bool(phone) == bool(id_number):
        raise AppError("give exactly one of --phone or --id-number")
    cipher = get_cipher()
    with unit_of_work() as session:
        found = service.find_customers(session, cipher, actor=cli_actor(), phone=phone, id_number=id_number)
        rows = [(c.customer_id, c.branch_id, c.rm_id, c.registered_at) for c in found]
    if not found:
        note(fmt, "no customer matches")
        raise typer.Exit(1)
    columns = (
        Col("customer_id"),
        Col("branch_id", "branch"),
        Col("rm_id", "rm"),
        Col("registered_at", "registered"),
    )
    print_rows(columns, rows, fmt)
    note(fmt, f"{len(found)} match{'es' if len(found) != 1 else ''}")


@app.command("show")
def show(customer_id: str = typer.Argument(..., help="The bank's customer number, e.g. C000001.")) -> None:
    """The customer 360: masked profile, identifiers, tags, saved segments, recommended benefits and recent
    events."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        view = customer_360(
            session, settings, get_cipher(settings), customer_id, actor=cli_actor(),
            today=local_today(settings.tz), events=10, campaigns=False,
        )  # fmt: skip
    p, ident, tags, segments = view.profile, view.identity, view.tags, view.segments
    table = Table(show_header=False, title=f"customer {p.customer_id}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("name", p.name),
        ("gender", p.gender),
        ("age", str(p.age)),  # never the birth date: with the masked ID number it gives the number away
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
    if ident.merged_into and ident.merged_at:
        when = ident.merged_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")
        rows.append(("merged into", f"{ident.merged_into} on {when} (its events count for the survivor)"))
    if ident.merged_ids:
        rows.append(("merged from", ", ".join(ident.merged_ids)))
    for k, val in rows:
        table.add_row(k, escape(val))
    out.print(table)
    ids = Table("kind", "value", "source", "first seen", title="identifiers", title_justify="left")
    for i in ident.identifiers:
        seen = i.since.astimezone(settings.tz).strftime("%Y-%m-%d") if i.since else ""
        ids.add_row(i.kind, escape(i.value), escape(i.source), seen)
    out.print(ids)
    if tags:
        out.print("tags: " + " · ".join(f"{t.tag} [dim]({t.category}, since {t.since})[/dim]" for t in tags))
    else:
        out.print("tags: none (omnibank tags compute)")
    out.print("saved segments: " + (", ".join(segments) if segments else "none (as of their last snapshots)"))
    if view.recommended:
        rec = Table(
            "rank", "benefit", "name", "score", "reason", title="recommended benefits", title_justify="left"
        )
        for rank, r in enumerate(view.recommended, 1):
            rec.add_row(str(rank), escape(r.benefit_id), escape(r.name), str(r.score), escape(r.reason))
        out.print(rec)
    else:
        out.print("recommended benefits: none (no active benefit with stock left that they do not hold)")
    if view.events:
        ev = Table(
            "time (bank-local)", "type", "channel", "details", title="recent events", title_justify="left"
        )
        for e in view.events:
            details = e.details if e.customer_id == customer_id else f"(merged {e.customer_id}) {e.details}"
            ev.add_row(
                e.ts.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M"),
                escape(e.type),
                escape(e.channel),
                escape(details),
            )
        out.print(ev)
    else:
        out.print("no events yet")


@app.command("merge")
def merge(
    merged_id: str = typer.Argument(..., help="A: the customer merged away, e.g. C000002."),
    survivor_id: str = typer.Argument(..., help="B: the customer that survives, e.g. C000001."),
    reason: str = typer.Option("", "--reason", help="Why (kept with the merge; long digit runs masked)."),
) -> None:
    """Merge customer A into B: A's events, identifiers and tags count for B from now on (audited)."""
    from omnibank.invites.binding import rebind

    settings = get_settings()
    with unit_of_work(settings) as session:
        r = merge_customers(
            session, merged_id=merged_id, survivor_id=survivor_id, actor=cli_actor(), reason=reason
        )
        rebind(session, settings, [survivor_id], now=datetime.now(UTC))  # invite bindings: earliest wins
    out.print(
        f"merged {r.merged_id} into {r.survivor_id}: {r.identifiers_moved} identifiers moved, "
        f"{r.tags_moved} tags united, left {r.segments_left} segments, "
        f"{r.merges_repointed} earlier merges re-pointed"
    )


@app.command("export")
def export(
    customer_id: str = typer.Argument(..., help="The bank's customer number, e.g. C000001."),
    reason: str = typer.Option(..., "--reason", help="Why, e.g. the customer's request and its reference."),
    out_path: Path = typer.Option(..., "--out", help="The JSON file to write (readable by you only)."),
) -> None:
    """Write everything held on one customer, personal fields in clear, to a JSON file (audited)."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        data = rights.export_customer(
            session, settings, get_cipher(settings), customer_id, actor=cli_actor(), reason=reason
        )
        rights.write_export(data, out_path)
    out.print(
        f"exported {customer_id} to {out_path}: {len(data['identifiers'])} identifiers, "
        f"{len(data['consent']['history'])} consent records, {len(data['coupons'])} coupons, "
        f"{len(data['points']['postings'])} points postings, {len(data['events'])} events "
        "(it holds personal data in clear: hand it over securely, then delete it)"
    )


@app.command("erase")
def erase(
    customer_id: str = typer.Argument(..., help="The bank's customer number, e.g. C000001."),
    reason: str = typer.Option(..., "--reason", help="Why, e.g. the customer's request and its reference."),
) -> None:
    """Erase one customer's personal data for good (crypto-shred); ledgers keep the customer number."""
    with unit_of_work() as session:
        r = rights.erase_customer(
            session, customer_id, actor=cli_actor(), reason=reason, settings=get_settings()
        )
    out.print(
        f"erased {r.customer_id}: name, phone and ID number destroyed (ciphertexts and blind indexes), "
        f"{r.identifiers_removed} identifiers removed; ledgers and the audit trail keep {r.customer_id}"
    )
