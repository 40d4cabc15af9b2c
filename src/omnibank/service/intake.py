"""Tickets that arrive by data: from events in the log (``complaint.filed``, ``service.request``) and from a
file of past tickets' history (``omnibank tickets import FILE.jsonl``). Flushes only; the caller commits.

**From the log.** The pass reads the log files it has not read (``ticket_intake_offsets``) and opens a ticket
for each ``complaint.filed`` (a complaint) and ``service.request`` (a request, or an inquiry with
``"kind": "inquiry"``), keyed by the event's id, so a replayed event opens nothing. A complaint is never lost
to a bad optional field: a benefit or coupon that cannot be found, an unknown priority or category is
dropped (the ticket opens with ``general`` / ``normal``) and counted as ``cleaned``.

**From a file** (the data contract's ticket history): one JSON object a line with ``ticket``, ``action``,
``at`` and the action's fields. Lines are applied ticket by ticket in time order through the same functions
a person uses (so the status flow's rules hold for history too); a line that breaks them is rejected with its
line number and reason, and the ticket's later lines still apply. Importing the same file again changes
nothing (lines already in a ticket's history are counted as duplicates); a later file with more of a
ticket's history adds what is new. Imported tickets keep their ids and are not handed to an agent: their
history says who owned them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.errors import AppError, InputRefused
from omnibank.events.compact import unread
from omnibank.events.log import EventLog, sql_string
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.loading import LoadRun
from omnibank.kit.masking import mask_numbers
from omnibank.service.models import (
    TICKET_CHANNELS,
    TICKET_PRIORITIES,
    Ticket,
    TicketHistory,
    TicketIntakeOffset,
)
from omnibank.service.tickets import (
    ANSWERS,
    CATEGORY,
    TRANSITIONS,
    Desk,
    TicketRequest,
    answer,
    assign,
    open_ticket,
    refresh_sla,
    set_status,
)

INTAKE_TYPES = ("complaint.filed", "service.request")
_TZ_HINT = "an ISO 8601 time with an offset (2026-11-03T10:15:00+08:00)"


# ------------------------------------------------------------------------------------------ from the log


@dataclass
class IntakeReport:
    files: int = 0
    events: int = 0
    opened: int = 0
    duplicates: int = 0
    cleaned: int = 0

    def counts(self) -> dict[str, int]:
        return {"files": self.files, "events": self.events, "opened": self.opened,
                "duplicates": self.duplicates, "cleaned": self.cleaned}  # fmt: skip


def _pending_files(session: Session, settings: Settings) -> list[Path]:
    log = EventLog(settings)
    done = set(session.scalars(select(TicketIntakeOffset.path)))
    return unread(log, done)  # compacted files mapped to their originals


def _read(settings: Settings, files: list[Path]) -> list[tuple[Any, ...]]:
    if not files:
        return []
    con = EventLog(settings).connect()
    try:
        listing = ", ".join(sql_string(str(f)) for f in files)
        types = ", ".join(sql_string(t) for t in INTAKE_TYPES)
        fields = ", ".join(
            f"json_extract_string(payload, '$.{name}') AS {name}"
            for name in (
                "kind",
                "category",
                "priority",
                "subject",
                "description",
                "benefit_id",
                "coupon_id",
                "via",
            )
        )
        sql = (
            f"SELECT event_id, type, customer_id, ts, channel, {fields}, filename "
            f"FROM read_parquet([{listing}], union_by_name = true, filename = true) "
            f"WHERE type IN ({types}) AND customer_id IS NOT NULL ORDER BY ts, event_id"
        )
        return con.execute(sql).fetchall()
    finally:
        con.close()


def intake_pass(
    session: Session, settings: Settings, desk: Desk, cipher: FieldCipher, *, now: datetime
) -> IntakeReport:
    """Open the tickets of the intake events in the log files not read yet."""
    report = IntakeReport()
    files = _pending_files(session, settings)
    rows = _read(settings, files)
    report.files, report.events = len(files), len(rows)
    per_file: dict[str, int] = defaultdict(int)
    for row in rows:
        (event_id, etype, customer_id, ts, channel, kind, category, priority, subject, description,
         benefit_id, coupon_id, via, filename) = row  # fmt: skip
        per_file[filename] += 1
        at = ts if isinstance(ts, datetime) and ts.tzinfo is not None else now
        if etype == "complaint.filed":
            kind = "complaint"
        elif kind not in ("inquiry", "request"):
            kind = "request"
        channel_of = via if via in TICKET_CHANNELS else channel if channel in TICKET_CHANNELS else "app"
        request = TicketRequest(
            kind=kind, category=category or "general", customer_id=str(customer_id)[:32], channel=channel_of,
            subject=(subject or f"{category or 'general'} {kind}")[:200],
            priority=priority or "normal", description=(description or None) and description[:2000],
            benefit_id=benefit_id, coupon_id=coupon_id, key=f"event:{event_id}", source=f"event:{etype}",
        )  # fmt: skip
        opened = _open_clean(session, desk, cipher, request, at=at, report=report)
        if opened:
            report.opened += 1
        else:
            report.duplicates += 1
    log = EventLog(settings)
    for f in files:
        session.add(TicketIntakeOffset(path=str(f.relative_to(log.dir)), events=per_file.get(str(f), 0),
                                       applied_at=now))  # fmt: skip
    session.flush()
    return report


def _open_clean(
    session: Session, desk: Desk, cipher: FieldCipher, request: TicketRequest, *, at: datetime,
    report: IntakeReport,
) -> bool:  # fmt: skip
    try:
        with session.begin_nested():
            return open_ticket(session, desk, cipher, request, by="system:intake", now=at).created
    except AppError:
        report.cleaned += 1
    clean = replace(
        request,
        category=request.category if CATEGORY.match(request.category) else "general",
        priority=request.priority if request.priority in TICKET_PRIORITIES else "normal",
        benefit_id=None, coupon_id=None,
    )  # fmt: skip
    with session.begin_nested():
        return open_ticket(session, desk, cipher, clean, by="system:intake", now=at).created


# ----------------------------------------------------------------------------------------- from a file


ACTIONS = ("opened", "assigned", *ANSWERS, *(s for s in TRANSITIONS if s not in ("new", "assigned")))


@dataclass
class _Line:
    no: int
    raw: str
    obj: dict[str, Any]
    at: datetime


@dataclass
class ImportReport:
    tickets: int = 0  # tickets opened
    applied: int = 0  # lines applied (the opened lines included)
    duplicates: int = 0
    rejected: int = 0
    touched: set[str] = field(default_factory=set)


def _aware(text: Any) -> datetime:
    if not isinstance(text, str):
        raise InputRefused(f"at: {_TZ_HINT}")
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputRefused(f"at: {_TZ_HINT}") from None
    if at.utcoffset() is None:
        raise InputRefused(f"at: no offset; give {_TZ_HINT}")
    return at


def _lines(path: Path, run: LoadRun) -> Iterator[_Line]:
    with path.open("r", encoding="utf-8", errors="surrogateescape") as fh:
        for no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeError):
                run.reject(no, "not valid JSON", mask_numbers(raw[:200]))
                continue
            if not isinstance(obj, dict):
                run.reject(no, "not a JSON object", mask_numbers(raw[:200]))
                continue
            ticket, action = obj.get("ticket"), obj.get("action")
            if not isinstance(ticket, str) or not ticket:
                run.reject(no, "ticket: missing (the ticket's id in the system it comes from)", _masked(obj))
                continue
            if action not in ACTIONS:
                run.reject(
                    no, f"action: {str(action)[:30]!r} is not one of {', '.join(ACTIONS)}", _masked(obj)
                )
                continue
            try:
                at = _aware(obj.get("at"))
            except InputRefused as exc:
                run.reject(no, exc.message, _masked(obj))
                continue
            yield _Line(no, raw, obj, at)


def _masked(obj: dict[str, Any]) -> str:
    shown = {k: v for k, v in obj.items() if k != "description"}
    return mask_numbers(json.dumps(shown, ensure_ascii=False))[:500]


def import_history(
    session: Session, desk: Desk, cipher: FieldCipher, path: Path, run: LoadRun, *, now: datetime
) -> ImportReport:
    """Apply a ticket history file (see the module's docstring); rejects go to ``run``'s rejects file."""
    report = ImportReport()
    by_ticket: dict[str, list[_Line]] = defaultdict(list)
    for line in _lines(path, run):
        by_ticket[str(line.obj["ticket"])].append(line)
    for ticket_id, lines in by_ticket.items():
        lines.sort(key=lambda ln: (ln.at, ln.no))
        _import_ticket(session, desk, cipher, ticket_id, lines, run, report)
    for ticket_id in sorted(report.touched):
        ticket = session.get(Ticket, ticket_id)
        if ticket is not None:
            refresh_sla(session, desk, ticket, now=now)
    session.flush()
    run.report.loaded = report.applied
    run.report.duplicates = report.duplicates
    run.report.extra["tickets_opened"] = report.tickets
    return report


def _import_ticket(
    session: Session, desk: Desk, cipher: FieldCipher, ticket_id: str, lines: list[_Line], run: LoadRun,
    report: ImportReport,
) -> None:  # fmt: skip
    existing = session.scalar(select(Ticket).where(Ticket.key == f"import:{ticket_id}"))
    seen: set[tuple[datetime, str]] = set()
    last: datetime | None = None
    if existing is not None:
        ticket_id = existing.ticket_id
        for action, at, to_status in session.execute(
            select(TicketHistory.action, TicketHistory.at, TicketHistory.to_status).where(
                TicketHistory.ticket_id == ticket_id
            )
        ).all():
            seen.add((at, to_status if action == "status" else action))
            last = at if last is None or at > last else last
    for line in lines:
        action = str(line.obj["action"])
        if (line.at, action) in seen:
            report.duplicates += 1
            continue
        if existing is None and action != "opened":
            run.reject(
                line.no, f"ticket {ticket_id[:40]}: its first line must be 'opened'", _masked(line.obj)
            )
            continue
        if existing is not None and action == "opened":
            run.reject(line.no, f"ticket {ticket_id[:40]} is open already", _masked(line.obj))
            continue
        if last is not None and line.at < last:
            run.reject(line.no, f"at: before the ticket's last recorded change ({last.isoformat()})",
                       _masked(line.obj))  # fmt: skip
            continue
        try:
            with session.begin_nested():
                if action == "opened":
                    existing = _open_imported(session, desk, cipher, ticket_id, line)
                    report.tickets += 1
                else:
                    _apply(session, desk, existing.ticket_id if existing else ticket_id, action, line)
        except AppError as exc:
            run.reject(line.no, exc.message, _masked(line.obj))
            continue
        report.applied += 1
        last = line.at
        seen.add((line.at, action))
        if existing is not None:
            report.touched.add(existing.ticket_id)


def _text(obj: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = obj.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputRefused(f"{name}: expected text")
    return value


def _open_imported(session: Session, desk: Desk, cipher: FieldCipher, ticket_id: str, line: _Line) -> Ticket:
    obj = line.obj
    kind = _text(obj, "kind") or ""
    request = TicketRequest(
        kind=kind, category=_text(obj, "category") or "", customer_id=_text(obj, "customer_id") or "",
        channel=_text(obj, "channel") or "", subject=_text(obj, "subject") or "",
        priority=_text(obj, "priority", "normal") or "normal", description=_text(obj, "description"),
        benefit_id=_text(obj, "benefit_id"),
        coupon_id=None if obj.get("coupon_id") is None else str(obj["coupon_id"]), key=f"import:{ticket_id}",
        source="import", ticket_id=ticket_id,
    )  # fmt: skip
    opened = open_imported_ticket(session, desk, cipher, request, by=_by(obj), at=line.at)
    found = session.get(Ticket, opened)
    assert found is not None
    return found


def open_imported_ticket(
    session: Session, desk: Desk, cipher: FieldCipher, request: TicketRequest, *, by: str, at: datetime
) -> str:
    """Open a ticket of the past as its history says (no agent chosen: its next lines say who owned it)."""
    routing = Desk(desk.policy, desk.calendar, desk.routing.model_copy(update={"queues": [
        q.model_copy(update={"agents": []}) for q in desk.routing.queues]}))  # fmt: skip
    return open_ticket(session, routing, cipher, request, by=by, now=at).ticket.ticket_id


def _by(obj: dict[str, Any]) -> str:
    by = obj.get("by")
    return f"import:{mask_numbers(by)[:100]}" if isinstance(by, str) and by else "import"


def _apply(session: Session, desk: Desk, ticket_id: str, action: str, line: _Line) -> None:
    obj, by, at = line.obj, _by(line.obj), line.at
    note = _text(obj, "note")
    if action == "assigned":
        staff, queue = _text(obj, "staff_id"), _text(obj, "queue")
        assign(session, desk, ticket_id, staff_id=staff, queue=queue, by=by, now=at, note=note)
    elif action in ANSWERS:
        answer(session, desk, ticket_id, action, by=by, now=at, note=note)
    else:
        set_status(session, desk, ticket_id, action, by=by, now=at, note=note)
