"""A ticket about a benefit goes to the benefit's supplier: a signed webhook, the supplier's own response
target, its answer, and the figures the supplier scorecard takes from tickets. Flushes only; the caller
commits.

**Telling the supplier** (:func:`notify_suppliers`, a job): every open ticket with a supplier that has not
been told yet is posted as JSON to the URL configured for that supplier (``OMNIBANK_SUPPLIER_WEBHOOKS``),
signed as the contact gateways are (HMAC-SHA256 over the exact body bytes, header
``X-Omnibank-Signature: sha256=<hex>``, secret ``OMNIBANK_SUPPLIER_WEBHOOK_SECRET``;
:func:`omnibank.contact.channels.sign`). The body names the ticket, the benefit and coupon, the category,
priority, the (already masked) subject and the moment the answer is due; never the description or anything
that names the customer. A 2xx answer means the supplier has it: the ticket records when it was told and
when the answer is due (the supplier's target from :meth:`Routing.supplier_target`, from the moment it was
told: business time on the bank's calendar, or calendar days as the law counts them), and its history a
``supplier_notified`` row. Any other answer, a timeout or a connection error leaves the ticket for the next
run; after :data:`MAX_ATTEMPTS` the job stops trying (counted, so someone calls the supplier). A supplier
with no URL is not told; its tickets wait, counted, until one is configured. Two runs at once may post a
ticket twice (``Idempotency-Key: supplier:<ticket>`` lets the supplier drop the second); only one records it.

**The answer** (:func:`record_answer`): staff record it, or the supplier calls back with a signed body
``{"ticket_id": …, "note": …}`` (:func:`verify_callback`). The first answer counts; another changes nothing.
The ticket's status is the staff's to move: a ticket waiting for the supplier stays so.

**The scorecard** (:func:`supplier_counts`): complaints about a supplier's benefits opened in the window, and
late answers: tickets whose answer was due in the window and came after it, or has not come by the window's
end (nor by ``now`` when given, so a ticket still in time is not late yet).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, func, or_, select, update
from sqlalchemy.orm import Session

from omnibank.api.errors import Unauthorized
from omnibank.benefits.suppliers import scorecard_window
from omnibank.config import Settings
from omnibank.contact.channels import SIGNATURE_HEADER, sign, verify
from omnibank.errors import Conflict, InputRefused, NotFound
from omnibank.service.calendar import NoHolidayData
from omnibank.service.models import OPEN_STATUSES, Ticket
from omnibank.service.sla import TargetSpec
from omnibank.service.tickets import Desk, TicketRead, add_history, ticket_read

MAX_ATTEMPTS = 10
TIMEOUT_SECONDS = 10.0
MAX_CALLBACK = 16_384
_TICKETS: Table = Ticket.__table__  # type: ignore[assignment]

#: ``post(url, body, headers) -> HTTP status``; raises OSError when nothing came back
Post = Callable[[str, bytes, Mapping[str, str]], int]


def http_post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    """POST ``body`` to ``url`` (the URL is from the settings, checked https) and return the status."""
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            response.read(65_536)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


# ------------------------------------------------------------------------------------------ telling


@dataclass
class NotifyReport:
    notified: list[str] = field(default_factory=list)  # ticket ids
    failed: int = 0  # tried, not taken (tried again next run)
    gave_up: int = 0  # reached MAX_ATTEMPTS in this run
    no_webhook: int = 0  # open tickets of suppliers without a URL (waiting)
    problems: list[str] = field(default_factory=list)  # e.g. no holiday data for the due time

    def summary(self) -> str:
        return (
            f"suppliers told of {len(self.notified)} tickets, failed {self.failed}, gave up {self.gave_up}, "
            f"waiting for a supplier URL {self.no_webhook}"
        )


def supplier_due(desk: Desk, target: TargetSpec, start: datetime) -> datetime:
    """When a supplier told at ``start`` must have answered, by its target."""
    if target.calendar_days is not None:
        return desk.calendar.calendar_days_due(start, target.calendar_days)
    return desk.calendar.add_business_time(start, target.business_time)


def notice_body(ticket: Ticket, *, answer_by: datetime, tz: ZoneInfo) -> bytes:
    """What the supplier is sent: nothing that names the customer, the subject already masked."""
    doc = {
        "ticket_id": ticket.ticket_id,
        "benefit_id": ticket.benefit_id,
        "coupon_id": ticket.coupon_id,
        "category": ticket.category,
        "priority": ticket.priority,
        "subject": ticket.subject,
        "opened_at": ticket.opened_at.astimezone(tz).isoformat(),
        "answer_by": answer_by.astimezone(tz).isoformat(),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _waiting(*, with_url: bool, suppliers: list[str]) -> Any:
    told = Ticket.supplier_id.in_(suppliers) if with_url else Ticket.supplier_id.not_in(suppliers)
    return and_(
        Ticket.status.in_(OPEN_STATUSES),
        Ticket.supplier_id.is_not(None),
        Ticket.supplier_notified_at.is_(None),
        Ticket.supplier_attempts < MAX_ATTEMPTS,
        told,
    )


def notify_suppliers(
    session: Session,
    settings: Settings,
    desk: Desk,
    *,
    now: datetime,
    post: Post | None = None,
    limit: int = 100,
) -> NotifyReport:
    """Tell each supplier of its open tickets it has not been told of (oldest first, ``limit`` a run)."""
    report = NotifyReport()
    urls = settings.supplier_webhooks
    configured = sorted(urls)
    report.no_webhook = int(
        session.scalar(
            select(func.count()).select_from(Ticket).where(_waiting(with_url=False, suppliers=configured))
        )
        or 0
    )
    if not configured:
        return report
    secret = settings.supplier_webhook_secret
    if secret is None or not secret.get_secret_value():  # the settings refuse this; never post unsigned
        report.problems.append("OMNIBANK_SUPPLIER_WEBHOOK_SECRET is not set: no supplier was told")
        return report
    key = secret.get_secret_value().encode()
    send = post or http_post
    tickets = list(
        session.scalars(
            select(Ticket)
            .where(_waiting(with_url=True, suppliers=configured))
            .order_by(Ticket.opened_at, Ticket.ticket_id)
            .limit(limit)
        )
    )
    for ticket in tickets:
        supplier = ticket.supplier_id or ""
        try:
            due = supplier_due(desk, desk.routing.supplier_target(supplier), now)
        except NoHolidayData as exc:
            report.problems.append(f"ticket {ticket.ticket_id}: {exc.message}")
            continue
        body = notice_body(ticket, answer_by=due, tz=desk.calendar.tz)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: sign(key, body),
            "Idempotency-Key": f"supplier:{ticket.ticket_id}",
            "User-Agent": "omnibank-service",
        }
        try:
            status = send(urls[supplier], body, headers)
        except OSError:  # timeouts and unreachable hosts (URLError is an OSError)
            status = 0
        if 200 <= status < 300:
            _told(session, desk, ticket, due=due, now=now)
            report.notified.append(ticket.ticket_id)
            continue
        session.execute(
            update(_TICKETS)
            .where(_TICKETS.c.ticket_id == ticket.ticket_id)
            .values(supplier_attempts=_TICKETS.c.supplier_attempts + 1)
        )
        session.refresh(ticket)
        report.failed += 1
        if ticket.supplier_attempts >= MAX_ATTEMPTS:
            report.gave_up += 1
    session.flush()
    return report


def _told(session: Session, desk: Desk, ticket: Ticket, *, due: datetime, now: datetime) -> None:
    result = session.execute(
        update(_TICKETS)
        .where(_TICKETS.c.ticket_id == ticket.ticket_id, _TICKETS.c.supplier_notified_at.is_(None))
        .values(supplier_notified_at=now, supplier_due_at=due, updated_at=now)
    )
    session.refresh(ticket)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return  # another run recorded it first
    local = due.astimezone(desk.calendar.tz).strftime("%Y-%m-%d %H:%M")
    add_history(session, ticket, "supplier_notified", now, by="system:suppliers", from_status=ticket.status,
                detail=f"due {local}")  # fmt: skip


# ------------------------------------------------------------------------------------------ answers


def record_answer(
    session: Session, desk: Desk, ticket_id: str, *, by: str, now: datetime, note: str | None = None
) -> TicketRead:
    """The supplier answered the ticket (the first answer counts; another changes nothing). The status
    stays as it is: staff move the ticket on."""
    ticket = session.get(Ticket, ticket_id, populate_existing=True)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    if ticket.supplier_id is None:
        raise Conflict(f"ticket {ticket_id} is not about a supplier's benefit: there is no answer to record")
    if ticket.supplier_answered_at is not None:
        return ticket_read(ticket)
    result = session.execute(
        update(_TICKETS)
        .where(_TICKETS.c.ticket_id == ticket_id, _TICKETS.c.supplier_answered_at.is_(None))
        .values(supplier_answered_at=now, updated_at=now)
    )
    session.refresh(ticket)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        late = ticket.supplier_due_at is not None and now > ticket.supplier_due_at
        add_history(session, ticket, "supplier_answered", now, by=by, from_status=ticket.status,
                    detail="late" if late else None, note=note)  # fmt: skip
    session.flush()
    return ticket_read(ticket)


def verify_callback(
    settings: Settings, body: bytes, header: str, *, session: Session | None = None
) -> dict[str, Any]:
    """The supplier's signed callback ``{"ticket_id": …, "note": …}`` as a dict, once its signature holds
    (401 otherwise); with ``session``, the ticket must exist (404) and be about that supplier's benefit."""
    secret = settings.supplier_webhook_secret
    if secret is None or not secret.get_secret_value():
        raise Unauthorized("supplier callbacks are refused: OMNIBANK_SUPPLIER_WEBHOOK_SECRET is not set")
    if not header or not verify(secret.get_secret_value().encode(), body, header):
        raise Unauthorized(f"supplier callback: the {SIGNATURE_HEADER} header does not sign this body")
    if len(body) > MAX_CALLBACK:
        raise InputRefused(f"supplier callback: at most {MAX_CALLBACK} bytes")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InputRefused("supplier callback: the body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("ticket_id"), str) or not doc["ticket_id"]:
        raise InputRefused('supplier callback: expected {"ticket_id": "…", "note": "…"}')
    note = doc.get("note")
    if note is not None and not isinstance(note, str):
        raise InputRefused("supplier callback: note must be text")
    out: dict[str, Any] = {"ticket_id": doc["ticket_id"][:40], "note": note}
    if session is not None:
        ticket = session.get(Ticket, out["ticket_id"])
        if ticket is None or ticket.supplier_id is None:
            raise NotFound(f"supplier callback: no ticket {out['ticket_id']} sent to a supplier")
        named = doc.get("supplier_id")
        if named is not None and named != ticket.supplier_id:
            raise NotFound(f"supplier callback: no ticket {out['ticket_id']} of supplier {named}")
        out["supplier_id"] = ticket.supplier_id
    return out


# ---------------------------------------------------------------------------------------- scorecard


@dataclass(frozen=True)
class SupplierTicketCounts:
    complaints: int
    late_answers: int


def supplier_counts(
    session: Session, *, start: datetime, end: datetime, now: datetime | None = None
) -> dict[str, SupplierTicketCounts]:
    """Per supplier: complaints about its benefits opened in ``[start, end)``, and answers due in
    ``[start, end)`` that came late or have not come by ``end`` (and ``now``, when given)."""
    cutoff = min(end, now) if now is not None else end
    complaints: Counter[str] = Counter()
    for sid, n in session.execute(
        select(Ticket.supplier_id, func.count())
        .where(
            Ticket.kind == "complaint",
            Ticket.supplier_id.is_not(None),
            Ticket.opened_at >= start,
            Ticket.opened_at < end,
        )
        .group_by(Ticket.supplier_id)
    ):
        complaints[str(sid)] += int(n)
    late: Counter[str] = Counter()
    for sid, n in session.execute(
        select(Ticket.supplier_id, func.count())
        .where(
            Ticket.supplier_id.is_not(None),
            Ticket.supplier_due_at >= start,
            Ticket.supplier_due_at < end,
            or_(
                Ticket.supplier_answered_at > Ticket.supplier_due_at,
                and_(Ticket.supplier_answered_at.is_(None), Ticket.supplier_due_at < cutoff),
            ),
        )
        .group_by(Ticket.supplier_id)
    ):
        late[str(sid)] += int(n)
    return {
        sid: SupplierTicketCounts(complaints[sid], late[sid]) for sid in sorted(set(complaints) | set(late))
    }


def scorecard_tickets(
    session: Session, *, until: date, days: int, tz: ZoneInfo, now: datetime | None = None
) -> dict[str, tuple[int, int]]:
    """The scorecard's ticket figures (supplier → (complaints, late answers)) over its window, for
    :func:`omnibank.benefits.suppliers.scorecard`'s ``tickets``."""
    start, end = scorecard_window(until=until, days=days, tz=tz)
    counts = supplier_counts(session, start=start, end=end, now=now)
    return {sid: (c.complaints, c.late_answers) for sid, c in counts.items()}
