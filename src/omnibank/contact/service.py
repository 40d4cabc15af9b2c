"""The only way anything is sent: submit sends through the policy into the outbox, dispatch them to the
channel adapters, take receipts, keep do-not-disturb.

* :func:`submit` (session first; flushes, never commits) decides a batch of sends with
  :func:`omnibank.contact.policy.decide`: marketing consent from
  :func:`omnibank.consent.service.allowed_many`, do-not-disturb in one query per 900 customers, caps
  over the ``contact_caps`` table with a conditional upsert (:class:`StoreCounters`), and
  writes one outbox row per send with its decision and reason. A key submitted again returns its
  recorded decision (as it stands now) and changes nothing.
* :func:`dispatch` (a job: it commits itself) decides deferred messages again when their time has come
  (caps are taken then), checks queued ones once more for consent and do-not-disturb (a revocation applies
  at once), hands them to the adapters outside any transaction, records what happened and emits the receipt
  events after that commit.
* :func:`record_receipts` takes a gateway's delivered / failed / clicked reports.

Receipt events (``message.delivered``, ``message.failed``, ``message.clicked``) carry ``message_id`` (the
outbox id), ``channel`` (the event contract's channel: ``app_push`` → ``app``, ``ai_call`` and
``human_call`` → ``phone``, ``branch_task`` → ``branch``, others as they are), ``contact_channel`` (the
exact channel), ``journey``, ``step`` and ``send_key``; their ids are ``msg:<id>:<kind>``. A message keeps
``events_pending`` until its events are in the log, so a crash between the commit and the emit only delays
them (:func:`emit_pending` sends them again; the log drops ids it has).

Concurrency: every counter is taken with one statement — ``INSERT … ON CONFLICT DO UPDATE SET n = n + 1
WHERE n < cap RETURNING n`` — exact under concurrent workers on PostgreSQL (the row is locked and the
condition re-read) and trivially on SQLite (one writer). The week counter is taken before the day counter
and a batch is processed in customer order, so two transactions lock counters in the same order and cannot
deadlock each other (a caller that submits several batches in one transaction should sort them too).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.config import Settings
from omnibank.consent.service import allowed_many
from omnibank.contact.channels import Adapter, Outcome, Outgoing, adapters_for
from omnibank.contact.models import DND_CHANNELS, STATUSES, ContactCap, ContactDnd, ContactMessage
from omnibank.contact.policy import CHANNELS, Decision, PolicyConfig, Send, cap_scopes, decide
from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.db.upsert import insert_for
from omnibank.errors import AppError, Conflict, NotFound
from omnibank.kit.masking import mask_numbers

_CHUNK = 900
LEASE = timedelta(minutes=5)  # how long a dispatcher holds messages it is handing to a gateway
MAX_REASON = 200
EVENT_CHANNEL = {
    "app_push": "app",
    "sms": "sms",
    "wechat": "wechat",
    "wecom": "wecom",
    "ai_call": "phone",
    "human_call": "phone",
    "branch_task": "branch",
}
_PII_KEYS = frozenset({"name", "phone", "mobile", "id_number", "id_no", "id_card", "address", "email"})
_PHONE_OR_ID = re.compile(r"(?<![0-9])(1[3-9][0-9]{9}|[0-9]{17}[0-9Xx])(?![0-9])")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_NAME = re.compile(r"^[^\x00-\x1f]{1,64}$")


def policy_config(settings: Settings) -> PolicyConfig:
    return PolicyConfig.from_settings(settings)


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


# ------------------------------------------------------------------------------------------------ caps

_TAKE = text(
    "INSERT INTO contact_caps (customer_id, scope, n) VALUES (:c, :s, 1) "
    "ON CONFLICT (customer_id, scope) DO UPDATE SET n = contact_caps.n + 1 "
    "WHERE contact_caps.n < :cap RETURNING n"
)
_GIVE_BACK = text("UPDATE contact_caps SET n = n - 1 WHERE customer_id = :c AND scope = :s AND n > 0")
_READ = text("SELECT n FROM contact_caps WHERE customer_id = :c AND scope = :s")


class StoreCounters:
    """The caps counters in ``contact_caps``, taken inside the caller's transaction: the week counter, then
    the day counter (given back if the day is full), each by one conditional upsert."""

    def __init__(self, session: Session):
        self.session = session

    def _take(self, customer_id: str, scope: str, cap: int) -> bool:
        if cap <= 0:
            return False
        row = self.session.execute(_TAKE, {"c": customer_id, "s": scope, "cap": cap}).first()
        return row is not None

    def _count(self, customer_id: str, scope: str) -> int:
        n = self.session.execute(_READ, {"c": customer_id, "s": scope}).scalar()
        return int(n or 0)

    def take(self, customer_id: str, channel: str, at: datetime, config: PolicyConfig) -> str | None:
        day, week = cap_scopes(channel, at, config)
        if not self._take(customer_id, week, config.week_cap):
            # the same reason the pure counters give: the day is checked first there
            full_day = self._count(customer_id, day) >= config.channel_day_cap
            return "cap_channel_day" if full_day else "cap_week"
        if not self._take(customer_id, day, config.channel_day_cap):
            self.session.execute(_GIVE_BACK, {"c": customer_id, "s": week})  # still locked by us: exact
            return "cap_channel_day"
        return None

    def release(self, customer_id: str, channel: str, at: datetime, config: PolicyConfig) -> None:
        """Give back a send's counters (a queued send refused before it went)."""
        day, week = cap_scopes(channel, at, config)
        self.session.execute(_GIVE_BACK, {"c": customer_id, "s": week})
        self.session.execute(_GIVE_BACK, {"c": customer_id, "s": day})


