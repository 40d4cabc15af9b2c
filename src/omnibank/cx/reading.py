"""What the CX reports read, shared by the index (:mod:`omnibank.cx.index`) and the survey report
(:mod:`omnibank.cx.survey_report`): the period (a bank-local month or ISO week, or days), the groups
(branch, channel, a saved segment, the whole bank) and the survey answers' statistics, all in DuckDB over the
event log and the profile snapshot. See the index's docstring for how groups are reckoned."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.cx.maps import FIELD_RE, Indicator
from omnibank.errors import InputRefused, NotFound
from omnibank.events.log import EventLog, sql_string
from omnibank.segments import service as segments
from omnibank.segments.compile import compile_expression
from omnibank.segments.duck import DuckEngine
from omnibank.segments.engine import vocabulary
from omnibank.segments.expr import parse

DAY_US = 86_400_000_000
ALL = "all"
#: the types whose events carry the branch where the experience happened (``branch_id``)
BRANCH_TYPES = frozenset({"survey.response", "branch.visit"})
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_WEEK = re.compile(r"^(\d{4})-W(0[1-9]|[1-4]\d|5[0-3])$")


# ------------------------------------------------------------------------------------------------ period


@dataclass(frozen=True)
class Window:
    """Bank-local days ``[start, end)`` and a label."""

    start: date
    end: date
    label: str

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)


def parse_period(text: str) -> tuple[date, date]:
    """``2026-11`` → Nov 1 … Dec 1; ``2026-W48`` → that ISO week's Monday … next Monday."""
    value = text.strip()
    if m := _MONTH.match(value):
        y, mo = int(m.group(1)), int(m.group(2))
        first = date(y, mo, 1)
        return first, date(y + mo // 12, mo % 12 + 1, 1)
    if m := _WEEK.match(value):
        try:
            monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        except ValueError:
            raise InputRefused(f"--period: {text!r}: {m.group(1)} has no week {m.group(2)}") from None
        return monday, monday + timedelta(days=7)
    raise InputRefused(f"--period: {text!r} is not a month (2026-11) or an ISO week (2026-W48)")


def window(
    con: Any, period: str | None, start: date | None, end: date | None, *, what: str = "events"
) -> Window:
    if period is not None:
        if start is not None or end is not None:
            raise InputRefused("give a period or start/end days, not both")
        lo, hi = parse_period(period)
        return Window(lo, hi, period.strip())
    if start is not None and end is not None:
        if end <= start:
            raise InputRefused(f"the days {start} … {end} are empty: end is after start")
        return Window(start, end, f"{start}..{end - timedelta(days=1)}")
    row = con.execute("SELECT min(local_date), max(local_date) FROM events").fetchone()
    first: date | None = row[0] if row else None
    last: date | None = row[1] if row else None
    if first is None or last is None:
        raise NotFound(f"the event log is empty: give a period for the {what}")
    lo = start or first
    hi = end or last + timedelta(days=1)
    return Window(lo, hi, f"{lo}..{hi - timedelta(days=1)}")


# ------------------------------------------------------------------------------------------------ groups


@dataclass(frozen=True)
class Grouping:
    """SQL for the group of an event (alias ``e``), a customer (``p``) and a ticket (``t``); ``typed`` the
    event's group without reading the stored line (for types that carry no branch)."""

    by: str | None
    event: str
    event_join: str
    customer: str | None  # None: customers have no such group
    ticket: str
    ticket_join: str
    typed: str = ""

    @property
    def event_typed(self) -> str:
        return self.typed or self.event


def grouping(session: Session, con: DuckEngine, by: str | None, as_of: date) -> Grouping:
    if by is None or by == "all":
        a = sql_string(ALL)
        return Grouping(None, a, "", a, a, "")
    if by == "branch":
        carrying = ", ".join(sql_string(t) for t in sorted(BRANCH_TYPES))
        return Grouping(
            by,
            f"coalesce(CASE WHEN e.type IN ({carrying}) "
            "THEN json_extract_string(e.payload, '$.branch_id') END, p.branch_id)",
            " LEFT JOIN profiles p ON p.customer_id = e.customer_id",
            "p.branch_id",
            "t.org_id",
            "",
            "p.branch_id",
        )
    if by == "channel":
        return Grouping(by, "coalesce(e.channel, '-')", "", None, "coalesce(t.channel, '-')", "")
    if by.startswith("segment:"):
        name = by.removeprefix("segment:").strip()
        seg = segments.get(session, name)
        expression = parse(seg.expression, vocabulary(session))
        sql = compile_expression(expression, as_of, "duckdb").ids_sql(order=False)
        con.con.execute(f"CREATE OR REPLACE TEMP TABLE cx_seg AS {sql}")
        inside, outside = sql_string(name), sql_string(f"not {name}")
        member = "EXISTS (SELECT 1 FROM cx_seg s WHERE s.customer_id = {}.customer_id)"
        return Grouping(
            by,
            f"CASE WHEN {member.format('e')} THEN {inside} ELSE {outside} END",
            "",
            f"CASE WHEN {member.format('p')} THEN {inside} ELSE {outside} END",
            f"CASE WHEN {member.format('t')} THEN {inside} ELSE {outside} END",
            "",
        )
    raise InputRefused(f"--by: {by!r} is not branch, channel or segment:NAME")


def events_sql(
    g: Grouping, types: Sequence[str], lo: date | None, hi: date | None, *, typed: bool = False
) -> str:
    """The events of ``types`` on bank-local days ``[lo, hi)`` with their group ``g`` (``typed``: for types
    that carry no branch, without reading the stored line)."""
    where = [f"e.type IN ({', '.join(sql_string(t) for t in sorted(set(types)))})"]
    if lo is not None:
        where += [f"e.local_date >= DATE '{lo.isoformat()}'", f"e.month >= {sql_string(f'{lo:%Y-%m}')}"]
    if hi is not None:
        last = hi - timedelta(days=1)
        where += [f"e.local_date < DATE '{hi.isoformat()}'", f"e.month <= {sql_string(f'{last:%Y-%m}')}"]
    group = g.event_typed if typed else g.event
    return f"(SELECT e.*, {group} AS g FROM events e{g.event_join} WHERE {' AND '.join(where)})"


def json_field(field_name: str) -> str:
    if not FIELD_RE.match(field_name):
        raise InputRefused(f"{field_name!r} is not a field name")
    return f"json_extract_string(payload, {sql_string('$.' + field_name)})"


# ------------------------------------------------------------------------------------------------ surveys


@dataclass(frozen=True)
class SurveyStats:
    responses: int
    nps_n: int
    promoters: int
    detractors: int
    nps_mean: float | None
    csat_n: int
    satisfied: int
    csat_mean: float | None
    ces_n: int
    ces_mean: float | None
    ces_sd: float | None


def survey_stats(
    con: Any, g: Grouping, surveys: Sequence[str], w: Window
) -> dict[tuple[str, str], SurveyStats]:
    """Per (group, survey): answer counts and means of ``survey.response`` events in the window."""
    if not surveys:
        return {}
    listing = ", ".join(sql_string(s) for s in sorted(set(surveys)))

    def score(name: str, lo: int, hi: int) -> str:
        v = f"TRY_CAST({json_field(name)} AS INTEGER)"
        return f"CASE WHEN {v} BETWEEN {lo} AND {hi} THEN {v} END AS {name}"

    rows = con.execute(
        "SELECT g, survey, count(*), count(nps), count(*) FILTER (WHERE nps >= 9), "
        "count(*) FILTER (WHERE nps <= 6), avg(nps), count(csat), count(*) FILTER (WHERE csat >= 4), "
        "avg(csat), count(ces), avg(ces), stddev_samp(ces) FROM ("
        f"SELECT g, {json_field('survey')} AS survey, {score('nps', 0, 10)}, {score('csat', 1, 5)}, "
        f"{score('ces', 1, 7)} FROM {events_sql(g, ['survey.response'], w.start, w.end)}) "
        f"WHERE survey IN ({listing}) AND g IS NOT NULL GROUP BY g, survey"
    ).fetchall()
    return {
        (str(r[0]), str(r[1])): SurveyStats(
            int(r[2]),
            int(r[3]),
            int(r[4]),
            int(r[5]),
            r[6],
            int(r[7]),
            int(r[8]),
            r[9],
            int(r[10]),
            r[11],
            r[12],
        )
        for r in rows
    }


def survey_raw(ind: Indicator, s: SurveyStats | None) -> tuple[Decimal | None, int]:
    assert ind.survey is not None
    metric = ind.survey.metric
    if s is None:
        return None, 0
    if metric == "nps":
        return (ratio(s.promoters - s.detractors, s.nps_n), s.nps_n)
    if metric == "csat":
        return (ratio(s.satisfied, s.csat_n), s.csat_n)
    if metric in ("ces", "mean_ces"):
        return (as_decimal(s.ces_mean), s.ces_n)
    if metric == "mean_nps":
        return (as_decimal(s.nps_mean), s.nps_n)
    return (as_decimal(s.csat_mean), s.csat_n)


def ratio(num: int, den: int, scale: int = 100) -> Decimal | None:
    return Decimal(num) * scale / Decimal(den) if den else None


def as_decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(float(value)))


def log_types(settings: Settings) -> set[str]:
    """The event types the log has carried (a map naming another type, outside the contract, is refused)."""
    log = EventLog(settings)
    if not log.files():
        return set()
    con = log.connect()
    try:
        rows = con.execute(f"SELECT DISTINCT type FROM {log.scan_sql()} WHERE type IS NOT NULL").fetchall()
    finally:
        con.close()
    return {str(r[0]) for r in rows}
