"""Reading saved segments for people: the list with each one's size at its last snapshot, one segment with its
snapshot history and who entered and left at the last snapshot, and the lifecycle × wealth matrix for one
occupation or all. Every figure a scoped caller sees counts only the customers of its :class:`Scope` (the
repository's rule, :func:`omnibank.customers.repository.scoped`); the whole bank's are the snapshots' own.

Counting and previewing an expression are :func:`omnibank.segments.service.count` and
:func:`~omnibank.segments.service.preview` (scoped by ``Within``, the preview audited), which the command, the
API and the console share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.customers.models import Customer
from omnibank.customers.repository import Scope, Within, scoped
from omnibank.errors import AppError
from omnibank.segments import service
from omnibank.segments.models import Segment, SegmentChange, SegmentMember, SegmentSnapshot

#: the most snapshots a segment's history shows (the latest ones)
HISTORY = 60


def _in_scope(stmt: Any, scope: Scope, customer_id: Any) -> Any:
    """``stmt`` restricted to the customers of ``scope`` (joined on ``customer_id``); unchanged for the whole
    bank."""
    if scope.whole:
        return stmt
    return scoped(stmt.join(Customer, Customer.customer_id == customer_id), scope)


# ------------------------------------------------------------------------------------------------ list


@dataclass(frozen=True)
class SegmentRow:
    name: str
    description: str
    expression: str
    members: int | None  # at the last snapshot (of the scope's customers); None: never snapshotted
    as_of: date | None
    taken_at: datetime | None


def list_segments(session: Session, scope: Scope) -> list[SegmentRow]:
    """Every saved segment by name, with its size at its last snapshot (two queries, or three when scoped)."""
    latest = (
        select(SegmentSnapshot.segment, func.max(SegmentSnapshot.id).label("sid"))
        .group_by(SegmentSnapshot.segment)
        .subquery()
    )
    snaps = {
        s.segment: s
        for s in session.scalars(select(SegmentSnapshot).join(latest, SegmentSnapshot.id == latest.c.sid))
    }
    mine: dict[str, int] = {}
    if not scope.whole:
        stmt = _in_scope(
            select(SegmentMember.segment, func.count()).group_by(SegmentMember.segment),
            scope,
            SegmentMember.customer_id,
        )
        mine = {str(name): int(n) for name, n in session.execute(stmt)}
    rows = []
    for seg in session.scalars(select(Segment).order_by(Segment.name)):
        snap = snaps.get(seg.name)
        members = None if snap is None else (snap.members if scope.whole else mine.get(seg.name, 0))
        rows.append(
            SegmentRow(
                name=seg.name,
                description=seg.description,
                expression=seg.expression,
                members=members,
                as_of=snap.as_of if snap else None,
                taken_at=snap.taken_at if snap else None,
            )
        )
    return rows


# ------------------------------------------------------------------------------------------ one segment


@dataclass(frozen=True)
class SnapshotPoint:
    snapshot_id: int
    as_of: date
    taken_at: datetime
    taken_by: str
    members: int
    entered: int
    left: int


@dataclass(frozen=True)
class SnapshotDiff:
    """Who entered and who left a segment at its last snapshot, against the one before (``first``: there was
    none before, so every member entered)."""

    snapshot_id: int
    previous_id: int | None
    entered: int
    left: int
    entered_ids: list[str]  # the first few, by id
    left_ids: list[str]

    @property
    def first(self) -> bool:
        return self.previous_id is None


@dataclass(frozen=True)
class SegmentDetail:
    name: str
    expression: str
    description: str
    created_by: str
    updated_at: datetime
    history: list[SnapshotPoint]  # oldest first
    diff: SnapshotDiff | None  # None: never snapshotted


def segment_detail(session: Session, name: str, scope: Scope, *, show: int = 10) -> SegmentDetail:
    """A saved segment (NotFound if none), its last :data:`HISTORY` snapshots and the last one's diff."""
    seg = service.get(session, name)
    snaps = list(
        session.scalars(
            select(SegmentSnapshot)
            .where(SegmentSnapshot.segment == name)
            .order_by(SegmentSnapshot.id.desc())
            .limit(HISTORY)
        )
    )[::-1]
    if scope.whole:
        history = [SnapshotPoint(s.id, s.as_of, s.taken_at, s.taken_by, s.members, s.entered, s.left)
                   for s in snaps]  # fmt: skip
    else:
        history = _scoped_history(session, name, scope, snaps)
    diff = snapshot_diff(session, name, scope, show=show) if snaps else None
    return SegmentDetail(seg.name, seg.expression, seg.description, seg.created_by, seg.updated_at, history,
                         diff)  # fmt: skip