def cap_counts(session: Session, customer_id: str) -> dict[str, int]:
    """A customer's counters: scope → count."""
    rows = session.execute(
        select(ContactCap.scope, ContactCap.n).where(ContactCap.customer_id == customer_id)
    )
    return {scope: int(n) for scope, n in rows}


# ------------------------------------------------------------------------------------------ what we know


@dataclass(frozen=True)
class DndWindow:
    channel: str  # a channel or "all"
    since: datetime
    until: datetime | None

    def covers(self, channel: str, at: datetime) -> bool:
        return (
            (self.channel == "all" or self.channel == channel)
            and self.since <= at
            and (self.until is None or at < self.until)
        )


def dnd_many(session: Session, customer_ids: Collection[str]) -> dict[str, list[DndWindow]]:
    """The do-not-disturb windows not removed, per customer (customers without any left out)."""
    ids = list(dict.fromkeys(customer_ids))
    out: dict[str, list[DndWindow]] = defaultdict(list)
    for chunk in _chunks(ids):
        rows = session.execute(
            select(ContactDnd.customer_id, ContactDnd.channel, ContactDnd.since, ContactDnd.until).where(
                ContactDnd.customer_id.in_(chunk), ContactDnd.removed_at.is_(None)
            )
        )
        for cid, channel, since, until in rows:
            out[cid].append(DndWindow(channel, since, until))
    return dict(out)


def _in_dnd(windows: Mapping[str, list[DndWindow]], customer_id: str, channel: str, at: datetime) -> bool:
    return any(w.covers(channel, at) for w in windows.get(customer_id, ()))


def known_customers(session: Session, customer_ids: Collection[str]) -> set[str]:
    """Those of ``customer_ids`` that exist and were not erased (the others cannot be contacted)."""
    ids = list(dict.fromkeys(customer_ids))
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(
            session.scalars(
                select(Customer.customer_id).where(
                    Customer.customer_id.in_(chunk), Customer.erased_at.is_(None)
                )
            )
        )
    return found


# ---------------------------------------------------------------------------------------------- submit


def clean_payload(payload: Mapping[str, str]) -> dict[str, str]:
    """Template variables as stored and sent: keys naming personal data are dropped, anything that looks
    like a mobile number or an ID number is masked (the gateway resolves contact details itself)."""
    out: dict[str, str] = {}
    for k, v in payload.items():
        key = str(k)
        if key.lower() in _PII_KEYS:
            continue
        out[key] = _PHONE_OR_ID.sub(lambda m: mask_numbers(m.group()), str(v))
    return out


