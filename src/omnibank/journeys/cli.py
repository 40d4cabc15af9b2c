"""`omnibank journey …`: validate, simulate, start, stop, list, report (`omnibank worker` runs them: see
:mod:`omnibank.worker.cli`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from omnibank.config import get_settings
from omnibank.errors import AppError, InputRefused
from omnibank.kit.console import err, out
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


def _journey_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise InputRefused(f"{path}: no .yaml files in this folder")
        return files
    return [path]


@app.command("validate")
def validate(path: Path = typer.Argument(..., help="A journey YAML file (or a folder of them).")) -> None:
    """Check journey files against the schema and the expression language."""
    from omnibank.journeys.spec import load_journey

    for f in _journey_files(path):
        spec = load_journey(f)
        trigger = spec.trigger.event or f"segment, {spec.trigger.schedule}"
        out.print(f"journey {spec.id} is valid: {len(spec.steps)} steps, trigger {trigger}, {spec.purpose}")


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of journey files."""
    from omnibank.journeys.spec import json_schema

    out.print(json_schema(), markup=False, highlight=False)


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from omnibank.kit.dates import parse_moment

    return parse_moment(option, value, get_settings().tz)  # an ISO date-time, 1900-01-01 to 2199-12-31


@app.command("simulate")
def simulate_cmd(
    journey: Path = typer.Argument(..., help="A journey YAML file, or a folder: its journeys run together."),
    events: Path = typer.Argument(None, help="An events.jsonl file (default: the data home's event log)."),
    out_file: Path = typer.Option(None, "--out", help="Write every action here (ACTIONS.jsonl)."),
    since: str = typer.Option(
        None,
        "--since",
        help="Start the journeys at this time (ISO; earlier events only count in expressions).",
    ),
    until: str = typer.Option(
        None, "--until", help="Run the clock to this time (default: until all settle)."
    ),
) -> None:
    """Who would be contacted, how, and who spared: the journeys over the loaded customers and the events,
    on a virtual clock, through the contact policy. Touches nothing."""
    from omnibank.journeys.simulate import simulate
    from omnibank.journeys.spec import load_journey

    settings = get_settings()
    specs = [load_journey(f) for f in _journey_files(journey)]
    if out_file is not None and out_file.is_dir():
        raise AppError(f"{out_file}: is a folder; give a file name for --out")
    tmp = out_file.with_name(out_file.name + ".tmp") if out_file else None
    fh = tmp.open("wb") if tmp else None
    try:
        report = simulate(
            specs,
            settings,
            events=events,
            out=fh,
            since=_when(since, "--since"),
            until=_when(until, "--until"),
        )
    finally:
        if fh is not None:
            fh.close()
    if tmp is not None and out_file is not None:
        tmp.replace(out_file)
    print_simulation(report)
    if out_file is not None:
        out.print(f"actions in {out_file}")


def print_simulation(report: object, *, title: str = "simulated") -> None:
    from omnibank.journeys.simulate import SimulationReport
    from omnibank.journeys.views import summarize

    assert isinstance(report, SimulationReport)
    from rich.table import Column, Table

    summary = summarize(report)
    table = Table(
        Column("journey", no_wrap=True), "entered", "control", "reached", "deferred", "leads",
        "converted (control)",
        title=f"journeys {title} over {summary.events:,} events (nothing sent, nothing stored)",
        title_justify="left",
    )  # fmt: skip
    sends = Table("journey", "channel", "sends", title="sends by channel", title_justify="left")
    suppressed = Table("journey", "reason", "suppressed", title="suppressed by reason", title_justify="left")
    for s in summary.journeys:
        conv = f"{s.converted:,}" + (f" ({s.converted_control:,})" if s.control else "")
        table.add_row(
            s.journey, f"{s.entered:,}", f"{s.control:,}", f"{s.reached:,}", f"{s.deferred:,}",
            f"{s.lead_total:,}", conv,
        )  # fmt: skip
        for ch, n in s.sends.items():
            sends.add_row(s.journey, ch, f"{n:,}")
        for reason, n in s.suppressed.items():
            suppressed.add_row(s.journey, reason, f"{n:,}")
    out.print(table)
    out.print(sends)
    if suppressed.row_count:
        out.print(suppressed)
    spared = Table("journey", "reason", "customers spared", title="who would be spared (no send at all)",
                   title_justify="left")  # fmt: skip
    for s in summary.journeys:
        for reason, n in s.spared.items():
            spared.add_row(s.journey, reason, f"{n:,}")
    if spared.row_count:
        out.print(spared)
    leads = Table("journey", "branch", "leads", title="leads per branch", title_justify="left")
    for s in summary.journeys:
        for branch, n in s.leads.items():
            leads.add_row(s.journey, branch, f"{n:,}")
    if leads.row_count:
        out.print(leads)
    if summary.unknown_customers:
        err.print(
            f"[yellow]{summary.unknown_customers:,} trigger events of customers not loaded were ignored[/]"
        )


