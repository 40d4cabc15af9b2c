"""Tags (标签): definitions in YAML, computed in batch, stored per customer with their history.

A definitions file holds a list of tags (or ``tags: [...]``)::

    - name: wealth_affluent
      category: wealth
      description: 富裕客户 (AUM 5万–50万)
      expression: aum >= 50000 AND aum < 500000

``omnibank tags load FILE|DIR`` checks and stores them; ``omnibank tags compute [--as-of]`` evaluates each
one (a tag may use tags defined before it: they are computed in dependency order, each seeing the others'
fresh results), writes who carries it now and records every gain and loss with its as-of date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.db import versions
from omnibank.db.bulk import delete_keys, insert_rows
from omnibank.errors import AppError, InputRefused
from omnibank.orgs.models import Org
from omnibank.segments.engine import duck_engine
from omnibank.segments.expr import (
    CUSTOMER_FIELDS,
    FUNCTIONS,
    TAG_PATTERN,
    Expression,
    ExpressionError,
    Vocabulary,
    parse,
)
from omnibank.tags.models import CustomerTag, CustomerTagChange, TagDefinition

CATEGORIES = ("lifecycle", "wealth", "silver", "digital", "consumption", "channel", "preference", "other")
_TAGS: Table = CustomerTag.__table__  # type: ignore[assignment]
_CHANGES: Table = CustomerTagChange.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class TagSpec:
    name: str
    category: str
    description: str
    expression: str
    source: str


def read_definitions(path: Path) -> list[TagSpec]:
    """Read tag definitions from a YAML file or every ``*.yaml``/``*.yml`` in a folder; every problem is
    reported at once, naming the file and the tag."""
    if not path.exists():
        raise InputRefused(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"}) if path.is_dir() else [path]
    if not files:
        raise InputRefused(f"{path}: no .yaml files in this folder")
    specs: list[TagSpec] = []
    problems: list[str] = []
    for f in files:
        try:
            doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            problems.append(f"{f}: not valid YAML ({str(exc).splitlines()[0]})")
            continue
        items = doc.get("tags") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            problems.append(f"{f}: expected a list of tags (or `tags:` with a list)")
            continue
        for i, item in enumerate(items, 1):
            where = f"{f}: tag #{i}"
            if not isinstance(item, dict):
                problems.append(f"{where}: expected a mapping with name, category, description, expression")
                continue
            unknown = set(item) - {"name", "category", "description", "expression"}
            missing = [k for k in ("name", "category", "expression") if not item.get(k)]
            if unknown:
                problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
            if missing:
                problems.append(f"{where}: missing {', '.join(missing)}")
                continue
            name = str(item["name"]).strip()
            where = f"{f}: tag {name!r}"
            if not TAG_PATTERN.match(name):
                problems.append(
                    f"{where}: a name is lower-case letters, digits and _ (starting with a letter)"
                )
            elif name in CUSTOMER_FIELDS or name in FUNCTIONS:
                problems.append(f"{where}: the name is taken by a field or function")
            category = str(item["category"]).strip()
            if category not in CATEGORIES:
                problems.append(f"{where}: category must be one of {', '.join(CATEGORIES)}")
            specs.append(
                TagSpec(name, category, str(item.get("description") or ""), str(item["expression"]), str(f))
            )
    seen: dict[str, str] = {}
    for s in specs:
        if s.name in seen:
            problems.append(f"{s.source}: tag {s.name!r} is defined twice (also in {seen[s.name]})")
        seen[s.name] = s.source
    if problems:
        raise InputRefused("tag definitions refused:\n  " + "\n  ".join(problems))
    return specs


def store_definitions(session: Session, specs: list[TagSpec], *, now: datetime | None = None) -> list[str]:
    """Check every expression (it may name any tag stored or being stored) and upsert the definitions."""
    now = now or datetime.now(UTC)
    existing = {d.name: d for d in session.scalars(select(TagDefinition))}
    names = frozenset(existing) | {s.name for s in specs}
    vocab = Vocabulary(tags=names, orgs=frozenset(session.scalars(select(Org.org_id))))
    problems = []
    for s in specs:
        try:
            parse(s.expression, vocab)
        except ExpressionError as exc:
            problems.append(f"{s.source}: tag {s.name!r}: {exc.message}")
    if problems:
        raise InputRefused("tag definitions refused:\n  " + "\n  ".join(problems))
    for s in specs:
        d = existing.get(s.name) or TagDefinition(name=s.name)
        d.category, d.description, d.expression, d.source, d.updated_at = (
            s.category,
            s.description,
            s.expression,
            s.source,
            now,
        )
        session.add(d)
    session.flush()
    order_definitions(list(session.scalars(select(TagDefinition))), vocab)  # refuses a cycle
    return [s.name for s in specs]


def order_definitions(defs: list[TagDefinition], vocab: Vocabulary) -> list[TagDefinition]:
    """Definitions in dependency order (a tag after the tags it uses); a cycle is refused by name."""
    by_name = {d.name: d for d in defs}
    deps = {d.name: set(parse(d.expression, vocab).tags) & set(by_name) for d in defs}
    ordered: list[TagDefinition] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise AppError(f"tag definitions form a cycle: {' → '.join(cycle)}")
        state[name] = 1
        for dep in sorted(deps[name]):
            visit(dep, path + [name])
        state[name] = 2
        ordered.append(by_name[name])

    for name in sorted(by_name):
        visit(name, [])
    return ordered


@dataclass
class TagResult:
    tag: str
    members: int
    gained: int
    lost: int


@dataclass
class ComputeReport:
    as_of: date
    results: list[TagResult] = field(default_factory=list)

    @property
    def gained(self) -> int:
        return sum(r.gained for r in self.results)

    @property
    def lost(self) -> int:
        return sum(r.lost for r in self.results)


def compute_tags(
    session: Session,
    settings: Settings,
    *,
    as_of: date,
    only: list[str] | None = None,
    now: datetime | None = None,
    on_tag: Callable[[str], Any] | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> ComputeReport:
    """Evaluate tag definitions as of ``as_of`` and store who carries each; gains and losses are kept.
    ``engine`` ``spark`` evaluates them on Spark over the same snapshot and log (:mod:`omnibank.segments.
    spark`); the store is written the same way."""
    now = now or datetime.now(UTC)
    defs = list(session.scalars(select(TagDefinition)))
    if not defs:
        raise AppError("no tag definitions yet; load some first: omnibank tags load examples/tags")
    vocab = Vocabulary(
        tags=frozenset(d.name for d in defs), orgs=frozenset(session.scalars(select(Org.org_id)))
    )
    ordered = order_definitions(defs, vocab)
    if only:
        unknown = sorted(set(only) - {d.name for d in defs})
        if unknown:
            raise AppError(
                f"unknown tag(s) {', '.join(unknown)}; defined: {', '.join(sorted(vocab.tags or ()))}"
            )
        ordered = [d for d in ordered if d.name in only]
    report = ComputeReport(as_of=as_of)
    with _engine(session, settings, engine, spark_master) as tagger:
        for d in ordered:
            if on_tag:
                on_tag(d.name)
            new = tagger.ids(parse(d.expression, vocab), as_of)
            old = tagger.carriers(d.name)
            gained = pc.filter(new, pc.invert(pc.is_in(new, value_set=old))) if len(old) else new
            lost = pc.filter(old, pc.invert(pc.is_in(old, value_set=new))) if len(new) else old
            _write(session, d.name, gained.to_pylist(), lost.to_pylist(), as_of, now)
            tagger.replace_tag(d.name, new)
            report.results.append(TagResult(d.name, len(new), len(gained), len(lost)))
    versions.bump(session, "tags")
    return report


class _Tagger(Protocol):
    def ids(self, expression: Expression, as_of: date) -> pa.Array: ...

    def carriers(self, tag: str) -> pa.Array: ...

    def replace_tag(self, tag: str, ids: pa.Array) -> None: ...


@contextmanager
def _engine(session: Session, settings: Settings, engine: str, spark_master: str | None) -> Iterator[_Tagger]:
    if engine == "spark":
        from omnibank.segments.engine import current_snapshot
        from omnibank.segments.spark import DEFAULT_MASTER, spark_engine

        snapshot = current_snapshot(session, settings)
        with spark_engine(settings, snapshot, master=spark_master or DEFAULT_MASTER) as spark:
            yield spark
        return
    if engine != "duckdb":
        raise AppError(f"--engine must be duckdb or spark, not {engine!r}")
    with duck_engine(session, settings, private=True) as duck:
        yield duck


def _write(
    session: Session, tag: str, gained: list[str], lost: list[str], as_of: date, now: datetime
) -> None:
    if lost:
        delete_keys(session, _TAGS, ("tag", "customer_id"), ((tag, c) for c in lost))
    if gained:
        insert_rows(session, _TAGS, ("customer_id", "tag", "since"), ((c, tag, as_of) for c in gained))
    changes = [(c, tag, "gained", as_of, now) for c in gained] + [(c, tag, "lost", as_of, now) for c in lost]
    if changes:
        insert_rows(session, _CHANGES, ("customer_id", "tag", "change", "as_of", "computed_at"), changes)


def tags_of(session: Session, customer_id: str) -> list[tuple[str, str, date]]:
    """(tag, category, since) of the tags a customer carries now."""
    rows = session.execute(
        select(CustomerTag.tag, TagDefinition.category, CustomerTag.since)
        .join(TagDefinition, TagDefinition.name == CustomerTag.tag, isouter=True)
        .where(CustomerTag.customer_id == customer_id)
        .order_by(TagDefinition.category, CustomerTag.tag)
    )
    return [(t, c or "", s) for t, c, s in rows]


def history_of(session: Session, customer_id: str, limit: int = 20) -> list[tuple[date, str, str]]:
    rows = session.execute(
        select(CustomerTagChange.as_of, CustomerTagChange.tag, CustomerTagChange.change)
        .where(CustomerTagChange.customer_id == customer_id)
        .order_by(CustomerTagChange.as_of.desc(), CustomerTagChange.id.desc())
        .limit(limit)
    )
    return list(rows)
