"""The business calendar: working windows, statutory holidays and 调休 from the package, the bank's holiday
file for a year the package does not know, and calendar days reckoned as the law reckons them."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnibank import config
from omnibank.errors import ConfigError, InputRefused
from omnibank.service.calendar import (
    BusinessCalendar,
    DayKind,
    NoHolidayData,
    YearDays,
    load_holiday_file,
    parse_holiday_file,
    parse_windows,
)

TZ = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "service" / "holidays-2027.yaml"
CAL = BusinessCalendar(tz=TZ)

TEST_2027 = """\
years:
  2027:
    holidays:
      - {date: 2027-01-01, name: 元旦}
      - {from: 2027-02-05, to: 2027-02-11, name: 春节}
    workdays:
      - {date: 2027-02-14, name: 春节调休}
      - 2027-02-20
    closures:
      - {date: 2027-03-19, name: 核心系统升级停业}
"""


def at(text: str) -> datetime:
    """A bank-local moment, 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def cal_2027() -> BusinessCalendar:
    return BusinessCalendar.from_file(parse_holiday_file(TEST_2027, source="test-holidays.yaml"), tz=TZ)


# ---------------------------------------------------------------------------------------------- days


def test_day_kinds_come_from_the_package_with_chinese_names() -> None:
    assert CAL.day_kind(date(2026, 3, 2)) == (DayKind.working, None)
    assert CAL.day_kind(date(2026, 3, 7)) == (DayKind.weekend, None)
    assert CAL.day_kind(date(2026, 2, 17)) == (DayKind.holiday, "春节")
    assert CAL.day_kind(date(2026, 10, 1)) == (DayKind.holiday, "国庆节")
    # 调休: a Saturday and a Sunday that are working days
    assert CAL.day_kind(date(2026, 2, 14)) == (DayKind.adjusted_working, "春节")
    assert CAL.day_kind(date(2026, 1, 4)) == (DayKind.adjusted_working, "元旦")
    assert CAL.is_working_day(date(2026, 1, 4))
    assert not CAL.is_working_day(date(2026, 1, 3))  # a Saturday inside the New Year holiday
    assert not CAL.is_working_day(date(2026, 2, 23))  # a Monday inside the Spring Festival


def test_a_year_without_any_data_is_an_error_naming_the_year() -> None:
    with pytest.raises(NoHolidayData, match="2028") as raised:
        CAL.day_kind(date(2028, 5, 8))
    assert "OMNIBANK_HOLIDAYS_FILE" in raised.value.message
    assert raised.value.details == {"year": 2028}
    # never a weekends-only guess, whichever function asks
    with pytest.raises(NoHolidayData, match="2027"):
        CAL.add_business_minutes(at("2026-12-31 17:00"), 60)
    with pytest.raises(NoHolidayData, match="2027"):
        CAL.calendar_days_due(at("2026-12-20 10:00"), 15)
    with pytest.raises(NoHolidayData, match="2003"):
        CAL.is_working_day(date(2003, 6, 2))


def test_a_year_only_the_bank_file_covers() -> None:
    cal = cal_2027()
    assert cal.day_kind(date(2027, 1, 1)) == (DayKind.holiday, "元旦")
    assert cal.day_kind(date(2027, 2, 8)) == (DayKind.holiday, "春节")
    assert cal.day_kind(date(2027, 2, 14)) == (DayKind.adjusted_working, "春节调休")  # a Sunday
    assert cal.day_kind(date(2027, 2, 20)) == (DayKind.adjusted_working, None)  # a plain date: a Saturday
    assert cal.day_kind(date(2027, 3, 19)) == (DayKind.closure, "核心系统升级停业")
    assert cal.day_kind(date(2027, 3, 22)) == (DayKind.working, None)
    assert cal.day_kind(date(2027, 3, 20)) == (DayKind.weekend, None)
    # New Year's Eve 2026 (package) into 2027 (file): 30 minutes on Thursday, Friday a holiday, the weekend
    assert cal.add_business_minutes(at("2026-12-31 17:00"), 60) == at("2027-01-04 09:30")
    with pytest.raises(NoHolidayData, match=r"2028.*test-holidays\.yaml covers 2027"):
        cal.day_kind(date(2028, 1, 3))


