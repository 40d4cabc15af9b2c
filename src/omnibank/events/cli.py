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
