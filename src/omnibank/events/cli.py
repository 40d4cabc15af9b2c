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
