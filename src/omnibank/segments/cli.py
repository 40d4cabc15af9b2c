"""`omnibank segment …`: which customers? Count, preview, export, save, snapshot, the matrix."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from omnibank.config import get_settings
from omnibank.errors import AppError
from omnibank.kit.clock import local_today
from omnibank.kit.console import out
from omnibank.kit.dates import parse_date
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows
from omnibank.segments.duck import count_if_ready

# the store's session, the models and the audit trail are imported by the commands that use them: a count
# over a profile snapshot already built needs none of them (omnibank.segments.duck.count_if_ready)

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

AsOfOpt = typer.Option(
    None,
    "--as-of",
    help="Evaluate as of this bank-local date (YYYY-MM-DD, 1900-01-01 to 2199-12-31); default today.",
)
Expr = typer.Argument(..., help="An expression, e.g. \"aum >= 500000 AND in_org('B001')\".")
SparkMasterOpt = typer.Option(
    None,
    "--spark-master",
    help="With --engine spark: the Spark master, local[*] by default (e.g. spark://host:7077, yarn).",
)
ENGINES = ("duckdb", "postgres", "spark")


def check_engine(engine: str, allowed: tuple[str, ...] = ENGINES) -> str:
    if engine not in allowed:
        raise AppError(f"--engine must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {engine!r}")
    return engine


def as_of_date(value: str | None) -> date:
    if value is None:
        return local_today(get_settings().tz)
    return parse_date("--as-of", value)


@app.command("count")
def count(
    expression: str = Expr,
    as_of: str = AsOfOpt,
    engine: str = typer.Option(
        "duckdb", "--engine", help="duckdb (embedded), postgres (the store) or spark (over the log's files)."
    ),
    spark_master: str = SparkMasterOpt,
) -> None:
    """Count the matching customers (the last line is the number)."""
    check_engine(engine)
    settings = get_settings()
    day = as_of_date(as_of)
    n = count_if_ready(settings, expression, day) if engine == "duckdb" else None
    if n is None:
        from omnibank.db import unit_of_work
        from omnibank.segments import service

        with unit_of_work(settings) as session:
            n = service.count(
                session, settings, expression, as_of=day, engine=engine, spark_master=spark_master
            )
    out.print(f"as of {day}", style="dim")
    out.print(str(n))


@app.command("preview")
def preview(
    expression: str = Expr,
    as_of: str = AsOfOpt,
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="How many customers to show."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Show the first matching customers, personal fields masked (the view is audited)."""
    from omnibank.audit.service import cli_actor
    from omnibank.db import unit_of_work
    from omnibank.kit.money import parse_cny
    from omnibank.security import get_cipher
    from omnibank.segments import service

    settings = get_settings()
    day = as_of_date(as_of)
    with unit_of_work(settings) as session:
        total, rows = service.preview(
            session, settings, get_cipher(settings), expression, as_of=day, limit=limit, actor=cli_actor()
        )
    columns = (
        Col("customer_id"), Col("name"), Col("gender"), Col("age", show=str), Col("branch_id", "branch"),
        Col("aum", "aum (CNY)"), Col("occupation"),
    )  # fmt: skip
    print_rows(
        columns,
        (
            # the service hands aum formatted for people ("51,645.21"); read back exactly
            (r.customer_id, r.name, r.gender, r.age, r.branch_id, parse_cny(r.aum.replace(",", "")),
             r.occupation)
            for r in rows
        ),
        fmt,
    )  # fmt: skip
    note(fmt, f"{len(rows)} of {total:,} matching customers as of {day}")


@app.command("export")
def export(
    expression: str = Expr,
    out_file: Path = typer.Option(..., "--out", help="File to write: .csv or .parquet (customer ids)."),
    as_of: str = AsOfOpt,
    engine: str = typer.Option(
        "duckdb", "--engine", help="duckdb (embedded) or spark (over the log's files)."
    ),
    spark_master: str = SparkMasterOpt,
) -> None:
    """Write the matching customer ids to a CSV or Parquet file (the export is audited)."""
    check_engine(engine, ("duckdb", "spark"))
    from omnibank.audit.service import cli_actor
    from omnibank.db import unit_of_work
    from omnibank.segments import service

    settings = get_settings()
    day = as_of_date(as_of)
    with unit_of_work(settings) as session:
        n = service.export(session, settings, expression, as_of=day, out=out_file, actor=cli_actor(),
                           engine=engine, spark_master=spark_master)  # fmt: skip
    out.print(f"wrote {n:,} customer ids to {out_file} (as of {day})")


@app.command("save")
def save(
    name: str = typer.Argument(..., help="Segment name: lower-case letters, digits and _."),
    expression: str = Expr,
    description: str = typer.Option("", "--description", "-d", help="What the segment is for."),
) -> None:
    """Save (or replace) a named segment."""
    from omnibank.audit.service import cli_actor
    from omnibank.db import unit_of_work
    from omnibank.segments import service

    with unit_of_work() as session:
        service.save(session, name=name, text=expression, description=description, actor=cli_actor())
    out.print(f"saved segment {name}")