def _check(send: Send) -> None:
    if not _KEY.match(send.key):
        raise AppError(f"send key {send.key[:60]!r}: 1 to 200 visible ASCII characters", code="bad_send")
    if not send.customer_id or len(send.customer_id) > 32:
        raise AppError(f"send {send.key}: customer_id must be 1 to 32 characters", code="bad_send")
    for name in ("journey", "step", "template"):
        value = getattr(send, name)
        if value is not None and not _NAME.match(value):
            raise AppError(f"send {send.key}: {name} must be 1 to 64 printable characters", code="bad_send")


def _decision_of(row: ContactMessage) -> Decision:
    """A stored message's decision as it stands now."""
    if row.status == "suppressed":
        return Decision("suppress", row.reason, row.decided_at, row.id)
    if row.status == "deferred":
        return Decision("defer", "quiet_hours", row.scheduled_for, row.id)
    return Decision("send", None, row.sent_at or row.scheduled_for, row.id)


_STATUS_OF = {"send": "queued", "defer": "deferred", "suppress": "suppressed"}


def _existing(session: Session, keys: Sequence[str]) -> dict[str, ContactMessage]:
    found: dict[str, ContactMessage] = {}
    for chunk in _chunks(keys):
        for row in session.scalars(select(ContactMessage).where(ContactMessage.key.in_(chunk))):
            found[row.key] = row
    return found


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert outbox rows except those whose key is taken meanwhile (another worker's, committed while we
    decided); key → id of the rows inserted."""
    if not rows:
        return {}
    stmt = (
        insert_for(session, ContactMessage)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(ContactMessage.key, ContactMessage.id)
    )
    out: dict[str, int] = {}
    for i in range(0, len(rows), 5000):
        for key, id_ in session.execute(stmt, rows[i : i + 5000]):
            out[key] = int(id_)
    return out


def submit(session: Session, settings: Settings, sends: Sequence[Send], *, now: datetime) -> list[Decision]:
    """Decide ``sends`` (one decision each, in the same order) and record each in the outbox. Flushes,
    never commits. A key seen before (in the store or earlier in ``sends``) returns that decision and
    changes nothing."""
    if now.tzinfo is None:
        raise ValueError("naive datetime refused: now must carry a time zone")
    for s in sends:
        _check(s)
    config = policy_config(settings)
    decisions: list[Decision | None] = [None] * len(sends)
    first: dict[str, int] = {}
    for i, s in enumerate(sends):
        first.setdefault(s.key, i)
    stored = _existing(session, list(first))
    fresh = [i for key, i in first.items() if key not in stored]
    for key, i in first.items():
        if key in stored:
            decisions[i] = _decision_of(stored[key])
    customers = {sends[i].customer_id for i in fresh}
    known = known_customers(session, customers)
    marketing = {sends[i].customer_id for i in fresh if sends[i].purpose == "marketing"}
    consent = allowed_many(session, marketing, "marketing") if marketing else {}
    windows = dnd_many(session, customers)
    counters = StoreCounters(session)
    rows: list[dict[str, Any]] = []
    # customer order (then time): transactions lock counters in the same order
    for i in sorted(fresh, key=lambda j: (sends[j].customer_id, sends[j].at, j)):
        s = sends[i]
        d = decide(
            s,
            config,
            consent=consent.get(s.customer_id, False),
            dnd=_in_dnd(windows, s.customer_id, s.channel, s.at),
            counters=counters,
            reachable=s.customer_id in known,
        )
        decisions[i] = d
        rows.append(_row(s, d, now))
    ids = _insert_new(session, rows)
    lost = [i for i in fresh if sends[i].key not in ids]
    if lost:  # another transaction recorded these keys first: its decisions stand, ours are undone
        for i in lost:
            mine = decisions[i]
            if mine is not None and mine.action == "send" and sends[i].purpose == "marketing":
                counters.release(sends[i].customer_id, sends[i].channel, sends[i].at, config)
        for key, row in _existing(session, [sends[i].key for i in lost]).items():
            decisions[first[key]] = _decision_of(row)
    for i in fresh:
        made = decisions[i]
        if made is not None and sends[i].key in ids:
            decisions[i] = Decision(made.action, made.reason, made.at, ids[sends[i].key])
    out: list[Decision] = []
    for i, s in enumerate(sends):
        answer = decisions[i] if decisions[i] is not None else decisions[first[s.key]]
        assert answer is not None
        out.append(answer)
    return out


def _row(s: Send, d: Decision, now: datetime) -> dict[str, Any]:
    return {
        "key": s.key,
        "customer_id": s.customer_id,
        "channel": s.channel,
        "purpose": s.purpose,
        "journey": s.journey,
        "step": s.step,
        "template": s.template,
        "payload": json.dumps(clean_payload(s.payload), ensure_ascii=False, sort_keys=True),
        "status": _STATUS_OF[d.action],
        "reason": d.reason,
        "asked_at": s.at,
        "submitted_at": now,
        "scheduled_for": d.at,
        "decided_at": s.at,
        "attempts": 0,
        "events_pending": False,
        "updated_at": now,
    }


# -------------------------------------------------------------------------------------------- dispatch


@dataclass
class DispatchReport:
    redecided: Counter[str] = field(default_factory=Counter)  # deferred decided again: queued/… or reason
    withdrawn: Counter[str] = field(default_factory=Counter)  # queued, refused at hand-off: reason
    handed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # sent / delivered / failed / clicked
    events: int = 0  # receipt events added to the log
    event_duplicates: int = 0

    def summary(self) -> str:
        parts = [f"{self.handed} handed to channels"]
        if self.outcomes:
            parts.append(", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items())))
        if self.redecided:
            parts.append(
                "deferred decided again: " + ", ".join(f"{n} {k}" for k, n in sorted(self.redecided.items()))
            )
        if self.withdrawn:
            parts.append("withdrawn: " + ", ".join(f"{n} {k}" for k, n in sorted(self.withdrawn.items())))
        parts.append(f"{self.events} receipt events")
        return "; ".join(parts)


def _for_update(stmt: Any, session: Session) -> Any:
    if session.connection().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt


def redecide_due(session: Session, settings: Settings, *, now: datetime, limit: int) -> Counter[str]:
    """Decide again deferred messages whose time has come, as sends at ``now`` (caps are taken now, on the
    day they go). Returns how many became queued / deferred again / suppressed (by reason)."""
    config = policy_config(settings)
    stmt = (
        select(ContactMessage)
        .where(ContactMessage.status == "deferred", ContactMessage.scheduled_for <= now)
        .order_by(ContactMessage.scheduled_for, ContactMessage.id)
        .limit(limit)
    )
    rows = list(session.scalars(_for_update(stmt, session)))
    result: Counter[str] = Counter()
    if not rows:
        return result
    known, consent, windows = _standing(session, rows)
    counters = StoreCounters(session)
    for r in sorted(rows, key=lambda m: (m.customer_id, m.scheduled_for, m.id)):
        send = Send(
            r.key, r.customer_id, r.channel, "marketing" if r.purpose == "marketing" else "service", now
        )
        d = decide(
            send,
            config,
            consent=consent.get(r.customer_id, False),
            dnd=_in_dnd(windows, r.customer_id, r.channel, now),
            counters=counters,
            reachable=r.customer_id in known,
        )
        r.status = _STATUS_OF[d.action]
        r.reason = d.reason
        r.scheduled_for = d.at
        r.decided_at = now
        r.updated_at = now
        result[r.status if d.reason is None or d.action == "defer" else d.reason] += 1
    session.flush()
    return result


def _standing(
    session: Session, rows: Sequence[ContactMessage]
) -> tuple[set[str], dict[str, bool], dict[str, list[DndWindow]]]:
    """What the policy needs about the customers of these outbox rows, read in bulk: who is known (not
    erased), marketing consent (of those with marketing rows) and do-not-disturb windows."""
    customers = {r.customer_id for r in rows}
    marketing = {r.customer_id for r in rows if r.purpose == "marketing"}
    consent = allowed_many(session, marketing, "marketing") if marketing else {}
    return known_customers(session, customers), consent, dnd_many(session, customers)


def _claim(
    session: Session, settings: Settings, *, now: datetime, limit: int, withdrawn: Counter[str]
) -> list[Outgoing]:
    """Queued messages due now, checked once more (consent, do-not-disturb) and leased for handing over."""
    config = policy_config(settings)
    stmt = (
        select(ContactMessage)
        .where(
            ContactMessage.status == "queued",
            ContactMessage.scheduled_for <= now,
            (ContactMessage.claimed_until.is_(None)) | (ContactMessage.claimed_until < now),
        )
        .order_by(ContactMessage.scheduled_for, ContactMessage.id)
        .limit(limit)
    )
    rows = list(session.scalars(_for_update(stmt, session)))
    if not rows:
        return []
    known, consent, windows = _standing(session, rows)
    counters = StoreCounters(session)
    out: list[Outgoing] = []
    for r in sorted(rows, key=lambda m: (m.customer_id, m.scheduled_for, m.id)):
        reason = None
        if r.customer_id not in known:
            reason = "unreachable"
        elif r.purpose == "marketing" and not consent.get(r.customer_id, False):
            reason = "no_consent"
        elif _in_dnd(windows, r.customer_id, r.channel, now):
            reason = "dnd"
        if reason is not None:
            if r.purpose == "marketing":
                counters.release(r.customer_id, r.channel, r.decided_at, config)
            r.status, r.reason, r.decided_at, r.updated_at = "suppressed", reason, now, now
            withdrawn[reason] += 1
            continue
        r.claimed_until = now + LEASE
        r.attempts += 1
        r.updated_at = now
        out.append(
            Outgoing(
                message_id=r.id,
                key=r.key,
                customer_id=r.customer_id,
                channel=r.channel,
                purpose=r.purpose,
                journey=r.journey,
                step=r.step,
                template=r.template,
                payload=json.loads(r.payload or "{}"),
            )  # fmt: skip
        )
    session.flush()
    return out


_MESSAGES = cast(Table, ContactMessage.__table__)


def _apply(session: Session, outcomes: Sequence[Outcome], *, now: datetime, counts: Counter[str]) -> None:
    """Record what the adapters did: one compare-and-set UPDATE (from ``queued``) per kind of outcome over
    all its messages, RETURNING the ids it moved, then the gateways' references in one executemany. An
    UPDATE a message cost ~1.7 ms each (the worker hands thousands at a time to the channels)."""
    table = _MESSAGES
    kinds: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for o in outcomes:
        if o.status == "failed":
            kinds[("failed", (o.reason or "failed")[:MAX_REASON])].append(o.message_id)
        elif o.status == "delivered":
            kinds[("clicked" if o.clicked else "delivered", None)].append(o.message_id)
        else:
            kinds[("sent", None)].append(o.message_id)
    moved: set[int] = set()
    for (status, reason), ids in kinds.items():
        values: dict[str, Any] = {"status": status, "sent_at": now, "claimed_until": None, "updated_at": now}
        if status == "failed":
            values.update(failed_at=now, reason=reason, events_pending=True)
        elif status in ("delivered", "clicked"):
            values.update(delivered_at=now, events_pending=True)
            if status == "clicked":
                values["clicked_at"] = now
        for i in range(0, len(ids), _CHUNK):
            got = (
                session.execute(
                    update(table)
                    .where(table.c.id.in_(ids[i : i + _CHUNK]), table.c.status == "queued")
                    .values(**values)
                    .returning(table.c.id)
                )
                .scalars()
                .all()
            )
            moved.update(got)
            counts[status] += len(got)
    refs = [
        {"mid": o.message_id, "ref": o.provider_ref[:128]}
        for o in outcomes
        if o.provider_ref and o.message_id in moved
    ]
    if refs:
        session.execute(
            update(table).where(table.c.id == bindparam("mid")).values(provider_ref=bindparam("ref")), refs
        )


def dispatch(
    settings: Settings,
    *,
    now: datetime,
    limit: int = 1000,
    adapters: Mapping[str, Adapter] | None = None,
) -> DispatchReport:
    """One round of the outbox: deferred messages due by ``now`` are decided again; queued ones due (at most
    ``limit``) go to their channel's adapter; outcomes are recorded and receipt events emitted after the
    commit. Commits itself (it is a job, like the CLI command and the worker that call it)."""
    if now.tzinfo is None:
        raise ValueError("naive datetime refused: now must carry a time zone")
    if limit < 1:
        raise AppError("limit: at least 1")
    report = DispatchReport()
    adapters = adapters if adapters is not None else adapters_for(settings)
    with unit_of_work(settings) as session:
        report.redecided = redecide_due(session, settings, now=now, limit=limit)
    with unit_of_work(settings) as session:
        outgoing = _claim(session, settings, now=now, limit=limit, withdrawn=report.withdrawn)
    by_channel: dict[str, list[Outgoing]] = defaultdict(list)
    for m in outgoing:
        by_channel[m.channel].append(m)
    outcomes: list[Outcome] = []
    for channel, batch in by_channel.items():
        outcomes.extend(adapters[channel].deliver(batch, now=now))
    report.handed = len(outgoing)
    if outcomes:
        with unit_of_work(settings) as session:
            _apply(session, outcomes, now=now, counts=report.outcomes)
    report.events, report.event_duplicates = emit_pending(settings)
    return report


# ---------------------------------------------------------------------------------------------- receipts

ReceiptStatus = Literal["delivered", "failed", "clicked"]


@dataclass(frozen=True)
class Receipt:
    """A gateway's report on a message: delivered, failed (with a reason) or clicked, at a time."""

    message_id: int
    status: ReceiptStatus
    at: datetime
    reason: str | None = None
    provider_ref: str | None = None


