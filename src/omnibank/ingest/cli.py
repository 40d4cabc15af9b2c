"""`omnibank load …`: the data contract's files into the platform."""

from __future__ import annotations

from pathlib import Path

import typer

from omnibank.ingest.service import load_file
from omnibank.kit.console import out, progress_enabled
from omnibank.kit.loading import LoadReport

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

EXIT_REJECTS = 3  # the file loaded, but some rows were rejected
FileArg = typer.Argument(..., help="The file to load (UTF-8 unless --encoding says).", show_default=False)
EncodingOpt = typer.Option(
    "utf-8",
    "--encoding",
    help="The file's encoding: utf-8, gb18030 or gbk (exports of Chinese banking systems are often GB18030).",
)


def finish(report: LoadReport) -> None:
    out.print(report.summary_line())
    if report.rejected:
        raise typer.Exit(EXIT_REJECTS)


@app.command("orgs")
def load_orgs_cmd(file: Path = FileArg, encoding: str = EncodingOpt) -> None:
    """Load orgs.csv: org_id,parent_id,name,level."""
    finish(load_file("orgs", file, progress=progress_enabled(), encoding=encoding))


@app.command("staff")
def load_staff_cmd(file: Path = FileArg, encoding: str = EncodingOpt) -> None:
    """Load staff.csv: staff_id,org_id,name,role,phone (name and phone are stored encrypted)."""
    finish(load_file("staff", file, progress=progress_enabled(), encoding=encoding))


@app.command("customers")
def load_customers_cmd(file: Path = FileArg, encoding: str = EncodingOpt) -> None:
    """Load customers.csv (upsert by customer_id; name, phone, ID number stored encrypted)."""
    finish(load_file("customers", file, progress=progress_enabled(), encoding=encoding))


@app.command("events")
def load_events_cmd(file: Path = FileArg, encoding: str = EncodingOpt) -> None:
    """Load events.jsonl into the append-only event log (deduplicated by event_id)."""
    finish(load_file("events", file, progress=progress_enabled(), encoding=encoding))
