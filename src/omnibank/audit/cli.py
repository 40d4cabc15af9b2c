"""`omnibank audit …`: list the audit trail, verify it and export checkpoints."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer

from omnibank.audit import service, views
from omnibank.config import get_settings
from omnibank.db import ensure_schema, get_engine, unit_of_work
from omnibank.errors import AppError
from omnibank.kit.console import err, out
from omnibank.kit.dates import parse_moment
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


def _since(value: str | None) -> datetime | None:
    """A bank-local date (from its midnight) or an ISO date-time (bank-local unless it names a zone)."""
    if value is None:
        return None
    return parse_moment("--since", value, get_settings().tz)  # 1900-01-01 to 2199-12-31


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
        entries = views.trail(session, actor=actor, subject=subject, since=_since(since), limit=limit).entries
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
def verify(
    checkpoint: list[Path] = typer.Option(
        None,
        "--checkpoint",
        help="A checkpoint file (of `audit checkpoint` or the server): the trail must "
        "still hold what it recorded. Repeatable.",
    ),  # fmt: skip
) -> None:
    """Check the trail, reading only: every entry's MAC, the hash chain, the seals, the checkpoints given
    and the database's protections; exit 1 naming what does not verify."""
    settings = get_settings()
    ensure_schema(settings)
    with get_engine(settings).connect() as conn:
        verdict = views.verify(conn, settings, checkpoints=tuple(checkpoint or ())).verdict
    for warning in verdict.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if not verdict.intact:
        for i, problem in enumerate(verdict.problems):
            if verdict.broken_at is not None and problem == verdict.problem:
                problem += f" ({verdict.entries} entries before it verify)"
            err.print(f"[red]{'audit trail broken' if i == 0 else 'also'}:[/red] {problem}")
        raise typer.Exit(1)
    out.print(f"head {verdict.head}", style="dim")
    sealed = f"sealed up to entry {verdict.sealed}" if verdict.sealed else "no seal yet"
    checked = f", {verdict.checkpoints} checkpoints matched" if verdict.checkpoints else ""
    out.print(f"{sealed}{checked}", style="dim")
    out.print(f"audit trail intact: {verdict.entries} entries")


@app.command("checkpoint")
def checkpoint(
    out_file: Path = typer.Option(
        ...,
        "--out",
        help="The file to append the checkpoint to (one JSON line), outside the data home.",
    ),  # fmt: skip
) -> None:
    """Chain and seal what is committed, and append a checkpoint (the number of entries, the head hash and
    their MAC) to a file kept off the data volume; `audit verify --checkpoint FILE` then finds a trail cut
    short."""
    settings = get_settings()
    target = out_file.expanduser().resolve()
    home = settings.home_dir
    if target == home or home in target.parents:
        raise AppError(f"--out {target} is inside the data home {home}: keep checkpoints off the data volume")
    ensure_schema(settings)
    with get_engine(settings).connect() as conn:
        sealed = service.checkpoint(conn, settings, target)
    if sealed is None:
        out.print("the audit trail is empty: nothing to checkpoint")
        return
    out.print(f"checkpoint appended to {target}: {sealed.seq} entries, head {sealed.head}")
