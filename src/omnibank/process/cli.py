"""`omnibank process report`: lead times of a process over events that share a case id (the read layer is
:mod:`omnibank.process.report`; this module parses options and prints)."""

from __future__ import annotations

from decimal import Decimal

import typer
from rich.markup import escape

from omnibank.config import get_settings
from omnibank.kit.clock import system_clock
from omnibank.kit.dates import parse_date, parse_moment
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows
from omnibank.process.report import (
    DEFAULT_CASE_FIELD,
    LeadTimes,
    Period,
    PeriodFigures,
    ProcessReport,
    make_spec,
    parse_period,
    report,
)

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

_STEP_COLUMNS = (
    Col("step", no_wrap=True), Col("cases"),
    Col("p50_days", "p50 d"), Col("p90_days", "p90 d"), Col("max_days", "max d"),
    Col("p50_business_days", "p50 bd"), Col("p90_business_days", "p90 bd"),
    Col("max_business_days", "max bd"),
)  # fmt: skip


def _signed(value: object) -> str:
    return f"{value:+}" if isinstance(value, int | Decimal) else str(value)


_COMPARE_COLUMNS = (
    Col("step", no_wrap=True), Col("measure"),
    Col("days", "A days"), Col("days_compare", "B days"), Col("days_change", "Δ days", show=_signed),
    Col("business_days", "A bd"), Col("business_days_compare", "B bd"),
    Col("business_days_change", "Δ bd", show=_signed),
)  # fmt: skip
_OPEN_COLUMNS = (
    Col("case_id", no_wrap=True), Col("started"), Col("last_step"),
    Col("age_days", "age d"), Col("age_business_days", "age bd"),
)  # fmt: skip


