"""The experience index (X1): a journey map's indicators per group and period, scored and rolled up.

For each group (see *Grouping*) and the period:

* each indicator's **raw** value from its source (:mod:`omnibank.cx.maps`), and its **score** 0–100
  (linear between ``floor`` and ``target``, clamped);
* each experience point, touchpoint, stage and the map: the weighted sum of its children's scores. A child
  without data for the group (no survey answer, no event to divide by, …) is left out and the weights of
  the others are rescaled to sum to 1; **coverage** is the share of the node's weight that had data
  (1 = every indicator under it had data). A node none of whose children had data has no score.

Grouping (the CX contract): ``branch`` — the event's ``branch_id`` field for the types that carry one
(:data:`BRANCH_TYPES`: survey answers, branch visits), else the customer's home branch (customers: their
branch; tickets: the ticket's ``org_id``); ``channel`` — the event's (a ticket's) channel; customers have
no channel, so ``customers`` indicators have no data per channel; ``segment:NAME`` — members of the saved
segment as of the period's last day (group ``NAME``) and the other customers (group ``not NAME``);
nothing — the whole bank (group ``all``).

Period: a bank-local month ``YYYY-MM`` or ISO week ``YYYY-Www``, or days ``[start, end)``; with none the
whole log (its first to its last day). Events count by their bank-local day; ``customers`` indicators are
evaluated as of the period's last day; ``within`` cases by the day of their first start event (they may
end up to N days after the period).

How: DuckDB over the event log and the profile snapshot (:mod:`omnibank.segments.duck`, merged customers'
events under their survivor). What costs over a big log is parsing the stored JSON lines (``payload``;
each ``json_extract`` parses the line again: the 2.2M lines needed among 10M events take 1.5 s on two
cores for one parse fetching all their fields, 5.4 s for six separate extracts) and joining events to
customers; filtering on the typed ``type`` column is cheap. So the lines are parsed **once**: the events
whose fields live only there (survey answers, means of such fields, the cases of ``within`` indicators,
the branch-carrying types) go into one narrow temporary table with those fields; every other count comes
from the typed columns in one pass grouped by group and type (filtered aggregates only for ``where``
conditions); then one small query per ``within`` indicator over the temporary table, one query for all
``customers`` indicators (the segment compiler's SQL: one grouped scan of the events for every aggregate
their expressions use, each share a filtered count), and one over the period's tickets.
No loop over customers in Python. ``benchmarks/bench_cx_index.py``: 40 indicators, 1M customers, 10M events.

CSV (``--out index.csv``), one row per group and node, in map order::

    map,period,group,level,path,id,name,weight,raw,score,coverage,n

``level`` map|stage|touchpoint|experience_point|indicator; ``path`` the ids from the stage down, joined by
``/`` (empty for the map); ``raw`` the indicator's value (% for shares and rates, points for NPS, a mean,
or per 1,000 customers), empty above indicators or without data; ``score`` 0–100 (2 decimals), empty
without data; ``coverage`` 0–1; ``n`` the base the raw value was computed on (answers, events divided by,
cases, customers, tickets), empty above indicators.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.cx.maps import Indicator, JourneyMap, Level, unseen_types
from omnibank.cx.reading import (
    BRANCH_TYPES,
    DAY_US,
    Grouping,
    SurveyStats,
    Window,
    events_sql,
    grouping,
    json_field,
    parse_period,
    ratio,
    survey_raw,
    window,
)  # fmt: skip
from omnibank.errors import AppError, InputRefused
from omnibank.events.log import sql_string
from omnibank.segments.compile import compile_many, event_condition_sql
from omnibank.segments.duck import DuckEngine
from omnibank.segments.engine import duck_engine, vocabulary
from omnibank.segments.expr import EVENT_FIELDS, parse, parse_event_condition
from omnibank.service.models import Ticket

#: numeric columns of the log a ``mean`` may name directly; other fields come from the stored line
NUMERIC_COLUMNS = {"amount", "points", "quantity", "duration_s"}
#: the log's columns an event condition may use
CONDITION_COLUMNS = frozenset(column for _, column in EVENT_FIELDS.values())
_2 = Decimal("0.01")
_4 = Decimal("0.0001")
CSV_COLUMNS = (
    "map",
    "period",
    "group",
    "level",
    "path",
    "id",
    "name",
    "weight",
    "raw",
    "score",
    "coverage",
    "n",
)


# ------------------------------------------------------------------------------------------------ result


@dataclass(frozen=True)
class IndexRow:
    group: str
    level: Level
    path: str
    id: str
    name: str
    weight: Decimal
    raw: Decimal | None
    score: Decimal | None
    coverage: Decimal
    n: int | None


@dataclass
class IndexResult:
    map_id: str
    map_name: str
    by: str | None
    period: str
    start: date
    end: date
    groups: list[str]
    rows: list[IndexRow]
    warnings: list[str] = field(default_factory=list)

    def map_scores(self) -> dict[str, Decimal | None]:
        return {r.group: r.score for r in self.rows if r.level == "map"}

    def row(self, group: str, path: str) -> IndexRow:
        return next(r for r in self.rows if r.group == group and r.path == path)


Raw = dict[str, tuple[Decimal | None, int]]  # group → (raw, n)


def compute_index(
    session: Session,
    settings: Settings,
    spec: JourneyMap,
    *,
    by: str | None,
    period: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> IndexResult:
    """Each indicator's raw value and score, and the weighted scores above it, per group: see the module."""
    with duck_engine(session, settings, private=True) as duck:
        duck.query("SELECT 1")  # binds the tags and events views
        con = duck.con
        w = window(con, period, start, end, what="index")
        g = grouping(session, duck, by, w.last_day)
        seen = {r[0] for r in con.execute(_types_sql(spec)).fetchall()}
        raws = _raw_values(session, settings, duck, g, spec, w)
    groups = sorted({grp for values in raws.values() for grp in values})
    rows = [row for grp in groups for row in _score_tree(spec, grp, raws)]
    return IndexResult(
        spec.id, spec.name, g.by, w.label, w.start, w.end, groups, rows, unseen_types(spec, seen)
    )


