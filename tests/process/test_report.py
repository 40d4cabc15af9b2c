"""`omnibank process report`: lead times over events sharing a case id, worked examples with known figures
(percentiles exact, business days across a weekend, the 2026 National Day holiday and an adjusted working
Saturday), open cases with their age, two periods side by side, errors that say what is wrong, and the demo's
loan process (about 21 days before its re-engineering, about 4 after)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from statistics import mean
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from omnibank.demo import loans
from omnibank.errors import AppError, InputRefused, NotFound
from omnibank.ingest.service import load_file
from omnibank.kit.dates import DateOutOfRange
from omnibank.process.report import (
    DAY_US,
    Period,
    ProcessReport,
    WorkCalendar,
    make_spec,
    parse_period,
    report,
)

TZ = ZoneInfo("Asia/Shanghai")
SUB, CHK, DIS = "loan.application_submitted", "loan.documents_checked", "loan.disbursed"
STEPS = (SUB, CHK, DIS)
AS_OF = datetime(2026, 12, 1, tzinfo=TZ)
NOW = datetime(2026, 12, 1, tzinfo=TZ)
D = Decimal


def ev(case: str | None, type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "event_id": f"{case}-{type_}-{at.isoformat()}",
        "type": type_,
        "customer_id": "C000001",
        "ts": at.isoformat(),
        **fields,
    }
    if case is not None:
        e["application_id"] = case
    return e


def case(name: str, start: datetime, *offsets: timedelta) -> list[dict[str, Any]]:
    """A case through the steps: each offset after the previous step."""
    events = [ev(name, SUB, start)]
    at = start
    for type_, offset in zip(STEPS[1:], offsets, strict=False):
        at = at + offset
        events.append(ev(name, type_, at))
    return events


def load(settings: Any, tmp_path: Path, events: list[dict[str, Any]]) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    result = load_file("events", path, settings=settings, progress=False)
    assert result.rejected == 0


def run(settings: Any, **kwargs: Any) -> ProcessReport:
    spec = kwargs.pop("spec", make_spec(SUB, DIS, steps=STEPS))
    kwargs.setdefault("as_of", AS_OF)
    return report(settings, spec, now=NOW, **kwargs)


H = timedelta(hours=1)
DAY = timedelta(days=1)
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)


@pytest.fixture
def worked(env: Any, tmp_path: Path) -> Any:
    """March: five cases, 12 h to check the documents, then 0.5, 1.5, 2.5, 3.5 and 9.5 days to disburse
    (end to end 1, 2, 3, 4 and 10 days); a repeated submission of M1 two days later that does not restart it;
    a case that is still open; an event without the case field. April: two fast cases (1 and 2 days)."""
    events: list[dict[str, Any]] = []
    for i, total in enumerate((1, 2, 3, 4, 10)):
        events += case(f"M{i + 1}", MONDAY + timedelta(minutes=i), 12 * H, (total - 0.5) * DAY)
    events.append(ev("M1", SUB, MONDAY + 2 * DAY))
    events += case("OPEN1", datetime(2026, 3, 20, 9, 0, tzinfo=TZ), 6 * H)
    events.append(ev(None, SUB, MONDAY))
    april = datetime(2026, 4, 6, 10, 0, tzinfo=TZ)
    events += case("A1", april, 12 * H, 12 * H)
    events += case("A2", april, 12 * H, 36 * H)
    load(env.settings, tmp_path, events)
    return env


def test_percentiles_per_step_and_end_to_end_are_exact(worked: Any) -> None:
    rep = run(worked.settings, period=Period(date(2026, 3, 1), date(2026, 3, 31)))
    fig = rep.main
    check, disburse = fig.steps
    assert [check.name, disburse.name] == [f"{SUB} → {CHK}", f"{CHK} → {DIS}"]
    assert (check.times.cases, check.times.p50, check.times.p90, check.times.max) == (
        6,
        D("0.5"),
        D("0.5"),
        D("0.5"),
    )
    # 0.5, 1.5, 2.5, 3.5, 9.5: p90 at rank 3.6 = 3.5 + 0.6 × 6
    t = disburse.times
    assert (t.cases, t.p50, t.p90, t.max) == (5, D("2.5"), D("7.1"), D("9.5"))
    whole = fig.end_to_end.times
    assert (whole.cases, whole.p50, whole.p90, whole.max) == (5, D("3.0"), D("7.6"), D("10.0"))
    assert fig.slowest is not None and fig.slowest.name == f"{CHK} → {DIS}"
    assert (fig.started, fig.completed, fig.open_cases) == (6, 5, 1)
    assert rep.without_case == 1


def test_open_cases_have_their_age_and_last_step(worked: Any) -> None:
    fig = run(worked.settings, period=Period(date(2026, 3, 1), date(2026, 3, 31))).main
    [open_case] = fig.oldest_open
    assert open_case.case_id == "OPEN1"
    assert open_case.last_step == CHK
    # 2026-03-20 09:00 → 2026-12-01 00:00
    assert open_case.age_days == D("255.6")
    assert fig.open_age.cases == 1 and fig.open_age.max == D("255.6")
    assert open_case.started == datetime(2026, 3, 20, 9, 0, tzinfo=TZ)


def test_as_of_reads_the_log_as_it_stood(worked: Any) -> None:
    """On 2026-03-05 12:00 the 4-day and the 10-day cases were still open."""
    fig = run(worked.settings, as_of=datetime(2026, 3, 5, 12, 0, tzinfo=TZ)).main
    assert (fig.started, fig.completed, fig.open_cases) == (5, 3, 2)
    assert [c.case_id for c in fig.oldest_open] == ["M4", "M5"]


def test_default_as_of_is_the_later_of_now_and_the_last_event(worked: Any) -> None:
    early = datetime(2026, 3, 1, tzinfo=TZ)
    rep = report(worked.settings, make_spec(SUB, DIS), now=early)
    assert rep.as_of == datetime(2026, 4, 8, 10, 0, tzinfo=TZ)  # A2 disbursed
    later = report(worked.settings, make_spec(SUB, DIS), now=NOW)
    assert later.as_of == NOW


def test_two_periods_side_by_side(worked: Any) -> None:
    rep = run(
        worked.settings,
        period=Period(date(2026, 3, 1), date(2026, 3, 31)),
        compare=parse_period("--compare", "2026-04-01..2026-04-30"),
    )
    assert rep.compare is not None
    b = rep.compare.end_to_end.times
    assert (b.cases, b.p50, b.p90, b.max) == (2, D("1.5"), D("1.9"), D("2.0"))
    assert rep.main.end_to_end.times.p50 == D("3.0")
    assert rep.compare.open_cases == 0


def test_compare_in_the_cli_as_json(worked: Any, cli: Any) -> None:
    result = cli(
        "process", "report", "--start", SUB, "--end", DIS, "--steps", ",".join(STEPS),
        "--from", "2026-03-01", "--to", "2026-03-31", "--compare", "2026-04-01..2026-04-30",
        "--as-of", "2026-11-30", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    p50 = next(r for r in rows if r["step"] == "end to end" and r["measure"] == "p50")
    assert (p50["days"], p50["days_compare"], p50["days_change"]) == ("3.0", "1.5", "-1.5")
    cases = next(r for r in rows if r["step"] == "end to end" and r["measure"] == "cases")
    assert (cases["days"], cases["days_compare"], cases["days_change"]) == (5, 2, -3)
    assert "slowest step" in result.stderr


def test_table_and_open_listing_in_the_cli(worked: Any, cli: Any) -> None:
    result = cli("process", "report", "--start", SUB, "--end", DIS, "--steps", ",".join(STEPS),
                 "--as-of", "2026-11-30")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "end to end" in result.stdout and "slowest step" in result.stdout and "OPEN1" in result.stdout
    listed = cli("process", "report", "--start", SUB, "--end", DIS, "--open", "--as-of", "2026-11-30",
                 "--format", "csv")  # fmt: skip
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "case_id,started,last_step,age_days,age_business_days"
    assert lines[1] == "OPEN1,2026-03-20T09:00:00+08:00,loan.application_submitted,255.6,173.6"


# -- business days -----------------------------------------------------------------------------------------


def _one(env: Any, tmp_path: Path, start: datetime, end: datetime) -> tuple[Decimal | None, Decimal | None]:
    load(env.settings, tmp_path, [ev("X", SUB, start), ev("X", DIS, end)])
    times = run(env.settings, spec=make_spec(SUB, DIS)).main.end_to_end.times
    return times.p50, times.business_p50


def test_business_days_across_a_weekend(env: Any, tmp_path: Path) -> None:
    """Friday 16:00 → Monday 10:00: 2.75 calendar days, Friday's 8 hours and Monday's 10 of working days."""
    friday = datetime(2026, 3, 6, 16, 0, tzinfo=TZ)
    assert _one(env, tmp_path, friday, friday + timedelta(days=2, hours=18)) == (D("2.8"), D("0.8"))


def test_business_days_across_national_day(env: Any, tmp_path: Path) -> None:
    """2026-09-30 16:00 → 2026-10-09 10:00: 1–7 October are holidays, 8 and 9 October working days."""
    start = datetime(2026, 9, 30, 16, 0, tzinfo=TZ)
    assert _one(env, tmp_path, start, datetime(2026, 10, 9, 10, 0, tzinfo=TZ)) == (D("8.8"), D("1.8"))


def test_business_days_count_an_adjusted_working_saturday(env: Any, tmp_path: Path) -> None:
    """Saturday 2026-10-10 is a working day (调休), Sunday the 11th is not: Friday noon → Monday noon is two
    business days."""
    start = datetime(2026, 10, 9, 12, 0, tzinfo=TZ)
    assert _one(env, tmp_path, start, start + 3 * DAY) == (D("3.0"), D("2.0"))


def test_a_year_without_holiday_data_is_an_error_naming_it(env: Any, tmp_path: Path) -> None:
    start = datetime(2026, 12, 30, 10, 0, tzinfo=TZ)
    load(env.settings, tmp_path, [ev("X", SUB, start), ev("X", DIS, start + 5 * DAY)])
    with pytest.raises(AppError, match="2027"):
        report(env.settings, make_spec(SUB, DIS), now=NOW)


@hsettings(max_examples=60, deadline=None)
@given(
    st.lists(st.booleans(), min_size=12, max_size=12),
    st.integers(0, 11 * 24 - 1),
    st.integers(0, 5 * 24),
)
def test_business_time_is_the_working_hours_in_between(work: list[bool], start_h: int, length_h: int) -> None:
    """Against a brute-force count hour by hour (on whole hours)."""
    first = 20_000
    cal = WorkCalendar(first, first + 11, lambda d: work[(d - date(1970, 1, 1)).days - first])
    end_h = min(start_h + length_h, 12 * 24 - 1)
    expected = sum(1 for h in range(start_h, end_h) if work[h // 24]) * 3_600_000_000
    base = first * DAY_US
    got = cal.business_us(
        np.array([base + start_h * 3_600_000_000]), np.array([base + end_h * 3_600_000_000])
    )
    assert int(got[0]) == expected


# -- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_says_what_is_wrong(worked: Any) -> None:
    s = worked.settings
    with pytest.raises(InputRefused, match=r"no loan.application_submitted event carries the field 'app_id'.*"
                       r"application_id"):  # fmt: skip
        run(s, spec=make_spec(SUB, DIS, case_field="app_id"))
    with pytest.raises(NotFound, match="no events of type loan.disbursd .*did you mean loan.disbursed"):
        run(s, spec=make_spec(SUB, "loan.disbursd"))
    with pytest.raises(InputRefused, match="--steps must begin with the --start type"):
        make_spec(SUB, DIS, steps=[CHK, DIS])
    with pytest.raises(InputRefused, match="--steps must begin .* and end with the --end type"):
        make_spec(SUB, DIS, steps=[SUB, CHK])
    with pytest.raises(InputRefused, match="lists loan.documents_checked twice"):
        make_spec(SUB, DIS, steps=[SUB, CHK, CHK, DIS])
    with pytest.raises(InputRefused, match="--case-field"):
        make_spec(SUB, DIS, case_field="a.b'--")
    with pytest.raises(InputRefused, match="--end: 'disbursed' is not an event type"):
        make_spec(SUB, "disbursed")
    with pytest.raises(InputRefused, match="ends before it begins"):
        Period(date(2026, 4, 1), date(2026, 3, 1))
    with pytest.raises(InputRefused, match="--compare: '2026-01-01' is not a period"):
        parse_period("--compare", "2026-01-01")
    with pytest.raises(DateOutOfRange, match="--compare: '2026-02-30' is not a date"):
        parse_period("--compare", "2026-01-01..2026-02-30")


def test_bad_input_in_the_cli_is_a_message(worked: Any, cli: Any) -> None:
    result = cli("process", "report", "--start", SUB, "--end", DIS, "--from", "2026-13-01")
    assert result.exit_code == 1
    assert "--from: '2026-13-01' is not a date in the form YYYY-MM-DD" in result.stderr
    result = cli("process", "report", "--start", "loan.nothing", "--end", DIS, "--as-of", "2026-11-30")
    assert result.exit_code == 1 and "no events of type loan.nothing" in result.stderr


def test_an_empty_log_says_there_are_no_events(env: Any) -> None:
    with pytest.raises(NotFound, match="no events of type loan.application_submitted"):
        run(env.settings)


# -- the demo's loan process -------------------------------------------------------------------------------


def _demo_events() -> list[dict[str, object]]:
    return loans.loan_events(seed=2026, first=date(2026, 1, 1), last=date(2026, 12, 31), customers=500, tz=TZ)


def test_demo_loans_take_about_21_days_before_and_4_after() -> None:
    events = _demo_events()
    assert events == _demo_events()  # deterministic for a seed
    by_case: dict[object, dict[object, datetime]] = {}
    for e in events:
        by_case.setdefault(e["application_id"], {})[e["type"]] = datetime.fromisoformat(str(e["ts"]))
    started = [c for c in by_case.values() if loans.STEPS[0] in c]
    assert 550 <= len(started) <= 650
    cut = datetime(2026, 7, 1, tzinfo=TZ)

    def lead(c: dict[object, datetime]) -> float:
        return (c[loans.STEPS[-1]] - c[loans.STEPS[0]]) / DAY

    done = [c for c in started if loans.STEPS[-1] in c]
    before = [lead(c) for c in done if c[loans.STEPS[0]] < cut]
    after = [lead(c) for c in done if c[loans.STEPS[0]] >= cut]
    assert 19 <= mean(before) <= 23
    assert 3 <= mean(after) <= 5
    assert 0.015 <= loans.open_cases(events) / len(started) <= 0.05
    assert max(datetime.fromisoformat(str(e["ts"])) for e in events) < datetime(2027, 1, 1, tzinfo=TZ)
    assert {str(e["customer_id"]) for e in events} <= {f"C{n:06d}" for n in range(1, 501)}


def test_the_report_shows_the_demo_reengineering(env: Any, tmp_path: Path) -> None:
    load(env.settings, tmp_path, _demo_events())
    rep = report(
        env.settings,
        make_spec(loans.STEPS[0], loans.STEPS[-1], steps=loans.STEPS),
        now=datetime(2026, 12, 31, 23, 59, tzinfo=TZ),
        period=Period(None, date(2026, 6, 30)),
        compare=Period(date(2026, 7, 1), date(2026, 12, 31)),
    )
    assert rep.compare is not None
    before, after = rep.main.end_to_end.times, rep.compare.end_to_end.times
    assert before.p50 is not None and after.p50 is not None
    assert D(17) <= before.p50 <= D(24) and D(3) <= after.p50 <= D(5)
    assert rep.main.slowest is not None and rep.main.slowest.to_type == "loan.approved"
    assert rep.compare.open_cases > 0
    assert chinese_calendar.is_workday(date(2026, 10, 10))  # the calendar the report used knows 调休
