"""Survey invitations from events: the pure choice of who is invited when, and the pass that reads the log.

:func:`invitations` is pure: for each event matching a survey's trigger, a send with purpose ``survey`` at the
event's time plus the trigger's delay, keyed by survey and event (replaying the event invites nobody again).
Whether it goes is the contact policy's decision (:func:`omnibank.contact.policy.decide`): fatigue across all
surveys, an open complaint, do-not-disturb, quiet hours.

:func:`trigger_pass` reads the log files it has not read (:mod:`omnibank.events.consumers`) and submits the
invitations to the outbox; the worker's ``surveys.trigger`` job runs it. An invitation more than
:data:`MAX_AGE` late (the event was loaded long after it happened: a year of history, a backfill) is not
sent: asking about a branch visit of last spring is noise, not feedback. Ticket events invite only for the
customer's own tickets, never for a CX alert's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.contact import outbox
from omnibank.contact.policy import Send
from omnibank.events.consumers import mark_read, unread_files
from omnibank.events.log import EventLog, sql_string
from omnibank.events.reader import EventRow, read_events
from omnibank.surveys.spec import SurveySpec, surveys_of

CONSUMER = "surveys.trigger"
MAX_AGE = timedelta(days=2)


def invitation_key(survey_id: str, event_id: str) -> str:
    return f"survey:{survey_id}:{event_id}"[:200]


def invitations(
    surveys: Mapping[str, SurveySpec], events: Iterable[EventRow], *, tz: ZoneInfo
) -> list[Send]:
    """The invitations the events trigger (pure), in time order."""
    tests = [(spec, trigger, trigger.predicate()) for spec in surveys.values() for trigger in spec.triggers]
    out: list[Send] = []
    for e in events:
        for spec, trigger, test in tests:
            if e.type != trigger.event or not test(e.fields):
                continue
            out.append(
                Send(
                    key=invitation_key(spec.id, e.event_id),
                    customer_id=e.customer_id,
                    channel=spec.channel,
                    purpose="survey",
                    at=e.at(tz) + trigger.delay,
                    template=f"{spec.question}（{spec.name}）点击作答：{{survey_link}}",
                    payload={"survey": spec.id},
                    gap_days=spec.gap_days,
                )
            )
    out.sort(key=lambda s: (s.at, s.key))
    return out


@dataclass
class TriggerReport:
    files: int = 0
    events: int = 0
    invited: Counter[str] = field(default_factory=Counter)  # decision (or suppress:<reason>) → count
    stale: int = 0

    def counts(self) -> dict[str, int]:
        return {"files": self.files, "events": self.events, "stale": self.stale, **self.invited}


def _alert_ticket_events(settings: Settings, files: list[Path]) -> set[str]:
    """Ticket events of CX alerts: an alert is the bank's own work about a customer, not something the
    customer asked for, so it invites no survey."""
    con = EventLog(settings).connect()
    try:
        listing = ", ".join(sql_string(str(f)) for f in files)
        rows = con.execute(
            f"SELECT event_id FROM read_parquet([{listing}], union_by_name = true) "
            "WHERE type LIKE 'ticket.%' AND json_extract_string(payload, '$.kind') = 'alert'"
        ).fetchall()
    finally:
        con.close()
    return {str(r[0]) for r in rows}


def trigger_pass(session: Session, settings: Settings, *, now: datetime) -> TriggerReport:
    """Invite the customers whose events in the unread log files trigger a survey. Flushes only."""
    report = TriggerReport()
    surveys = surveys_of(settings)
    files = unread_files(session, settings, CONSUMER)
    report.files = len(files)
    types = {t.event for s in surveys.values() for t in s.triggers}
    if files and types:
        events = [e for e in read_events(settings, files=files, types=types) if e.customer_id]
        alerts = (
            _alert_ticket_events(settings, files) if any(t.startswith("ticket.") for t in types) else set()
        )
        events = [e for e in events if e.event_id not in alerts]
        report.events = len(events)
        sends = []
        for s in invitations(surveys, events, tz=settings.tz):
            if now - s.at > MAX_AGE:
                report.stale += 1
                continue
            sends.append(replace(s, at=max(s.at, now)))
        for d in outbox.submit(session, settings, sends, now=now):
            report.invited[d.action if d.action != "suppress" else f"suppress:{d.reason}"] += 1
    mark_read(session, settings, CONSUMER, files, {}, now=now)
    return report


__all__ = ["CONSUMER", "MAX_AGE", "TriggerReport", "invitation_key", "invitations", "trigger_pass"]
