"""`omnibank tags …`: load tag definitions, compute them, list them."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import func, select

from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.kit.console import err, out
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows
from omnibank.segments.cli import AsOfOpt, SparkMasterOpt, as_of_date, check_engine
from omnibank.tags import service
from omnibank.tags.models import CustomerTag, TagDefinition

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


@app.command("load")
def load(
    path: Path = typer.Argument(..., help="A YAML file of tag definitions, or a folder of them."),
) -> None:
    """Check and store tag definitions (nothing is stored if any is wrong)."""
    specs = service.read_definitions(path)
    with unit_of_work() as session:
        names = service.store_definitions(session, specs)
    out.print(f"stored {len(names)} tag definitions: {', '.join(names)}")
    out.print("next: omnibank tags compute")


@app.command("compute")
def compute(
    as_of: str = AsOfOpt,
    only: list[str] = typer.Option(None, "--tag", help="Compute only this tag (repeatable)."),
    engine: str = typer.Option(
        "duckdb", "--engine", help="duckdb (embedded) or spark (over the log's files)."
    ),
    spark_master: str = SparkMasterOpt,
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Compute every tag as of a date; who gained and who lost each is kept."""
    check_engine(engine, ("duckdb", "spark"))
    settings = get_settings()
    day = as_of_date(as_of)
    with unit_of_work(settings, bulk_load=True) as session:
        report = service.compute_tags(
            session, settings, as_of=day, only=only or None, on_tag=lambda t: err.print(f"computing {t}…"),
            engine=engine, spark_master=spark_master,
        )  # fmt: skip
    columns = (Col("tag"), Col("customers"), Col("gained"), Col("lost"))
    print_rows(
        columns,
        ((r.tag, r.members, r.gained, r.lost) for r in report.results),
        fmt,
        title=f"tags as of {day}",
    )
    note(fmt, f"computed {len(report.results)} tags: {report.gained:,} gained, {report.lost:,} lost")


@app.command("list")
def list_(fmt: OutputFormat = FormatOpt) -> None:
    """List tag definitions with how many customers carry each."""
    with unit_of_work() as session:
        defs = list(
            session.scalars(select(TagDefinition).order_by(TagDefinition.category, TagDefinition.name))
        )
        counts = dict(session.execute(select(CustomerTag.tag, func.count()).group_by(CustomerTag.tag)).all())
    columns = (Col("category"), Col("tag"), Col("customers"), Col("description"), Col("expression"))
    print_rows(
        columns,
        ((d.category, d.name, counts.get(d.name, 0), d.description, d.expression) for d in defs),
        fmt,
        empty="no tag definitions yet (omnibank tags load examples/tags)",
    )
