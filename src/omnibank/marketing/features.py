"""Model features, point in time: a feature set in YAML, computed for every customer as of a cut-off date.

A feature set (``examples/models/installment/features.yaml``)::

    id: installment
    features:
      - {id: age, expr: "age"}
      - {id: spend_90d, expr: "amount('card.transaction', 90)"}
      - {id: days_since_txn, expr: "days_since('card.transaction')"}
      - {id: luckin_fan, expr: "has_tag('luckin_fan')"}   # a condition → 0/1
      - {id: young, expr: "age < 35"}

Each ``expr`` is the segment language (:mod:`omnibank.segments.expr`): either a *value* (a numeric field,
``events``, ``amount``, ``days_since``) or a *condition* (any boolean expression, read as 0/1). Text and
date fields are refused (a model needs numbers): one-hot them as conditions (``occupation = 'retired'``).

:func:`build` computes the whole matrix in ONE DuckDB query: the segment compiler's grouped scan of the
events (:func:`omnibank.segments.compile.compile_many`) joined to the profiles, one column a feature.
What "as of" means for each input — the point of this module is that nothing after the cut-off leaks in:

* **events** — every window of the language ends at the cut-off: ``as_of − N < local_date ≤ as_of``
  (bank-local dates), ``days_since`` looks at events on or before it. A later event reaches no feature.
* **tags** — as of the cut-off, replayed from the tag history (``customer_tag_changes``: the last change
  of each customer and tag on or before the cut-off, kept when it is a gain), not the tags carried today.
* **profile fields** — the *current* profile: ``age`` and ``tenure_days`` are reckoned at the cut-off, but
  ``aum``, ``occupation``, ``risk_tolerance``, ``marketing_consent``, the branch are today's values. For
  mutable fields this is a known leak (``aum`` today may reflect the very purchase a model predicts);
  the store keeps no history of them yet.

Values are float64 (model inputs, not money: ``aum`` and ``amount`` in yuan); NULL (no birth date, no
event for ``days_since``) is NaN. :func:`label` evaluates an outcome condition over the window *after* the
cut-off and refuses one that would look back before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.errors import AppError, InputRefused
from omnibank.kit.dates import check_date
from omnibank.kit.specfile import SpecDoc, load_yaml, validate_yaml
from omnibank.segments import expr as lang
from omnibank.segments.compile import compile_many
from omnibank.segments.engine import duck_engine, vocabulary
from omnibank.tags.models import CustomerTagChange

KIND = "feature set"
SHAPE = "id, features: [{id, expr}]"
Id = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_FEATURES = 500


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureDef(_Model):
    id: Id
    expr: str = Field(min_length=1, max_length=lang.MAX_LENGTH)


class FeatureSetDef(_Model):
    id: Id
    description: str = ""
    features: list[FeatureDef] = Field(min_length=1, max_length=MAX_FEATURES)

    @model_validator(mode="after")
    def _unique(self) -> FeatureSetDef:
        seen: set[str] = set()
        for f in self.features:
            if f.id in seen:
                raise ValueError(f"feature id {f.id!r} is given twice")
            seen.add(f.id)
        return self


@dataclass(frozen=True)
class Feature:
    id: str
    kind: Literal["value", "flag"]  # a number, or a condition read as 0/1
    expression: lang.Expression


@dataclass(frozen=True)
class FeatureSet:
    id: str
    features: tuple[Feature, ...]
    source: str = "<text>"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.features)


@dataclass(frozen=True)
class FeatureMatrix:
    """Features of every customer as of ``as_of``: row i is ``customer_ids[i]``, column j ``columns[j]``."""

    as_of: date
    customer_ids: tuple[str, ...]
    columns: tuple[str, ...]
    values: npt.NDArray[np.float64]  # shape (customers, features); NaN for NULL

    def column(self, name: str) -> npt.NDArray[np.float64]:
        return self.values[:, self.columns.index(name)]

    def row(self, customer_id: str) -> dict[str, float]:
        i = self.customer_ids.index(customer_id)
        return {c: float(v) for c, v in zip(self.columns, self.values[i], strict=True)}

    def aligned(self, labels: Mapping[str, int]) -> npt.NDArray[np.int64]:
        """Labels in the matrix's row order (a customer without a label is 0)."""
        return np.array([labels.get(c, 0) for c in self.customer_ids], dtype=np.int64)


# ---------------------------------------------------------------------------------------------- parse

_NUMERIC: frozenset[lang.FieldType] = frozenset({"num", "int"})


