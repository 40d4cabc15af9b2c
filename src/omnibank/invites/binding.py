"""Binding customers to the staff whose invite code brought them (M2): the pure decision, and the pass that
applies it to the event log. Flushes only; the caller commits.

Any event may carry ``invite_code`` (and ``share_token``, the ``/s/`` link it came through). A customer's
*earliest* coded event whose code is good binds them to the code's holder; every other coded event of theirs
is refused with a reason and kept (``invite_refusals``): ``unknown_code``, ``revoked_code`` (used at or after
its revocation), ``self_referral`` (the customer is the member of staff: same phone, or the ID number of the
staff member's own customer record), ``outside_window`` (used more than ``OMNIBANK_INVITE_WINDOW_DAYS`` after
the customer registered) and ``already_bound`` (a good code, but an earlier one bound the customer). A
repeat of the binding code itself is not a refusal.

**Order does not matter.** A customer's binding and refusals are a function of the *set* of their coded
events (:func:`decide`), so files loaded in any order give the same result: the pass reads the new log
files, and for each customer in them who had coded events before (a binding, a refusal, a wait), it reads
all their coded events from the whole log again and decides afresh. A customer seen for the first time
needs no second read: every coded event leaves a row, so none of theirs was seen before. The org path of a
binding is the staff member's when it was first recorded and stays with it (a later transfer of the staff
member does not move past results) as long as the same event keeps winning.

Events of a customer not loaded yet wait (``invite_waiting``) until the customer is. Events of a merged
customer count for the survivor (:func:`rebind` after a merge).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pyarrow as pa
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.customers.models import Customer, CustomerMerge
from omnibank.events.compact import unread
from omnibank.events.log import EventLog, sql_string
from omnibank.invites.codes import normalise
from omnibank.invites.models import (
    InviteBinding,
    InviteCode,
    InviteOffset,
    InviteRefusal,
    InviteWaiting,
)
from omnibank.orgs.models import Org, Staff

Reason = Literal["unknown_code", "revoked_code", "self_referral", "already_bound", "outside_window"]
_CHUNK = 5000
_WHOLE = 50_000  # more ids than this: read the whole table and pick
#: card spend within this many days of the binding is kept with the binding (the report's default window)
FACT_DAYS = 30
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ the decision


@dataclass(frozen=True, order=True)
class Coded:
    """A coded event, ordered by time then id (the earliest wins; a tie goes to the smaller id)."""

    at: datetime
    event_id: str
    customer_id: str = field(compare=False)
    code: str = field(compare=False)  # as sent (normalised when looked up)
    channel: str | None = field(compare=False, default=None)
    share_token: str | None = field(compare=False, default=None)


@dataclass(frozen=True)
class CodeInfo:
    code: str
    staff_id: str
    revoked_at: datetime | None
    staff_phone: str | None  # the holder's phone blind index
    staff_id_numbers: frozenset[str] = frozenset()  # ID-number blind indexes of the holder's own records


@dataclass(frozen=True)
class Person:
    """What the decision needs of a customer: registration day and blind indexes (never the values)."""

    registered_on: date
    phone: str | None
    id_number: str | None


@dataclass(frozen=True)
class Decision:
    winner: Coded | None
    winner_code: CodeInfo | None
    refused: tuple[tuple[Coded, Reason, str | None], ...]  # event, reason, the code's holder if known


def own_reason(
    event: Coded, code: CodeInfo | None, person: Person, *, window_days: int, tz: ZoneInfo
) -> Reason | None:
    """Why this event cannot bind, whatever the customer's other events: or None."""
    if code is None:
        return "unknown_code"
    if code.revoked_at is not None and event.at >= code.revoked_at:
        return "revoked_code"
    if (code.staff_phone is not None and person.phone == code.staff_phone) or (
        person.id_number is not None and person.id_number in code.staff_id_numbers
    ):
        return "self_referral"
    if event.at.astimezone(tz).date() > person.registered_on + timedelta(days=window_days):
        return "outside_window"
    return None


