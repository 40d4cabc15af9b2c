"""Call lists for AI outbound (K5): the top customers by a model's score (or uplift), through the one contact
policy before they reach the list, with a random holdout kept out so the list's real uplift can be measured.

:func:`build` (reads only) ranks every customer by :func:`omnibank.marketing.models.score` — an uplift
model's score is its uplift, so naming one ranks by uplift — keeps those the ``segment`` expression holds,
and walks down the ranking in batches:

* each candidate is decided by :func:`omnibank.contact.policy.decide` as a marketing send on ``channel``
  *now*, over the store's standing (reachability on the channel, marketing consent, do-not-disturb, the
  caps counters, read and never taken). One the policy would refuse is **spared**, counted by its reason
  (``unreachable``, ``no_consent``, ``dnd``, ``cap_channel_day``, ``cap_week``), and the list is filled from
  further down. A send that would fall in the quiet hours is **deferred**, not spared: it is decided again
  (caps of that day) as of the end of the quiet hours, and listed when that answer is ``send``;
* with a journey, customers its re-entry rule or audience keeps out are spared too (``in_journey``,
  ``audience``: :func:`omnibank.journeys.listed.refusals`);
* of those who pass, a deterministic random **holdout** (``holdout_percent``, by the list id and the customer:
  :func:`in_holdout`) is kept out of the calls; the others are **treated**, until ``top`` are listed. The
  holdout passed the same policy, so it is comparable with the treated.

:func:`make` then records the list (``call_lists``, ``call_list_members``: customer id, rank, score, group;
nothing personal) and hands it on — one design, two targets:

* ``journey`` given (the way to measure): the treated enter that started journey as ordinary entries and the
  holdout as its control entries (:func:`omnibank.journeys.listed.enter_listed`); the worker runs the
  journey's first step (e.g. an ``ai_call`` send: outbox → dispatch → the channel's adapter, under the policy
  again at send time) and ``omnibank journey report JOURNEY`` shows converted vs control and the uplift;
* no journey: each treated customer's call is submitted to the outbox at once
  (:func:`omnibank.contact.outbox.submit`, channel ``channel``, purpose marketing, key
  ``calllist:<list id>:<customer>``); dispatch hands it to the adapter. The holdout is recorded in the
  members table only (a conversion report needs the journey).

Services flush, never commit; ``dry_run`` in the CLI calls :func:`build` only and writes nothing.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.consent.service import allowed_many
from omnibank.contact.models import ContactCap
from omnibank.contact.policy import CHANNELS, Decision, PolicyConfig, Send, cap_scopes, decide, quiet_until
from omnibank.contact.routing import reachable_many
from omnibank.contact.standing import DndWindow, chunks, dnd_many, in_dnd, known_customers, policy_config
from omnibank.errors import Conflict, InputRefused, NotFound
from omnibank.journeys import listed
from omnibank.journeys.spec import bucket
from omnibank.marketing import models
from omnibank.marketing.tables import CallList, CallListMember

MAX_TOP = 1_000_000
MAX_HOLDOUT = 90
_MIN_BATCH = 500  # candidates decided at once (their standing read in bulk)


@dataclass(frozen=True)
class Member:
    customer_id: str
    rank: int  # 1 = the model's best (after the segment)
    score: float
    group: str  # treated, holdout, spared
    reason: str | None = None  # why spared


@dataclass
class CallListResult:
    """A list as built (and, after :func:`make`, as recorded and handed on)."""

    id: str
    model: str
    version: str
    as_of: date
    top: int
    holdout_percent: int
    channel: str
    journey: str | None
    segment: str | None
    ranked: int  # customers in the ranking (those the segment holds)
    members: list[Member] = field(default_factory=list)
    deferred: int = 0  # treated whose call waits for the end of the quiet hours
    sends: Counter[str] = field(default_factory=Counter)  # no journey: the outbox's decisions
    entered: tuple[int, int] | None = None  # journey: (treated entries, control entries)

    def of(self, group: str) -> list[Member]:
        return [m for m in self.members if m.group == group]

    @property
    def spared(self) -> Counter[str]:
        return Counter(m.reason for m in self.members if m.group == "spared" and m.reason)


# -------------------------------------------------------------------------------------------- checks


def check_request(*, top: int, holdout_percent: int, channel: str) -> None:
    if not 1 <= top <= MAX_TOP:
        raise InputRefused(f"--top {top}: the list's size must be 1 to {MAX_TOP:,}")
    if not 0 <= holdout_percent <= MAX_HOLDOUT:
        raise InputRefused(f"--holdout {holdout_percent}: a percentage from 0 to {MAX_HOLDOUT}")
    if channel not in CHANNELS:
        raise InputRefused(f"--channel {channel!r}: not a channel; one of {', '.join(CHANNELS)}")


def list_id_of(model: str, now: datetime) -> str:
    """A new list's id: the model and the UTC second it was made, e.g. ``installment-20261205T054500Z``."""
    return f"{model}-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def in_holdout(list_id: str, customer_id: str, percent: int) -> bool:
    """Deterministic random holdout: the same list and customer always give the same answer."""
    return percent > 0 and bucket("calllist", list_id, customer_id) < percent