def index_values(
    session: Session,
    settings: Settings,
    spec: JourneyMap,
    *,
    by: str | None = "branch",
    start: date,
    end: date,
) -> dict[str, Decimal | None]:
    """The map's index per group over bank-local days ``[start, end)`` (for alert rules)."""
    return compute_index(session, settings, spec, by=by, start=start, end=end).map_scores()


def _types_sql(spec: JourneyMap) -> str:
    listing = ", ".join(sql_string(t) for t in sorted(spec.event_types())) or "NULL"
    return f"SELECT DISTINCT type FROM events WHERE type IN ({listing})"


def _raw_values(
    session: Session, settings: Settings, duck: DuckEngine, g: Grouping, spec: JourneyMap, w: Window
) -> dict[str, Raw]:
    con = duck.con
    indicators = [ind for _, ind in spec.indicators()]
    raws: dict[str, Raw] = {}
    need_customers = any(
        (i.events is not None and i.events.per == "customers")
        or (i.tickets is not None and i.tickets.metric == "complaints_per_1000")
        for i in indicators
    )
    customers: dict[str, int] = {}
    if need_customers and g.customer is not None:
        customers = {
            str(r[0]): int(r[1])
            for r in con.execute(f"SELECT {g.customer} AS g, count(*) FROM profiles p GROUP BY 1").fetchall()
            if r[0] is not None
        }
    raws.update(_event_values(con, g, indicators, w, customers))
    raws.update(_customers(session, g, duck, [i for i in indicators if i.customers is not None], w))
    tickets = [i for i in indicators if i.tickets is not None]
    if tickets:
        raws.update(_tickets(session, settings, con, g, tickets, w, customers))
    return raws


_SURVEY_AGGREGATES = (
    "count(*)",
    "count(nps)",
    "count(*) FILTER (WHERE nps >= 9)",
    "count(*) FILTER (WHERE nps <= 6)",
    "avg(nps)",
    "count(csat)",
    "count(*) FILTER (WHERE csat >= 4)",
    "avg(csat)",
    "count(ces)",
    "avg(ces)",
    "stddev_samp(ces)",
)


