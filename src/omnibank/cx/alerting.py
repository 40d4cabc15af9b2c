"""Alert rules in the worker: read the new events, evaluate, record every alert and open its ticket. Flushes
only; the caller (the worker's ``cx.alerts`` job, :mod:`omnibank.cx.jobs`) commits.

**Which events.** The log files this consumer has not read (``event_consumer_files``, consumer
``cx.alerts``: a published file never changes), only the types the rules read and only events of the last
:data:`HORIZON` before ``now``: rules act in near real time, so switching a rule on (or a worker that was
down for a month) does not open a ticket for every old event; :func:`omnibank.cx.backtest.backtest` is the
way to see what rules say about history.

**Same decisions as a backtest.** The events, in time order, go through the same pure
:func:`~omnibank.cx.alerts.evaluate`; its dedupe state starts from ``cx_alerts`` (the last alert of each
rule and subject within the rule's window) and the inflow counts of the hours touched start from the events
of those hours read in earlier passes, so splitting the log into passes changes nothing.

**What it does with an alert.** Every alert becomes a ``cx_alerts`` row (its key is unique: replaying a
pass records nothing new). An alert about a customer opens an ``alert`` ticket owned by the alert's owner
(``TicketRequest.owner_staff_id``; an alert the default queue owns is routed as any ticket) with the key of
the alert, so its SLA is the desk's and it is resolved only with a note of the action taken. Alerts about a
branch or the bank have no customer, which a ticket needs: they are recorded in ``cx_alerts`` only, for
their owner, and closed there with the action taken (:func:`close_alert`). An inflow alert is also the
service desk's surge alert (``ticket_surge_alerts``, the queue named ``cx:<rule>:<subject>``), so
``omnibank tickets surges`` lists it beside the queues' own surges.

**Index drops** are read once a week (the first pass of a bank-local week compares the two weeks before;
``cx_alert_weeks`` remembers it), through :func:`omnibank.cx.index.index_values`.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.cx.alerts import (
    Alert,
    AlertEvent,
    AlertState,
    IndexDropRule,
    IndexReading,
    InflowRule,
    RuleSet,
    Sentiment,
    evaluate,
    event_of,
    load_rules,
    prime_inflow,
)
from omnibank.cx.models import CxAlert, CxAlertWeek
from omnibank.cx.owners import default_queue, owner_lookup
from omnibank.errors import AppError, Conflict, InputRefused, NotFound
from omnibank.events.columns import loads
from omnibank.events.consumers import mark_read, unread_files
from omnibank.events.log import TYPED_FIELDS, EventLog, sql_string
from omnibank.kit.masking import mask_numbers
from omnibank.service.calendar import NoHolidayData
from omnibank.service.models import TICKET_CHANNELS, SurgeAlert, Ticket, TicketHistory
from omnibank.service.sla import evaluate as sla_evaluate
from omnibank.service.tickets import Desk, TicketRequest, desk_of, open_ticket

CONSUMER = "cx.alerts"
#: events older than this before ``now`` are not alerted on by the worker (see the module's docstring)
HORIZON = timedelta(days=2)
#: log files read in one pass at most (the rest: the next pass, at once)
MAX_FILES = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK = 500


@dataclass
class AlertRun:
    files: int = 0
    events: int = 0  # events of the rules' types within the horizon
    alerts: int = 0  # alerts recorded by this pass
    tickets: int = 0  # tickets opened for them
    recorded_only: int = 0  # branch and bank alerts (no customer, no ticket)
    duplicates: int = 0  # alerts recorded before (a replayed pass)
    surges: int = 0  # inflow alerts recorded as the desk's surge alerts
    errors: int = 0  # tickets that could not be opened (the alert is recorded)
    closed: int = 0  # alerts whose ticket was resolved since the last pass
    more: bool = False  # files are left for the next pass
    notes: list[str] = field(default_factory=list)
    raised: list[Alert] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "files": self.files, "events": self.events, "alerts": self.alerts, "tickets": self.tickets,
            "recorded_only": self.recorded_only, "duplicates": self.duplicates, "surges": self.surges,
            "errors": self.errors, "closed": self.closed,
        }  # fmt: skip


def rules_of(settings: Settings) -> RuleSet | None:
    """The rules of ``OMNIBANK_CX_ALERTS_FILE`` (None: no file configured)."""
    return load_rules(settings.cx_alerts_file) if settings.cx_alerts_file is not None else None


# ------------------------------------------------------------------------------------------- reading


def read_log(
    settings: Settings, files: list[Path], types: frozenset[str], *, since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AlertEvent], dict[str, int]]:  # fmt: skip
    """The events of ``types`` in some log files (time order, then id), and how many each file held."""
    if not files or not types:
        return [], {}
    con = EventLog(settings).connect()
    try:
        listing = ", ".join(sql_string(str(f)) for f in files)
        wanted = ", ".join(sql_string(t) for t in sorted(types))
        conditions = [f"type IN ({wanted})", "customer_id IS NOT NULL"]
        if since is not None:
            conditions.append(f"epoch_us(ts) >= {_micros(since)}")
        if until is not None:
            conditions.append(f"epoch_us(ts) < {_micros(until)}")
        typed = ", ".join(TYPED_FIELDS)
        sql = (
            f"SELECT event_id, type, customer_id, epoch_us(ts), channel, payload, filename, {typed} "
            f"FROM read_parquet([{listing}], union_by_name = true, filename = true) "
            f"WHERE {' AND '.join(conditions)} ORDER BY ts, event_id"
        )
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    events: list[AlertEvent] = []
    per_file: dict[str, int] = defaultdict(int)
    for row in rows:
        event_id, etype, customer_id, ts_us, channel, payload, filename = row[:7]
        columns = {
            name: value for name, value in zip(TYPED_FIELDS, row[7:], strict=True) if value is not None
        }
        obj = loads(payload) if payload else {}
        ts = _EPOCH + timedelta(microseconds=int(ts_us))
        events.append(event_of(str(event_id), etype, str(customer_id), ts, channel, obj, columns))
        per_file[str(filename)] += 1
    return events, dict(per_file)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def load_state(session: Session, rules: RuleSet, *, since: datetime) -> AlertState:
    """The dedupe state: the windows each rule opened per subject at ``since`` or later."""
    state = AlertState()
    ids = [r.id for r in rules.rules]
    rows = session.execute(
        select(CxAlert.rule_id, CxAlert.subject_kind, CxAlert.subject_id, CxAlert.window_start).where(
            CxAlert.rule_id.in_(ids), CxAlert.window_start >= since
        )
    )
    for rule_id, subject_kind, subject_id, window_start in rows:
        subject = "bank" if subject_kind == "bank" else f"{subject_kind[0]}:{subject_id}"
        state.opened.setdefault((rule_id, subject), []).append(window_start)
    return state


# ------------------------------------------------------------------------------------------- the pass


def run_alerts(
    session: Session,
    settings: Settings,
    *,
    now: datetime,
    rules: RuleSet | None = None,
    sentiment: Sentiment | None = None,
    desk: Desk | None = None,
    cipher: Any = None,
    horizon: timedelta = HORIZON,
) -> AlertRun:
    """One pass of the rules over the log files not read yet (see the module's docstring)."""
    run = AlertRun()
    rules = rules or rules_of(settings)
    if rules is None:
        run.notes.append("no alert rules: set OMNIBANK_CX_ALERTS_FILE")
        return run
    tz = settings.tz
    pending = unread_files(session, settings, CONSUMER)
    files, run.more = pending[:MAX_FILES], len(pending) > MAX_FILES
    run.files = len(files)
    since = now - horizon
    events, per_file = read_log(settings, files, rules.types, since=since)
    run.events = len(events)
    readings, weeks = _index_readings(session, settings, rules, now=now, notes=run.notes)
    prior = _prior_inflow(settings, rules, pending, events, tz)
    queue, queue_org = default_queue(settings)
    customers = {e.customer_id for e in events} | {e.customer_id for e in prior}
    owners = owner_lookup(session, customers=customers, queue=queue, queue_org=queue_org)
    longest = max((r.window for r in rules.rules), default=timedelta(0))
    state = load_state(session, rules, since=since - longest - timedelta(days=7))
    prime_inflow(rules, prior, owners=owners, state=state, tz=tz)
    alerts = evaluate(
        rules, events, owners=owners, state=state, tz=tz, sentiment=sentiment, readings=readings
    )
    for week in weeks:
        week.alerts = sum(1 for a in alerts if a.rule_id == week.rule_id and a.event_id is None)
        session.add(week)
    if alerts:
        record(session, settings, rules, alerts, now=now, run=run, desk=desk, cipher=cipher)
    run.closed = sync_closed(session)
    mark_read(session, settings, CONSUMER, files, per_file, now=now)
    return run


def _prior_inflow(
    settings: Settings, rules: RuleSet, files: list[Path], events: list[AlertEvent], tz: Any
) -> list[AlertEvent]:
    """Events of the inflow rules' types in the hours the new ones touch, from files read before."""
    inflow = [r for r in rules.rules if isinstance(r, InflowRule)]
    types = frozenset(r.type for r in inflow)
    touched = [e.ts for e in events if e.type in types]
    if not touched:
        return []
    start = min(touched).astimezone(tz).replace(minute=0, second=0, microsecond=0)
    end = max(touched).astimezone(tz).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    pending = {str(f) for f in files}
    earlier = [f for f in EventLog(settings).files() if str(f) not in pending]
    found, _ = read_log(settings, earlier, types, since=start, until=end)
    return found


def _index_readings(
    session: Session, settings: Settings, rules: RuleSet, *, now: datetime, notes: list[str]
) -> tuple[list[IndexReading], list[CxAlertWeek]]:
    """Each index-drop rule's branch indexes of the last full bank-local week and the week before, once a
    week (the first pass of a week)."""
    drops = [r for r in rules.rules if isinstance(r, IndexDropRule)]
    if not drops:
        return [], []
    local = now.astimezone(settings.tz).date()
    monday = local - timedelta(days=local.weekday())
    week, before = monday - timedelta(days=7), monday - timedelta(days=14)
    try:
        index = importlib.import_module("omnibank.cx.index")
        maps = importlib.import_module("omnibank.cx.maps")
    except ImportError:
        notes.append("index-drop rules skipped: the experience index (omnibank.cx.index) is not installed")
        return [], []
    readings: list[IndexReading] = []
    weeks: list[CxAlertWeek] = []
    for rule in drops:
        if session.get(CxAlertWeek, (rule.id, week)) is not None:
            continue
        try:
            spec = maps.load_map(rules.map_path(rule))
            current: dict[str, Decimal | None] = index.index_values(
                session, settings, spec, by="branch", start=week, end=monday
            )
            previous: dict[str, Decimal | None] = index.index_values(
                session, settings, spec, by="branch", start=before, end=week
            )
        except AppError as exc:
            notes.append(f"{rule.id}: index not read ({exc.message[:200]})")
            continue
        branches = sorted(set(current) | set(previous))
        for branch in branches:
            readings.append(
                IndexReading(rule.id, week, branch, previous.get(branch), current.get(branch), now)
            )
        weeks.append(CxAlertWeek(rule_id=rule.id, week=week, branches=len(branches), alerts=0, at=now))
    return readings, weeks


def record(
    session: Session, settings: Settings, rules: RuleSet, alerts: list[Alert], *, now: datetime,
    run: AlertRun, desk: Desk | None = None, cipher: Any = None,
) -> None:  # fmt: skip
    """Record the alerts not recorded yet; open the ticket of each about a customer; an inflow alert is
    also the desk's surge alert."""
    keys = [a.key for a in alerts]
    known: set[str] = set()
    for start in range(0, len(keys), _CHUNK):
        known.update(
            session.scalars(select(CxAlert.key).where(CxAlert.key.in_(keys[start : start + _CHUNK])))
        )
    for alert in alerts:
        if alert.key in known:
            run.duplicates += 1
            continue
        known.add(alert.key)
        if len(alert.key) > 200 or len(alert.subject_id) > 32:
            run.errors += 1  # not an id of the store's (customers and orgs have at most 32 characters)
            if len(run.notes) < 20:
                run.notes.append(
                    f"{alert.rule_id}: an alert about an id longer than 32 characters was left out"
                )
            continue
        rule = rules.rule(alert.rule_id)
        ticket_id = None
        if desk is None:
            desk = desk_of(session, settings)
        if alert.customer_id is not None:
            if cipher is None:
                from omnibank.security import get_cipher

                cipher = get_cipher(settings)
            ticket_id = _open(session, desk, cipher, rule.category, rule.priority, rule.name, alert, now, run)
        else:
            run.recorded_only += 1
        due_at = _due(session, desk, ticket_id, rule.category, rule.priority, alert.raised_at)
        session.add(
            CxAlert(
                key=alert.key, rule_id=alert.rule_id, rule_kind=alert.kind, subject_kind=alert.subject_kind,
                subject_id=alert.subject_id[:32], customer_id=alert.customer_id, branch_id=alert.branch_id,
                owner_staff_id=alert.owner_staff_id, owner_queue=alert.owner_queue, reason=alert.reason[:200],
                event_id=alert.event_id and alert.event_id[:200], context=alert.context[:100],
                raised_at=alert.raised_at, window_start=alert.window_start, recorded_at=now,
                ticket_id=ticket_id, due_at=due_at,
            )
        )  # fmt: skip
        if isinstance(rule, InflowRule):
            run.surges += _surge(session, rule, alert, now=now)
        run.alerts += 1
        run.raised.append(alert)
    session.flush()


def _due(
    session: Session, desk: Desk, ticket_id: str | None, category: str, priority: str, raised_at: datetime
) -> datetime | None:
    """When the alert is to be acted on: its ticket's resolution due time, or (an alert without a ticket) the
    desk's resolution target for kind ``alert`` reckoned from when it was raised on the bank's calendar.
    None when the policy sets no resolution target or the calendar has no data for the year."""
    if ticket_id is not None:
        ticket = session.get(Ticket, ticket_id)
        return ticket.sla_due_at if ticket is not None else None
    spec = desk.policy.targets_for("alert", category, priority).get("resolution")
    if spec is None:
        return None
    try:
        states = sla_evaluate([(raised_at, "new")], {"resolution": spec}, desk.calendar, as_of=raised_at)
    except (NoHolidayData, InputRefused):
        return None
    return states["resolution"].due_at


def _open(
    session: Session, desk: Desk, cipher: Any, category: str, priority: str, name: str, alert: Alert,
    now: datetime, run: AlertRun,
) -> str | None:  # fmt: skip
    assert alert.customer_id is not None
    subject = f"{name} · {alert.context}" if alert.context else name
    request = TicketRequest(
        kind="alert", category=category, priority=priority, customer_id=alert.customer_id,
        channel=alert.channel if alert.channel in TICKET_CHANNELS else "app", subject=subject[:200],
        key=alert.key, source="cx_alert", owner_staff_id=alert.owner_staff_id,
    )  # fmt: skip
    try:
        with session.begin_nested():
            opened = open_ticket(session, desk, cipher, request, by="system:cx_alerts", now=now)
    except AppError as exc:
        run.errors += 1
        if len(run.notes) < 20:
            run.notes.append(f"{alert.key}: no ticket opened ({exc.message[:160]})")
        return None
    if opened.created:
        run.tickets += 1
    return opened.ticket.ticket_id


def _surge(session: Session, rule: InflowRule, alert: Alert, *, now: datetime) -> int:
    queue = f"cx:{rule.id}:{alert.subject_id}"[:64]
    hour = alert.window_start
    exists = session.scalar(select(SurgeAlert.id).where(SurgeAlert.queue == queue, SurgeAlert.hour == hour))
    if exists is not None:
        return 0
    session.add(
        SurgeAlert(
            queue=queue,
            hour=hour,
            inflow=rule.threshold + 1,
            usual_per_hour=str(rule.threshold),
            to_staff_id=alert.owner_staff_id,
            at=now,
        )  # fmt: skip
    )
    return 1


# ------------------------------------------------------------------------------------------- closing


def sync_closed(session: Session, *, limit: int = 1000) -> int:
    """Copy to ``cx_alerts`` when the ticket of an alert was resolved and the note saying what was done."""
    rows = session.execute(
        select(CxAlert, Ticket.resolved_at)
        .join(Ticket, Ticket.ticket_id == CxAlert.ticket_id)
        .where(CxAlert.closed_at.is_(None), Ticket.resolved_at.is_not(None))
        .limit(limit)
    ).all()
    for alert, resolved_at in rows:
        note = session.execute(
            select(TicketHistory.note, TicketHistory.by)
            .where(
                TicketHistory.ticket_id == alert.ticket_id,
                TicketHistory.to_status.in_(("resolved", "closed")),
                TicketHistory.note.is_not(None),
            )
            .order_by(TicketHistory.seq.desc())
            .limit(1)
        ).first()
        alert.closed_at = resolved_at
        alert.action = note[0] if note else None
        alert.closed_by = note[1] if note else None
    session.flush()
    return len(rows)


def close_alert(session: Session, key: str, *, action: str, by: str, now: datetime) -> CxAlert:
    """Close an alert that has no ticket (about a branch or the bank) with the action taken; an alert with a
    ticket is closed by resolving its ticket (with a note), which :func:`sync_closed` copies here."""
    alert = session.scalar(select(CxAlert).where(CxAlert.key == key))
    if alert is None:
        raise NotFound(f"no alert {key}")
    if alert.ticket_id is not None:
        raise Conflict(f"alert {key} has ticket {alert.ticket_id}: resolve the ticket with a note instead")
    if alert.closed_at is not None:
        raise Conflict(f"alert {key} was closed at {alert.closed_at.isoformat()}")
    text = mask_numbers(action.strip())[:500] if action and action.strip() else ""
    if not text:
        raise InputRefused("action: say what was done about the alert")
    alert.closed_at, alert.action, alert.closed_by = now, text, by[:128]
    session.flush()
    return alert