def test_the_file_overrides_the_package_date_by_date() -> None:
    cal = BusinessCalendar.from_file(parse_holiday_file("""\
years:
  2026:
    workdays: [2026-10-07]
    holidays: [{date: 2026-03-02, name: 特别假日}]
    closures: [{date: 2026-03-03, name: 停业}]
"""), tz=TZ)  # fmt: skip
    assert cal.day_kind(date(2026, 10, 7)) == (DayKind.working, None)  # the package says 国庆节
    assert cal.day_kind(date(2026, 10, 6)) == (DayKind.holiday, "国庆节")  # the rest is the package's
    assert cal.day_kind(date(2026, 3, 2)) == (DayKind.holiday, "特别假日")
    assert cal.day_kind(date(2026, 3, 3)) == (DayKind.closure, "停业")
    # a section with closures only does not make a year the package lacks "covered"
    only_closures = parse_holiday_file("years:\n  2029:\n    closures: [{date: 2029-03-01, name: 停业}]\n")
    with pytest.raises(NoHolidayData, match="2029"):
        BusinessCalendar.from_file(only_closures, tz=TZ).day_kind(date(2029, 3, 2))


def test_the_shipped_2027_file_loads_and_is_marked_provisional() -> None:
    data = load_holiday_file(EXAMPLE)
    cal = BusinessCalendar.from_file(data, tz=TZ)
    assert cal.provisional_years == [2027]
    assert cal.day_kind(date(2027, 10, 1)) == (DayKind.holiday, "国庆节")
    assert cal.day_kind(date(2027, 5, 2)) == (DayKind.holiday, "劳动节")
    assert data.years[2027].workdays == {}  # no 调休 invented before the notice


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("years:\n  2027:\n    holidays: [{date: 2026-12-31, name: 元旦}]\n",
         "year 2027: holidays[0]: 2026-12-31 is not in 2027"),
        ("years:\n  2027:\n    holidays: [{date: 2027-01-01}]\n",
         "year 2027: holidays[0].name: Field required"),
        ("years:\n  2027:\n    holidays: [{date: 2027-01-01, from: 2027-01-01, to: 2027-01-02, name: x}]\n",
         "year 2027: holidays[0]: give either date or from/to"),
        ("years:\n  2027:\n    holidays: [{from: 2027-01-03, to: 2027-01-01, name: x}]\n",
         "year 2027: holidays[0]: to (2027-01-01) is before from (2027-01-03)"),
        ("years:\n  2027:\n    holiday: []\n", "year 2027: holiday: Extra inputs are not permitted"),
        ("years:\n  2027:\n    workdays: [2027-02-30]\n", "year 2027: workdays[0]"),
        ("years:\n  2027:\n    holidays: [{date: 2027-01-01, name: 元旦}]\n    workdays: [2027-01-01]\n",
         "year 2027: workdays[0]: 2027-01-01 is already listed in holidays[0]"),
        ("hours:\n  mon: ['09:00-12:00', '11:00-13:00']\n",
         "hours.mon: windows 09:00-12:00 and 11:00-13:00 overlap"),
        ("hours:\n  monday: ['09:00-12:00']\n", "hours.monday: not a day"),
        ("hours:\n  sat: ['18:00-09:00']\n", "hours.sat: '18:00-09:00': a window ends after it starts"),
        ("years: [2027\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_a_bad_holiday_file_is_refused_naming_file_year_and_field(text: str, problem: str) -> None:
    with pytest.raises(InputRefused) as refused:
        parse_holiday_file(text, source="bank-holidays.yaml")
    assert refused.value.message.startswith("bank-holidays.yaml: ")
    assert problem in refused.value.message
    assert "_Workday" not in refused.value.message and "function-" not in refused.value.message


def test_a_missing_holiday_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputRefused, match="nowhere.yaml: no such file"):
        load_holiday_file(tmp_path / "nowhere.yaml")


# ------------------------------------------------------------------------------------- business time