def _check_segment(session: Session, segment: str) -> None:
    """Refuse a segment that is empty or not an expression, before any scoring."""
    from omnibank.segments.engine import parse_in
    from omnibank.segments.expr import ExpressionError

    if not segment.strip():
        raise InputRefused('--segment is empty: give an expression, e.g. "age >= 30", or leave it out')
    try:
        parse_in(session, segment)
    except ExpressionError as exc:
        raise InputRefused(f"--segment {segment!r}: {exc.message}") from None


def _live_version(settings: Settings, name: str, version: str | None) -> str:
    if version is not None:
        return version
    live = [c for c in models.versions(settings, name) if not c.retired]
    if not live:
        raise NotFound(f"every version of model {name} is retired; train it again or name a --version")
    return live[-1].version


# ------------------------------------------------------------------------------------------ standing


class _PeekCounters:
    """The caps counters as the store holds them, read for a batch and never taken: a list only asks
    whether a call could go (the send takes them when it is decided for real)."""

    def __init__(self, counts: dict[tuple[str, str], int]):
        self.counts = counts

    def take(self, customer_id: str, channel: str, at: datetime, config: PolicyConfig) -> str | None:
        day, week = cap_scopes(channel, at, config)
        if self.counts.get((customer_id, day), 0) >= config.channel_day_cap:
            return "cap_channel_day"
        if self.counts.get((customer_id, week), 0) >= config.week_cap:
            return "cap_week"
        return None


