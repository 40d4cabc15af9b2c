"""Process lead times (S4): how long the cases of a process take, step by step and end to end.

A *process* is any set of event types whose events share a case id in one of their fields, e.g. a loan's
``loan.application_submitted → loan.documents_checked → loan.approved → loan.disbursed`` with
``application_id``. Nothing about a process is declared in advance: the report reads the event log as it is.

How a case is reckoned (:func:`report`):

* a case starts at the first event of the start type carrying its case id; it ends at the first event of the
  end type at or after that start (later repeats of a step, e.g. a re-submission, do not restart it);
* an intermediate step is reached at the first event of its type at or after the previous step reached (and
  not after the end): a case that skipped a step has no lead time for the two steps around it, and is still
  counted end to end;
* per step: the time from one step's first event to the next one's; end to end: from start to end;
* **calendar days**: the elapsed time / 24 h; **business days**: the elapsed time that falls on working days
  of the bank's business calendar / 24 h, so that a Friday 16:00 → Monday 10:00 step takes 2.75 calendar
  days and 0.75 business days (Friday's 8 hours and Monday's 10), and a week-long statutory holiday counts
  nothing; days are bank-local (``settings.tz``);
* p50 and p90 interpolate linearly between the two nearest ranks (numpy's and DuckDB's ``quantile_cont``
  default), reckoned exactly in microseconds and rounded half up to one decimal of a day;
* the slowest step is the one with the highest calendar p50;
* open cases: started, not ended as of the report's moment (``as_of``), with their age;
* periods (``--from/--to``, ``--compare``) select cases by the bank-local day of their start.

Only events up to ``as_of`` are read: the report shows the process as it stood then. By default ``as_of``
is the later of now and the process's last event, so a log that runs ahead of the clock (the demo's year)
is read whole.

Speed: one pass over the log with the type filter pushed into the Parquet scan (the case id is extracted
from the stored line only for the process's events), one grouped join per step in DuckDB, then numpy over
one row per case; ``benchmarks/bench_process.py`` measures it over 10M events.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from omnibank.config import Settings
from omnibank.errors import InputRefused, NotFound
from omnibank.events.log import EventLog, sql_string
from omnibank.kit.dates import parse_date

#: the data contract's event type pattern
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
DEFAULT_CASE_FIELD = "application_id"
DAY_US = 86_400_000_000
_NULL = np.iinfo(np.int64).min  # a step not reached
_TENTH = Decimal("0.1")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)

Int64s = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
WorkingDay = Callable[[date], bool]


# ------------------------------------------------------------------------------------------------ input


@dataclass(frozen=True)
class ProcessSpec:
    """What the report measures: the step types in order (the first is the start, the last the end) and the
    field holding the case id."""

    steps: tuple[str, ...]
    case_field: str = DEFAULT_CASE_FIELD

    @property
    def start(self) -> str:
        return self.steps[0]

    @property
    def end(self) -> str:
        return self.steps[-1]


def make_spec(
    start: str, end: str, *, steps: Sequence[str] | None = None, case_field: str = DEFAULT_CASE_FIELD
) -> ProcessSpec:
    """A checked :class:`ProcessSpec`; :class:`InputRefused` naming the option that is wrong."""
    field = case_field.strip()
    if not FIELD_RE.fullmatch(field):
        raise InputRefused(
            f"--case-field: {case_field!r} is not a field name (letters, digits and _, e.g. application_id)"
        )
    start, end = start.strip(), end.strip()
    for option, value in (("--start", start), ("--end", end)):
        if not TYPE_RE.fullmatch(value):
            raise InputRefused(f"{option}: {value!r} is not an event type (e.g. loan.application_submitted)")
    if start == end:
        raise InputRefused(f"--start and --end are the same type ({start}): a process needs two")
    if steps is None or not [s for s in steps if s.strip()]:
        return ProcessSpec((start, end), field)
    listed = tuple(s.strip() for s in steps)
    for value in listed:
        if not TYPE_RE.fullmatch(value):
            raise InputRefused(f"--steps: {value!r} is not an event type (e.g. loan.approved)")
    if listed[0] != start or listed[-1] != end:
        raise InputRefused(
            f"--steps must begin with the --start type ({start}) and end with the --end type ({end}); "
            f"got {' → '.join(listed)}"
        )
    seen = [s for i, s in enumerate(listed) if s in listed[:i]]
    if seen:
        raise InputRefused(f"--steps lists {seen[0]} twice: each step is one event type, once")
    return ProcessSpec(listed, field)


@dataclass(frozen=True)
class Period:
    """Cases whose start falls on the bank-local days ``first`` … ``last`` (inclusive; None: open-ended)."""

    first: date | None = None
    last: date | None = None

    def __post_init__(self) -> None:
        if self.first is not None and self.last is not None and self.first > self.last:
            raise InputRefused(f"the period {self.label} ends before it begins")

    @property
    def label(self) -> str:
        if self.first is None and self.last is None:
            return "all"
        return f"{self.first or ''}..{self.last or ''}"

    def bounds(self) -> tuple[int, int]:
        """Days since 1970-01-01 (inclusive, exclusive)."""
        lo = (self.first - _EPOCH_DAY).days if self.first else -(1 << 40)
        hi = (self.last - _EPOCH_DAY).days + 1 if self.last else 1 << 40
        return lo, hi


def parse_period(option: str, text: str) -> Period:
    """``2026-01-01..2026-06-30`` (both days included)."""
    first, sep, last = text.strip().partition("..")
    if not sep or not first.strip() or not last.strip():
        raise InputRefused(
            f"{option}: {text!r} is not a period; write FIRST..LAST, e.g. 2026-01-01..2026-06-30"
        )
    return Period(parse_date(option, first), parse_date(option, last))


# ------------------------------------------------------------------------------------------------ output


@dataclass(frozen=True)
class LeadTimes:
    """Lead times of some cases, in days to one decimal (None when there is no case)."""

    cases: int
    p50: Decimal | None = None
    p90: Decimal | None = None
    max: Decimal | None = None
    business_p50: Decimal | None = None
    business_p90: Decimal | None = None
    business_max: Decimal | None = None


@dataclass(frozen=True)
class StepTimes:
    """A step (``from_type → to_type``), or the whole process (``end to end``), and its lead times."""

    from_type: str
    to_type: str
    times: LeadTimes
    end_to_end: bool = False

    @property
    def name(self) -> str:
        return "end to end" if self.end_to_end else f"{self.from_type} → {self.to_type}"


@dataclass(frozen=True)
class OpenCase:
    case_id: str
    started: datetime
    last_step: str  # the last step reached
    age_days: Decimal
    age_business_days: Decimal


@dataclass(frozen=True)
class PeriodFigures:
    period: Period
    started: int  # cases started in the period
    completed: int  # of those, ended by as_of
    steps: list[StepTimes]
    end_to_end: StepTimes
    slowest: StepTimes | None  # the step with the highest p50 (None for a two-type process or no cases)
    open_cases: int
    open_age: LeadTimes  # the open cases' ages
    oldest_open: list[OpenCase]  # the oldest open cases, oldest first (at most ``open_limit``)


@dataclass(frozen=True)
class ProcessReport:
    spec: ProcessSpec
    as_of: datetime
    main: PeriodFigures
    compare: PeriodFigures | None
    events: int  # events of the process's types read
    without_case: int  # of those, without the case field


# ------------------------------------------------------------------------------------------------ calendar


def working_day_function(settings: Settings) -> tuple[WorkingDay, str]:
    """The bank's business calendar, day by day, and its name: ``omnibank.service.calendar`` (statutory
    holidays and adjusted working days, the bank's holiday file and closures) when it is there, else China's
    statutory calendar from the ``chinese_calendar`` package. A year without holiday data is an error naming
    the year, never a weekends-only guess."""
    try:
        from omnibank.service.calendar import bank_calendar
    except ImportError:  # pragma: no cover - the service desk's calendar ships with this module
        pass
    else:
        return _checked(bank_calendar(settings).is_working_day), "omnibank.service.calendar"
    import chinese_calendar  # type: ignore[import-untyped]

    return _checked(chinese_calendar.is_workday), "chinese_calendar"


def _checked(fn: Callable[[date], Any]) -> WorkingDay:
    def working(day: date) -> bool:
        try:
            return bool(fn(day))
        except NotImplementedError as exc:
            raise InputRefused(
                f"business days: the business calendar has no holiday data for {day.year} ({exc}); "
                "give --as-of and periods within the years it covers"
            ) from None

    return working


class WorkCalendar:
    """Working days over a range of days (days since 1970-01-01), for vectorised business time."""

    def __init__(self, first_day: int, last_day: int, working: WorkingDay):
        self.first = first_day
        days = [_EPOCH_DAY + timedelta(days=d) for d in range(first_day, last_day + 1)]
        self.work = np.fromiter((working(d) for d in days), dtype=np.int64, count=len(days))
        self.cum = np.concatenate(([0], np.cumsum(self.work)))  # working days before index k

    def business_us(self, start: Int64s, end: Int64s) -> Int64s:
        """Microseconds of ``start`` … ``end`` (bank-local wall-clock microseconds, start ≤ end) that fall on
        working days."""
        ds = start // DAY_US - self.first
        de = end // DAY_US - self.first
        ws, we = self.work[ds], self.work[de]
        spread = (
            ws * (DAY_US - start % DAY_US) + (self.cum[de] - self.cum[ds + 1]) * DAY_US + we * (end % DAY_US)
        )
        result: Int64s = np.where(ds == de, ws * (end - start), spread)
        return result


# ------------------------------------------------------------------------------------------------ the report


def report(
    settings: Settings,
    spec: ProcessSpec,
    *,
    now: datetime,
    period: Period | None = None,
    compare: Period | None = None,
    as_of: datetime | None = None,
    open_limit: int = 20,
    working_day: WorkingDay | None = None,
) -> ProcessReport:
    """Lead times of ``spec`` over the event log for ``period`` (and ``compare``): see the module."""
    if now.tzinfo is None or (as_of is not None and as_of.tzinfo is None):
        raise ValueError("report needs aware datetimes")
    period = period or Period()
    log = EventLog(settings)
    con = log.connect()
    try:
        return _report(con, log, spec, now, period, compare, as_of, open_limit, working_day, settings)
    finally:
        con.close()


def _report(
    con: Any,
    log: EventLog,
    spec: ProcessSpec,
    now: datetime,
    period: Period,
    compare: Period | None,
    as_of: datetime | None,
    open_limit: int,
    working_day: WorkingDay | None,
    settings: Settings,
) -> ProcessReport:
    scan = log.scan_sql()
    field = spec.case_field
    case_expr = (
        "customer_id"
        if field == "customer_id"
        else f"json_extract_string(payload, {sql_string('$.' + field)})"
    )
    types = ", ".join(sql_string(t) for t in spec.steps)
    step_of = " ".join(f"WHEN {sql_string(t)} THEN {i}" for i, t in enumerate(spec.steps))
    limit = f" AND ts <= make_timestamptz({_us(as_of)}::BIGINT)" if as_of is not None else ""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE pe AS "
        f"SELECT CASE type {step_of} END::INTEGER AS step, {case_expr} AS case_id, epoch_us(ts) AS us, "
        f"epoch_us(ts::TIMESTAMP) AS lus FROM {scan} WHERE type IN ({types}){limit}"
    )
    counts = {
        int(step): (int(n), int(with_case))
        for step, n, with_case in con.execute(
            "SELECT step, count(*), count(case_id) FROM pe GROUP BY step"
        ).fetchall()
    }
    for i, kind in enumerate(spec.steps):
        if i not in counts:
            raise NotFound(_no_events(con, scan, kind, as_of))
    if counts[0][1] == 0:
        raise InputRefused(_no_field(con, scan, spec.start, field))
    events = sum(n for n, _ in counts.values())
    without_case = sum(n - w for n, w in counts.values())
    if as_of is None:
        last_us = con.execute("SELECT max(us) FROM pe").fetchall()[0][0]
        as_of = max(now, _EPOCH + timedelta(microseconds=int(last_us)))
    as_of_us = _us(as_of)
    as_of_local = _local_us(as_of.astimezone(settings.tz))

    k = len(spec.steps)
    e = k - 1
    con.execute(
        "CREATE OR REPLACE TEMP TABLE cases AS SELECT case_id, min(us) AS t0, arg_min(lus, us) AS l0 "
        "FROM pe WHERE step = 0 AND case_id IS NOT NULL GROUP BY case_id"
    )
    _add_step(con, e, "p.us >= c.t0")
    for i in range(1, e):
        prev = "coalesce(" + ", ".join(f"c.t{j}" for j in range(i - 1, -1, -1)) + ")" if i > 1 else "c.t0"
        _add_step(con, i, f"p.us >= {prev} AND (c.t{e} IS NULL OR p.us <= c.t{e})")
    cols = ", ".join(f"coalesce(t{i}, {_NULL}) AS t{i}, coalesce(l{i}, {_NULL}) AS l{i}" for i in range(k))
    arrays = con.execute(f"SELECT {cols} FROM cases").fetchnumpy()
    t = [np.asarray(arrays[f"t{i}"], dtype=np.int64) for i in range(k)]
    loc = [np.asarray(arrays[f"l{i}"], dtype=np.int64) for i in range(k)]

    start_day = loc[0] // DAY_US
    periods = [period] if compare is None else [period, compare]
    masks = [_in(start_day, p) for p in periods]
    chosen = np.logical_or.reduce(masks) if masks else np.zeros(len(start_day), dtype=bool)
    cal = _calendar(loc, chosen, as_of_local, working_day or working_day_function(settings)[0])

    def figures(p: Period, mask: Bools) -> PeriodFigures:
        steps = []
        for i in range(e):
            ok = mask & (t[i] != _NULL) & (t[i + 1] != _NULL)
            steps.append(StepTimes(spec.steps[i], spec.steps[i + 1], _lead_times(t, loc, i, i + 1, ok, cal)))
        done = mask & (t[e] != _NULL)
        whole = StepTimes(spec.start, spec.end, _lead_times(t, loc, 0, e, done, cal), end_to_end=True)
        slowest = None
        if e > 1:
            timed = [s for s in steps if s.times.p50 is not None]
            slowest = max(timed, key=lambda s: s.times.p50 or Decimal(0)) if timed else None
        still = mask & (t[e] == _NULL)
        ages = _times(
            as_of_us - t[0][still], cal.business_us(loc[0][still], np.full(int(still.sum()), as_of_local))
        )
        oldest = _oldest_open(con, spec, p, open_limit, as_of_us, as_of_local, cal, settings)
        return PeriodFigures(
            p, int(mask.sum()), int(done.sum()), steps, whole, slowest, int(still.sum()), ages, oldest
        )

    main = figures(period, masks[0])
    other = figures(compare, masks[1]) if compare is not None else None
    return ProcessReport(spec, as_of, main, other, events, without_case)


def _add_step(con: Any, i: int, condition: str) -> None:
    """Add ``t{i}``, ``l{i}`` to the cases: the first event of step ``i`` matching ``condition``."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE cases AS SELECT c.*, s.t AS t{i}, s.l AS l{i} FROM cases c LEFT JOIN ("
        "SELECT c.case_id, min(p.us) AS t, arg_min(p.lus, p.us) AS l FROM cases c JOIN pe p "
        f"ON p.case_id = c.case_id AND p.step = {i} AND {condition} GROUP BY c.case_id) s USING (case_id)"
    )