def decide(
    events: Iterable[Coded],
    codes: dict[str, CodeInfo],
    person: Person,
    *,
    window_days: int,
    tz: ZoneInfo,
) -> Decision:
    """One customer's binding and refusals from the set of their coded events (order of the input does not
    matter; a repeated event id counts once)."""
    unique = {e.event_id: e for e in events}
    refused: list[tuple[Coded, Reason, str | None]] = []
    good: list[tuple[Coded, CodeInfo]] = []
    for e in sorted(unique.values()):
        info = codes.get(normalise(e.code))
        reason = own_reason(e, info, person, window_days=window_days, tz=tz)
        if reason is None and info is not None:
            good.append((e, info))
        else:
            refused.append((e, reason or "unknown_code", info.staff_id if info else None))
    if not good:
        return Decision(None, None, tuple(refused))
    winner, info = good[0]
    for e, other in good[1:]:
        if other.code != info.code:
            refused.append((e, "already_bound", other.staff_id))
    return Decision(winner, info, tuple(sorted(refused, key=lambda r: r[0])))


# ------------------------------------------------------------------------------------------ reading the log


def _read_coded(
    settings: Settings,
    files: Sequence[Path],
    customers: Collection[str] | None,
    per_file: dict[str, int] | None = None,
) -> list[Coded]:
    """The coded events of ``files`` (of ``customers`` only, when given); ``per_file`` gets their count
    by file."""
    if not files:
        return []
    log = EventLog(settings)
    con = log.connect()
    try:
        listing = ", ".join(sql_string(str(f)) for f in files)
        where = "payload LIKE '%\"invite_code\"%' AND customer_id IS NOT NULL"
        if customers is not None:
            con.register("_wanted", pa.table({"id": pa.array(sorted(customers), pa.string())}))
            where += " AND customer_id IN (SELECT id FROM _wanted)"
        sql = (
            "SELECT event_id, customer_id, epoch_us(ts) AS us, channel, "
            "json_extract_string(payload, '$.invite_code') AS code, "
            "json_extract_string(payload, '$.share_token') AS share, filename "
            f"FROM read_parquet([{listing}], union_by_name = true, filename = true) WHERE {where}"
        )
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    out = []
    for event_id, customer_id, us, channel, code, share, filename in rows:
        if code is None:  # "invite_code": null
            continue
        if per_file is not None:
            per_file[filename] = per_file.get(filename, 0) + 1
        at = _EPOCH + timedelta(microseconds=int(us))
        share_token = share[:16] if isinstance(share, str) and share else None
        out.append(Coded(at, event_id, customer_id, str(code)[:64], channel, share_token))
    return out


# ------------------------------------------------------------------------------------------ the pass


@dataclass
class BindReport:
    files: int = 0
    events: int = 0  # coded events read
    customers: int = 0  # customers decided
    bound: int = 0  # bindings made or moved
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    waiting: int = 0  # coded events of customers not loaded yet

    def line(self) -> str:
        refusals = ", ".join(f"{k} {v:,}" for k, v in sorted(self.refused.items())) or "none"
        return (
            f"files {self.files:,}, coded events {self.events:,}, customers {self.customers:,}, "
            f"bound {self.bound:,}, refused: {refusals}; waiting for their customer: {self.waiting:,}"
        )


def survivors_of(session: Session) -> dict[str, str]:
    stmt = select(CustomerMerge.merged_id, CustomerMerge.survivor_id)
    merged = {k: v for k, v in session.execute(stmt)}
    out = {}
    for m in merged:
        s = merged[m]
        seen = {m}
        while s in merged and s not in seen:
            seen.add(s)
            s = merged[s]
        out[m] = s
    return out


def _codes(session: Session) -> dict[str, CodeInfo]:
    staff_phone: dict[str, str | None] = {
        k: v for k, v in session.execute(select(Staff.staff_id, Staff.phone_bidx))
    }
    phones = sorted({p for p in staff_phone.values() if p})
    ids_of_phone: dict[str, set[str]] = defaultdict(set)
    for i in range(0, len(phones), _CHUNK):
        stmt = select(Customer.phone_bidx, Customer.id_number_bidx).where(
            Customer.phone_bidx.in_(phones[i : i + _CHUNK])
        )
        for customer_phone, idn in session.execute(stmt):
            ids_of_phone[customer_phone].add(idn)
    out = {}
    for c in session.scalars(select(InviteCode)):
        phone = staff_phone.get(c.staff_id)
        ids = frozenset(ids_of_phone.get(phone, ())) if phone else frozenset()
        out[c.code] = CodeInfo(c.code, c.staff_id, c.revoked_at, phone, ids)
    return out