def _scoped_history(
    session: Session, name: str, scope: Scope, snaps: list[SegmentSnapshot]
) -> list[SnapshotPoint]:
    """The history counting the scope's customers only: each snapshot's size is the running sum of who
    entered less who left, up to it (one aggregate query over the segment's changes)."""
    change = SegmentChange.change
    stmt = _in_scope(
        select(
            SegmentChange.snapshot_id,
            func.sum(case((change == "entered", 1), else_=0)),
            func.sum(case((change == "left", 1), else_=0)),
        )
        .join(SegmentSnapshot, SegmentSnapshot.id == SegmentChange.snapshot_id)
        .where(SegmentSnapshot.segment == name)
        .group_by(SegmentChange.snapshot_id),
        scope,
        SegmentChange.customer_id,
    )
    moves = {int(sid): (int(e or 0), int(left or 0)) for sid, e, left in session.execute(stmt)}
    shown = {s.id for s in snaps}
    size, out = 0, []
    for sid in sorted(moves.keys() | shown):
        entered, left = moves.get(sid, (0, 0))
        size += entered - left
        if sid in shown:
            s = next(x for x in snaps if x.id == sid)
            out.append(SnapshotPoint(s.id, s.as_of, s.taken_at, s.taken_by, size, entered, left))
    return out


def snapshot_diff(session: Session, name: str, scope: Scope, *, show: int = 10) -> SnapshotDiff:
    """Who entered and who left ``name`` between its last two snapshots (of the scope's customers): the
    counts and the first ``show`` ids of each. NotFound if no such segment, AppError if never snapshotted."""
    service.get(session, name)
    last = session.scalars(
        select(SegmentSnapshot.id).where(SegmentSnapshot.segment == name).order_by(SegmentSnapshot.id.desc())
        .limit(2)
    ).all()  # fmt: skip
    if not last:
        raise AppError(f"segment {name!r} has no snapshot yet", code="no_snapshot")
    sid = int(last[0])
    counts = dict(
        session.execute(
            _in_scope(
                select(SegmentChange.change, func.count())
                .where(SegmentChange.snapshot_id == sid)
                .group_by(SegmentChange.change),
                scope,
                SegmentChange.customer_id,
            )
        ).all()
    )
    ids: dict[str, list[str]] = {"entered": [], "left": []}
    if show > 0:
        for kind in ids:
            stmt = _in_scope(
                select(SegmentChange.customer_id).where(
                    SegmentChange.snapshot_id == sid, SegmentChange.change == kind
                ),
                scope,
                SegmentChange.customer_id,
            )
            ids[kind] = list(session.scalars(stmt.order_by(SegmentChange.customer_id).limit(show)))
    return SnapshotDiff(
        snapshot_id=sid,
        previous_id=int(last[1]) if len(last) > 1 else None,
        entered=int(counts.get("entered", 0)),
        left=int(counts.get("left", 0)),
        entered_ids=ids["entered"],
        left_ids=ids["left"],
    )


# ---------------------------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class MatrixView:
    """Lifecycle stage (rows) × wealth tier (columns) for one occupation or all (``occupation`` None)."""

    lifecycle: list[str]
    wealth: list[str]
    occupations: list[str]
    occupation: str | None
    cells: list[list[int]]  # [lifecycle][wealth]
    row_totals: list[int]
    column_totals: list[int]
    total: int

    @property
    def peak(self) -> int:
        return max((n for row in self.cells for n in row), default=0)


def matrix_view(
    session: Session,
    settings: Settings,
    *,
    as_of: date,
    within: Within | None,
    occupation: str | None = None,
    where: str | None = None,
) -> MatrixView:
    """:func:`omnibank.segments.service.matrix` (the caller's customers matching ``where``) folded to a
    lifecycle × wealth grid for ``occupation`` (one of the matrix's, else AppError) or summed over all."""
    m = service.matrix(session, settings, where=where or None, as_of=as_of, within=within)
    if occupation is not None and occupation not in m.occupations:
        raise AppError(f"occupation: {occupation!r} is not one of {', '.join(m.occupations)}",
                       code="bad_occupation")  # fmt: skip
    chosen = [occupation] if occupation else m.occupations
    cells = [[sum(m.counts.get((lc, w, o), 0) for o in chosen) for w in m.wealth] for lc in m.lifecycle]
    return MatrixView(
        lifecycle=m.lifecycle,
        wealth=m.wealth,
        occupations=m.occupations,
        occupation=occupation,
        cells=cells,
        row_totals=[sum(row) for row in cells],
        column_totals=[sum(row[i] for row in cells) for i in range(len(m.wealth))],
        total=sum(sum(row) for row in cells),
    )