@dataclass(frozen=True)
class ReceiptResult:
    message_id: int
    outcome: Literal["recorded", "unchanged", "refused"]
    status: str | None  # the message's status after it
    detail: str = ""


def record_receipts(session: Session, receipts: Sequence[Receipt], *, now: datetime) -> list[ReceiptResult]:
    """Record gateway receipts (flushes, never commits; emit with :func:`emit_pending` after the commit).
    A receipt already recorded changes nothing; a failure after delivery is ignored; a receipt for a message
    never sent (deferred, suppressed) or unknown is refused."""
    ids = sorted({r.message_id for r in receipts})
    rows: dict[int, ContactMessage] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = (
            select(ContactMessage)
            .where(ContactMessage.id.in_(ids[i : i + _CHUNK]))
            .order_by(ContactMessage.id)
        )
        if session.connection().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        rows.update({m.id: m for m in session.scalars(stmt)})
    out: list[ReceiptResult] = []
    for rc in receipts:
        if rc.at.tzinfo is None:
            raise ValueError("naive datetime refused: a receipt time must carry a time zone")
        m = rows.get(rc.message_id)
        if m is None:
            out.append(ReceiptResult(rc.message_id, "refused", None, f"no message {rc.message_id}"))
            continue
        if m.status in ("deferred", "suppressed"):
            out.append(ReceiptResult(m.id, "refused", m.status, f"message {m.id} was not sent ({m.status})"))
            continue
        changed = False
        if rc.status == "failed":
            if m.delivered_at is None and m.failed_at is None:
                m.failed_at, m.status = rc.at, "failed"
                m.reason = (rc.reason or "failed")[:MAX_REASON]
                changed = True
        else:
            if m.delivered_at is None:
                m.delivered_at = rc.at
                if m.status != "clicked":
                    m.status = "delivered"
                changed = True
            if rc.status == "clicked" and m.clicked_at is None:
                m.clicked_at, m.status = rc.at, "clicked"
                changed = True
        if changed:
            m.sent_at = m.sent_at or rc.at
            m.claimed_until = None
            if rc.provider_ref and not m.provider_ref:
                m.provider_ref = rc.provider_ref[:128]
            m.events_pending = True
            m.updated_at = now
        out.append(ReceiptResult(m.id, "recorded" if changed else "unchanged", m.status))
    session.flush()
    return out