def _people(session: Session, ids: Sequence[str]) -> dict[str, Person]:
    cols = (Customer.customer_id, Customer.registered_at, Customer.phone_bidx, Customer.id_number_bidx)
    out = {}
    if len(ids) > _WHOLE:  # most of the bank (a first pass): one scan beats hundreds of long IN lists
        wanted = set(ids)
        for cid, reg, phone, idn in session.execute(select(*cols)):
            if cid in wanted:
                out[cid] = Person(reg, phone, idn)
        return out
    for i in range(0, len(ids), _CHUNK):
        for cid, reg, phone, idn in session.execute(
            select(*cols).where(Customer.customer_id.in_(ids[i : i + _CHUNK]))
        ):
            out[cid] = Person(reg, phone, idn)
    return out


def _bindings_of(session: Session, ids: Sequence[str]) -> dict[str, InviteBinding]:
    found: dict[str, InviteBinding] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = select(InviteBinding).where(InviteBinding.customer_id.in_(ids[i : i + _CHUNK]))
        found.update((b.customer_id, b) for b in session.scalars(stmt))
    return found


def _apply(
    session: Session,
    settings: Settings,
    events: list[Coded],
    *,
    reread: Collection[str],
    now: datetime,
    report: BindReport,
) -> set[str]:
    """Decide for every customer of ``events``; those of ``reread`` from all their coded events in the log.
    The customers whose binding's facts were read from the whole log now (made, moved or read again)."""
    survivors = survivors_of(session)

    def owner(cid: str) -> str:
        return survivors.get(cid, cid)

    by_customer: dict[str, list[Coded]] = defaultdict(list)
    for e in events:
        by_customer[owner(e.customer_id)].append(e)
    if reread:
        wanted = set(reread) | {m for m, s in survivors.items() if s in reread}
        for e in _read_coded(settings, EventLog(settings).files(), wanted):
            by_customer[owner(e.customer_id)].append(e)
    if not by_customer:
        return set()
    ids = sorted(by_customer)
    people = _people(session, ids)
    codes = _codes(session)
    # only customers read again have rows (every coded event leaves one): theirs are decided afresh
    known = sorted(set(reread) & set(ids))
    bindings = _bindings_of(session, known)
    for i in range(0, len(known), _CHUNK):
        part = known[i : i + _CHUNK]
        session.execute(delete(InviteRefusal).where(InviteRefusal.customer_id.in_(part)))
        session.execute(delete(InviteWaiting).where(InviteWaiting.customer_id.in_(part)))
    staff_org = {k: v for k, v in session.execute(select(Staff.staff_id, Staff.org_id))}
    paths = {k: v for k, v in session.execute(select(Org.org_id, Org.path))}
    new_bindings: list[dict[str, object]] = []
    new_refusals: list[dict[str, object]] = []
    new_waiting: list[dict[str, object]] = []
    gone: list[str] = []
    kept: list[tuple[str, datetime]] = []  # bindings read again that stay: their facts are read again
    tz = settings.tz
    window = settings.invite_window_days
    for cid in ids:
        evs = by_customer[cid]
        person = people.get(cid)
        report.customers += 1
        if person is None:
            for e in {e.event_id: e for e in evs}.values():
                new_waiting.append({"event_id": e.event_id, "customer_id": cid, "code": e.code,
                                    "channel": e.channel, "at": e.at})  # fmt: skip
            report.waiting += len({e.event_id for e in evs})
            continue
        d = decide(evs, codes, person, window_days=window, tz=tz)
        for e, reason, staff_id in d.refused:
            new_refusals.append({"event_id": e.event_id, "customer_id": cid, "code": e.code,
                                 "staff_id": staff_id, "reason": reason, "channel": e.channel, "at": e.at,
                                 "recorded_at": now})  # fmt: skip
            report.refused[reason] += 1
        old = bindings.get(cid)
        if d.winner is None or d.winner_code is None:
            if old is not None:
                gone.append(cid)
            continue
        if old is not None and old.event_id == d.winner.event_id:
            kept.append(
                (cid, old.bound_at)
            )  # the same event still binds: its org path stays as first recorded
            continue
        if old is not None:
            gone.append(cid)
        org_id = staff_org.get(d.winner_code.staff_id, "")
        new_bindings.append({
            "customer_id": cid, "code": d.winner_code.code, "staff_id": d.winner_code.staff_id,
            "org_id": org_id, "org_path": paths.get(org_id, f"/{org_id}/"), "event_id": d.winner.event_id,
            "channel": d.winner.channel, "share_token": d.winner.share_token, "bound_at": d.winner.at,
            "recorded_at": now,
        })  # fmt: skip
        report.bound += 1
    for i in range(0, len(gone), _CHUNK):
        session.execute(delete(InviteBinding).where(InviteBinding.customer_id.in_(gone[i : i + _CHUNK])))
    # the facts of bindings made now, and of those read again, from the whole log
    made: list[tuple[str, datetime]] = [(str(r["customer_id"]), r["bound_at"]) for r in new_bindings]  # type: ignore[misc]
    facts = card_facts(settings, EventLog(settings).files(), made + kept, survivors)
    for r in new_bindings:
        r["amount_fen"], r["first_card_at"] = facts.get(str(r["customer_id"]), (0, None))
    _set_facts(session, {cid: facts.get(cid, (0, None)) for cid, _ in kept})
    for table, rows in (
        (InviteBinding.__table__, new_bindings),
        (InviteRefusal.__table__, new_refusals),
        (InviteWaiting.__table__, new_waiting),
    ):
        for i in range(0, len(rows), _CHUNK):
            session.execute(insert(table), rows[i : i + _CHUNK])  # type: ignore[arg-type]
    session.flush()
    return {str(r["customer_id"]) for r in new_bindings} | {cid for cid, _ in kept}