def _in(start_day: Int64s, p: Period) -> Bools:
    lo, hi = p.bounds()
    result: Bools = (start_day >= lo) & (start_day < hi)
    return result


def _calendar(loc: list[Int64s], chosen: Bools, as_of_local: int, working_day: WorkingDay) -> WorkCalendar:
    """The working days from the first chosen case's start to the last day any of them reaches (or as_of)."""
    days = [as_of_local // DAY_US]
    for column in loc:
        present = column[chosen & (column != _NULL)]
        if len(present):
            days += [int(present.min()) // DAY_US, int(present.max()) // DAY_US]
    return WorkCalendar(min(days), max(days), working_day)


def _lead_times(
    t: list[Int64s], loc: list[Int64s], a: int, b: int, ok: Bools, cal: WorkCalendar
) -> LeadTimes:
    return _times(t[b][ok] - t[a][ok], cal.business_us(loc[a][ok], loc[b][ok]))


def _times(calendar_us: Int64s, business_us: Int64s) -> LeadTimes:
    n = len(calendar_us)
    if n == 0:
        return LeadTimes(0)
    c, b = _quantiles(calendar_us), _quantiles(business_us)
    return LeadTimes(n, c[0], c[1], c[2], b[0], b[1], b[2])


def _quantiles(values: Int64s) -> tuple[Decimal, Decimal, Decimal]:
    """p50, p90 and max in days, exact (linear interpolation between ranks), rounded half up to 0.1."""
    a = np.sort(values)
    n = len(a)

    def q(share: Fraction) -> Decimal:
        h = (n - 1) * share
        lo = int(h)
        rest = h - lo
        v = Fraction(int(a[lo]))
        if rest:
            v += (int(a[lo + 1]) - int(a[lo])) * rest
        return days(v)

    return q(Fraction(1, 2)), q(Fraction(9, 10)), days(Fraction(int(a[-1])))


def days(us: Fraction | int) -> Decimal:
    """Microseconds as days, rounded half up to one decimal."""
    v = Fraction(us) / DAY_US
    return (Decimal(v.numerator) / Decimal(v.denominator)).quantize(_TENTH, rounding=ROUND_HALF_UP)


def _oldest_open(
    con: Any,
    spec: ProcessSpec,
    p: Period,
    limit: int,
    as_of_us: int,
    as_of_local: int,
    cal: WorkCalendar,
    settings: Settings,
) -> list[OpenCase]:
    if limit <= 0:
        return []
    e = len(spec.steps) - 1
    lo, hi = p.bounds()
    reached = " ".join(f"WHEN t{i} IS NOT NULL THEN {i}" for i in range(e - 1, 0, -1))
    step = f"CASE {reached} ELSE 0 END" if reached else "0"
    rows = con.execute(
        f"SELECT case_id, t0, l0, {step} AS reached FROM cases WHERE t{e} IS NULL "
        f"AND l0 >= {lo} * {DAY_US}::HUGEINT AND l0 < {hi} * {DAY_US}::HUGEINT "
        f"ORDER BY t0, case_id LIMIT {int(limit)}"
    ).fetchall()
    if not rows:
        return []
    starts = np.array([r[2] for r in rows], dtype=np.int64)
    business = cal.business_us(starts, np.full(len(rows), as_of_local, dtype=np.int64))
    return [
        OpenCase(
            case_id=str(case_id),
            started=(_EPOCH + timedelta(microseconds=int(t0))).astimezone(settings.tz),
            last_step=spec.steps[int(reached)],
            age_days=days(as_of_us - int(t0)),
            age_business_days=days(int(b)),
        )
        for (case_id, t0, _, reached), b in zip(rows, business, strict=True)
    ]


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _local_us(moment: datetime) -> int:
    """Bank-local wall-clock microseconds (as DuckDB's ``epoch_us(ts::TIMESTAMP)`` gives them)."""
    return (moment.replace(tzinfo=None) - _EPOCH.replace(tzinfo=None)) // timedelta(microseconds=1)


def _no_events(con: Any, scan: str, wanted: str, as_of: datetime | None) -> str:
    known = [
        row[0] for row in con.execute(f"SELECT DISTINCT type FROM {scan} WHERE type IS NOT NULL").fetchall()
    ]
    near = difflib.get_close_matches(wanted, known, n=3, cutoff=0.6)
    when = f" up to {as_of.isoformat()}" if as_of is not None else ""
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return f"no events of type {wanted} in the event log{when}{hint}"


def _no_field(con: Any, scan: str, start: str, field: str) -> str:
    rows = con.execute(
        f"SELECT DISTINCT unnest(json_keys(payload)) FROM (SELECT payload FROM {scan} "
        f"WHERE type = {sql_string(start)} LIMIT 1000)"
    ).fetchall()
    fields = sorted(str(r[0]) for r in rows if r[0] not in ("event_id", "type", "ts"))
    return (
        f"--case-field: no {start} event carries the field {field!r}; its events carry: "
        f"{', '.join(fields) or 'no fields'}"
    )


__all__ = [
    "DEFAULT_CASE_FIELD",
    "LeadTimes",
    "OpenCase",
    "Period",
    "PeriodFigures",
    "ProcessReport",
    "ProcessSpec",
    "StepTimes",
    "WorkCalendar",
    "make_spec",
    "parse_period",
    "report",
    "working_day_function",
]
