"""The bank's business calendar: working hours, China's statutory holidays and adjusted working days (调休),
the bank's own closures, and the two ways the service desk counts time on them.

Why it is built this way
* **Statutory days come from data, never from a guess.** The ``chinese-calendar`` package carries the State
  Council's notices up to its last year (2026 in 1.11); the bank's holiday file (``OMNIBANK_HOLIDAYS_FILE``,
  YAML, see ``examples/service/holidays-2027.yaml``) extends it with the next year and overrides it date by
  date. A day in a year that neither covers is :class:`NoHolidayData`, naming the year: a weekends-only guess
  would silently move every due date around the Spring Festival.
* **Two clocks.** Business time counts only the working windows of working days (``add_business_minutes``,
  ``business_minutes_between``). Calendar days are reckoned as the law reckons a period
  (``calendar_days_due``): the day of receipt does not count, the period ends at 24:00 of its last day, and a
  last day that is a day off (a weekend or a statutory holiday; a 调休 working day counts as working) moves to
  24:00 of the first working day after it. A bank closure is not a legal day off: it does not move a
  regulator's deadline.
* **Immutable.** A calendar never changes after it is built (edits return a new one, :meth:`edited`), so its
  per-day cache can never serve a stale answer, and SLA state computed with it is a pure function.

All datetimes are aware; days and working windows are bank-local (``settings.tz``); results are returned in
the bank's zone. Arithmetic is done in UTC, exact to the microsecond (``timedelta``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from chinese_calendar.constants import Holiday as _PkgHoliday  # type: ignore[import-untyped]
from chinese_calendar.constants import holidays as _PKG_HOLIDAYS
from chinese_calendar.constants import workdays as _PKG_WORKDAYS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from omnibank.config import Settings, get_settings
from omnibank.errors import ConfigError, InputRefused
from omnibank.kit.loading import read_text_file

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PACKAGE_YEARS = (min(_PKG_HOLIDAYS).year, max(_PKG_HOLIDAYS).year)
MAX_SEARCH_DAYS = 800  # a calendar without a working window for this long is a mistake, not a due date
_SPAN_MAX_DAYS = 31
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_MINUTE_US = 60_000_000


def utc_micros(moment: datetime) -> int:
    """An aware moment as whole microseconds since 1970-01-01 UTC (exact)."""
    return (moment - _EPOCH) // _US


def from_utc_micros(micros: int) -> datetime:
    """The UTC moment ``micros`` microseconds after 1970-01-01 UTC."""
    return _EPOCH + timedelta(microseconds=micros)


class NoHolidayData(ConfigError):
    """A day was needed in a year for which neither the package nor the bank's holiday file has data."""

    code = "no_holiday_data"


class DayKind(StrEnum):
    working = "working"
    weekend = "weekend"
    holiday = "holiday"  # statutory (or declared in the bank's file as one)
    adjusted_working = "adjusted_working"  # 调休: a weekend day that is a working day
    closure = "closure"  # the bank's own day off (not a legal one)


KIND_LABELS = {
    DayKind.working: "工作日",
    DayKind.weekend: "周末",
    DayKind.holiday: "节假日",
    DayKind.adjusted_working: "调休上班",
    DayKind.closure: "停业",
}


# --------------------------------------------------------------------------------------- working hours


