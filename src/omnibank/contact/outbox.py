"""Submit: the only way a send enters the outbox. :func:`submit` (session first; flushes, never commits)
decides a batch of sends with :func:`omnibank.contact.policy.decide` — marketing consent from
:func:`omnibank.consent.service.allowed_many`, do-not-disturb in one query per 900 customers
(:mod:`omnibank.contact.standing`), caps over the ``contact_caps`` table with a conditional upsert
(:class:`omnibank.contact.caps.StoreCounters`), and for surveys the holds (:mod:`omnibank.contact.holds`) and
each customer's last survey in the outbox (fatigue) — and writes one outbox row per send with its decision and
reason. A key submitted again returns its recorded decision (as it stands now) and changes nothing.

Apart from dispatch because it runs inside the caller's transaction (the journey worker's step, a test)
while dispatch is a job of its own that commits. The outbox row's shape lives here: :data:`STATUS_OF`
(dispatch decides deferred rows again with it) and :data:`MAX_REASON` (receipts and do-not-disturb use it
too). Sends are decided in customer order (then time), so two transactions take caps counters in the same
order (:mod:`omnibank.contact.caps`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.consent.service import allowed_many
from omnibank.contact.caps import StoreCounters
from omnibank.contact.holds import held_many
from omnibank.contact.models import ContactMessage
from omnibank.contact.policy import Decision, Send, decide
from omnibank.contact.standing import chunks, dnd_many, in_dnd, known_customers, policy_config
from omnibank.db.upsert import insert_for
from omnibank.errors import AppError
from omnibank.kit.masking import mask_numbers
from omnibank.users.links import customer_link_token

MAX_REASON = 200  # a stored reason (an outbox row's, a do-not-disturb window's): String(200)
_PII_KEYS = frozenset({"name", "phone", "mobile", "id_number", "id_no", "id_card", "address", "email"})
_PHONE_OR_ID = re.compile(r"(?<![0-9])(1[3-9][0-9]{9}|[0-9]{17}[0-9Xx])(?![0-9])")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_NAME = re.compile(r"^[^\x00-\x1f]{1,64}$")
MAX_TEMPLATE = 500  # the outbox's template column (the message text or the gateway's template id)
_TEMPLATE = re.compile(rf"^[^\x00-\x1f]{{1,{MAX_TEMPLATE}}}$")
SURVEY_LINK = "{survey_link}"  # in a survey invitation's template: its answer page, filled in once stored
SURVEY_LINK_DAYS = 30


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
    for name in ("journey", "step"):
        value = getattr(send, name)
        if value is not None and not _NAME.match(value):
            raise AppError(f"send {send.key}: {name} must be 1 to 64 printable characters", code="bad_send")
    if send.template is not None and not _TEMPLATE.match(send.template):
        raise AppError(
            f"send {send.key}: template must be 1 to {MAX_TEMPLATE} printable characters", code="bad_send"
        )


def _decision_of(row: ContactMessage) -> Decision:
    """A stored message's decision as it stands now."""
    if row.status == "suppressed":
        return Decision("suppress", row.reason, row.decided_at, row.id)
    if row.status == "deferred":
        return Decision("defer", "quiet_hours", row.scheduled_for, row.id)
    return Decision("send", None, row.sent_at or row.scheduled_for, row.id)


STATUS_OF = {"send": "queued", "defer": "deferred", "suppress": "suppressed"}


def _existing(session: Session, keys: Sequence[str]) -> dict[str, ContactMessage]:
    found: dict[str, ContactMessage] = {}
    for chunk in chunks(keys):
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
    surveyed = {sends[i].customer_id for i in fresh if sends[i].purpose == "survey"}
    held = held_many(session, surveyed, "survey") if surveyed else {}
    last_survey = last_surveys(session, surveyed) if surveyed else {}
    counters = StoreCounters(session)
    rows: list[dict[str, Any]] = []
    # customer order (then time): transactions lock counters in the same order
    for i in sorted(fresh, key=lambda j: (sends[j].customer_id, sends[j].at, j)):
        s = sends[i]
        survey = s.purpose == "survey"
        d = decide(
            s,
            config,
            consent=consent.get(s.customer_id, False),
            dnd=in_dnd(windows, s.customer_id, s.channel, s.at),
            counters=counters,
            reachable=s.customer_id in known,
            held=held.get(s.customer_id) if survey else None,
            surveyed_at=last_survey.get(s.customer_id) if survey else None,
        )
        if survey and d.action != "suppress":
            last_survey[s.customer_id] = s.at  # the next survey in this batch counts this one
        decisions[i] = d
        rows.append(_row(s, d, now))
    ids = _insert_new(session, rows)
    for i in fresh:
        if sends[i].key in ids and (text := _with_survey_link(settings, sends[i], ids[sends[i].key], now)):
            session.execute(
                update(ContactMessage).where(ContactMessage.id == ids[sends[i].key]).values(template=text)
            )
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


def _with_survey_link(settings: Settings, s: Send, message_id: int, now: datetime) -> str | None:
    """A survey invitation's text with its answer page's signed link in place of ``{survey_link}`` (the
    page knows the invitation by its outbox id, the customer by the link token); None when there is none."""
    survey = s.payload.get("survey")
    if s.purpose != "survey" or not s.template or SURVEY_LINK not in s.template or not survey:
        return None
    try:
        token = customer_link_token(settings, s.customer_id, now=now, days=SURVEY_LINK_DAYS)
    except ValueError:  # a customer id no link can carry: the text goes without one
        return None
    link = f"{settings.public_url}/c/surveys/{quote(str(survey))}?i={message_id}&k={token}"
    text = s.template.replace(SURVEY_LINK, link)
    return text if len(text) <= MAX_TEMPLATE else f"请点击作答：{link}"[:MAX_TEMPLATE]


def last_surveys(session: Session, customer_ids: Collection[str]) -> dict[str, datetime]:
    """When each customer was last asked to take a survey that went or is going (not suppressed)."""
    ids = list(dict.fromkeys(customer_ids))
    out: dict[str, datetime] = {}
    for chunk in chunks(ids):
        rows = session.execute(
            select(ContactMessage.customer_id, func.max(ContactMessage.asked_at))
            .where(
                ContactMessage.customer_id.in_(chunk),
                ContactMessage.purpose == "survey",
                ContactMessage.status != "suppressed",
            )
            .group_by(ContactMessage.customer_id)
        )
        for cid, at in rows:
            out[cid] = at
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
        "status": STATUS_OF[d.action],
        "reason": d.reason,
        "asked_at": s.at,
        "submitted_at": now,
        "scheduled_for": d.at,
        "decided_at": s.at,
        "attempts": 0,
        "events_pending": False,
        "updated_at": now,
    }


__all__ = ["MAX_REASON", "STATUS_OF", "clean_payload", "submit"]