class _Counts:
    """Counts (and sums) of events by group and type in one grouped pass over a relation: per-row work is
    a hash of (group, type), not one filter per indicator; filtered aggregates only for conditions."""

    def __init__(self) -> None:
        self.extra: dict[str, str] = {}  # SQL → alias
        self.cells: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, sql: str) -> str:
        return self.extra.setdefault(sql, f"v{len(self.extra)}")

    def run(self, con: Any, source: str, where: str) -> None:
        columns = ["count(*) AS n", *(f"{sql} AS {alias}" for sql, alias in self.extra.items())]
        names = ["n", *self.extra.values()]
        rows = con.execute(
            f"SELECT g, type, {', '.join(columns)} FROM {source} WHERE {where} GROUP BY g, type"
        ).fetchall()
        self.cells = {(str(r[0]), str(r[1])): dict(zip(names, r[2:], strict=True)) for r in rows}

    def get(self, group: str, type_: str, name: str) -> Any:
        cell = self.cells.get((group, type_))
        return cell[name] if cell is not None else None


def _event_values(
    con: Any, g: Grouping, indicators: list[Indicator], w: Window, customers: dict[str, int]
) -> dict[str, Raw]:
    """Survey, event-ratio, mean and ``within`` indicators with one read of the stored lines.

    The events whose stored line is needed (survey answers, means of fields that are not columns, the
    cases of ``within``, and the types carrying a branch) are read once into a narrow table with those
    fields extracted; the other types are counted straight from the log's typed columns. Decompressing
    and parsing the stored lines is what costs: once per index."""
    surveys = sorted({i.survey.id for i in indicators if i.survey is not None})
    evs = [i for i in indicators if i.events is not None]
    withins = [i.within for i in indicators if i.within is not None]
    referenced = {t for i in indicators for t in i.event_types()}
    stored: set[str] = set()  # types read with their stored line
    extracted: dict[str, str] = {}  # column → SQL over {key} (the field's text, from the one parse)
    if surveys:
        stored.add("survey.response")
        extracted["survey"] = "CASE WHEN type = 'survey.response' THEN {survey} END"
        for name, lo, hi in (("nps", 0, 10), ("csat", 1, 5), ("ces", 1, 7)):
            v = f"TRY_CAST({{{name}}} AS INTEGER)"
            extracted[name] = f"CASE WHEN type = 'survey.response' AND {v} BETWEEN {lo} AND {hi} THEN {v} END"
    for ind in evs:
        e = ind.events
        assert e is not None
        if e.mean is not None and e.of is not None and e.mean not in NUMERIC_COLUMNS:
            stored.add(e.of)
            extracted.setdefault(f"m_{e.mean}", f"TRY_CAST({{{e.mean}}} AS DOUBLE)")
    for spec in withins:
        stored |= {spec.start, spec.end}
        extracted.setdefault(f"c_{spec.case}", f"{{{spec.case}}}")
    if g.by == "branch":
        stored |= BRANCH_TYPES & referenced
    kept: set[str] = set()  # typed columns the stored types' terms use
    for ind in evs:
        e = ind.events
        assert e is not None
        if e.where and stored & set(e.types()):
            kept |= CONDITION_COLUMNS
        if e.mean in NUMERIC_COLUMNS and e.of in stored:
            kept.add(e.mean)
    if stored:
        _read_stored(con, g, sorted(stored), extracted, sorted(kept), withins, w)
    x, t = _Counts(), _Counts()

    def rel(type_: str) -> _Counts:
        return x if type_ in stored else t

    # each term: (relation, type, column name in its cells)
    terms: dict[str, list[tuple[_Counts, str, str]]] = {}
    for ind in evs:
        e = ind.events
        assert e is not None
        cond = event_condition_sql(parse_event_condition(e.where)) if e.where else None
        if e.count is not None:
            r = rel(e.count)
            num = (r, e.count, r.add(f"count(*) FILTER (WHERE {cond})") if cond else "n")
            terms[ind.id] = [num] if e.per == "customers" else [num, (rel(str(e.per)), str(e.per), "n")]
        else:
            assert e.mean is not None
            assert e.of is not None
            r = rel(e.of)
            value = e.mean if e.mean in NUMERIC_COLUMNS else f"m_{e.mean}"
            where = f" FILTER (WHERE {cond})" if cond else ""
            terms[ind.id] = [
                (r, e.of, r.add(f"sum({value}){where}")),
                (r, e.of, r.add(f"count({value}){where}")),
            ]
    typed_types = sorted({tt for i in evs for tt in i.event_types()} - stored)
    if stored:
        x.run(con, "cx_x", "in_period AND g IS NOT NULL")
    if typed_types:
        t.run(con, events_sql(g, typed_types, w.start, w.end, typed=True), "g IS NOT NULL")
    groups = {grp for c in (x, t) for grp, _ in c.cells}

    out: dict[str, Raw] = {}
    for ind in evs:
        e = ind.events
        assert e is not None
        out[ind.id] = {}
        for grp in groups:
            values = [rel_.get(grp, type_, name) for rel_, type_, name in terms[ind.id]]
            if e.count is None:
                total, n = values
                if n:
                    out[ind.id][grp] = (Decimal(str(total)) / Decimal(int(n)), int(n))
            elif e.per == "customers":
                size = customers.get(grp, 0)
                out[ind.id][grp] = (ratio(int(values[0] or 0), size, 1000), size)
            else:
                out[ind.id][grp] = (ratio(int(values[0] or 0), int(values[1] or 0)), int(values[1] or 0))
    if surveys:
        listing = ", ".join(sql_string(sid) for sid in surveys)
        rows = con.execute(
            f"SELECT g, survey, {', '.join(_SURVEY_AGGREGATES)} FROM cx_x WHERE in_period AND g IS NOT NULL "
            f"AND type = 'survey.response' AND survey IN ({listing}) GROUP BY g, survey"
        ).fetchall()
        stats = {(str(r[0]), str(r[1])): SurveyStats(*r[2:]) for r in rows}
        for ind in indicators:
            if ind.survey is not None:
                sid = ind.survey.id
                out[ind.id] = {grp: survey_raw(ind, st) for (grp, s_), st in stats.items() if s_ == sid}
    for ind in indicators:
        if ind.within is not None:
            out[ind.id] = _within(con, ind, w)
    if stored:
        con.execute("DROP TABLE cx_x")
    return out


