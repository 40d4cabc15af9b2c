"""Segments (客群): count, preview, export, save, snapshot with who entered and who left, the matrix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.config import Settings
from omnibank.customers.models import Customer
from omnibank.customers.repository import Within
from omnibank.customers.values import age_on
from omnibank.db.bulk import delete_keys, insert_rows
from omnibank.errors import AppError, NotFound
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.masking import mask_name
from omnibank.kit.money import from_fen
from omnibank.segments.compile import quote
from omnibank.segments.engine import StoreEngine, current_snapshot, duck_engine, parse_in
from omnibank.segments.expr import TAG_PATTERN, And, Cmp, Expression, Field, InOrg, IsNull, Lit, Or
from omnibank.segments.models import Segment, SegmentChange, SegmentMember, SegmentSnapshot
from omnibank.segments.tables import tag_definitions

if TYPE_CHECKING:
    import pyarrow as pa

    from omnibank.segments.spark import SparkEngine

_MEMBERS: Table = SegmentMember.__table__  # type: ignore[assignment]
_CHANGES: Table = SegmentChange.__table__  # type: ignore[assignment]


def within_org(expression: Expression, org_id: str) -> Expression:
    """``expression AND in_org(org_id)``, combined on the checked tree (never by pasting text, which a
    closing parenthesis in the user's text could escape)."""
    return Expression(
        text=f"({expression.text}) AND in_org({quote(org_id)})",
        root=And((expression.root, InOrg(org_id))),
        tags=expression.tags,
        orgs=expression.orgs | {org_id},
        aggregates=expression.aggregates,
    )


def within_scope(expression: Expression, within: Within) -> Expression:
    """``expression`` restricted to a caller's customers (:class:`Within`): the subtree under its org, or
    for an RM (管户) ``rm_id = '<RM>' OR (rm_id IS NULL AND in_org(<unit>))``, on the checked tree."""
    if within.rm_id is None:
        return within_org(expression, within.org_id)
    rm = Field("rm_id", "str")
    mine = Or((Cmp("=", rm, Lit(within.rm_id, "str")), And((IsNull(rm), InOrg(within.org_id)))))
    return Expression(
        text=f"({expression.text}) AND (rm_id = {quote(within.rm_id)} OR (rm_id IS NULL AND "
        f"in_org({quote(within.org_id)})))",
        root=And((expression.root, mine)),
        tags=expression.tags,
        orgs=expression.orgs | {within.org_id},
        aggregates=expression.aggregates,
    )


def _shown(within: str | Within | None) -> str | dict[str, str] | None:
    """``within`` as an audit entry keeps it: the org, or the org and the RM."""
    if within is None or isinstance(within, str):
        return within
    return within.org_id if within.rm_id is None else {"org_id": within.org_id, "rm_id": within.rm_id}


def parse_within(session: Session, text: str, within: str | Within | None) -> Expression:
    """Parse ``text``; with ``within``, only customers of that org's subtree (or of that scope) match."""
    expression = parse_in(session, text)
    if within is None:
        return expression
    return within_org(expression, within) if isinstance(within, str) else within_scope(expression, within)


def count(
    session: Session,
    settings: Settings,
    text: str,
    *,
    as_of: date,
    engine: str = "duckdb",
    within: str | Within | None = None,
    spark_master: str | None = None,
) -> int:
    expression = parse_within(session, text, within)
    if engine == "postgres":
        return StoreEngine(session, settings.timezone).count(expression, as_of)
    if engine == "spark":
        with _spark(session, settings, spark_master) as spark:
            return spark.count(expression, as_of)
    with duck_engine(session, settings) as duck:
        return duck.count(expression, as_of)


@contextmanager
def _spark(session: Session, settings: Settings, master: str | None) -> Iterator[SparkEngine]:
    from omnibank.segments.spark import DEFAULT_MASTER, spark_engine

    with spark_engine(
        settings, current_snapshot(session, settings), master=master or DEFAULT_MASTER
    ) as spark:
        yield spark


def member_ids(
    session: Session,
    settings: Settings,
    expression: Expression,
    as_of: date,
    *,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> pa.Array:
    if engine == "spark":
        with _spark(session, settings, spark_master) as spark:
            return spark.ids(expression, as_of)
    with duck_engine(session, settings) as duck:
        return duck.ids(expression, as_of)


def member_set(session: Session, settings: Settings, text: str, *, as_of: date) -> frozenset[str]:
    """The ids of the customers matching ``text`` (e.g. a campaign's eligibility)."""
    return frozenset(member_ids(session, settings, parse_in(session, text), as_of).to_pylist())


@dataclass(frozen=True)
class PreviewRow:
    customer_id: str
    name: str  # masked
    gender: str
    age: int
    branch_id: str
    aum: str
    occupation: str


def preview(
    session: Session,
    settings: Settings,
    cipher: FieldCipher,
    text: str,
    *,
    as_of: date,
    limit: int,
    actor: str,
    within: str | Within | None = None,
    source: str = "cli",
) -> tuple[int, list[PreviewRow]]:
    """The first ``limit`` matching customers (by id), names masked; the view is audited."""
    ids = member_ids(session, settings, parse_within(session, text, within), as_of)
    first = ids.slice(0, limit).to_pylist()
    customers = {
        c.customer_id: c for c in session.scalars(select(Customer).where(Customer.customer_id.in_(first)))
    }
    rows = []
    for cid in first:
        c = customers[cid]
        rows.append(
            PreviewRow(
                customer_id=cid,
                name=mask_name(cipher.decrypt(c.name_enc, context=f"customers.name:{cid}")),
                gender=c.gender,
                age=age_on(c.birth_date, as_of),
                branch_id=c.branch_id,
                aum=f"{from_fen(c.aum_fen):,.2f}",
                occupation=c.occupation,
            )
        )
    audit.record(
        session,
        actor=actor,
        action="segment.preview",
        subject_type="segment",
        subject_id=None,
        detail={"expression": text, "as_of": as_of.isoformat(), "shown": first, "fields": ["name"]},
        source=source,
    )
    return len(ids), rows


def export_ids(
    session: Session,
    settings: Settings,
    text: str,
    *,
    as_of: date,
    actor: str,
    within: str | Within | None = None,
    source: str = "cli",
) -> list[str]:
    """The matching customer ids (for an API caller); the export is audited."""
    ids: list[str] = member_ids(session, settings, parse_within(session, text, within), as_of).to_pylist()
    audit.record(
        session,
        actor=actor,
        action="segment.export",
        subject_type="segment",
        subject_id=None,
        detail={"expression": text, "as_of": as_of.isoformat(), "rows": len(ids), "within": _shown(within)},
        source=source,
    )
    return ids


def export(
    session: Session,
    settings: Settings,
    text: str,
    *,
    as_of: date,
    out: Path,
    actor: str,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> int:
    """Write the matching customer ids to ``out`` (.csv or .parquet); the export is audited."""
    suffix = out.suffix.lower()
    if suffix not in {".csv", ".parquet"}:
        raise AppError(f"{out}: the export file must end in .csv or .parquet")
    if out.is_dir():
        raise AppError(f"{out}: is a folder; give a file name")
    ids = member_ids(
        session, settings, parse_in(session, text), as_of, engine=engine, spark_master=spark_master
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if suffix == ".csv":
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            fh.write("customer_id\n")
            fh.writelines(f"{cid}\n" for cid in ids.to_pylist())
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"customer_id": ids}), tmp)
    tmp.replace(out)
    audit.record(
        session,
        actor=actor,
        action="segment.export",
        subject_type="segment",
        subject_id=None,
        detail={"expression": text, "as_of": as_of.isoformat(), "rows": len(ids), "file": str(out)},
    )
    return len(ids)


def save(
    session: Session, *, name: str, text: str, description: str, actor: str, source: str = "cli"
) -> Segment:
    if not TAG_PATTERN.match(name):
        raise AppError(f"segment name {name!r}: lower-case letters, digits and _, starting with a letter")
    parse_in(session, text)
    now = datetime.now(UTC)
    seg = session.get(Segment, name)
    if seg is None:
        seg = Segment(name=name, created_by=actor, created_at=now)
    seg.expression, seg.description, seg.updated_at = text, description, now
    session.add(seg)
    session.flush()
    audit.record(
        session, actor=actor, action="segment.save", subject_type="segment", subject_id=name,
        detail={"expression": text}, source=source,
    )  # fmt: skip
    return seg


def get(session: Session, name: str) -> Segment:
    seg = session.get(Segment, name)
    if seg is None:
        names = ", ".join(session.scalars(select(Segment.name).order_by(Segment.name))) or "none yet"
        raise NotFound(f"no saved segment {name!r}; saved: {names}")
    return seg


@dataclass(frozen=True)
class SnapshotResult:
    snapshot_id: int
    members: int
    entered: list[str]
    left: list[str]
    first: bool


def snapshot(
    session: Session, settings: Settings, name: str, *, as_of: date, actor: str, source: str = "cli"
) -> SnapshotResult:
    """Evaluate a saved segment and record who entered and who left since its last snapshot."""
    import pyarrow as pa
    import pyarrow.compute as pc

    seg = get(session, name)
    expression = parse_in(session, seg.expression)
    now = datetime.now(UTC)
    new = member_ids(session, settings, expression, as_of)
    old = pa.array(
        session.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment == name)).all(),
        pa.string(),
    )
    first = session.scalar(select(func.count()).where(SegmentSnapshot.segment == name)) == 0
    entered = (
        pc.filter(new, pc.invert(pc.is_in(new, value_set=old))).to_pylist() if len(old) else new.to_pylist()
    )
    left = (
        pc.filter(old, pc.invert(pc.is_in(old, value_set=new))).to_pylist() if len(new) else old.to_pylist()
    )
    snap = SegmentSnapshot(
        segment=name,
        expression=seg.expression,
        as_of=as_of,
        taken_at=now,
        taken_by=actor,
        members=len(new),
        entered=len(entered),
        left=len(left),
    )
    session.add(snap)
    session.flush()
    if left:
        delete_keys(session, _MEMBERS, ("segment", "customer_id"), ((name, c) for c in left))
    if entered:
        insert_rows(
            session,
            _MEMBERS,
            ("segment", "customer_id", "snapshot_id"),
            ((name, c, snap.id) for c in entered),
        )
    changes = [(snap.id, c, "entered") for c in entered] + [(snap.id, c, "left") for c in left]
    if changes:
        insert_rows(session, _CHANGES, ("snapshot_id", "customer_id", "change"), changes)
    audit.record(
        session, actor=actor, action="segment.snapshot", subject_type="segment", subject_id=name,
        detail={"snapshot": snap.id, "members": len(new), "entered": len(entered), "left": len(left)},
        source=source,
    )  # fmt: skip
    return SnapshotResult(snap.id, len(new), sorted(entered), sorted(left), first)