@dataclass(frozen=True, order=True)
class Window:
    """A working window of a day, in minutes after local midnight: [start, end)."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _clock_minutes(text: str) -> int:
    hh, sep, mm = text.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2 or len(hh) > 2:
        raise ValueError(f"{text!r} is not a time HH:MM")
    value = int(hh) * 60 + int(mm)
    if int(mm) >= 60 or value > 24 * 60:
        raise ValueError(f"{text!r} is not a time between 00:00 and 24:00")
    return value


def parse_windows(texts: Sequence[str]) -> tuple[Window, ...]:
    """``["09:00-12:00", "13:30-17:30"]`` as windows: each HH:MM-HH:MM (end may be 24:00), in order, apart."""
    windows = []
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not a window HH:MM-HH:MM (quote it in YAML)")
        start, sep, end = text.partition("-")
        if not sep:
            raise ValueError(f"{text!r} is not a window HH:MM-HH:MM")
        window = Window(_clock_minutes(start), _clock_minutes(end))
        if window.end <= window.start:
            raise ValueError(f"{text!r}: a window ends after it starts (and does not wrap midnight)")
        windows.append(window)
    windows.sort()
    for before, after in zip(windows, windows[1:], strict=False):
        if after.start < before.end:
            raise ValueError(f"windows {before} and {after} overlap")
    return tuple(windows)


_DAY = parse_windows(["09:00-12:00", "13:30-17:30"])
DEFAULT_HOURS: dict[int, tuple[Window, ...]] = {i: (_DAY if i < 5 else ()) for i in range(7)}


# ------------------------------------------------------------------------------ the bank's holiday file


@dataclass(frozen=True)
class YearDays:
    """One year of the bank's holiday file: dates with their names."""

    holidays: Mapping[date, str] = field(default_factory=dict)
    workdays: Mapping[date, str | None] = field(default_factory=dict)
    closures: Mapping[date, str] = field(default_factory=dict)
    provisional: bool = False

    @property
    def statutory(self) -> bool:
        """Whether the year carries statutory data (at least one holiday); closures alone do not count."""
        return bool(self.holidays)