def _non_numeric(node: lang.Field) -> str:
    allowed = lang.CUSTOMER_FIELDS[node.name][1]
    if node.type == "date":
        hint = f"use age or tenure_days, or a condition such as {node.name} >= '2020-01-01'"
    else:
        example = "retired" if "retired" in allowed else (allowed[0] if allowed else "…")
        hint = f"one-hot it as a condition such as {node.name} = '{example}' (read as 0/1)"
    kind = "a date" if node.type == "date" else "text"
    return f"`{node.name}` is {kind}, not a number: a feature must be numeric; {hint}"


def parse_feature(
    text: str, vocab: lang.Vocabulary | None = None
) -> tuple[Literal["value", "flag"], lang.Expression]:
    """One feature's expression: a condition (kind ``flag``, 0/1) or a numeric value (kind ``value``).
    Raises :class:`~omnibank.segments.expr.ExpressionError` naming what is wrong."""
    try:
        return "flag", lang.parse(text, vocab)
    except lang.ExpressionError as first:
        # Not a condition: perhaps a value. The language checks a value wherever it takes one, e.g. before
        # IS NULL; the checked operand is the value (the wrapper only reaches the checker, never SQL).
        try:
            wrapped = lang.parse(f"({text}) IS NULL", vocab)
        except lang.ExpressionError:
            raise first from None
        root = wrapped.root
        if not isinstance(root, lang.IsNull):
            raise first from None
        node = root.item
        if isinstance(node, lang.Field) and node.type not in _NUMERIC and node.type != "bool":
            raise lang.ExpressionError(_non_numeric(node)) from None
        if isinstance(node, lang.Lit) and node.type not in _NUMERIC:
            raise lang.ExpressionError("a constant feature must be a number") from None
        if not isinstance(node, lang.Field | lang.Lit | lang.EventAgg | lang.HasTag | lang.InOrg):
            raise first from None
        return "value", lang.Expression(
            text=text, root=node, tags=wrapped.tags, orgs=wrapped.orgs, aggregates=wrapped.aggregates
        )


def _checked(doc: SpecDoc[FeatureSetDef], vocab: lang.Vocabulary | None) -> FeatureSet:
    problems: list[str] = []
    features: list[Feature] = []
    for i, f in enumerate(doc.value.features):
        try:
            kind, expression = parse_feature(f.expr, vocab)
        except AppError as exc:
            problems.append(doc.problem(("features", i, "expr"), f"{f.id}: {exc.message}"))
            continue
        features.append(Feature(f.id, kind, expression))
    if problems:
        raise doc.refuse(problems)
    return FeatureSet(doc.value.id, tuple(features), doc.source)


def parse_feature_set(
    text: str, *, source: str = "<text>", vocab: lang.Vocabulary | None = None
) -> FeatureSet:
    """A feature set from YAML text; every problem named by field and line (:class:`InputRefused`)."""
    return _checked(validate_yaml(text, FeatureSetDef, source=source, kind=KIND, shape=SHAPE), vocab)


def load_feature_set(path: Path, *, vocab: lang.Vocabulary | None = None) -> FeatureSet:
    return _checked(load_yaml(path, FeatureSetDef, kind=KIND, shape=SHAPE), vocab)


# ---------------------------------------------------------------------------------------------- build


def _recheck(spec: FeatureSet, vocab: lang.Vocabulary) -> list[lang.Expression]:
    """The spec's expressions against the store's tags and orgs (a file is checked without a store)."""
    out = []
    for f in spec.features:
        try:
            out.append(parse_feature(f.expression.text, vocab)[1])
        except AppError as exc:
            raise InputRefused(f"{spec.source}: feature set {spec.id}: {f.id}: {exc.message}") from None
    return out


def tags_as_of(session: Session, tags: Sequence[str], as_of: date) -> dict[str, list[str]]:
    """Who carried each tag as of ``as_of``, from the tag history: each customer's last change of the tag on
    or before that day, kept when it was a gain."""
    out: dict[str, list[str]] = {t: [] for t in tags}
    if not tags:
        return out
    c = CustomerTagChange
    ranked = (
        select(
            c.customer_id,
            c.tag,
            c.change,
            func.row_number()
            .over(partition_by=(c.customer_id, c.tag), order_by=(c.as_of.desc(), c.id.desc()))
            .label("rn"),
        )
        .where(c.tag.in_(list(tags)), c.as_of <= as_of)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.customer_id, ranked.c.tag).where(ranked.c.rn == 1, ranked.c.change == "gained")
    )
    for customer_id, tag in rows:
        out[tag].append(customer_id)
    return out