def _read_stored(
    con: Any,
    g: Grouping,
    types: list[str],
    extracted: dict[str, str],
    kept: list[str],
    withins: list[Any],
    w: Window,
) -> None:
    """``cx_x``: the events of ``types`` with the fields from their stored line, ``in_period`` marking
    the window's days; with ``within`` indicators also their start events of all time before the window's
    end (a case starts at its first start event) and end events up to the longest allowance after it."""
    hi = w.end
    lo: date | None = w.start
    keep = "TRUE"
    if withins:
        starts = ", ".join(sql_string(s.start) for s in withins)
        hi = w.end + timedelta(days=max(s.days for s in withins) + 1)
        lo = None
        keep = (
            f"(type IN ({starts}) AND local_date < DATE '{w.end.isoformat()}') "
            f"OR local_date >= DATE '{w.start.isoformat()}'"
        )
    in_period = f"local_date >= DATE '{w.start.isoformat()}' AND local_date < DATE '{w.end.isoformat()}'"
    # every field the table needs from one parse of the line (each json_extract parses it again)
    keys = sorted({k for sql in extracted.values() for k in re.findall(r"\{([a-z][a-z0-9_]*)\}", sql)})
    group = "g"
    if g.by == "branch":
        keys = sorted({*keys, "branch_id"})
        carrying = ", ".join(sql_string(t) for t in sorted(BRANCH_TYPES))
        group = f"coalesce(CASE WHEN type IN ({carrying}) THEN {{branch_id}} END, g)"
    slot = {k: f"_j[{i + 1}]" for i, k in enumerate(keys)}
    for k in keys:
        json_field(k)  # checks the name
    paths = ", ".join(sql_string("$." + k) for k in keys)
    columns = ", ".join(
        ["type", "ts", "local_date", *kept, f"{group.format(**slot)} AS g"]
        + [f"{sql.format(**slot)} AS {name}" for name, sql in extracted.items()]
        + [f"{in_period} AS in_period"]
    )
    parsed = f"json_extract_string(payload, [{paths}])" if keys else "NULL::VARCHAR[]"
    source = events_sql(g, types, lo, hi, typed=True)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE cx_x AS SELECT {columns} FROM "
        f"(SELECT *, {parsed} AS _j FROM {source} WHERE {keep})"
    )


