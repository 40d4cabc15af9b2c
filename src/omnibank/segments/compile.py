"""Compile a checked expression to SQL for an engine (DuckDB locally, PostgreSQL in the store, Spark SQL over
the shared log: DuckDB's SQL with day differences written as ``date_diff``, transpiled by sqlglot).

The SQL reads three relations the engine provides under these names:

* ``profiles`` — one row a customer (merged-away customers left out): ``customer_id, gender, birth_date,
  branch_id, rm_id, aum_fen, occupation, risk_tolerance, channel_pref, marketing_consent, registered_at,
  org_path`` — never a personal field;
* ``tags`` — ``customer_id, tag``;
* ``scores`` — ``model, customer_id, score_ppm`` (models' stored scores in millionths; only when an
  expression uses ``score()``);
* ``events`` — the event log (merged customers' events under their survivor) with ``type, customer_id,
  local_date`` and the typed columns; on DuckDB also the ``month`` partition, for pruning.

Every event function of an expression becomes one filtered aggregate of a single grouped scan of
``events``, joined to ``profiles``: the query a person would write by hand. Values come only from the
checked tree; strings are quoted here, never pasted from the user's text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from omnibank.kit.dates import check_date
from omnibank.segments.expr import (
    SCORE_SCALE,
    And,
    Between,
    Cmp,
    EventAgg,
    EvField,
    Expression,
    Field,
    HasTag,
    In,
    InOrg,
    IsNull,
    Like,
    Lit,
    Node,
    Not,
    Or,
    Score,
)

Dialect = Literal["duckdb", "postgres", "spark"]


def quote(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL in a string literal")
    return "'" + value.replace("'", "''") + "'"


def sql_date(d: date) -> str:
    return f"DATE '{d.isoformat()}'"


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")  # 1E+5 would be a DOUBLE to DuckDB
    if isinstance(value, date):
        return sql_date(value)
    if isinstance(value, str):
        return quote(value)
    raise TypeError(f"no SQL literal for {value!r}")  # pragma: no cover


@dataclass(frozen=True)
class Compiled:
    """SQL for one expression at one as-of date: ``with_clause`` (may be empty), then ``FROM … WHERE``."""

    with_clause: str
    from_where: str

    def select(self, columns: str, *, ctes: str = "") -> str:
        withs = ", ".join(c for c in (ctes, self.with_clause) if c)
        return f"{'WITH ' + withs + ' ' if withs else ''}SELECT {columns} {self.from_where}"

    def count_sql(self, *, ctes: str = "") -> str:
        return self.select("count(*)", ctes=ctes)

    def ids_sql(self, *, ctes: str = "", order: bool = True) -> str:
        sql = self.select("p.customer_id", ctes=ctes)
        return sql + (" ORDER BY p.customer_id" if order else "")


class _Writer:
    def __init__(self, expression: Expression, as_of: date, dialect: Dialect):
        self.as_of = as_of
        self.dialect = dialect
        self.columns = {agg: f"e{i}" for i, agg in enumerate(expression.aggregates)}

    # integer scaling: ``aum`` is stored in fen, a score in millionths; whatever they are compared with is
    # scaled the same way, so every engine compares integers exactly
    def scaled(self, node: Node, scale: int) -> str:
        if scale == 1:
            return self.sql(node)
        if (
            isinstance(node, Lit)
            and isinstance(node.value, int | Decimal)
            and not isinstance(node.value, bool)
        ):
            return _literal(node.value * scale)
        own = _scale(node)
        if own > 1:
            raw = "p.aum_fen" if isinstance(node, Field) else self.score_ppm(node)
            return raw if own == scale else f"({raw} * {scale // own})"
        return f"({self.sql(node)} * {scale})"

    def score_ppm(self, node: Node) -> str:
        assert isinstance(node, Score)
        return (
            f"(SELECT max(s.score_ppm) FROM scores s WHERE s.model = {quote(node.model)} "
            "AND s.customer_id = p.customer_id)"
        )

    def sql(self, node: Node) -> str:
        if isinstance(node, Lit):
            return _literal(node.value)
        if isinstance(node, Field):
            if node.name == "age":
                d = self.as_of
                born = "EXTRACT(MONTH FROM p.birth_date) * 100 + EXTRACT(DAY FROM p.birth_date)"
                return (
                    f"({d.year} - EXTRACT(YEAR FROM p.birth_date) "
                    f"- CASE WHEN {born} > {d.month * 100 + d.day} THEN 1 ELSE 0 END)"
                )
            if node.name == "tenure_days":
                return self.days_between(sql_date(self.as_of), "p.registered_at")
            if node.name == "aum":
                return "(p.aum_fen / 100.0)"  # only when compared with no number (never, after checking)
            return f"p.{node.name}"
        if isinstance(node, EvField):
            return node.column
        if isinstance(node, And):
            return "(" + " AND ".join(self.sql(n) for n in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.sql(n) for n in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.sql(node.item)})"
        if isinstance(node, Cmp):
            left, right = node.left, node.right
            if _is_age(left) and isinstance(right, Lit) and _is_int(right):
                return self.age_compare(node.op, int(str(right.value)))
            if _is_age(right) and isinstance(left, Lit) and _is_int(left):
                flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(node.op, node.op)
                return self.age_compare(flipped, int(str(left.value)))
            scale = max(_scale(node.left), _scale(node.right))
            op = "<>" if node.op == "!=" else node.op
            return f"({self.scaled(node.left, scale)} {op} {self.scaled(node.right, scale)})"
        if isinstance(node, In):
            scale = _scale(node.item)
            values = ", ".join(self.scaled(v, scale) for v in node.values)
            return f"({self.scaled(node.item, scale)} IN ({values}))"
        if isinstance(node, Between):
            low, high = node.low, node.high
            if (
                _is_age(node.item)
                and isinstance(low, Lit)
                and _is_int(low)
                and isinstance(high, Lit)
                and _is_int(high)
            ):
                lo, hi = int(str(low.value)), int(str(high.value))
                return f"({self.age_compare('>=', lo)} AND {self.age_compare('<=', hi)})"
            scale = max(_scale(node.item), _scale(node.low), _scale(node.high))
            return (
                f"({self.scaled(node.item, scale)} BETWEEN {self.scaled(node.low, scale)} "
                f"AND {self.scaled(node.high, scale)})"
            )
        if isinstance(node, IsNull):
            return f"({self.sql(node.item)} IS NULL)"
        if isinstance(node, Like):
            return f"({self.sql(node.item)} LIKE {quote(node.pattern)})"
        if isinstance(node, HasTag):
            return f"(p.customer_id IN (SELECT customer_id FROM tags WHERE tag = {quote(node.tag)}))"
        if isinstance(node, InOrg):
            return f"(strpos(p.org_path, {quote('/' + node.org_id + '/')}) > 0)"
        if isinstance(node, Score):
            return f"({self.score_ppm(node)} / {SCORE_SCALE}.0)"  # as a value (a feature), not compared
        if isinstance(node, EventAgg):
            col = f"ev.{self.columns[node]}"
            if node.kind == "days_since":
                return self.days_between(sql_date(self.as_of), col)
            return f"COALESCE({col}, 0)"
        raise TypeError(f"unknown node {node!r}")  # pragma: no cover

    def days_between(self, later: str, earlier: str) -> str:
        """Whole days from ``earlier`` to ``later`` (dates): a subtraction in DuckDB and PostgreSQL; for
        Spark, where it would be an interval, ``date_diff`` (sqlglot writes Spark's ``DATEDIFF``)."""
        if self.dialect == "spark":
            return f"date_diff('day', {earlier}, {later})"
        return f"({later} - {earlier})"

    def born_by(self, years: int) -> str:
        """The latest birth date of someone at least ``years`` old on the as-of date (29 February moves
        to 28 February in a year without it: that birthday is reached on 1 March)."""
        d = self.as_of
        year = d.year - years
        if year < date.min.year:  # older than anyone can be: no birth date is that early
            return sql_date(date.min)
        if year > date.max.year:  # a negative age: every birth date is early enough
            return sql_date(date.max)
        try:
            return sql_date(d.replace(year=year))
        except ValueError:
            return sql_date(date(year, 2, 28))

    def age_compare(self, op: str, n: int) -> str:
        """``age <op> n`` as a range of birth dates: the same answer, and a plain column filter."""
        at_least = f"(p.birth_date <= {self.born_by(n)})"
        older = f"(p.birth_date <= {self.born_by(n + 1)})"  # age >= n + 1
        return {
            ">=": at_least,
            ">": older,
            "<": f"(NOT {at_least})",
            "<=": f"(NOT {older})",
            "=": f"({at_least} AND NOT {older})",
            "!=": f"(NOT {at_least} OR {older})",
        }[op]

    def window(self, agg: EventAgg) -> str:
        parts = [f"type = {quote(agg.type)}"]
        if agg.days is not None:
            parts.append(f"local_date > {sql_date(self.as_of - timedelta(days=agg.days))}")
        if agg.cond is not None:
            parts.append(self.sql(agg.cond))
        return " AND ".join(parts)

    def events_cte(self) -> str:
        if not self.columns:
            return ""
        aggs = list(self.columns)
        selects = []
        for agg, col in self.columns.items():
            fn = {"count": "count(*)", "sum": "sum(amount)", "days_since": "max(local_date)"}[agg.kind]
            selects.append(f"{fn} FILTER (WHERE {self.window(agg)}) AS {col}")
        types = sorted({a.type for a in aggs})
        where = [f"type IN ({', '.join(quote(t) for t in types)})", f"local_date <= {sql_date(self.as_of)}"]
        if all(a.cond is not None for a in aggs):  # rows no aggregate wants are not even grouped
            conds = list(dict.fromkeys(self.sql(a.cond) for a in aggs if a.cond is not None))
            where.append(conds[0] if len(conds) == 1 else "(" + " OR ".join(conds) + ")")
        if all(a.days is not None for a in aggs):
            start = self.as_of - timedelta(days=max(a.days or 0 for a in aggs))
            where.append(f"local_date > {sql_date(start)}")
            if self.dialect != "postgres":
                where.append(f"month >= {quote(f'{start:%Y-%m}')}")
        if self.dialect != "postgres":
            where.append(f"month <= {quote(f'{self.as_of:%Y-%m}')}")
        return (
            f"ev AS (SELECT customer_id, {', '.join(selects)} FROM events "
            f"WHERE {' AND '.join(where)} GROUP BY customer_id)"
        )


def _is_age(node: Node) -> bool:
    return isinstance(node, Field) and node.name == "age"


def _is_int(node: Node) -> bool:
    return isinstance(node, Lit) and isinstance(node.value, int) and not isinstance(node.value, bool)


def _is_aum(node: Node) -> bool:
    return isinstance(node, Field) and node.name == "aum"


def _scale(node: Node) -> int:
    """The integer scale a value is stored at: fen for ``aum``, millionths for a score, else 1."""
    return 100 if _is_aum(node) else SCORE_SCALE if isinstance(node, Score) else 1


# What a condition can come to for a customer with no matching events at all, whatever its attributes:
# a set of possible SQL truth values (T, F, N for NULL). Where T is impossible, only customers with events
# can match, and the query joins the aggregated events instead of scanning every profile against them.
_ALL = frozenset("TFN")


def _not(values: frozenset[str]) -> frozenset[str]:
    return frozenset({"T": "F", "F": "T", "N": "N"}[v] for v in values)


def _and2(a: str, b: str) -> str:
    return "F" if "F" in (a, b) else "N" if "N" in (a, b) else "T"


def _or2(a: str, b: str) -> str:
    return "T" if "T" in (a, b) else "N" if "N" in (a, b) else "F"


def _fold(parts: list[frozenset[str]], op: Callable[[str, str], str]) -> frozenset[str]:
    acc = parts[0]
    for part in parts[1:]:
        acc = frozenset(op(a, b) for a in acc for b in part)
    return acc


def _without_events(node: Node) -> frozenset[str]:
    if isinstance(node, And):
        return _fold([_without_events(n) for n in node.items], _and2)
    if isinstance(node, Or):
        return _fold([_without_events(n) for n in node.items], _or2)
    if isinstance(node, Not):
        return _not(_without_events(node.item))
    if isinstance(node, Cmp) and isinstance(node.left, EventAgg) and isinstance(node.right, Lit):
        return _empty_compare(node.op, node.left, node.right)
    if isinstance(node, Cmp) and isinstance(node.right, EventAgg) and isinstance(node.left, Lit):
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(node.op, node.op)
        return _empty_compare(flipped, node.right, node.left)
    return _ALL


def _empty_compare(op: str, agg: EventAgg, lit: Lit) -> frozenset[str]:
    empty = None if agg.kind == "days_since" else 0
    if empty is None or lit.value is None or not isinstance(lit.value, int | Decimal):
        return frozenset("N")
    ops: dict[str, Callable[[Decimal, Decimal], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return frozenset("T" if ops[op](Decimal(empty), Decimal(lit.value)) else "F")


def compile_expression(expression: Expression, as_of: date, dialect: Dialect) -> Compiled:
    check_date("as_of", as_of)  # the callers check it first; date arithmetic beyond it overflows
    w = _Writer(expression, as_of, dialect)
    predicate = w.sql(expression.root)
    cte = w.events_cte()
    join = ""
    if cte:
        kind = "JOIN" if "T" not in _without_events(expression.root) else "LEFT JOIN"
        join = f" {kind} ev ON ev.customer_id = p.customer_id"
    return Compiled(with_clause=cte, from_where=f"FROM profiles p{join} WHERE {predicate}")


def event_condition_sql(condition: Node, dialect: Dialect = "duckdb") -> str:
    """A condition over one event's fields as SQL over the event log's columns."""
    return _Writer(Expression(text="", root=condition), date.min, dialect).sql(condition)


def compile_many(expressions: Sequence[Expression], as_of: date, dialect: Dialect) -> tuple[str, list[str]]:
    """Several expressions over one grouped scan of the events (e.g. a report counting many shares): the
    ``ev`` CTE computing every aggregate any of them uses (empty when none does), and each expression's
    predicate over ``profiles p LEFT JOIN ev ON ev.customer_id = p.customer_id`` (aggregates are coalesced,
    so a customer without events reads as none)."""
    check_date("as_of", as_of)
    aggregates = tuple(dict.fromkeys(a for e in expressions for a in e.aggregates))
    w = _Writer(Expression(text="", root=Lit(True, "bool"), aggregates=aggregates), as_of, dialect)
    return w.events_cte(), [w.sql(e.root) for e in expressions]