@app.command("start")
def start_cmd(journey: Path = typer.Argument(..., help="A journey YAML file.")) -> None:
    """Start (or update and resume) a journey; `omnibank worker` runs it on events loaded from now on."""
    from omnibank.db import unit_of_work
    from omnibank.journeys import runtime
    from omnibank.journeys.spec import load_journey

    settings = get_settings()
    spec = load_journey(journey)
    with unit_of_work(settings) as session:
        runtime.start(session, settings, spec, source_text=journey.read_text(encoding="utf-8"))
    out.print(f"journey {spec.id} is active; run it with: omnibank worker")


@app.command("stop")
def stop_cmd(journey_id: str = typer.Argument(..., help="The journey id.")) -> None:
    """Stop a journey (entries keep their state; `journey start` resumes it)."""
    from omnibank.db import unit_of_work
    from omnibank.journeys import runtime

    with unit_of_work() as session:
        runtime.stop(session, journey_id)
    out.print(f"journey {journey_id} stopped")


@app.command("list")
def list_cmd(fmt: OutputFormat = FormatOpt) -> None:
    """Journeys with their entries by status."""
    from omnibank.db import unit_of_work
    from omnibank.journeys.views import STATES, list_journeys

    with unit_of_work() as session:
        rows = list_journeys(session)
    print_rows(
        (Col("id", "journey"), Col("name"), Col("status"), *(Col(s) for s in STATES)),
        ((r.id, r.name, r.status, *(r.entries.get(s, 0) for s in STATES)) for r in rows),
        fmt,
        empty="no journeys (omnibank journey start FILE.yaml)",
    )


_REPORT_COLUMNS = (
    Col("journey", table=False), Col("entered", table=False), Col("control", table=False),
    Col("treated", table=False), Col("converted", table=False), Col("converted_control", table=False),
    Col("rate", table=False), Col("control_rate", table=False), Col("uplift", table=False),
    Col("step"), Col("sent"), Col("deferred"), Col("suppressed_text", "suppressed", data=False),
    Col("suppressed", table=False), Col("suppressed_by_reason", table=False), Col("delivered"),
    Col("clicked"), Col("failed"), Col("done"),
)  # fmt: skip


@app.command("report")
def report_cmd(
    journey_id: str = typer.Argument(None, help="One journey (default: all)."), fmt: OutputFormat = FormatOpt
) -> None:
    """Attribution per journey and step: entered, sent, deferred, suppressed by reason, delivered,
    converted within the window, uplift against the control group (csv and json: a row per journey and
    step, the journey's figures repeated on each; rates as decimals, 0.125 = 12.5%)."""
    from decimal import Decimal

    from omnibank.db import unit_of_work
    from omnibank.journeys.report import JourneyFigures, attribution

    with unit_of_work() as session:
        figures = attribution(session, journey_id)

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v * 100:.1f}%"

    def ratio(n: int, d: int) -> Decimal | None:
        return Decimal(n) / Decimal(d) if d else None

    def rows_of(f: JourneyFigures) -> list[dict[str, object]]:
        rate, control_rate = ratio(f.converted, f.treated), ratio(f.converted_control, f.control)
        uplift = rate - control_rate if rate is not None and control_rate is not None else None
        places = Decimal("0.0001")
        journey: dict[str, object] = {
            "journey": f.journey, "entered": f.entered, "control": f.control, "treated": f.treated,
            "converted": f.converted, "converted_control": f.converted_control,
            **{k: None if v is None else v.quantize(places)
               for k, v in (("rate", rate), ("control_rate", control_rate), ("uplift", uplift))},
        }  # fmt: skip
        rows = []
        for s in f.steps.values():
            reasons = sorted(s.suppressed.items())
            rows.append({
                **journey, "step": s.step, "sent": s.sent, "deferred": s.deferred,
                "suppressed_text": ", ".join(f"{k} {v:,}" for k, v in reasons) or "0",
                "suppressed": sum(s.suppressed.values()),
                "suppressed_by_reason": ";".join(f"{k}={v}" for k, v in reasons) or None,
                "delivered": s.delivered, "clicked": s.clicked, "failed": s.failed, "done": s.done,
            })  # fmt: skip
        return rows or [{**journey, **{c.key: None for c in _REPORT_COLUMNS if c.key not in journey}}]

    empty = "nothing recorded yet (omnibank journey start FILE.yaml, then omnibank worker)"
    if fmt is not OutputFormat.table:
        print_rows(_REPORT_COLUMNS, [r for f in figures for r in rows_of(f)], fmt, empty=empty)
    elif not figures:
        out.print(empty)
    for f in figures:
        note(
            fmt,
            f"[bold]{f.journey}[/bold]: entered {f.entered:,} (control {f.control:,}); converted "
            f"{f.converted:,} of {f.treated:,} treated ({pct(f.rate)}) vs {f.converted_control:,} of "
            f"{f.control:,} control ({pct(f.control_rate)}); uplift {pct(f.uplift)}",
        )
        if fmt is OutputFormat.table:
            print_rows(_REPORT_COLUMNS, [r for r in rows_of(f) if r["step"] is not None], fmt)
