"""`omnibank calendar …`: the bank's business calendar day by day, and due times on it (the calendar and its
arithmetic are :mod:`omnibank.service.calendar`; this module parses options and prints)."""

from __future__ import annotations

from datetime import datetime, timedelta

import typer
from rich.markup import escape

from omnibank.config import get_settings
from omnibank.errors import InputRefused
from omnibank.kit.console import err, out
from omnibank.kit.dates import parse_date, parse_moment
from omnibank.listing import Col, FormatOpt, OutputFormat, print_rows
from omnibank.service.calendar import KIND_LABELS, BusinessCalendar, bank_calendar

calendar_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

_WEEKDAYS_CN = ("一", "二", "三", "四", "五", "六", "日")
_MAX_DAYS = 3 * 366


def _warn_provisional(calendar: BusinessCalendar, years: set[int]) -> None:
    for year in sorted(years & set(calendar.provisional_years)):
        err.print(
            f"[yellow]warning:[/yellow] the holiday data for {year} in {escape(calendar.source or '')} is "
            "marked provisional: confirm it against the State Council's notice"
        )


@calendar_app.command("days")
def days_cmd(
    since: str = typer.Option(..., "--from", help="First day (YYYY-MM-DD)."),
    until: str = typer.Option(..., "--to", help="Last day (YYYY-MM-DD), at most 3 years after --from."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Each day's kind (working, weekend, holiday, adjusted working day 调休, closure), its name and the
    working hours, as the bank's calendar has them (OMNIBANK_HOLIDAYS_FILE over the chinese-calendar
    package)."""
    first, last = parse_date("--from", since), parse_date("--to", until)
    if last < first:
        raise InputRefused(f"--to ({last}) is before --from ({first})")
    if (last - first).days >= _MAX_DAYS:
        raise InputRefused(f"--from {first} --to {last}: at most {_MAX_DAYS} days at once")
    calendar = bank_calendar(get_settings())
    days = calendar.days(first, last)
    columns = (
        Col("day"), Col("weekday", "周"), Col("kind"), Col("label", "类型", data=False),
        Col("name", "名称", empty="—"), Col("hours", "营业时间", empty="—"), Col("source", table=False),
    )  # fmt: skip
    rows = [
        (d.day, _WEEKDAYS_CN[d.day.weekday()], d.kind.value, KIND_LABELS[d.kind], d.name,
         " ".join(str(w) for w in d.windows) or None, d.source)
        for d in days
    ]  # fmt: skip
    print_rows(columns, rows, fmt, title=f"business calendar {first} – {last}")
    _warn_provisional(calendar, {d.day.year for d in days})


def _local(calendar: BusinessCalendar, moment: datetime) -> str:
    local = moment.astimezone(calendar.tz)
    return local.strftime("%Y-%m-%d %H:%M") + (f":{local.second:02d}" if local.second else "")


@calendar_app.command("due")
def due_cmd(
    start: str = typer.Argument(
        ..., help="When the clock starts: YYYY-MM-DD HH:MM (bank-local unless it names its offset) or a day."
    ),
    business_hours: int | None = typer.Option(
        None, "--business-hours", min=1, max=366 * 24, help="Working hours after START."
    ),
    business_minutes: int | None = typer.Option(
        None, "--business-minutes", min=1, max=366 * 24 * 60, help="Working minutes after START."
    ),
    calendar_days: int | None = typer.Option(
        None,
        "--calendar-days",
        min=1,
        max=366,
        help="Calendar days as the law counts them: the day of START does not count; ends at 24:00, moved "
        "past a last day that is a weekend or statutory holiday.",
    ),  # fmt: skip
) -> None:
    """The due time of a target starting at START, on the bank's calendar."""
    given = [v for v in (business_hours, business_minutes, calendar_days) if v is not None]
    if len(given) != 1:
        raise InputRefused("give exactly one of --business-hours, --business-minutes, --calendar-days")
    settings = get_settings()
    calendar = bank_calendar(settings)
    began = parse_moment("START", start, settings.tz)
    if calendar_days is not None:
        due = calendar.calendar_days_due(began, calendar_days)
        last = (due - timedelta(days=1)).astimezone(calendar.tz).date()
        what = f"{calendar_days} calendar days"
        shown = f"{last} 24:00"
    else:
        minutes = business_minutes if business_minutes is not None else (business_hours or 0) * 60
        due = calendar.add_business_minutes(began, minutes)
        what = (
            f"{business_hours} business hours"
            if business_hours is not None
            else f"{minutes} business minutes"
        )
        shown = _local(calendar, due)
    out.print(f"{shown}  [dim]({what} after {_local(calendar, began)}, {calendar.tz.key})[/dim]")
    _warn_provisional(calendar, set(range(began.astimezone(calendar.tz).year, due.year + 1)))
