"""Listed entries: customers put into a started journey by a list (a call list) rather than by its trigger.

A call list (:mod:`omnibank.marketing.calllist`) picks customers itself — ranked by a model, passed through
the contact policy, a random holdout kept out — and hands them here: the treated enter the journey as
ordinary entries (active, at its first step, due now: the worker's next loop runs that step, e.g. an
``ai_call`` send through the outbox and the contact policy once more), the holdout as control entries
(watched for the journey's conversion until its window ends, never contacted). ``journey report`` then shows
the list's conversion against its holdout's, and the uplift.

The list's holdout *is* the control group of these entries: the journey's own ``control_percent`` (drawn
for entries by its trigger) does not apply to them. The journey's re-entry rule and audience do: a customer
who may not enter now (:func:`refusals`) is named with the reason, and the list spares them before it is
made. Flushes, never commits; entering the same customers again changes nothing (the re-entry rule holds
them out, and the entry records go by their deterministic keys).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.errors import Conflict, NotFound
from omnibank.journeys.machine import Action, EntryState, may_enter
from omnibank.journeys.models import Journey, JourneyEntry
from omnibank.journeys.runtime import compiled_of, insert_runs, latest_entries, new_entry, run_row
from omnibank.journeys.spec import Compiled

IN_JOURNEY = "in_journey"  # the re-entry rule holds the customer out (in the journey, or entered lately)
AUDIENCE = "audience"  # the journey's audience does not hold the customer now


@dataclass(frozen=True)
class Entered:
    """What :func:`enter_listed` did: entries made (treated and control) and customers left out."""

    treated: int
    control: int
    refused: dict[str, str]  # customer → reason (in_journey, audience)


def listed_journey(session: Session, journey_id: str) -> Compiled:
    """A started, active journey that listed customers can enter; NotFound or Conflict otherwise."""
    row = session.get(Journey, journey_id)
    if row is None:
        raise NotFound(
            f"no journey {journey_id!r} (omnibank journey list; start it with omnibank journey start)"
        )
    if row.status != "active":
        raise Conflict(f"journey {journey_id} is {row.status}: listed customers enter active journeys only")
    return compiled_of(row)


def refusals(
    session: Session, settings: Settings, journey_id: str, customer_ids: Sequence[str], *, at: datetime
) -> dict[str, str]:
    """Of ``customer_ids``, those who may not enter the journey at ``at``, with the reason: ``in_journey``
    (the re-entry rule) or ``audience`` (its audience expression does not hold them that bank-local day)."""
    c = listed_journey(session, journey_id)
    out: dict[str, str] = {}
    for cid, e in latest_entries(session, c.id, customer_ids, lock=False).items():
        if not may_enter(c, EntryState.load(json.loads(e.state)), at):
            out[cid] = IN_JOURNEY
    if c.spec.audience:
        from omnibank.segments.service import member_set

        members = member_set(session, settings, c.spec.audience, as_of=at.astimezone(settings.tz).date())
        for cid in customer_ids:
            if cid not in members:
                out.setdefault(cid, AUDIENCE)
    return out


def _state(c: Compiled, customer_id: str, entry_no: int, at: datetime, *, control: bool) -> EntryState:
    conv = c.spec.conversion
    return EntryState(
        journey=c.id, customer_id=customer_id, entry_no=entry_no, entered_at=at,
        status="control" if control else "active", step=None if control else c.first, at=at,
        due=(at + conv.within if conv else at) if control else at,
    )  # fmt: skip


def enter_listed(
    session: Session,
    settings: Settings,
    journey_id: str,
    *,
    treated: Sequence[str],
    holdout: Sequence[str],
    list_id: str,
    at: datetime,
    now: datetime,
) -> Entered:
    """Enter ``treated`` as ordinary entries and ``holdout`` as control entries at ``at``; those who may
    not enter (:func:`refusals`) are left out and named. Flushes, never commits."""
    if at.tzinfo is None or now.tzinfo is None:
        raise ValueError("naive datetime refused: at and now must carry a time zone")
    c = listed_journey(session, journey_id)
    everyone = [*treated, *holdout]
    refused = refusals(session, settings, journey_id, everyone, at=at)
    latest = latest_entries(session, c.id, [cid for cid in everyone if cid not in refused], lock=True)
    made: list[tuple[Action, JourneyEntry]] = []
    counts = {True: 0, False: 0}
    for control, ids in ((False, treated), (True, holdout)):
        for cid in ids:
            if cid in refused:
                continue
            prev = latest.get(cid)
            state = _state(c, cid, (prev.entry_no if prev else 0) + 1, at, control=control)
            entry = new_entry(state, now)
            session.add(entry)
            key = f"{c.id}:{cid}:{state.entry_no}:enter"
            detail = {"control": control, "list": list_id}
            made.append((Action("enter", key, c.id, cid, None, at, detail=detail), entry))
            counts[control] += 1
    session.flush()
    insert_runs(session, [run_row(a, e.id, now) for a, e in made])
    return Entered(treated=counts[False], control=counts[True], refused=refused)


__all__ = ["AUDIENCE", "IN_JOURNEY", "Entered", "enter_listed", "listed_journey", "refusals"]