def _within(con: Any, ind: Indicator, w: Window) -> Raw:
    spec = ind.within
    assert spec is not None
    case = f"c_{spec.case}"
    rows = con.execute(
        f"WITH st AS (SELECT {case} AS case_id, min(epoch_us(ts)) AS t0, arg_min(g, epoch_us(ts)) AS g, "
        "arg_min(local_date, epoch_us(ts)) AS d0 FROM cx_x "
        f"WHERE type = ? AND {case} IS NOT NULL GROUP BY 1), "
        f"en AS (SELECT {case} AS case_id, epoch_us(ts) AS us FROM cx_x "
        f"WHERE type = ? AND {case} IS NOT NULL), "
        "c AS (SELECT st.case_id, any_value(st.g) AS g, bool_or(en.us IS NOT NULL) AS done FROM st "
        "LEFT JOIN en ON en.case_id = st.case_id AND en.us >= st.t0 "
        f"AND en.us <= st.t0 + {spec.days * DAY_US} "
        f"WHERE st.d0 >= DATE '{w.start.isoformat()}' GROUP BY st.case_id) "
        "SELECT g, count(*), count(*) FILTER (WHERE done) FROM c WHERE g IS NOT NULL GROUP BY g",
        [spec.start, spec.end],
    ).fetchall()
    return {str(r[0]): (ratio(int(r[2]), int(r[1])), int(r[1])) for r in rows}


def _customers(
    session: Session, g: Grouping, duck: DuckEngine, inds: list[Indicator], w: Window
) -> dict[str, Raw]:
    """Every ``customers`` indicator in one query: one grouped scan of the events for all the aggregates
    their expressions use, then per group and indicator the customers matching ``of`` and ``of AND share``
    as filtered counts."""
    if not inds:
        return {}
    if g.customer is None:
        return {ind.id: {} for ind in inds}
    vocab = vocabulary(session)
    expressions = []
    for ind in inds:
        spec = ind.customers
        assert spec is not None
        try:
            expressions += [parse(spec.of, vocab), parse(spec.share, vocab)]
        except AppError as exc:
            raise InputRefused(f"indicator {ind.id}: customers: {exc.message}") from None
    cte, predicates = compile_many(expressions, w.last_day, "duckdb")
    counts = []
    for k in range(len(inds)):
        of, share = predicates[2 * k], predicates[2 * k + 1]
        counts += [f"count(*) FILTER (WHERE {of})", f"count(*) FILTER (WHERE {of} AND {share})"]
    join = " LEFT JOIN ev ON ev.customer_id = p.customer_id" if cte else ""
    rows = duck.con.execute(
        f"{'WITH ' + cte + ' ' if cte else ''}SELECT {g.customer} AS g, {', '.join(counts)} "
        f"FROM profiles p{join} GROUP BY 1"
    ).fetchall()
    out: dict[str, Raw] = {ind.id: {} for ind in inds}
    for r in rows:
        if r[0] is None:
            continue
        for k, ind in enumerate(inds):
            n, share_n = int(r[1 + 2 * k]), int(r[2 + 2 * k])
            if n:
                out[ind.id][str(r[0])] = (ratio(share_n, n), n)
    return out


def _tickets(
    session: Session,
    settings: Settings,
    con: Any,
    g: Grouping,
    inds: list[Indicator],
    w: Window,
    customers: dict[str, int],
) -> dict[str, Raw]:
    import pyarrow as pa

    lo = datetime.combine(w.start, time(0), tzinfo=settings.tz).astimezone(UTC)
    hi = datetime.combine(w.end, time(0), tzinfo=settings.tz).astimezone(UTC)
    result = session.execute(
        select(
            Ticket.customer_id,
            Ticket.org_id,
            Ticket.channel,
            Ticket.kind,
            Ticket.category,
            Ticket.sla_breached,
        ).where(Ticket.opened_at >= lo, Ticket.opened_at < hi)
    ).all()
    names = ("customer_id", "org_id", "channel", "kind", "category", "breached")
    cols = list(zip(*result, strict=True)) if result else [() for _ in names]
    kinds = [pa.string()] * 5 + [pa.bool_()]
    table = pa.table({n: pa.array(list(c), k) for n, c, k in zip(names, cols, kinds, strict=True)})
    con.register("cx_tickets", table)
    try:
        columns = []
        for k, ind in enumerate(inds):
            t = ind.tickets
            assert t is not None
            parts = []
            if t.ticket_kind is not None:
                parts.append(f"kind = {sql_string(t.ticket_kind)}")
            if t.category is not None:
                parts.append(f"category = {sql_string(t.category)}")
            cond = " AND ".join(parts) or "TRUE"
            columns += [
                f"count(*) FILTER (WHERE {cond}) AS a{k}",
                f"count(*) FILTER (WHERE {cond} AND breached)",
            ]
        rows = con.execute(
            f"SELECT {g.ticket} AS g, {', '.join(columns)} FROM cx_tickets t GROUP BY 1"
        ).fetchall()
    finally:
        con.unregister("cx_tickets")
    out: dict[str, Raw] = {ind.id: {} for ind in inds}
    by_group = {str(r[0]): r for r in rows if r[0] is not None}
    for k, ind in enumerate(inds):
        assert ind.tickets is not None
        if ind.tickets.metric == "complaints_per_1000":
            for grp, base in customers.items():
                r = by_group.get(grp)
                out[ind.id][grp] = (ratio(int(r[1 + 2 * k]) if r else 0, base, 1000), base)
        else:
            for grp, r in by_group.items():
                opened = int(r[1 + 2 * k])
                out[ind.id][grp] = (ratio(int(r[2 + 2 * k]), opened), opened)
    return out