@pytest.mark.parametrize(
    ("start", "minutes", "due"),
    [
        ("2026-03-02 11:00", 120, "2026-03-02 14:30"),  # across the lunch break
        ("2026-03-02 12:15", 30, "2026-03-02 14:00"),  # received during lunch: counts from 13:30
        ("2026-03-02 07:00", 180, "2026-03-02 12:00"),  # ends as the morning ends, not at 13:30
        ("2026-03-06 16:30", 240, "2026-03-09 12:00"),  # Friday into Monday across the weekend
        ("2026-02-13 16:00", 240, "2026-02-14 11:30"),  # into the 调休 Saturday before the Spring Festival
        ("2026-02-14 16:00", 240, "2026-02-24 11:30"),  # across the whole Spring Festival (15–23 Feb)
        ("2026-01-03 10:00", 60, "2026-01-04 10:00"),  # from a holiday Saturday to the 调休 Sunday
        ("2026-09-18 17:00", 60, "2026-09-20 09:30"),  # Friday to the 调休 Sunday before National Day
        ("2026-03-02 10:00", 0, "2026-03-02 10:00"),
    ],
)
def test_business_minutes_worked_examples(start: str, minutes: int, due: str) -> None:
    assert CAL.add_business_minutes(at(start), minutes) == at(due)
    if minutes:
        assert CAL.business_minutes_between(at(start), at(due)) == minutes


def test_business_time_is_exact_and_signed() -> None:
    start = at("2026-03-02 09:00") + timedelta(seconds=30)
    assert CAL.add_business_time(start, timedelta(minutes=1)) == at("2026-03-02 09:01") + timedelta(
        seconds=30
    )
    assert CAL.business_minutes_between(at("2026-03-02 10:00"), at("2026-03-02 09:00")) == -60
    assert CAL.business_minutes_between(at("2026-03-02 12:00"), at("2026-03-02 13:30")) == 0
    # whatever zone the moments come in, the windows are bank-local
    utc = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert CAL.add_business_minutes(utc, 30) == at("2026-03-02 09:30")
    with pytest.raises(ValueError, match="aware"):
        CAL.add_business_minutes(datetime(2026, 3, 2, 9, 0), 30)  # noqa: DTZ001 - the point of the test


def test_working_hours_per_weekday_and_for_adjusted_days() -> None:
    hours = {i: parse_windows(["08:30-12:00", "13:00-18:00"]) for i in range(5)}
    hours[5] = parse_windows(["10:00-16:00"])  # a desk open on Saturdays
    cal = BusinessCalendar(tz=TZ, hours=hours, adjusted_hours=parse_windows(["09:00-17:00"]))
    assert cal.add_business_minutes(at("2026-03-06 17:30"), 60) == at("2026-03-07 10:30")
    assert cal.is_working_day(date(2026, 3, 7)) and cal.day_kind(date(2026, 3, 7))[0] is DayKind.weekend
    assert not cal.is_working_day(date(2026, 2, 21))  # a Saturday inside the Spring Festival
    assert cal.add_business_minutes(at("2026-01-04 08:00"), 60) == at("2026-01-04 10:00")  # 调休 Sunday
    around_the_clock = BusinessCalendar(tz=TZ, hours={i: parse_windows(["00:00-24:00"]) for i in range(7)})
    assert around_the_clock.add_business_minutes(at("2026-03-07 23:30"), 60) == at("2026-03-08 00:30")


@settings(max_examples=150, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 10, 31)),  # noqa: DTZ001
    minutes=st.integers(min_value=0, max_value=6_000),
)
def test_business_minutes_added_then_measured_give_back_the_count(start: datetime, minutes: int) -> None:
    begin = start.replace(tzinfo=TZ)
    due = CAL.add_business_minutes(begin, minutes)
    assert due >= begin
    assert CAL.business_minutes_between(begin, due) == minutes
    assert CAL.business_time_between(begin, due) == timedelta(minutes=minutes)
    if minutes:  # the due moment lies on a working day, inside a window or at its end
        assert CAL.is_working_day(due.date())
        assert any(w.start <= due.hour * 60 + due.minute <= w.end for w in CAL.day(due.date()).windows)


# -------------------------------------------------------------------------------- calendar days (law)


