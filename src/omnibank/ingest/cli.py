"""`omnibank load …`: the data contract's files into the platform."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import typer
from sqlalchemy.orm import Session

from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.kit.clock import local_today
from omnibank.kit.console import out, progress_enabled
from omnibank.kit.loading import LoadReport, LoadRun
from omnibank.security import get_cipher

app = typer.Typer(
    help="Load the data contract's files (orgs, staff, customers, events).", no_args_is_help=True
)

EXIT_REJECTS = 3  # the file loaded, but some rows were rejected
FileArg = typer.Argument(..., help="The file to load (UTF-8).", show_default=False)


def finish(report: LoadReport) -> None:
    out.print(report.summary_line())
    if report.rejected:
        raise typer.Exit(EXIT_REJECTS)


def _run_sql_loader(kind: str, path: Path, body: Callable[[Session, LoadRun], LoadReport]) -> LoadReport:
    settings = get_settings()
    # the loaders check every reference themselves before they write
    with LoadRun(settings.loads_dir, kind, path) as run, unit_of_work(settings, bulk_load=True) as session:
        body(session, run)
    return run.finish()


@app.command("orgs")
def load_orgs_cmd(file: Path = FileArg) -> None:
    """Load orgs.csv: org_id,parent_id,name,level."""
    from omnibank.orgs.service import load_orgs

    finish(
        _run_sql_loader("orgs", file, lambda s, run: load_orgs(s, file, run=run, progress=progress_enabled()))
    )


@app.command("staff")
def load_staff_cmd(file: Path = FileArg) -> None:
    """Load staff.csv: staff_id,org_id,name,role,phone (name and phone are stored encrypted)."""
    from omnibank.orgs.service import load_staff

    cipher = get_cipher()
    finish(
        _run_sql_loader(
            "staff",
            file,
            lambda s, run: load_staff(s, file, run=run, cipher=cipher, progress=progress_enabled()),
        )
    )


@app.command("customers")
def load_customers_cmd(file: Path = FileArg) -> None:
    """Load customers.csv (upsert by customer_id; name, phone, ID number stored encrypted)."""
    from omnibank.customers.service import load_customers

    settings = get_settings()
    cipher = get_cipher()
    today: date = local_today(settings.tz)
    finish(
        _run_sql_loader(
            "customers",
            file,
            lambda s, run: load_customers(
                s, file, run=run, cipher=cipher, today=today, progress=progress_enabled()
            ),
        )
    )


@app.command("events")
def load_events_cmd(file: Path = FileArg) -> None:
    """Load events.jsonl into the append-only event log (deduplicated by event_id)."""
    from omnibank.events.loader import load_events

    finish(load_events(get_settings(), file, cipher=get_cipher(), progress=progress_enabled()))