def receipt_events(m: ContactMessage) -> list[dict[str, Any]]:
    """The receipt events of a message (deterministic ids: ``msg:<id>:<kind>``)."""
    events = []
    for kind, at in (("delivered", m.delivered_at), ("failed", m.failed_at), ("clicked", m.clicked_at)):
        if at is None:
            continue
        events.append(
            {
                "event_id": f"msg:{m.id}:{kind}",
                "type": f"message.{kind}",
                "customer_id": m.customer_id,
                "ts": at.isoformat(),
                "channel": EVENT_CHANNEL[m.channel],
                "message_id": m.id,
                "contact_channel": m.channel,
                "journey": m.journey,
                "step": m.step,
                "send_key": m.key,
                **({"reason": m.reason} if kind == "failed" and m.reason else {}),
            }
        )
    return events


def emit_pending(settings: Settings, *, batch: int = 10_000) -> tuple[int, int]:
    """Emit the receipt events of messages with ``events_pending`` and clear the flag of those whose
    receipts did not change meanwhile. Returns (events added, events the log had already)."""
    from omnibank.events.emit import emit

    added = dupes = 0
    while True:
        with unit_of_work(settings) as session:
            rows = list(
                session.scalars(
                    select(ContactMessage)
                    .where(ContactMessage.events_pending.is_(True))
                    .order_by(ContactMessage.id)
                    .limit(batch)
                )
            )
        if not rows:
            return added, dupes
        events = [e for m in rows for e in receipt_events(m)]
        done = emit(settings, events)
        if done.rejected:
            reasons = "; ".join(r.reason for r in done.rejects[:3])
            raise AppError(f"receipt events refused by the event log: {reasons}", code="receipts_refused")
        added += done.loaded
        dupes += done.duplicates
        with unit_of_work(settings) as session:
            for m in rows:
                session.execute(
                    update(ContactMessage)
                    .where(
                        ContactMessage.id == m.id,
                        ContactMessage.status == m.status,
                        ContactMessage.delivered_at.is_not_distinct_from(m.delivered_at),
                        ContactMessage.failed_at.is_not_distinct_from(m.failed_at),
                        ContactMessage.clicked_at.is_not_distinct_from(m.clicked_at),
                    )
                    .values(events_pending=False)
                    .execution_options(synchronize_session=False)
                )
        if len(rows) < batch:
            return added, dupes