@app.command("report")
def report_cmd(
    start: str = typer.Option(..., "--start", help="The event type that starts a case."),
    end: str = typer.Option(..., "--end", help="The event type that ends a case."),
    case_field: str = typer.Option(
        DEFAULT_CASE_FIELD, "--case-field", help="The field of the events holding the case id."
    ),
    steps: str | None = typer.Option(
        None, "--steps", help="The steps in order, comma-separated, from --start to --end (default: the two)."
    ),
    since: str | None = typer.Option(None, "--from", help="Cases started on or after this bank-local day."),
    until: str | None = typer.Option(None, "--to", help="Cases started on or before this bank-local day."),
    compare: str | None = typer.Option(
        None, "--compare", help="A second period FIRST..LAST (e.g. 2026-07-01..2026-12-31), side by side."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Read the log as it stood then (default: the later of now and the last event)."
    ),
    open_cases: bool = typer.Option(False, "--open", help="List the open cases (oldest first) instead."),
    limit: int = typer.Option(20, "--limit", min=1, max=100_000, help="Open cases listed with --open."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Per-step and end-to-end lead times (p50, p90, max) in calendar and business days, the slowest step,
    open cases, and a second period side by side."""
    settings = get_settings()
    spec = make_spec(start, end, steps=steps.split(",") if steps else None, case_field=case_field)
    period = Period(
        parse_date("--from", since) if since else None, parse_date("--to", until) if until else None
    )
    other = parse_period("--compare", compare) if compare else None
    moment = parse_moment("--as-of", as_of, settings.tz, day_means="end") if as_of else None
    rep = report(
        settings, spec, now=system_clock(), period=period, compare=other, as_of=moment,
        open_limit=limit if open_cases else 5,
    )  # fmt: skip
    if open_cases:
        _print_open(rep, fmt)
    elif rep.compare is None:
        _print_single(rep, fmt)
    else:
        _print_compare(rep, rep.compare, fmt)


def _header(rep: ProcessReport, fmt: OutputFormat) -> None:
    note(
        fmt,
        f"process {escape(' → '.join(rep.spec.steps))} by {escape(rep.spec.case_field)}, "
        f"as of {rep.as_of.astimezone(get_settings().tz):%Y-%m-%d %H:%M}",
    )
    if rep.without_case:
        lack = f"{rep.without_case:,} of {rep.events:,} events lack {escape(rep.spec.case_field)}: left out"
        note(fmt, lack, style="yellow")


def _times_row(name: str, times: LeadTimes) -> dict[str, object]:
    return {"step": name, "cases": times.cases, "p50_days": times.p50, "p90_days": times.p90,
            "max_days": times.max, "p50_business_days": times.business_p50,
            "p90_business_days": times.business_p90, "max_business_days": times.business_max}  # fmt: skip


def _summary(fig: PeriodFigures, fmt: OutputFormat, label: str = "") -> None:
    ages = fig.open_age
    opened = (
        f"{fig.open_cases:,} open (age p50 {ages.p50} d / {ages.business_p50} bd, oldest {ages.max} d)"
        if fig.open_cases
        else "none open"
    )
    note(
        fmt,
        f"{label}cases started in {fig.period.label}: {fig.started:,}; {fig.completed:,} completed, {opened}",
    )
    if fig.slowest is not None:
        note(fmt, f"{label}slowest step: {escape(fig.slowest.name)} (p50 {fig.slowest.times.p50} days)")


def _print_single(rep: ProcessReport, fmt: OutputFormat) -> None:
    fig = rep.main
    _header(rep, fmt)
    rows = [_times_row(s.name, s.times) for s in fig.steps]
    if len(fig.steps) > 1:
        rows.append(_times_row(fig.end_to_end.name, fig.end_to_end.times))
    print_rows(_STEP_COLUMNS, rows, fmt, title=f"lead times, cases started {fig.period.label}")
    _summary(fig, fmt)
    if fig.oldest_open and fmt is OutputFormat.table:
        oldest = ", ".join(f"{c.case_id} ({c.age_days} d)" for c in fig.oldest_open)
        note(fmt, f"oldest open: {escape(oldest)} (all: --open)")


def _change(a: object, b: object) -> object:
    if isinstance(a, int | Decimal) and isinstance(b, int | Decimal):
        return b - a
    return None


def _print_compare(rep: ProcessReport, other: PeriodFigures, fmt: OutputFormat) -> None:
    fig = rep.main
    _header(rep, fmt)
    pairs = list(zip(fig.steps, other.steps, strict=True))
    if len(fig.steps) > 1:
        pairs.append((fig.end_to_end, other.end_to_end))
    rows: list[dict[str, object]] = []
    for a, b in pairs:
        ta, tb = a.times, b.times
        measures: list[tuple[str, object, object, object, object]] = [
            ("cases", ta.cases, tb.cases, None, None),
            ("p50", ta.p50, tb.p50, ta.business_p50, tb.business_p50),
            ("p90", ta.p90, tb.p90, ta.business_p90, tb.business_p90),
            ("max", ta.max, tb.max, ta.business_max, tb.business_max),
        ]
        for measure, da, db, ba, bb in measures:
            rows.append({"step": a.name, "measure": measure, "days": da, "days_compare": db,
                         "days_change": _change(da, db), "business_days": ba, "business_days_compare": bb,
                         "business_days_change": _change(ba, bb)})  # fmt: skip
    print_rows(
        _COMPARE_COLUMNS, rows, fmt, title=f"lead times: A = {fig.period.label}, B = {other.period.label}"
    )
    _summary(fig, fmt, "A: ")
    _summary(other, fmt, "B: ")
    a50, b50 = fig.end_to_end.times.p50, other.end_to_end.times.p50
    if a50 is not None and b50 is not None and a50 > 0:
        share = (b50 - a50) / a50
        note(fmt, f"end to end p50: {a50} → {b50} days ({share:+.0%})", style="bold")


def _print_open(rep: ProcessReport, fmt: OutputFormat) -> None:
    fig = rep.main
    _header(rep, fmt)
    rows = [
        {"case_id": c.case_id, "started": c.started, "last_step": c.last_step, "age_days": c.age_days,
         "age_business_days": c.age_business_days}
        for c in fig.oldest_open
    ]  # fmt: skip
    print_rows(_OPEN_COLUMNS, rows, fmt, title=f"open cases started {fig.period.label}, oldest first",
               empty=f"no open case among the cases started {fig.period.label}")  # fmt: skip
    if fig.open_cases > len(rows):
        note(fmt, f"{len(rows):,} of {fig.open_cases:,} open cases (more: --limit)")