@app.command("list")
def list_(fmt: OutputFormat = FormatOpt) -> None:
    """List saved segments with their latest snapshot."""
    from omnibank.customers.repository import Scope
    from omnibank.db import unit_of_work
    from omnibank.segments import views

    with unit_of_work() as session:
        infos = views.list_segments(session, Scope.whole_bank())
    columns = (
        Col("name"), Col("expression"), Col("members", empty="—"),
        Col("last_snapshot", "last snapshot", empty="—"), Col("description"),
    )  # fmt: skip
    print_rows(
        columns,
        ((i.name, i.expression, i.members, i.as_of, i.description) for i in infos),
        fmt,
        empty='no saved segments yet (omnibank segment save NAME "EXPR")',
    )


@app.command("delete")
def delete(name: str = typer.Argument(..., help="Segment name.")) -> None:
    """Delete a saved segment and its snapshots."""
    from omnibank.audit.service import cli_actor
    from omnibank.db import unit_of_work
    from omnibank.segments import service

    with unit_of_work() as session:
        service.delete_segment(session, name, actor=cli_actor())
    out.print(f"deleted segment {name}")


@app.command("snapshot")
def snapshot(
    name: str = typer.Argument(..., help="A saved segment."),
    as_of: str = AsOfOpt,
    show: int = typer.Option(10, "--show", min=0, help="How many entered/left ids to list."),
) -> None:
    """Evaluate a saved segment and record who entered and who left since its last snapshot."""
    from omnibank.audit.service import cli_actor
    from omnibank.db import unit_of_work
    from omnibank.segments import service

    settings = get_settings()
    day = as_of_date(as_of)
    with unit_of_work(settings) as session:
        r = service.snapshot(session, settings, name, as_of=day, actor=cli_actor())
    out.print(f"segment {name} as of {day}: {r.members:,} members (snapshot {r.snapshot_id})")
    if r.first:
        out.print(f"first snapshot: {len(r.entered):,} entered")
    else:
        out.print(f"since the last snapshot: {len(r.entered):,} entered, {len(r.left):,} left")
    for label, ids in (("entered", r.entered), ("left", r.left)):
        if ids and show:
            more = f" … (+{len(ids) - show:,})" if len(ids) > show else ""
            out.print(f"  {label}: {', '.join(ids[:show])}{more}")


@app.command("matrix")
def matrix(
    where: str = typer.Option(None, "--where", help="Only customers matching this expression."),
    as_of: str = AsOfOpt,
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Counts over lifecycle stage × wealth tier × occupation (seed 002's 112 segments) as a grid (csv and
    json: a row per non-empty lifecycle stage and wealth tier, a column per occupation)."""
    from omnibank.db import unit_of_work
    from omnibank.segments import service

    settings = get_settings()
    day = as_of_date(as_of)
    with unit_of_work(settings) as session:
        m = service.matrix(session, settings, where=where, as_of=day)
    short = {
        "civil_servant": "civil",
        "business_owner": "owner",
        "self_employed": "self",
        "employee": "staff",
    }

    def count(n: int) -> str:
        return f"{n:,}" if n else "·"

    columns = (
        Col("segment", "lifecycle · wealth", data=False, no_wrap=True),
        Col("lifecycle", table=False),
        Col("wealth", table=False),
        *(Col(o, short.get(o, o), show=count) for o in m.occupations),
        Col("total"),
    )
    rows: list[list[object]] = []
    cells = 0
    for lc in m.lifecycle:
        for w in m.wealth:
            row = [m.counts.get((lc, w, o), 0) for o in m.occupations]
            if not any(row):
                continue
            cells += sum(1 for n in row if n)
            label = f"{lc.removeprefix('lifecycle_')} · {w.removeprefix('wealth_')}"
            rows.append([label, None if lc == "—" else lc, None if w == "—" else w, *row, sum(row)])
    print_rows(columns, rows, fmt, title=f"customers as of {day}")
    note(fmt, f"{m.total:,} customers in {cells} non-empty segments")


export_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


@export_app.command("attributes")
def export_attributes(
    out_dir: Path = typer.Option(
        ..., "--out", help="The folder to write (created; must be empty if it exists)."
    ),
) -> None:
    """Write the customers' non-personal attributes, tags, merges and stored scores as Parquet (for Spark)."""
    from omnibank.db import unit_of_work
    from omnibank.segments import service

    settings = get_settings()
    with unit_of_work(settings) as session:
        counts = service.export_attributes(session, settings, out_dir)
    out.print(
        f"wrote {counts['profiles']:,} customers' attributes, {counts['tags']:,} tags, {counts['merges']:,} "
        f"merges and {counts['scores']:,} scores to {out_dir} (no names, phones or ID numbers)"
    )