# ------------------------------------------------------------------------------------------ do-not-disturb


def _check_dnd_channel(channel: str) -> str:
    if channel not in DND_CHANNELS:
        raise AppError(f"channel: {channel!r} is not one of {', '.join(DND_CHANNELS)}", code="bad_channel")
    return channel


def add_dnd(
    session: Session,
    customer_id: str,
    *,
    channel: str = "all",
    reason: str,
    until: datetime | None = None,
    actor: str,
    now: datetime,
    source: str = "cli",
) -> ContactDnd:
    """Put a customer on do-not-disturb for a channel (or ``all``) from ``now`` until ``until`` (None: until
    removed); marketing and service sends to it are suppressed ``dnd``. Audited. Refuses an unknown
    customer, an end not after ``now``, and a second window for the same channel while one is open."""
    _check_dnd_channel(channel)
    reason = mask_numbers(reason.strip())
    if not reason:
        raise AppError("reason: say why (e.g. 客户来电要求勿扰), without personal data", code="bad_reason")
    if len(reason) > MAX_REASON:
        raise AppError(f"reason: at most {MAX_REASON} characters", code="bad_reason")
    if until is not None and until <= now:
        raise AppError(f"until: {until.isoformat()} is not after now ({now.isoformat()})", code="bad_until")
    if session.get(Customer, customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    for existing in list_dnd(session, customer_id=customer_id, active_at=now):
        if existing.channel == channel:
            raise Conflict(
                f"{customer_id} is on do-not-disturb for {channel} already (since "
                f"{existing.since.isoformat()}); remove it first to change it",
                code="dnd_exists",
            )
    row = ContactDnd(
        customer_id=customer_id, channel=channel, reason=reason, since=now, until=until, created_by=actor
    )
    session.add(row)
    session.flush()
    audit.record(
        session, actor=actor, action="contact.dnd_add", subject_type="customer", subject_id=customer_id,
        detail={"channel": channel, "until": until.isoformat() if until else None, "dnd": row.id},
        source=source, reason=reason, at=now,
    )  # fmt: skip
    return row


def remove_dnd(
    session: Session,
    customer_id: str,
    *,
    channel: str | None = None,
    actor: str,
    now: datetime,
    source: str = "cli",
) -> int:
    """End the customer's open do-not-disturb windows (of ``channel``, or all of them) now; how many.
    Audited. Nothing open: NotFound."""
    if channel is not None:
        _check_dnd_channel(channel)
    open_rows = [
        r
        for r in list_dnd(session, customer_id=customer_id, active_at=now)
        if channel is None or r.channel == channel
    ]
    if not open_rows:
        what = f" for {channel}" if channel else ""
        raise NotFound(f"{customer_id} has no do-not-disturb{what} to remove")
    for r in open_rows:
        r.removed_at, r.removed_by = now, actor
    session.flush()
    audit.record(
        session, actor=actor, action="contact.dnd_remove", subject_type="customer", subject_id=customer_id,
        detail={"channels": [r.channel for r in open_rows], "dnd": [r.id for r in open_rows]},
        source=source, at=now,
    )  # fmt: skip
    return len(open_rows)


def list_dnd(
    session: Session,
    *,
    customer_id: str | None = None,
    active_at: datetime | None = None,
    limit: int = 1000,
) -> list[ContactDnd]:
    """Do-not-disturb windows, newest first: of a customer or all; only those open at ``active_at``, if
    given (else every window, removed ones too)."""
    stmt = select(ContactDnd)
    if customer_id is not None:
        stmt = stmt.where(ContactDnd.customer_id == customer_id)
    if active_at is not None:
        stmt = stmt.where(
            ContactDnd.removed_at.is_(None),
            ContactDnd.since <= active_at,
            (ContactDnd.until.is_(None)) | (ContactDnd.until > active_at),
        )
    return list(session.scalars(stmt.order_by(ContactDnd.id.desc()).limit(limit)))


# ---------------------------------------------------------------------------------------------- reading


def list_messages(
    session: Session,
    *,
    status: str | None = None,
    customer_id: str | None = None,
    journey: str | None = None,
    limit: int = 100,
) -> list[ContactMessage]:
    """Outbox rows, newest first, filtered by status, customer and journey."""
    if status is not None and status not in STATUSES:
        raise AppError(f"status: {status!r} is not one of {', '.join(STATUSES)}", code="bad_status")
    if limit < 1:
        raise AppError("limit: at least 1")
    stmt = select(ContactMessage)
    if status is not None:
        stmt = stmt.where(ContactMessage.status == status)
    if customer_id is not None:
        stmt = stmt.where(ContactMessage.customer_id == customer_id)
    if journey is not None:
        stmt = stmt.where(ContactMessage.journey == journey)
    return list(session.scalars(stmt.order_by(ContactMessage.id.desc()).limit(limit)))


def get_message(session: Session, message_id: int) -> ContactMessage:
    row = session.get(ContactMessage, message_id)
    if row is None:
        raise NotFound(f"no message {message_id}")
    return row


def status_counts(session: Session, *, journey: str | None = None) -> dict[str, int]:
    """How many messages are in each status (of a journey, or all)."""
    stmt = select(ContactMessage.status, func.count()).group_by(ContactMessage.status)
    if journey is not None:
        stmt = stmt.where(ContactMessage.journey == journey)
    return {status: int(n) for status, n in session.execute(stmt)}


__all__ = [
    "CHANNELS",
    "DispatchReport",
    "Receipt",
    "ReceiptResult",
    "StoreCounters",
    "add_dnd",
    "dispatch",
    "emit_pending",
    "list_dnd",
    "list_messages",
    "record_receipts",
    "remove_dnd",
    "submit",
]