def _cap_counts(session: Session, ids: Sequence[str], scopes: set[str]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for chunk in chunks(list(ids)):
        rows = session.execute(
            select(ContactCap.customer_id, ContactCap.scope, ContactCap.n).where(
                ContactCap.customer_id.in_(chunk), ContactCap.scope.in_(sorted(scopes))
            )
        )
        for cid, scope, n in rows:
            out[(cid, scope)] = int(n)
    return out


def policy_verdicts(
    session: Session, settings: Settings, ids: Sequence[str], *, channel: str, now: datetime
) -> dict[str, Decision]:
    """What the contact policy would decide now for a marketing send to each customer on ``channel``; a
    deferred send is decided again as of the end of the quiet hours (its ``at``), as dispatch would."""
    config = policy_config(settings)
    known = known_customers(session, ids)
    consent = allowed_many(session, ids, "marketing")
    windows = dnd_many(session, ids)
    reach = reachable_many(session, ids, now=now)
    scopes = set(cap_scopes(channel, now, config))
    later = quiet_until(now, config) if channel not in config.quiet_exempt else None
    if later is not None:
        scopes |= set(cap_scopes(channel, later, config))
    counters = _PeekCounters(_cap_counts(session, ids, scopes))
    out: dict[str, Decision] = {}
    for cid in ids:
        s = Send(key=f"calllist:{cid}", customer_id=cid, channel=channel, purpose="marketing", at=now)
        d = _decide(s, config, known, consent, windows, reach, counters)
        if d.action == "defer":  # decided again when the quiet hours end, as dispatch will
            moved = Send(key=s.key, customer_id=cid, channel=channel, purpose="marketing", at=d.at)
            again = _decide(moved, config, known, consent, windows, reach, counters)
            d = d if again.action == "send" else again
        out[cid] = d
    return out


def _decide(
    s: Send,
    config: PolicyConfig,
    known: set[str],
    consent: dict[str, bool],
    windows: dict[str, list[DndWindow]],
    reach: dict[str, frozenset[str]],
    counters: _PeekCounters,
) -> Decision:
    cid, at = s.customer_id, s.at
    dnd = in_dnd(windows, cid, s.channel, at)
    reachable = cid in known and (s.channel in reach.get(cid, frozenset()) or dnd)
    return decide(s, config, consent=consent.get(cid, False), dnd=dnd, counters=counters, reachable=reachable)


# --------------------------------------------------------------------------------------------- build


def ranking(
    session: Session, settings: Settings, model: str, *, version: str, as_of: date, segment: str | None
) -> list[tuple[str, float]]:
    """Customers by score, best first (ties by customer id), kept to those ``segment`` holds."""
    scores = models.score(session, settings, model, as_of=as_of, version=version)
    if segment is not None:
        from omnibank.segments.service import member_set

        members = member_set(session, settings, segment, as_of=as_of)
        scores = [(c, s) for c, s in scores if c in members]
    usable = [(c, s) for c, s in scores if not math.isnan(s)]
    return sorted(usable, key=lambda cs: (-cs[1], cs[0]))


def build(
    session: Session,
    settings: Settings,
    *,
    model: str,
    top: int,
    as_of: date,
    now: datetime,
    segment: str | None = None,
    channel: str = "ai_call",
    holdout_percent: int = 10,
    journey: str | None = None,
    version: str | None = None,
    list_id: str | None = None,
) -> CallListResult:
    """The list (see the module docstring); reads only."""
    if now.tzinfo is None:
        raise ValueError("naive datetime refused: now must carry a time zone")
    check_request(top=top, holdout_percent=holdout_percent, channel=channel)
    models.check_name(model)
    if journey is not None:
        c = listed.listed_journey(session, journey)
        first = c.index[c.first]
        if first.send is not None and first.send.channel is not None and first.send.channel != channel:
            raise InputRefused(
                f"journey {journey} first sends by {first.send.channel}, the list is for {channel}: "
                f"give --channel {first.send.channel} or another journey"
            )
    if segment is not None:
        _check_segment(session, segment)
    chosen = _live_version(settings, model, version)
    ranked = ranking(session, settings, model, version=chosen, as_of=as_of, segment=segment)
    result = CallListResult(
        id=list_id or list_id_of(model, now), model=model, version=chosen, as_of=as_of, top=top,
        holdout_percent=holdout_percent, channel=channel, journey=journey, segment=segment,
        ranked=len(ranked),
    )  # fmt: skip
    treated = 0
    i = 0
    while treated < top and i < len(ranked):
        size = max(_MIN_BATCH, 2 * (top - treated))
        batch = ranked[i : i + size]
        start = i
        i += len(batch)
        ids = [c for c, _ in batch]
        verdicts = policy_verdicts(session, settings, ids, channel=channel, now=now)
        passing = [c for c in ids if verdicts[c].action != "suppress"]
        refused = listed.refusals(session, settings, journey, passing, at=now) if journey and passing else {}
        for k, (cid, score) in enumerate(batch):
            if treated >= top:
                break
            d = verdicts[cid]
            rank = start + k + 1
            reason = d.reason if d.action == "suppress" else refused.get(cid)
            if reason is not None:
                result.members.append(Member(cid, rank, score, "spared", reason))
            elif in_holdout(result.id, cid, holdout_percent):
                result.members.append(Member(cid, rank, score, "holdout"))
            else:
                result.members.append(Member(cid, rank, score, "treated"))
                treated += 1
                result.deferred += d.action == "defer"
    return result


# ---------------------------------------------------------------------------------------------- make


def record(session: Session, result: CallListResult, *, now: datetime) -> None:
    """Write the list and its members. Flushes, never commits."""
    if session.get(CallList, result.id) is not None:
        raise Conflict(f"call list {result.id} exists already; make the list again in a second")
    session.add(
        CallList(
            id=result.id,
            model=result.model,
            version=result.version,
            as_of=result.as_of,
            top=result.top,
            holdout_percent=result.holdout_percent,
            channel=result.channel,
            journey=result.journey,
            segment=result.segment,
            listed=len(result.of("treated")),
            held_out=len(result.of("holdout")),
            deferred=result.deferred,
            spared=json.dumps(dict(sorted(result.spared.items()))),
            created_at=now,
        )  # fmt: skip
    )
    session.flush()
    rows = [
        {"list_id": result.id, "customer_id": m.customer_id, "rank": m.rank, "score": m.score,
         "grp": m.group, "reason": m.reason}
        for m in result.members
    ]  # fmt: skip
    for k in range(0, len(rows), 5000):
        session.execute(insert(CallListMember), rows[k : k + 5000])
    session.flush()


def make(
    session: Session,
    settings: Settings,
    *,
    model: str,
    top: int,
    as_of: date,
    now: datetime,
    segment: str | None = None,
    channel: str = "ai_call",
    holdout_percent: int = 10,
    journey: str | None = None,
    version: str | None = None,
    template: str | None = None,
    list_id: str | None = None,
) -> CallListResult:
    """Build the list, record it, and hand it on: into ``journey`` (treated as entries, holdout as control
    entries) or, without one, the treated's calls straight to the outbox. Flushes, never commits."""
    result = build(
        session, settings, model=model, top=top, as_of=as_of, now=now, segment=segment, channel=channel,
        holdout_percent=holdout_percent, journey=journey, version=version, list_id=list_id,
    )  # fmt: skip
    record(session, result, now=now)
    treated = [m.customer_id for m in result.of("treated")]
    holdout = [m.customer_id for m in result.of("holdout")]
    if journey is not None:
        entered = listed.enter_listed(session, settings, journey, treated=treated, holdout=holdout,
                               list_id=result.id, at=now, now=now)  # fmt: skip
        result.entered = (entered.treated, entered.control)
        return result
    from omnibank.contact.outbox import submit

    sends = [
        Send(key=f"calllist:{result.id}:{cid}", customer_id=cid, channel=channel, purpose="marketing", at=now,
             template=template or f"calllist:{model}", payload={"call_list": result.id, "rank": str(m.rank)})
        for m in result.of("treated")
        for cid in (m.customer_id,)
    ]  # fmt: skip
    for d in submit(session, settings, sends, now=now):
        result.sends[d.action if d.action != "suppress" else f"suppress:{d.reason}"] += 1
    return result


def write_csv(result: CallListResult, path: Path) -> int:
    """``customer_id,rank,score,group`` of the treated and the holdout, by rank; the rows written. Only the
    treated are called; the holdout rows say who was kept out."""
    rows = [m for m in result.members if m.group != "spared"]
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(("customer_id", "rank", "score", "group"))
        writer.writerows((m.customer_id, m.rank, f"{m.score:.6f}", m.group) for m in rows)
    return len(rows)


def members_of(session: Session, list_id: str) -> list[CallListMember]:
    return list(
        session.scalars(
            select(CallListMember).where(CallListMember.list_id == list_id).order_by(CallListMember.rank)
        )
    )


__all__ = [
    "CallListResult",
    "Member",
    "build",
    "check_request",
    "in_holdout",
    "list_id_of",
    "make",
    "members_of",
    "policy_verdicts",
    "ranking",
    "record",
    "write_csv",
]
