"""`omnibank events …`: the event log."""

from __future__ import annotations

import typer

from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.kit.console import err, out

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


@app.command("mirror")
def mirror() -> None:
    """Copy log files not copied yet into the store (event_facts), so expressions can run in PostgreSQL
    (omnibank segment count --engine postgres). Each file is copied whole or not at all."""
    from omnibank.events.mirror import mirror_events

    settings = get_settings()
    with unit_of_work(settings) as session:
        report = mirror_events(
            session, settings, on_file=lambda f, n: err.print(f"mirrored {f}: {n:,} events")
        )
    out.print(
        f"mirrored {report.events:,} events from {report.files} new files "
        f"({report.skipped_files} files were mirrored before)"
    )


@app.command("protect")
def protect(
    check: bool = typer.Option(
        False, "--check", help="Only count the files still to protect (exit 1 if there are any)."
    ),
) -> None:
    """Rewrite the log files written before personal data was kept out of the log (card numbers as given,
    phones and ID numbers in free text), each published in its place the way a load publishes; and turn
    card numbers the store still holds into their tokens. Safe to interrupt and run again; loads go on."""
    from omnibank.audit.service import cli_actor, record
    from omnibank.events.log import EventLog
    from omnibank.events.protect import Protector, registry_of
    from omnibank.events.rewrite import protect_log, protect_store
    from omnibank.security import get_cipher

    settings = get_settings()
    if check:
        left = EventLog(settings).unprotected_files()
        hint = ": run omnibank events protect" if left else ""
        out.print(f"{len(left)} log files written before the protection{hint}")
        raise typer.Exit(1 if left else 0)
    protector = Protector(get_cipher(settings), registry_of(settings))
    logged = protect_log(settings, protector, on_file=lambda f, n: err.print(f"protected {f}: {n:,} events"))
    with unit_of_work(settings) as session:
        stored = protect_store(session.connection(), protector)
        record(
            session,
            actor=cli_actor(),
            action="events.protect",
            subject_type="event_log",
            subject_id=None,
            detail={
                "files": logged.files,
                "events": logged.events,
                "scanned_in_python": logged.python,
                "store": {
                    "cards": stored.cards,
                    "mirrored": stored.mirrored,
                    "entries": stored.entries,
                    "messages": stored.messages,
                },
            },
        )
    from omnibank.db import get_engine
    from omnibank.events.rewrite import checkpoint

    with get_engine(settings).connect() as conn:
        checkpoint(conn)
    out.print(
        f"protected {logged.files:,} log files ({logged.events:,} events, {logged.python:,} with personal "
        f"fields or text to scan); the store: {stored.cards:,} cards, {stored.mirrored:,} mirrored events, "
        f"{stored.entries:,} journey entries, {stored.messages:,} outbox messages"
    )
    if logged.left:
        err.print(f"{logged.left} files were written meanwhile by an older process: run it again")
        raise typer.Exit(1)


@app.command("compact")
def compact_cmd(
    month: str | None = typer.Option(
        None, "--month", help="Only this bank-local month (YYYY-MM); refused if it is not closed yet."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be merged; change nothing."),
) -> None:
    """Merge the small log files of closed months (ended two days ago, bank time) into large ones. Readers
    and consumers (campaigns, journeys, surveys, alerts, intake, the mirror) see each event once, whenever
    this is stopped; the merged files are deleted a day later, once no consumer still reads them."""
    from datetime import UTC, datetime

    from omnibank.events.compact import compact

    settings = get_settings()
    now = datetime.now(UTC)  # the edge: services take the clock
    with unit_of_work(settings) as session:  # reads the consumers' positions; writes nothing there
        report = compact(session, settings, now=now, month=month, dry_run=dry_run)
    if report.busy:
        err.print("another compaction is running: nothing done")
        raise typer.Exit(1)
    verb = "would merge" if dry_run else "merged"
    for m in sorted(report.merged):
        out.print(
            f"{m}: {verb} {report.merged[m]:,} files into {report.written[m]:,} ({report.events[m]:,} events)"
        )
    if not report.merged:
        out.print("nothing to merge: no closed month has two small files in a row to merge")
    if report.abandoned:
        err.print(f"cleaned up {report.abandoned} merge(s) left by a stopped run")
    if report.removed:
        out.print(f"deleted {report.removed:,} merged files no reader needs any more")
    for file, readers in sorted(report.kept.items()):
        err.print(f"kept the files merged into {file}: still read by {', '.join(readers)}")