@pytest.mark.parametrize(
    ("received", "days", "due"),
    [
        (
            "2026-03-02 10:00",
            15,
            "2026-03-18 00:00",
        ),  # ends 24:00 on 17 March; the day of receipt not counted
        ("2026-03-02 23:59", 15, "2026-03-18 00:00"),
        ("2026-03-06 09:00", 15, "2026-03-24 00:00"),  # last day Sat 21 March: moves to Mon 23 March
        ("2026-09-16 10:00", 15, "2026-10-09 00:00"),  # last day 1 Oct (国庆节): moves to Thu 8 Oct
        ("2026-01-30 10:00", 15, "2026-02-15 00:00"),  # last day Sat 14 Feb is a 调休 working day: stays
        ("2026-02-01 10:00", 15, "2026-02-25 00:00"),  # last day 16 Feb (春节): moves to Tue 24 Feb
    ],
)
def test_calendar_days_are_reckoned_as_the_law_reckons(received: str, days: int, due: str) -> None:
    assert CAL.calendar_days_due(at(received), days) == at(due)


def test_a_bank_closure_does_not_move_a_legal_deadline() -> None:
    closed = CAL.edited(closures={date(2026, 3, 17): "停业"})
    assert closed.day_kind(date(2026, 3, 17)) == (DayKind.closure, "停业")
    assert closed.calendar_days_due(at("2026-03-02 10:00"), 15) == at("2026-03-18 00:00")
    # a closure on a weekend is still a weekend for the law
    closed_sat = CAL.edited(closures={date(2026, 3, 21): "停业"})
    assert closed_sat.calendar_days_due(at("2026-03-06 09:00"), 15) == at("2026-03-24 00:00")
    # but business time skips it
    assert closed.add_business_minutes(at("2026-03-16 17:00"), 60) == at("2026-03-18 09:30")
    assert CAL.add_business_minutes(at("2026-03-16 17:00"), 60) == at("2026-03-17 09:30")  # unchanged


def test_the_15_day_limit_in_a_year_only_the_file_covers() -> None:
    cal = cal_2027()
    # received 23 January 2027: the 15th day is 7 February, inside the file's 春节 (5–11 Feb) → Fri 12 Feb
    assert cal.calendar_days_due(at("2027-01-23 15:00"), 15) == at("2027-02-13 00:00")
    with pytest.raises(NoHolidayData, match="2027"):
        CAL.calendar_days_due(at("2027-01-23 15:00"), 15)


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.empty_store
def test_cli_days_lists_each_day(cli: Any) -> None:
    result = cli("calendar", "days", "--from", "2026-02-13", "--to", "2026-02-16", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["day"], r["kind"], r["name"]) for r in rows] == [
        ("2026-02-13", "working", None),
        ("2026-02-14", "adjusted_working", "春节"),
        ("2026-02-15", "holiday", "春节"),
        ("2026-02-16", "holiday", "春节"),
    ]
    assert rows[1]["hours"] == "09:00-12:00 13:30-17:30"
    table = cli("calendar", "days", "--from", "2026-01-03", "--to", "2026-01-04")
    assert "调休上班" in table.stdout and "元旦" in table.stdout


@pytest.mark.empty_store
def test_cli_due(cli: Any) -> None:
    result = cli("calendar", "due", "2026-03-06 16:30", "--business-hours", "4")
    assert result.exit_code == 0 and result.stdout.startswith("2026-03-09 12:00")
    result = cli("calendar", "due", "2026-09-16T10:00", "--calendar-days", "15")
    assert result.stdout.startswith("2026-10-08 24:00")
    result = cli("calendar", "due", "2026-03-02 11:00", "--business-minutes", "120")
    assert result.stdout.startswith("2026-03-02 14:30")


