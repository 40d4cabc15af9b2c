"""Receipts: what became of a message after a gateway took it. :func:`record_receipts` takes a gateway's
delivered / failed / clicked reports (flushes, never commits); :func:`emit_pending` puts the receipt events
of messages into the event log after the commit. Apart from dispatch because receipts also arrive on their
own, through ``POST /contact/receipts``, long after the round that handed the message over.

Receipt events (``message.delivered``, ``message.failed``, ``message.clicked``) carry ``message_id`` (the
outbox id), ``channel`` (the event contract's channel: ``app_push`` → ``app``, ``ai_call`` and
``human_call`` → ``phone``, ``branch_task`` → ``branch``, others as they are), ``contact_channel`` (the
exact channel), ``journey``, ``step`` and ``send_key``; their ids are ``msg:<id>:<kind>``. A message keeps
``events_pending`` until its events are in the log, so a crash between the commit and the emit only delays
them (:func:`emit_pending` sends them again; the log drops ids it has).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.contact.models import ContactMessage
from omnibank.contact.outbox import MAX_REASON
from omnibank.contact.standing import CHUNK
from omnibank.db import unit_of_work
from omnibank.errors import AppError

EVENT_CHANNEL = {
    "app_push": "app",
    "sms": "sms",
    "wechat": "wechat",
    "wecom": "wecom",
    "ai_call": "phone",
    "human_call": "phone",
    "branch_task": "branch",
}

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
    for i in range(0, len(ids), CHUNK):
        stmt = (
            select(ContactMessage)
            .where(ContactMessage.id.in_(ids[i : i + CHUNK]))
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


__all__ = [
    "EVENT_CHANNEL",
    "Receipt",
    "ReceiptResult",
    "ReceiptStatus",
    "emit_pending",
    "receipt_events",
    "record_receipts",
]