def _known_rows(session: Session, ids: Sequence[str]) -> set[str]:
    """Customers of ``ids`` with a binding, a refusal or a waiting event already (the tables hold one row
    per bound customer at most, a few more for the others: read whole, once)."""
    wanted = set(ids)
    found: set[str] = set()
    for model in (InviteBinding, InviteRefusal, InviteWaiting):
        found.update(c for c in session.scalars(select(model.customer_id).distinct()) if c in wanted)
    return found


# ------------------------------------------------------------------------------------------ the facts


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def card_facts(
    settings: Settings,
    files: Sequence[Path],
    bound: Sequence[tuple[str, datetime]],
    survivors: dict[str, str],
    *,
    days: int = FACT_DAYS,
) -> dict[str, tuple[int, datetime | None]]:
    """For each bound customer: card spend (fen) in ``files`` within ``days`` of the binding, and their first
    card issued there (events of customers merged into them count for them)."""
    if not bound or not files:
        return {}
    merged: dict[str, list[str]] = defaultdict(list)
    for m, s in survivors.items():
        merged[s].append(m)
    owners, aliases, starts = [], [], []
    for cid, at in bound:
        us = _micros(at)
        for alias in (cid, *merged.get(cid, ())):
            owners.append(cid)
            aliases.append(alias)
            starts.append(us)
    table = pa.table({"owner": owners, "cid": aliases, "start_us": pa.array(starts, pa.int64())})
    log = EventLog(settings)
    con = log.connect()
    try:
        con.register("_bound", table)
        listing = ", ".join(sql_string(str(f)) for f in files)
        window = days * 86_400_000_000
        sql = (
            "SELECT b.owner, CAST(coalesce(sum(e.amount) FILTER (WHERE e.type = 'card.transaction' AND "
            f"epoch_us(e.ts) >= b.start_us AND epoch_us(e.ts) < b.start_us + {window}), 0) * 100 AS BIGINT), "
            "min(epoch_us(e.ts)) FILTER (WHERE e.type = 'card.issued') "
            f"FROM read_parquet([{listing}], union_by_name = true) e JOIN _bound b ON e.customer_id = b.cid "
            "WHERE e.type IN ('card.transaction', 'card.issued') GROUP BY b.owner"
        )
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    return {
        owner: (int(fen or 0), _EPOCH + timedelta(microseconds=int(first)) if first is not None else None)
        for owner, fen, first in rows
    }