def build(session: Session, settings: Settings, spec: FeatureSet, *, as_of: date) -> FeatureMatrix:
    """Every feature of ``spec`` for every customer (merged-away and erased customers left out) as of
    ``as_of``, in one DuckDB query. Events and tags as of the cut-off; profile fields are the current
    profile (``aum`` is today's: a known leak for mutable fields). See the module's docstring."""
    import pyarrow as pa

    check_date("as_of", as_of)
    expressions = _recheck(spec, vocabulary(session))
    tagged = tags_as_of(session, sorted({t for e in expressions for t in e.tags}), as_of)
    cte, sqls = compile_many(expressions, as_of, "duckdb")
    cols = [f"CAST(({s}) AS DOUBLE) AS f{i}" for i, s in enumerate(sqls)]
    join = " LEFT JOIN ev ON ev.customer_id = p.customer_id" if cte else ""
    sql = (
        f"{'WITH ' + cte + ' ' if cte else ''}SELECT p.customer_id, {', '.join(cols)} "
        f"FROM profiles p{join} ORDER BY p.customer_id"
    )
    with duck_engine(session, settings, private=True) as engine:  # private: its tags are replaced
        for tag, carriers in tagged.items():
            engine.replace_tag(tag, pa.array(carriers, pa.string()))
        table = engine.query(sql)
    n, k = table.num_rows, len(spec.features)
    values = np.empty((n, k), dtype=np.float64)
    for j in range(k):
        values[:, j] = table.column(j + 1).to_numpy()  # DOUBLE with NULLs → NaN
    customer_ids = tuple(table.column(0).to_pylist())  # VARCHAR: already str
    return FeatureMatrix(as_of=as_of, customer_ids=customer_ids, columns=spec.columns, values=values)


# ---------------------------------------------------------------------------------------------- label


def check_label(expression: lang.Expression, window_days: int) -> None:
    """Refuse a label that could see the cut-off's past: every event window must fit in the label window
    (``events('x', 60)`` over a 30-day window counts 30 days before the cut-off), ``days_since`` reaches
    over all history, and a tag's rule may look back as far as it likes."""
    for agg in expression.aggregates:
        fn = {"count": "events", "sum": "amount", "days_since": "days_since"}[agg.kind]
        if agg.days is None:
            raise InputRefused(
                f"label: {fn}('{agg.type}') looks back over all history, before the cut-off; use "
                f"events('{agg.type}', N) with N ≤ {window_days}"
            )
        if agg.days > window_days:
            raise InputRefused(
                f"label: {fn}('{agg.type}', {agg.days}) reaches {agg.days - window_days} days before the "
                f"cut-off (the label window is {window_days} days): that would leak the past into the "
                f"label; use at most {window_days} days"
            )
    if expression.tags:
        raise InputRefused(
            f"label: has_tag({', '.join(sorted(expression.tags))}): a tag's rule may look back before the "
            "cut-off; write the outcome with events(...) over the label window"
        )


def label(
    session: Session, settings: Settings, expr: str, *, as_of: date, window_days: int
) -> dict[str, int]:
    """1 for each customer for whom the condition ``expr`` holds as of ``as_of + window_days``, else 0
    (NULL counts as 0), for every customer of the matrix. Its event windows must fit in the window, so
    ``events('installment.accepted', 30) >= 1`` with a 30-day window counts only events in
    ``(as_of, as_of + 30]``."""
    check_date("as_of", as_of)
    if not 1 <= window_days <= lang.MAX_DAYS:
        raise InputRefused(f"label: the window must be between 1 and {lang.MAX_DAYS} days, got {window_days}")
    end = check_date("as_of + window", as_of + timedelta(days=window_days))
    try:
        expression = lang.parse(expr, vocabulary(session))
    except AppError as exc:
        raise InputRefused(f"label: {exc.message}") from None
    check_label(expression, window_days)
    cte, (predicate,) = compile_many([expression], end, "duckdb")
    join = " LEFT JOIN ev ON ev.customer_id = p.customer_id" if cte else ""
    sql = (
        f"{'WITH ' + cte + ' ' if cte else ''}SELECT p.customer_id, COALESCE({predicate}, FALSE) AS y "
        f"FROM profiles p{join}"
    )
    with duck_engine(session, settings, private=True) as engine:
        table = engine.query(sql)
    # column-wise (not a dict per row): 1M customers in ~0.6 s instead of ~1.4 s
    flags = np.asarray(table.column(1).to_numpy(), dtype=np.int64).tolist()
    return dict(zip(table.column(0).to_pylist(), flags, strict=True))


__all__ = [
    "Feature",
    "FeatureMatrix",
    "FeatureSet",
    "build",
    "check_label",
    "label",
    "load_feature_set",
    "parse_feature",
    "parse_feature_set",
    "tags_as_of",
]