@pytest.mark.empty_store
def test_cli_refuses_bad_input_and_years_without_data(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for args, message in [
        (("due", "2026-03-02 10:00"), "give exactly one of"),
        (("due", "2026-03-02 10:00", "--business-hours", "1", "--calendar-days", "2"), "give exactly one of"),
        (("due", "next tuesday", "--business-hours", "1"), "START: 'next tuesday' is neither a date"),
        (("due", "2027-03-01 10:00", "--business-hours", "4"), "no holiday data for 2027"),
        (("days", "--from", "2026-03-02", "--to", "2026-03-01"), "--to (2026-03-01) is before --from"),
        (("days", "--from", "2026-12-30", "--to", "2027-01-02"), "no holiday data for 2027"),
    ]:
        result = cli("calendar", *args)
        assert result.exit_code == 1, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    monkeypatch.setenv("OMNIBANK_HOLIDAYS_FILE", str(EXAMPLE))
    config.reset_settings()
    result = cli("calendar", "due", "2026-12-31 17:00", "--business-hours", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("2027-01-04 09:30")
    assert "provisional" in result.stderr


def test_an_edit_leaves_the_calendar_it_came_from_alone() -> None:
    base = BusinessCalendar(tz=TZ, years={2026: YearDays(closures={date(2026, 3, 3): "停业"})})
    assert not base.is_working_day(date(2026, 3, 3))
    edited = base.edited(workdays={date(2026, 3, 3): None}, closures={date(2026, 3, 4): "停业"})
    assert edited.is_working_day(date(2026, 3, 3)) and not edited.is_working_day(date(2026, 3, 4))
    assert not base.is_working_day(date(2026, 3, 3)) and base.is_working_day(date(2026, 3, 4))


# ------------------------------------------------------------- fast paths against a straightforward walk


def _ref_windows(cal: BusinessCalendar, d: date) -> list[tuple[datetime, datetime]]:
    def moment(minute: int) -> datetime:
        day, minute = (d + timedelta(days=1), 0) if minute == 24 * 60 else (d, minute)
        return datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=cal.tz).astimezone(
            UTC
        )

    return [(moment(w.start), moment(w.end)) for w in cal.day(d).windows]


def ref_between(cal: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Working time from a to b, day by day (the calendar's answer before its per-year index)."""
    if b < a:
        return -ref_between(cal, b, a)
    a, b = a.astimezone(UTC), b.astimezone(UTC)
    total, day, last = timedelta(0), a.astimezone(cal.tz).date(), b.astimezone(cal.tz).date()
    while day <= last:
        for opens, closes in _ref_windows(cal, day):
            total += max(min(closes, b) - max(opens, a), timedelta(0))
        day += timedelta(days=1)
    return total


def ref_add(cal: BusinessCalendar, start: datetime, delta: timedelta) -> datetime:
    """The moment delta of working time after start, window by window (at most 800 days)."""
    if not delta:
        return start.astimezone(cal.tz)
    cursor, day, remaining = start.astimezone(UTC), start.astimezone(cal.tz).date(), delta
    for _ in range(800):
        for opens, closes in _ref_windows(cal, day):
            if closes > cursor:
                room = closes - max(opens, cursor)
                if remaining <= room:
                    return (max(opens, cursor) + remaining).astimezone(cal.tz)
                remaining -= room
        day += timedelta(days=1)
    raise ConfigError(f"the business calendar has no working hours for 800 days after {day}")


def outcome(call: Any) -> object:
    try:
        return call()
    except (NoHolidayData, ConfigError) as exc:
        return type(exc), exc.message


_FESTIVALS = [
    at("2025-01-26 10:00"),
    at("2025-02-08 16:00"),
    at("2026-02-13 17:00"),
    at("2026-02-28 08:00"),
    at("2025-09-28 12:00"),
    at("2026-12-31 16:00"),
]  # 调休 days and the Spring Festival; the year's end
_INSTANTS = st.one_of(
    st.integers(0, 2 * 366 * 24 * 60 * 60 * 10**6).map(
        lambda us: at("2025-01-01 00:00") + timedelta(microseconds=us)
    ),
    st.tuples(st.sampled_from(_FESTIVALS), st.integers(-3 * 86_400, 3 * 86_400)).map(
        lambda p: p[0] + timedelta(seconds=p[1])
    ),
).map(lambda m: min(m, at("2026-12-31 23:59")))
_EDIT_DAYS = st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31))


@settings(max_examples=80, deadline=None)
@given(
    a=_INSTANTS,
    b=_INSTANTS,
    minutes=st.integers(0, 40 * 8 * 60),
    micros=st.integers(0, 10**6 - 1),
    closures=st.lists(_EDIT_DAYS, max_size=3),
    workdays=st.lists(_EDIT_DAYS, max_size=3),
    in_utc=st.booleans(),
)
def test_fast_business_time_equals_the_walk(
    a: datetime, b: datetime, minutes: int, micros: int, closures: list[date], workdays: list[date],
    in_utc: bool,
) -> None:  # fmt: skip
    cals = [BusinessCalendar(tz=TZ)]
    if closures or workdays:
        cals.append(
            cals[0].edited(closures={d: "停业" for d in closures}, workdays={d: None for d in workdays})
        )
    if in_utc:
        a, b = a.astimezone(UTC), b.astimezone(UTC)
    delta = timedelta(minutes=minutes, microseconds=micros)
    for cal in cals:
        assert outcome(lambda cal=cal: cal.business_time_between(a, b)) == outcome(
            lambda cal=cal: ref_between(cal, a, b)
        )
        assert outcome(lambda cal=cal: cal.add_business_time(a, delta)) == outcome(
            lambda cal=cal: ref_add(cal, a, delta)
        )


def test_fast_paths_keep_the_walks_errors_and_limits() -> None:
    # a year only partly known (workdays, no holidays): the walk decides, day by day
    partial = BusinessCalendar(
        tz=TZ, use_package=False, years={2026: YearDays(workdays={date(2026, 3, 2): None})}
    )
    assert partial.business_time_between(at("2026-03-02 09:00"), at("2026-03-02 10:00")) == timedelta(hours=1)
    with pytest.raises(NoHolidayData, match="2026"):
        partial.business_time_between(at("2026-03-02 09:00"), at("2026-03-03 10:00"))
    # no working hours at all: the search gives up after MAX_SEARCH_DAYS, naming the day
    idle = BusinessCalendar(tz=TZ, hours={i: () for i in range(7)}, adjusted_hours=())
    fast = outcome(lambda: idle.add_business_minutes(at("2020-01-02 10:00"), 1))
    assert fast == outcome(lambda: ref_add(idle, at("2020-01-02 10:00"), timedelta(minutes=1)))
    assert fast == (ConfigError, "the business calendar has no working hours for 800 days after 2022-03-12")
    late = outcome(lambda: idle.add_business_minutes(at("2025-01-02 10:00"), 1))
    assert late == (NoHolidayData, outcome(lambda: CAL.day(date(2027, 1, 1)))[1])  # 2027 is reached first
    with pytest.raises(NoHolidayData, match="2027"):
        CAL.add_business_minutes(at("2026-12-31 17:00"), 60)


@settings(max_examples=150, deadline=None)
@given(
    a=st.datetimes(min_value=datetime(2026, 3, 20), max_value=datetime(2026, 4, 5)),  # noqa: DTZ001
    span=st.integers(0, 4 * 24 * 60),
    minutes=st.integers(0, 3000),
)
def test_a_zone_with_summer_time_stays_exact(a: datetime, span: int, minutes: int) -> None:
    berlin = ZoneInfo("Europe/Berlin")  # 29 March 2026: 02:00 → 03:00
    hours = {i: parse_windows(["01:30-02:30", "09:00-17:00"]) for i in range(7)}
    cal = BusinessCalendar(tz=berlin, hours=hours)
    start = a.replace(tzinfo=berlin)
    end = start + timedelta(minutes=span)
    assert cal.business_time_between(start, end) == ref_between(cal, start, end)
    assert cal.add_business_minutes(start, minutes) == ref_add(cal, start, timedelta(minutes=minutes))


def test_a_calendar_pickles_as_what_it_was_built_from() -> None:
    cal = cal_2027().edited(closures={date(2027, 3, 22): "停业"})
    cal.add_business_minutes(at("2027-03-19 10:00"), 600)
    copy = pickle.loads(pickle.dumps(cal))
    assert copy.years == cal.years and copy.source == cal.source and copy.tz is cal.tz
    assert copy.add_business_minutes(at("2027-03-19 10:00"), 600) == cal.add_business_minutes(
        at("2027-03-19 10:00"), 600
    )