# ------------------------------------------------------------------------------------------------ scores


def _score_tree(spec: JourneyMap, grp: str, raws: dict[str, Raw]) -> list[IndexRow]:
    """The group's rows, map first, then each stage followed by what is under it (depth first)."""
    rows: list[IndexRow] = []

    def roll(children: list[tuple[Decimal, Decimal | None, Decimal]]) -> tuple[Decimal | None, Decimal]:
        covered = sum((wt for wt, s, _ in children if s is not None), Decimal(0))
        coverage = sum((wt * c for wt, _, c in children), Decimal(0))
        if not covered:
            return None, coverage
        return sum((wt * s for wt, s, _ in children if s is not None), Decimal(0)) / covered, coverage

    def node(
        level: Level, path: str, n: Any, kids: list[tuple[Decimal, Decimal | None, Decimal]], at: int
    ) -> tuple[Decimal, Decimal | None, Decimal]:
        score, coverage = roll(kids)
        rows.insert(
            at,
            IndexRow(
                grp,
                level,
                path,
                n.id,
                n.name,
                n.weight if level != "map" else Decimal(1),
                None,
                score,
                coverage,
                None,
            ),
        )
        return n.weight if level != "map" else Decimal(1), score, coverage

    stages = []
    at_map = len(rows)
    for s in spec.stages:
        at_s = len(rows)
        tps = []
        for t in s.touchpoints:
            at_t = len(rows)
            pts = []
            for p in t.experience_points:
                at_p = len(rows)
                inds = []
                for i in p.indicators:
                    raw, n = raws.get(i.id, {}).get(grp, (None, 0))
                    score = i.score(raw) if raw is not None else None
                    cov = Decimal(1) if score is not None else Decimal(0)
                    rows.append(
                        IndexRow(
                            grp,
                            "indicator",
                            f"{s.id}/{t.id}/{p.id}/{i.id}",
                            i.id,
                            i.name,
                            i.weight,
                            raw,
                            score,
                            cov,
                            n,
                        )
                    )
                    inds.append((i.weight, score, cov))
                pts.append(node("experience_point", f"{s.id}/{t.id}/{p.id}", p, inds, at_p))
            tps.append(node("touchpoint", f"{s.id}/{t.id}", t, pts, at_t))
        stages.append(node("stage", s.id, s, tps, at_s))
    node("map", "", spec, stages, at_map)
    return rows


# ------------------------------------------------------------------------------------------------ output


def _fmt(value: Decimal | None, q: Decimal) -> str:
    return "" if value is None else str(value.quantize(q, rounding=ROUND_HALF_UP))


def plain_rows(result: IndexResult) -> Iterator[list[str]]:
    """One list of strings per row, in CSV column order (for a Rich table or CSV)."""
    for r in result.rows:
        yield [
            result.map_id, result.period, r.group, r.level, r.path, r.id, r.name, str(r.weight.normalize()),
            _fmt(r.raw, _4), _fmt(r.score, _2), _fmt(r.coverage, _4), "" if r.n is None else str(r.n),
        ]  # fmt: skip


def write_csv(result: IndexResult, out: Path) -> int:
    """Write the rows (columns :data:`CSV_COLUMNS`, UTF-8 with BOM so Excel reads the Chinese); returns
    how many."""
    n = 0
    with out.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for row in plain_rows(result):
            writer.writerow(row)
            n += 1
    return n


__all__ = [
    "CSV_COLUMNS",
    "IndexResult",
    "IndexRow",
    "compute_index",
    "index_values",
    "parse_period",
    "plain_rows",
    "write_csv",
]
