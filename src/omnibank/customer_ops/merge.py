"""Merging two customers into one: B survives, A's identifiers, tags and segment memberships follow.

Merges are read by the customers domain (:func:`omnibank.customers.identity.survivor_of`) and wherever
events are counted; making one reaches into domains above customers (tags, segments), so it lives here,
above them (``docs/architecture.md``, layers; ``make lint`` checks them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.customers.identity import MAX_REASON
from omnibank.customers.models import Customer, CustomerIdentifier, CustomerMerge
from omnibank.db import versions
from omnibank.errors import MergeRefused, NotFound
from omnibank.kit.masking import mask_numbers
from omnibank.segments.models import SegmentMember
from omnibank.tags.models import CustomerTag


@dataclass(frozen=True)
class MergeResult:
    merged_id: str
    survivor_id: str
    identifiers_moved: int
    tags_moved: int  # tags the survivor gained from the merged one (new, or with an earlier since)
    segments_left: int
    merges_repointed: int  # customers merged earlier into the merged one, now pointing at the survivor


def merge_customers(
    session: Session,
    *,
    merged_id: str,
    survivor_id: str,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
) -> MergeResult:
    """Merge customer ``merged_id`` (A) into ``survivor_id`` (B), within the caller's transaction.

    Writes the merge, re-points earlier merges into A at B, moves A's identifiers to B, unites A's tags
    into B's (the earlier ``since`` kept), takes A out of saved segments, audits, and bumps the ``merges``
    data version. Refuses (:class:`NotFound`, :class:`MergeRefused`) unknown customers, A == B, an A
    already merged and a B merged away. Digit runs that could be a phone or ID number are masked in the
    reason before it is stored."""
    if merged_id == survivor_id:
        raise MergeRefused(f"cannot merge {merged_id} into itself")
    if len(reason) > MAX_REASON:
        raise MergeRefused(f"reason: at most {MAX_REASON} characters")
    # The first statement writes: merges are serialised from here on (the row lock on data_versions on
    # PostgreSQL, the write lock on SQLite), so the checks below see every merge committed before.
    versions.bump(session, "merges")
    found = set(
        session.scalars(
            select(Customer.customer_id)
            .where(Customer.customer_id.in_([merged_id, survivor_id]))
            .with_for_update()
        )
    )
    for cid in (merged_id, survivor_id):
        if cid not in found:
            raise NotFound(f"no customer {cid}")
    merged_away = {
        m: s
        for m, s in session.execute(
            select(CustomerMerge.merged_id, CustomerMerge.survivor_id).where(
                CustomerMerge.merged_id.in_([merged_id, survivor_id])
            )
        )
    }
    if merged_id in merged_away:
        raise MergeRefused(f"{merged_id} was already merged into {merged_away[merged_id]}")
    if survivor_id in merged_away:
        raise MergeRefused(
            f"{survivor_id} was merged into {merged_away[survivor_id]}; "
            f"merge {merged_id} into {merged_away[survivor_id]} instead"
        )

    session.add(
        CustomerMerge(
            merged_id=merged_id,
            survivor_id=survivor_id,
            merged_at=now or datetime.now(UTC),
            actor=actor,
            reason=mask_numbers(reason.strip()),
        )
    )
    session.flush()
    repointed = _rowcount(
        session.execute(
            update(CustomerMerge)
            .where(CustomerMerge.survivor_id == merged_id)
            .values(survivor_id=survivor_id)
            .execution_options(synchronize_session=False)
        )
    )
    moved = _rowcount(
        session.execute(
            update(CustomerIdentifier)
            .where(CustomerIdentifier.customer_id == merged_id)
            .values(customer_id=survivor_id, source=f"merge:{merged_id}")
            .execution_options(synchronize_session=False)
        )
    )
    tags_moved = 0
    theirs = {
        t.tag: t for t in session.scalars(select(CustomerTag).where(CustomerTag.customer_id == merged_id))
    }
    if theirs:
        ours = {
            t.tag: t
            for t in session.scalars(
                select(CustomerTag).where(
                    CustomerTag.customer_id == survivor_id, CustomerTag.tag.in_(list(theirs))
                )
            )
        }
        for tag, their in theirs.items():
            our = ours.get(tag)
            if our is None:
                session.add(CustomerTag(customer_id=survivor_id, tag=tag, since=their.since))
                tags_moved += 1
            elif their.since < our.since:
                our.since = their.since
                tags_moved += 1
        for their in theirs.values():
            session.delete(their)
        session.flush()
    left = _rowcount(session.execute(delete(SegmentMember).where(SegmentMember.customer_id == merged_id)))
    result = MergeResult(
        merged_id=merged_id,
        survivor_id=survivor_id,
        identifiers_moved=moved,
        tags_moved=tags_moved,
        segments_left=left,
        merges_repointed=repointed,
    )
    audit.record(
        session,
        actor=actor,
        action="customer.merge",
        subject_type="customer",
        subject_id=merged_id,
        detail={
            "merged_id": merged_id,
            "survivor_id": survivor_id,
            "identifiers_moved": moved,
            "tags_moved": tags_moved,
            "segments_left": left,
            "merges_repointed": repointed,
            "tags_united": sorted(theirs),
        },
    )
    return result


def _rowcount(result: Any) -> int:
    return int(result.rowcount)