class _Span(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    day: date | None = Field(default=None, alias="date")
    from_: date | None = Field(default=None, alias="from")
    to: date | None = None
    name: str = Field(min_length=1, max_length=40)

    @model_validator(mode="after")
    def _one_way(self) -> _Span:
        if self.day is not None:
            if self.from_ is not None or self.to is not None:
                raise ValueError("give either date or from/to, not both")
        elif self.from_ is None or self.to is None:
            raise ValueError("give date, or both from and to")
        elif self.to < self.from_:
            raise ValueError(f"to ({self.to}) is before from ({self.from_})")
        elif (self.to - self.from_).days >= _SPAN_MAX_DAYS:
            raise ValueError(f"from/to spans more than {_SPAN_MAX_DAYS} days")
        return self

    def days(self) -> list[date]:
        if self.day is not None:
            return [self.day]
        assert self.from_ is not None
        assert self.to is not None
        return [self.from_ + timedelta(days=i) for i in range((self.to - self.from_).days + 1)]


class _Workday(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    day: date = Field(alias="date")
    name: str | None = Field(default=None, min_length=1, max_length=40)


class _Year(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provisional: bool = False
    holidays: list[_Span] = Field(default_factory=list)
    workdays: list[date | _Workday] = Field(default_factory=list)
    closures: list[_Span] = Field(default_factory=list)


class _HolidayFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hours: dict[str, list[str]] | None = None
    years: dict[int, _Year] = Field(default_factory=dict)


@dataclass(frozen=True)
class HolidayFile:
    """The bank's holiday file, checked: working hours (None: the defaults) and per-year dates."""

    source: str
    hours: dict[int, tuple[Window, ...]] | None
    adjusted_hours: tuple[Window, ...] | None
    years: dict[int, YearDays]


class _TextDates(yaml.SafeLoader):
    """YAML whose dates stay text, for Pydantic to read: ``2027-02-30`` is then an error naming its field."""


def _date_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_TextDates.add_constructor("tag:yaml.org,2002:timestamp", _date_text)


def load_holiday_file(path: Path) -> HolidayFile:
    """Read and check the bank's holiday file; a problem is named with the file, the year and the field."""
    return parse_holiday_file(read_text_file(path), source=str(path))


def parse_holiday_file(text: str, *, source: str = "holiday file") -> HolidayFile:
    """The bank's holiday file given as YAML text (InputRefused naming ``source``, the year and the field)."""
    try:
        raw = yaml.load(text, Loader=_TextDates)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise InputRefused(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if raw is None:
        raw = {}
    try:
        model = _HolidayFile.model_validate(raw)
    except ValidationError as exc:
        listed = [_problem(list(e["loc"]), str(e["msg"])) for e in exc.errors() if not _other_member(e)]
        raise InputRefused(f"{source}: holiday file refused:\n  " + "\n  ".join(listed)) from None
    problems: list[str] = []
    hours, adjusted = _hours(model.hours, problems)
    years = {year: _year_days(year, spec, problems) for year, spec in sorted(model.years.items())}
    if problems:
        raise InputRefused(f"{source}: holiday file refused:\n  " + "\n  ".join(problems))
    return HolidayFile(source=source, hours=hours, adjusted_hours=adjusted, years=years)


def _other_member(error: Any) -> bool:
    """Whether an error is about the member of "a date, or {date, name}" that the input was not meant as."""
    loc = list(error["loc"])
    if len(loc) < 5 or loc[2] != "workdays":
        return False
    return (
        loc[4] == "date" and error["type"] != "missing" and len(loc) == 5 and isinstance(error["input"], dict)
    ) or (loc[4] == "_Workday" and error["type"] == "model_type")


def _problem(loc: list[Any], msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == "years":
        rest = loc[2:]
        if len(rest) > 2 and rest[0] == "workdays" and rest[2] in ("date", "_Workday"):
            del rest[2]  # which member of "a date, or {date, name}" pydantic tried
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest).lstrip(".")
        return f"year {loc[1]}: {where}: {msg}" if where else f"year {loc[1]}: {msg}"
    where = ".".join(str(p) for p in loc)
    return f"{where}: {msg}" if where else msg


def _hours(
    spec: dict[str, list[str]] | None, problems: list[str]
) -> tuple[dict[int, tuple[Window, ...]] | None, tuple[Window, ...] | None]:
    if spec is None:
        return None, None
    hours = dict(DEFAULT_HOURS)
    adjusted: tuple[Window, ...] | None = None
    for key, texts in spec.items():
        try:
            windows = parse_windows(texts)
        except ValueError as exc:
            problems.append(f"hours.{key}: {exc}")
            continue
        if key == "adjusted":
            adjusted = windows
        elif key in WEEKDAYS:
            hours[WEEKDAYS.index(key)] = windows
        else:
            problems.append(f"hours.{key}: not a day; use {', '.join(WEEKDAYS)} or adjusted (调休 days)")
    return hours, adjusted


def _year_days(year: int, spec: _Year, problems: list[str]) -> YearDays:
    if not 2000 <= year <= 2100:
        problems.append(f"year {year}: not a year between 2000 and 2100")
    seen: dict[date, str] = {}

    def take(d: date, where: str) -> bool:
        if d.year != year:
            problems.append(f"year {year}: {where}: {d} is not in {year}")
            return False
        if d in seen:
            problems.append(f"year {year}: {where}: {d} is already listed in {seen[d]}")
            return False
        seen[d] = where
        return True

    holidays: dict[date, str] = {}
    for i, span in enumerate(spec.holidays):
        for d in span.days():
            if take(d, f"holidays[{i}]"):
                holidays[d] = span.name
    workdays: dict[date, str | None] = {}
    for i, item in enumerate(spec.workdays):
        d, name = (item, None) if isinstance(item, date) else (item.day, item.name)
        if take(d, f"workdays[{i}]"):
            workdays[d] = name
    closures: dict[date, str] = {}
    for i, span in enumerate(spec.closures):
        for d in span.days():
            if take(d, f"closures[{i}]"):
                closures[d] = span.name
    return YearDays(holidays=holidays, workdays=workdays, closures=closures, provisional=spec.provisional)


# ------------------------------------------------------------------------------------------ the calendar


@dataclass(frozen=True)
class DayInfo:
    day: date
    kind: DayKind
    name: str | None
    windows: tuple[Window, ...]
    source: str  # "package" or the holiday file it came from

    @property
    def working(self) -> bool:
        return bool(self.windows)


def _package_name(english: str) -> str:
    try:
        return str(_PkgHoliday(english).chinese)
    except ValueError:
        return english


class _YearIndex:
    """One year of working windows as integer UTC microseconds, with the working time before each window.

    Built only for a year whose every day has data and a constant UTC offset (a plain 24-hour day), so
    that the windows, in order, never overlap and the walk's day-by-day answer is the index's answer;
    any other year is left to the walk."""

    __slots__ = ("year", "first_day", "lo", "hi", "starts", "opens", "closes", "before", "after", "wday",
                 "total", "base")  # fmt: skip

    def __init__(self, year: int, first_day: int, starts: list[int], windows: list[tuple[int, int, int]]):
        self.year = year
        self.first_day = first_day  # ordinal of 1 January
        self.starts = starts  # UTC µs of each local midnight, and of the next year's first
        self.lo, self.hi = starts[0], starts[-1]
        self.opens = [w[0] for w in windows]
        self.closes = [w[1] for w in windows]
        self.wday = [w[2] for w in windows]
        self.before: list[int] = []
        self.after: list[int] = []
        total = 0
        for opens, closes, _ in windows:
            self.before.append(total)
            total += closes - opens
            self.after.append(total)
        self.total = total
        self.base: int | None = None  # working time before this year from the calendar's origin (worked_us)

    def worked(self, t: int) -> int:
        """Working microseconds of this year before ``t``."""
        k = bisect_right(self.opens, t) - 1
        if k < 0:
            return 0
        if t < self.closes[k]:
            return self.before[k] + t - self.opens[k]
        return self.after[k]


class BusinessCalendar:
    """Working days and hours of the bank. Build it with :func:`load_calendar` (from the settings) or
    directly (tests); it never changes afterwards."""

    def __init__(
        self,
        *,
        tz: ZoneInfo,
        hours: Mapping[int, Sequence[Window]] | None = None,
        adjusted_hours: Sequence[Window] | None = None,
        years: Mapping[int, YearDays] | None = None,
        use_package: bool = True,
        source: str | None = None,
    ) -> None:
        self.tz = tz
        self.hours: dict[int, tuple[Window, ...]] = {
            i: tuple((hours or DEFAULT_HOURS).get(i, ())) for i in range(7)
        }
        first_weekday = next((w for i, w in sorted(self.hours.items()) if w and i < 5), _DAY)
        self.adjusted_hours = tuple(adjusted_hours) if adjusted_hours is not None else first_weekday
        self.years: dict[int, YearDays] = dict(years or {})
        self.use_package = use_package
        self.source = source
        self._days: dict[date, DayInfo] = {}
        self._utc: dict[date, tuple[tuple[datetime, datetime], ...]] = {}
        self._index: dict[int, _YearIndex | None] = {}
        self._last: _YearIndex | None = None
        self._origin: _YearIndex | None = None
        self._due: dict[tuple[date, int], datetime] = {}
        self._due_us: dict[tuple[int, int], int] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as what it was built from (its caches are rebuilt where it is unpickled)."""
        return (_rebuilt, (self.tz, self.hours, self.adjusted_hours, self.years, self.use_package,
                           self.source))  # fmt: skip

    @classmethod
    def from_file(cls, data: HolidayFile, *, tz: ZoneInfo) -> BusinessCalendar:
        return cls(tz=tz, hours=data.hours, adjusted_hours=data.adjusted_hours, years=data.years,
                   source=data.source)  # fmt: skip

    def edited(
        self,
        *,
        holidays: Mapping[date, str] | None = None,
        workdays: Mapping[date, str | None] | None = None,
        closures: Mapping[date, str] | None = None,
    ) -> BusinessCalendar:
        """A new calendar with these dates added to the bank's own (this one is left as it is)."""
        years = dict(self.years)
        changes: list[tuple[str, Mapping[date, Any]]] = [
            ("holidays", holidays or {}), ("workdays", workdays or {}), ("closures", closures or {})
        ]  # fmt: skip
        for attr, dates in changes:
            for d, name in dates.items():
                base = years.get(d.year, YearDays())
                kept = {a: {k: v for k, v in getattr(base, a).items() if k != d} for a in
                        ("holidays", "workdays", "closures")}  # fmt: skip
                kept[attr][d] = name
                years[d.year] = YearDays(provisional=base.provisional, **kept)
        return BusinessCalendar(tz=self.tz, hours=self.hours, adjusted_hours=self.adjusted_hours, years=years,
                                use_package=self.use_package, source=self.source)  # fmt: skip

    # ---- days

    def covers(self, year: int) -> bool:
        if self.use_package and PACKAGE_YEARS[0] <= year <= PACKAGE_YEARS[1]:
            return True
        own = self.years.get(year)
        return own is not None and own.statutory

    @property
    def provisional_years(self) -> list[int]:
        return sorted(y for y, data in self.years.items() if data.provisional)

    def _no_data(self, year: int) -> NoHolidayData:
        covered = []
        if self.use_package:
            covered.append(f"the chinese-calendar package covers {PACKAGE_YEARS[0]}–{PACKAGE_YEARS[1]}")
        own = sorted(y for y, data in self.years.items() if data.statutory)
        if self.source:
            covered.append(f"{self.source} covers " + (", ".join(map(str, own)) if own else "no year"))
        else:
            covered.append("no holiday file is set (OMNIBANK_HOLIDAYS_FILE)")
        return NoHolidayData(
            f"no holiday data for {year}: {'; '.join(covered)}. Add {year} to the bank's holiday file "
            f"(OMNIBANK_HOLIDAYS_FILE, see examples/service/holidays-2027.yaml), typed from the State "
            f"Council's notice for {year}",
            details={"year": year},
        )

    def day(self, d: date) -> DayInfo:
        """What ``d`` is (NoHolidayData when its year has no data)."""
        known = self._days.get(d)
        if known is None:
            known = self._days[d] = self._classify(d)
        return known

    def _statutory(self, d: date) -> tuple[DayKind, str | None, str]:
        weekend = d.weekday() >= 5
        own = self.years.get(d.year)
        label = self.source or "holiday file"
        if own is not None:
            if d in own.holidays:
                return DayKind.holiday, own.holidays[d], label
            if d in own.workdays:
                return (DayKind.adjusted_working if weekend else DayKind.working), own.workdays[d], label
        if self.use_package and PACKAGE_YEARS[0] <= d.year <= PACKAGE_YEARS[1]:
            if d in _PKG_WORKDAYS:
                name = _package_name(_PKG_WORKDAYS[d])
                return (DayKind.adjusted_working if weekend else DayKind.working), name, "package"
            if d in _PKG_HOLIDAYS:
                return DayKind.holiday, _package_name(_PKG_HOLIDAYS[d]), "package"
            return (DayKind.weekend if weekend else DayKind.working), None, "package"
        if own is not None and own.statutory:
            return (DayKind.weekend if weekend else DayKind.working), None, label
        raise self._no_data(d.year)

    def _classify(self, d: date) -> DayInfo:
        kind, name, source = self._statutory(d)
        own = self.years.get(d.year)
        if own is not None and d in own.closures:
            return DayInfo(d, DayKind.closure, own.closures[d], (), self.source or "holiday file")
        if kind is DayKind.holiday:
            windows: tuple[Window, ...] = ()
        elif kind is DayKind.adjusted_working:
            windows = self.adjusted_hours
        else:
            windows = self.hours[d.weekday()]
        return DayInfo(d, kind, name, windows, source)

    def day_kind(self, d: date) -> tuple[DayKind, str | None]:
        info = self.day(d)
        return info.kind, info.name

    def is_working_day(self, d: date) -> bool:
        """Whether the service desk works on ``d`` (a day with working windows)."""
        return self.day(d).working

    def is_legal_day_off(self, d: date) -> bool:
        """A weekend or statutory holiday, as a legal period counts it (a 调休 day is working; a closure of
        the bank's own counts as what the day would otherwise be)."""
        info = self.day(d)
        kind = info.kind if info.kind is not DayKind.closure else self._statutory(d)[0]
        return kind in (DayKind.weekend, DayKind.holiday)

    def days(self, start: date, end: date) -> list[DayInfo]:
        if end < start:
            raise InputRefused(f"the range ends ({end}) before it starts ({start})")
        return [self.day(start + timedelta(days=i)) for i in range((end - start).days + 1)]

    # ---- business time

    def _windows_utc(self, d: date) -> tuple[tuple[datetime, datetime], ...]:
        known = self._utc.get(d)
        if known is None:
            known = tuple(
                (_local_minute(d, w.start, self.tz), _local_minute(d, w.end, self.tz))
                for w in self.day(d).windows
            )
            self._utc[d] = known
        return known

    # The fast paths answer from the per-year index; whatever they cannot answer exactly (a year without
    # data or with an irregular day, the search limit) goes to the walk, which raises as it always has.

    def _year_index(self, year: int) -> _YearIndex | None:
        if year in self._index:
            return self._index[year]
        try:
            index = self._build_index(year)
        except (NoHolidayData, ValueError, OverflowError):
            index = None
        self._index[year] = index
        return index

    def _build_index(self, year: int) -> _YearIndex | None:
        first, following = date(year, 1, 1), date(year + 1, 1, 1)
        infos = [self.day(first + timedelta(days=i)) for i in range((following - first).days)]
        starts = [utc_micros(datetime.combine(first + timedelta(days=i), time(0), tzinfo=self.tz))
                  for i in range(len(infos) + 1)]  # fmt: skip
        windows: list[tuple[int, int, int]] = []
        for i, info in enumerate(infos):
            lo, hi = starts[i], starts[i + 1]
            if hi - lo != _DAY_US:
                return None
            offset = from_utc_micros(lo).astimezone(self.tz).utcoffset()
            if offset != from_utc_micros(hi - 1).astimezone(self.tz).utcoffset():
                return None
            ordinal = info.day.toordinal()
            for w in info.windows:
                opens, closes = lo + w.start * _MINUTE_US, lo + w.end * _MINUTE_US
                if closes <= opens or (windows and opens < windows[-1][1]):
                    return None
                windows.append((opens, closes, ordinal))
        return _YearIndex(year, first.toordinal(), starts, windows)

    def _index_at(self, t: int) -> _YearIndex | None:
        """The index of the (bank-local) year that ``t`` falls in, or None when that year has none."""
        last = self._last
        if last is not None and last.lo <= t < last.hi:
            return last
        try:
            year = date.fromordinal(_EPOCH_ORDINAL + t // _DAY_US).year
        except (ValueError, OverflowError):
            return None
        for _ in range(3):
            index = self._year_index(year)
            if index is None:
                return None
            if t < index.lo:
                year -= 1
            elif t >= index.hi:
                year += 1
            else:
                self._last = index
                return index
        return None

    def _fast_between(self, a: int, b: int) -> int | None:
        first, last = self._index_at(a), self._index_at(b)
        if first is None or last is None:
            return None
        if first is last:
            return last.worked(b) - first.worked(a)
        total = first.total - first.worked(a) + last.worked(b)
        for year in range(first.year + 1, last.year):
            index = self._year_index(year)
            if index is None:
                return None
            total += index.total
        return total

    def _fast_add(self, start: int, delta: int) -> int | None:
        index = self._index_at(start)
        if index is None:
            return None
        first_day = index.first_day + bisect_right(index.starts, start) - 1
        cursor, remaining = start, delta
        while True:
            done = index.worked(cursor)
            if remaining <= index.total - done:
                goal = done + remaining
                k = bisect_left(index.after, goal)
                if index.wday[k] - first_day >= MAX_SEARCH_DAYS:
                    return None
                return index.opens[k] + goal - index.before[k]
            remaining -= index.total - done
            if index.first_day + len(index.starts) - 1 - first_day >= MAX_SEARCH_DAYS:
                return None
            following = self._year_index(index.year + 1)
            if following is None:
                return None
            index, cursor = following, following.lo

    def add_business_time(self, start: datetime, delta: timedelta) -> datetime:
        """The moment when ``delta`` of working time has passed after ``start``."""
        _aware(start, "start")
        if delta < timedelta(0):
            raise ValueError("business time to add must not be negative")
        if not delta:
            return start.astimezone(self.tz)
        return self.add_business_micros(utc_micros(start), delta // _US)

    def add_business_micros(self, start: int, micros: int) -> datetime:
        """:meth:`add_business_time` from a UTC microsecond instant (:func:`utc_micros`); ``micros`` > 0."""
        fast = self._fast_add(start, micros)
        if fast is not None:
            return from_utc_micros(fast).astimezone(self.tz)
        return self._walk_add(from_utc_micros(start), timedelta(microseconds=micros))

    def add_us(self, start_us: int, delta_us: int) -> int:
        """:meth:`add_business_time` in UTC microseconds (:func:`utc_micros`) in and out: the same answer,
        fallbacks and exceptions (``delta_us`` = 0 gives ``start_us``; a negative one is a ValueError)."""
        if delta_us < 0:
            raise ValueError("business time to add must not be negative")
        if not delta_us:
            return start_us
        fast = self._fast_add(start_us, delta_us)
        if fast is not None:
            return fast
        return utc_micros(self._walk_add(from_utc_micros(start_us), timedelta(microseconds=delta_us)))

    def worked_us(self, t_us: int) -> int | None:
        """Working microseconds from this calendar's origin (the first year it indexed) to ``t_us`` (UTC
        microseconds), from the integer index; None where the index cannot answer. For ``a`` ≤ ``b`` whose
        answers are both known, ``worked_us(b) - worked_us(a) == between_us(a, b)`` (the same sum the fast
        path of :meth:`business_micros_between` makes); otherwise ask :meth:`between_us`."""
        index = self._index_at(t_us)
        if index is None:
            return None
        base = index.base
        if base is None:
            base = self._base(index)
            if base is None:
                return None
        return base + index.worked(t_us)

    def worked_windows(self, a_us: int, b_us: int) -> tuple[int, list[int], list[int], list[int]] | None:
        """The index's working windows from the (bank-local) year of ``a_us`` to that of ``b_us``, for
        computing :meth:`worked_us` of many moments at once: ``(floor, opens, closes, before)``, where the
        windows are ``[opens[k], closes[k])`` in order and ``before[k]`` is ``worked_us(opens[k])``. For
        ``a_us`` ≤ ``t`` ≤ ``b_us``, with ``k`` the last window that opens at or before ``t``,
        ``worked_us(t)`` is ``floor`` when there is none, ``before[k] + t - opens[k]`` when ``t`` is inside
        it, else ``before[k] + closes[k] - opens[k]``. None when :meth:`worked_us` cannot answer."""
        if a_us > b_us or self.worked_us(a_us) is None or self.worked_us(b_us) is None:
            return None
        first, last = self._index_at(a_us), self._index_at(b_us)
        assert first is not None
        assert last is not None
        assert first.base is not None
        opens: list[int] = []
        closes: list[int] = []
        before: list[int] = []
        for year in range(first.year, last.year + 1):
            index = self._index[year]  # built, with its base, by worked_us: the chain passes every year
            assert index is not None
            assert index.base is not None
            base = index.base
            opens += index.opens
            closes += index.closes
            before += [base + worked for worked in index.before]
        return first.base, opens, closes, before

    def _base(self, index: _YearIndex) -> int | None:
        """Working time from the origin's 1 January to ``index``'s (negative before the origin), or None
        when a year between has no index."""
        origin = self._origin
        if origin is None:
            origin = self._origin = index
            index.base = 0
            return 0
        assert origin.base is not None
        step = 1 if index.year > origin.year else -1
        known = origin
        for year in range(origin.year + step, index.year + step, step):
            following = self._year_index(year)
            if following is None:
                return None
            if following.base is None:
                assert known.base is not None
                following.base = known.base + known.total if step > 0 else known.base - following.total
            known = following
        return index.base

    def between_us(self, a_us: int, b_us: int) -> int:
        """Working microseconds from ``a_us`` to ``b_us`` (UTC microseconds, ``a_us`` ≤ ``b_us``): the
        same as :meth:`business_micros_between`."""
        return self.business_micros_between(a_us, b_us)

    def _walk_add(self, start: datetime, delta: timedelta) -> datetime:
        cursor = start.astimezone(UTC)
        day = start.astimezone(self.tz).date()
        remaining = delta
        for _ in range(MAX_SEARCH_DAYS):
            for opens, closes in self._windows_utc(day):
                if closes <= cursor:
                    continue
                begin = max(opens, cursor)
                room = closes - begin
                if remaining <= room:
                    return (begin + remaining).astimezone(self.tz)
                remaining -= room
            day += timedelta(days=1)
        raise ConfigError(
            f"the business calendar has no working hours for {MAX_SEARCH_DAYS} days after {day}"
        )

    def add_business_minutes(self, start: datetime, minutes: int) -> datetime:
        return self.add_business_time(start, timedelta(minutes=minutes))

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time from ``a`` to ``b`` (negative when ``b`` is before ``a``)."""
        _aware(a, "a")
        _aware(b, "b")
        if b < a:
            return -self.business_time_between(b, a)
        return timedelta(microseconds=self.business_micros_between(utc_micros(a), utc_micros(b)))

    def business_micros_between(self, a: int, b: int) -> int:
        """Working microseconds from UTC microsecond instant ``a`` to ``b`` (:func:`utc_micros`), as
        :meth:`business_time_between` counts them from ``a`` ≤ ``b``."""
        if a <= b:
            fast = self._fast_between(a, b)
            if fast is not None:
                return fast
        return self._walk_between(from_utc_micros(a), from_utc_micros(b)) // _US

    def _walk_between(self, a: datetime, b: datetime) -> timedelta:
        total = timedelta(0)
        day, last = a.astimezone(self.tz).date(), b.astimezone(self.tz).date()
        while day <= last:
            for opens, closes in self._windows_utc(day):
                overlap = min(closes, b) - max(opens, a)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def business_minutes_between(self, a: datetime, b: datetime) -> int:
        """Whole minutes of working time from ``a`` to ``b`` (rounded toward zero)."""
        delta = self.business_time_between(a, b)
        whole = abs(delta) // timedelta(minutes=1)
        return whole if delta >= timedelta(0) else -whole

    # ---- calendar days, as the law counts them

    def calendar_days_due(self, received_at: datetime, days: int) -> datetime:
        """24:00 (bank-local) of the last day of a ``days``-day period that starts the day after
        ``received_at``; a last day that is a legal day off moves to the first working day after it."""
        _aware(received_at, "received_at")
        if days < 1:
            raise ValueError("a period of calendar days is at least 1 day")
        received = received_at.astimezone(self.tz).date()
        known = self._due.get((received, days))
        if known is not None:
            return known
        last = received + timedelta(days=days)
        for _ in range(MAX_SEARCH_DAYS):
            if not self.is_legal_day_off(last):
                due = self._due[(received, days)] = datetime.combine(last + timedelta(days=1), time(0),
                                                                      tzinfo=self.tz)  # fmt: skip
                return due
            last += timedelta(days=1)
        raise ConfigError(f"no working day for {MAX_SEARCH_DAYS} days after {last}")

    def calendar_days_due_us(self, received_us: int, days: int) -> int:
        """:meth:`calendar_days_due` in UTC microseconds (:func:`utc_micros`) in and out, remembered per
        bank-local day of receipt (the same answer and exceptions)."""
        key = (self._local_ordinal(received_us), days)
        known = self._due_us.get(key)
        if known is None:
            known = utc_micros(self.calendar_days_due(from_utc_micros(received_us), days))
            self._due_us[key] = known
        return known

    def _local_ordinal(self, t: int) -> int:
        """The ordinal of the bank-local day that UTC microsecond instant ``t`` falls on."""
        index = self._index_at(t)
        if index is not None:
            return index.first_day + bisect_right(index.starts, t) - 1
        return from_utc_micros(t).astimezone(self.tz).date().toordinal()


def _rebuilt(
    tz: ZoneInfo,
    hours: Mapping[int, Sequence[Window]],
    adjusted_hours: Sequence[Window],
    years: Mapping[int, YearDays],
    use_package: bool,
    source: str | None,
) -> BusinessCalendar:
    return BusinessCalendar(
        tz=tz, hours=hours, adjusted_hours=adjusted_hours, years=years, use_package=use_package, source=source
    )


def _local_minute(d: date, minute: int, tz: ZoneInfo) -> datetime:
    if minute == 24 * 60:
        return datetime.combine(d + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return datetime.combine(d, time(minute // 60, minute % 60), tzinfo=tz).astimezone(UTC)


def _aware(moment: datetime, what: str) -> None:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime")


def load_calendar(tz: ZoneInfo, holidays_file: Path | None) -> BusinessCalendar:
    """The bank's calendar: the package's statutory days, extended and overridden by ``holidays_file``."""
    if holidays_file is None:
        return BusinessCalendar(tz=tz)
    return BusinessCalendar.from_file(load_holiday_file(holidays_file), tz=tz)


_LOADED: dict[tuple[str, str | None, int | None], BusinessCalendar] = {}


def bank_calendar(settings: Settings | None = None) -> BusinessCalendar:
    """The configured calendar (``OMNIBANK_TIMEZONE``, ``OMNIBANK_HOLIDAYS_FILE``), read again when the file
    changes."""
    settings = settings or get_settings()
    path = settings.holidays_file
    stamp = None
    if path is not None:
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            raise ConfigError(f"OMNIBANK_HOLIDAYS_FILE: {path}: no such file") from None
    key = (settings.timezone, str(path) if path else None, stamp)
    known = _LOADED.get(key)
    if known is None:
        _LOADED.clear()
        known = _LOADED[key] = load_calendar(settings.tz, path)
    return known


def is_working_day(d: date, calendar: BusinessCalendar | None = None) -> bool:
    """Whether the service desk works on ``d`` (the configured calendar unless one is given)."""
    return (calendar or bank_calendar()).is_working_day(d)


def day_kind(d: date, calendar: BusinessCalendar | None = None) -> tuple[DayKind, str | None]:
    """What ``d`` is, and its name (the configured calendar unless one is given)."""
    return (calendar or bank_calendar()).day_kind(d)
