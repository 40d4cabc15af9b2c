"""`omnibank audit …`: list the audit trail and verify its hash chain."""

from __future__ import annotations

import json
from datetime import date, datetime, time

import typer

from omnibank.audit import service
from omnibank.config import get_settings
from omnibank.db import ensure_schema, get_engine, unit_of_work
from omnibank.errors import AppError
from omnibank.kit.console import err, out
from omnibank.kit.listing import Col, FormatOpt, OutputFormat, note, print_rows

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


def _since(value: str | None) -> datetime | None:
    """A bank-local date (from its midnight) or an ISO date-time (bank-local unless it names a zone)."""
    if value is None:
        return None
    tz = get_settings().tz
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=tz)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AppError(
            f"--since: {value!r} is neither a date (YYYY-MM-DD) nor a date-time (YYYY-MM-DDTHH:MM)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


@app.command("list")
def list_(
    actor: str = typer.Option(None, "--actor", help="Only entries by this actor, e.g. cli:alice."),
    subject: str = typer.Option(None, "--subject", help="Only entries about this subject id, e.g. C000001."),
    since: str = typer.Option(
        None, "--since", help="Only entries from this bank-local date or date-time on."
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10_000, help="How many (newest first)."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Show the latest audit entries, newest first (details never hold personal data)."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        entries = service.list_entries(
            session, actor=actor, subject=subject, since=_since(since), limit=limit
        )
    columns = (
        Col("id", show=str, no_wrap=True),
        Col("at", "time (bank-local)", show=lambda t: t.strftime("%Y-%m-%d %H:%M:%S"), no_wrap=True),
        Col("actor"),
        Col("source"),
        Col("action"),
        Col("subject", data=False),
        Col("subject_type", table=False),
        Col("subject_id", table=False),
        Col("details", "detail", data=False, min_width=24),
        Col("detail", table=False),  # the JSON object as recorded
        Col("reason"),
    )
    rows = []
    for e in entries:
        detail = json.loads(e.detail or "{}")
        rows.append((
            e.id, e.at, e.actor, e.source, e.action, e.subject_id or e.subject_type, e.subject_type,
            e.subject_id, ", ".join(f"{k}={v}" for k, v in detail.items()), e.detail or None, e.reason,
        ))  # fmt: skip
    print_rows(columns, rows, fmt, tz=settings.tz)
    note(fmt, f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")


@app.command("verify")
def verify() -> None:
    """Chain what is committed, walk the hash chain; exit 1 naming the first entry that was edited,
    deleted or re-ordered."""
    settings = get_settings()
    ensure_schema(settings)
    with get_engine(settings).connect() as conn:
        verdict = service.verify_all(conn)
    if not verdict.intact:
        err.print(
            f"[red]audit trail broken:[/red] {verdict.problem} ({verdict.entries} entries before it verify)"
        )
        raise typer.Exit(1)
    out.print(f"head {verdict.head}", style="dim")
    if verdict.unchained:
        out.print(f"{verdict.unchained} entries committed meanwhile are not chained yet", style="dim")
    out.print(f"audit trail intact: {verdict.entries} entries")