def _set_facts(session: Session, facts: dict[str, tuple[int, datetime | None]]) -> None:
    if not facts:
        return
    table = InviteBinding.__table__
    stmt = (
        update(table)  # type: ignore[arg-type]
        .where(table.c.customer_id == bindparam("cid"))
        .values(amount_fen=bindparam("fen"), first_card_at=bindparam("first"))
    )
    rows = [{"cid": cid, "fen": fen, "first": first} for cid, (fen, first) in facts.items()]
    session.execute(stmt, rows)


def _add_new_facts(
    session: Session, settings: Settings, files: Sequence[Path], fresh: set[str], survivors: dict[str, str]
) -> None:
    """The new files' card events added to the facts of every other binding (spend within the window; an
    earlier first card)."""
    if not files:
        return
    every = session.execute(select(InviteBinding.customer_id, InviteBinding.bound_at))
    older = [(cid, at) for cid, at in every if cid not in fresh]
    added = card_facts(settings, files, older, survivors)
    changed = {cid: f for cid, f in added.items() if f[0] or f[1] is not None}
    if not changed:
        return
    current = {}
    ids = sorted(changed)
    for i in range(0, len(ids), _CHUNK):
        stmt = select(InviteBinding.customer_id, InviteBinding.amount_fen, InviteBinding.first_card_at)
        for cid, fen, first in session.execute(
            stmt.where(InviteBinding.customer_id.in_(ids[i : i + _CHUNK]))
        ):
            current[cid] = (fen, first)
    merged = {}
    for cid, (fen, first) in changed.items():
        had_fen, had_first = current.get(cid, (0, None))
        firsts = [f for f in (had_first, first) if f is not None]
        merged[cid] = (had_fen + fen, min(firsts) if firsts else None)
    _set_facts(session, merged)


def pending_files(session: Session, settings: Settings) -> list[Path]:
    log = EventLog(settings)
    done = set(session.scalars(select(InviteOffset.path)))
    return unread(log, done)  # compacted files mapped to their originals


def bind_pass(session: Session, settings: Settings, *, now: datetime) -> BindReport:
    """Read the log files not read yet and bind or refuse their coded events; customers who were waiting
    and are loaded now are decided too. One transaction (the caller's): all of it or nothing."""
    report = BindReport()
    files = pending_files(session, settings)
    per_file: dict[str, int] = {}
    events = _read_coded(settings, files, None, per_file)
    report.files, report.events = len(files), len(events)
    survivors = survivors_of(session)
    owners = sorted({survivors.get(e.customer_id, e.customer_id) for e in events})
    reread = _known_rows(session, owners) | _fold_merged(session, survivors)
    waiting_ids = set(session.scalars(select(InviteWaiting.customer_id).distinct()))
    if waiting_ids:  # those loaded since: decided from all their events
        loaded = set(_people(session, sorted(waiting_ids)))
        reread |= loaded
    fresh = _apply(session, settings, events, reread=reread, now=now, report=report)
    _add_new_facts(session, settings, files, fresh, survivors)
    log = EventLog(settings)
    for f in files:
        coded = per_file.get(str(f), 0)
        session.add(InviteOffset(path=str(f.relative_to(log.dir)), events=coded, applied_at=now))
    session.flush()
    return report


def _fold_merged(session: Session, survivors: dict[str, str]) -> set[str]:
    """Rows still under a customer merged away are dropped; their survivors are to be decided again."""
    if not survivors:
        return set()
    merged = select(CustomerMerge.merged_id)
    found: set[str] = set()
    for model in (InviteBinding, InviteRefusal, InviteWaiting):
        stmt = select(model.customer_id).where(model.customer_id.in_(merged)).distinct()
        stale = set(session.scalars(stmt))
        if stale:
            session.execute(delete(model).where(model.customer_id.in_(sorted(stale))))
            found |= {survivors.get(c, c) for c in stale}
    return found


def rebind(
    session: Session, settings: Settings, customer_ids: Collection[str], *, now: datetime
) -> BindReport:
    """Decide these customers again from all their coded events (after a merge: the survivor's and the
    merged customer's events together; the earliest binding by time wins)."""
    report = BindReport()
    survivors = survivors_of(session)
    ids = {survivors.get(c, c) for c in customer_ids} | _fold_merged(session, survivors)
    _apply(session, settings, [], reread=ids, now=now, report=report)
    return report