def delete_segment(session: Session, name: str, *, actor: str) -> None:
    get(session, name)
    session.execute(delete(Segment).where(Segment.name == name))
    audit.record(session, actor=actor, action="segment.delete", subject_type="segment", subject_id=name)


def segments_of(session: Session, customer_id: str) -> list[str]:
    """The saved segments a customer is in, as of each one's latest snapshot."""
    return list(
        session.scalars(
            select(SegmentMember.segment)
            .where(SegmentMember.customer_id == customer_id)
            .order_by(SegmentMember.segment)
        )
    )


# -------------------------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class Matrix:
    lifecycle: list[str]
    wealth: list[str]
    occupations: list[str]
    counts: dict[tuple[str, str, str], int]
    total: int


def matrix(
    session: Session,
    settings: Settings,
    *,
    where: str | None,
    as_of: date,
    within: str | Within | None = None,
) -> Matrix:
    """Counts over lifecycle stage × wealth tier × occupation (seed 002's 112 segments), from the tags of
    categories ``lifecycle`` and ``wealth``; a customer with none of a category counts under "—". Only the
    customers matching ``where`` and, with ``within``, only the caller's (as :func:`count`)."""
    from omnibank.customers.values import OCCUPATIONS

    cats: dict[str, list[str]] = {"lifecycle": [], "wealth": []}
    for name, cat in session.execute(
        select(tag_definitions.c.name, tag_definitions.c.category).order_by(tag_definitions.c.name)
    ):
        if cat in cats:
            cats[cat].append(name)
    if not cats["lifecycle"] or not cats["wealth"]:
        raise AppError(
            "the matrix needs tags of categories lifecycle and wealth; "
            "load and compute them: omnibank tags load examples/tags && omnibank tags compute"
        )
    filter_sql = ""
    narrowed = bool(where) or within is not None
    with duck_engine(session, settings) as duck:
        if narrowed:
            import pyarrow as pa

            ids = duck.ids(parse_within(session, where or "customer_id IS NOT NULL", within), as_of)
            duck.con.register("_scope", pa.table({"customer_id": ids}))
            filter_sql = "WHERE p.customer_id IN (SELECT customer_id FROM _scope)"
        try:
            result = duck.query(_matrix_sql(cats["lifecycle"], cats["wealth"], filter_sql))
        finally:
            if narrowed:
                duck.con.unregister("_scope")
    counts = {
        (str(lc), str(w), str(o)): int(n) for lc, w, o, n in zip(*result.to_pydict().values(), strict=True)
    }
    return Matrix(
        lifecycle=cats["lifecycle"] + (["—"] if any(k[0] == "—" for k in counts) else []),
        wealth=cats["wealth"] + (["—"] if any(k[1] == "—" for k in counts) else []),
        occupations=list(OCCUPATIONS),
        counts=counts,
        total=sum(counts.values()),
    )


def _matrix_sql(lifecycle: list[str], wealth: list[str], filter_sql: str) -> str:
    def first_tag(names: list[str]) -> str:
        listed = ", ".join(quote(n) for n in names)
        return f"(SELECT min(tag) FROM tags t WHERE t.customer_id = p.customer_id AND t.tag IN ({listed}))"

    return (
        f"SELECT coalesce({first_tag(lifecycle)}, '—') AS lc, coalesce({first_tag(wealth)}, '—') AS w, "
        f"p.occupation, count(*) FROM profiles p {filter_sql} GROUP BY ALL"
    )


def export_attributes(session: Session, settings: Settings, out: Path) -> dict[str, int]:
    """Copy the current profile snapshot (customers' non-personal attributes, tags, merges, stored scores:
    never a name, phone or ID number) into ``out``, for a Spark job reading the event log beside it.
    Written aside and renamed into place, so a reader never sees half an export."""
    import shutil

    import pyarrow.parquet as pq

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AppError(f"{out}: exists and is not an empty folder; give a new one")
    snapshot = current_snapshot(session, settings)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts = {}
    for name in ("profiles", "tags", "merges", "scores"):
        source = snapshot.folder / f"{name}.parquet"
        shutil.copyfile(source, tmp / f"{name}.parquet")
        counts[name] = pq.ParquetFile(source).metadata.num_rows
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return counts
