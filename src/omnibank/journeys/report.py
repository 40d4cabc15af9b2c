"""Attribution (``journey report``): per journey and step, from the recorded step runs — entered, sent,
deferred, suppressed by reason, delivered, converted within the window — and the uplift of the treated
customers' conversion rate over the control group's."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.journeys.models import JourneyEntry, JourneyStepRun


@dataclass
class StepFigures:
    step: str
    sent: int = 0
    deferred: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    clicked: int = 0
    failed: int = 0
    done: int = 0  # leads created, tags set, grants made


@dataclass
class JourneyFigures:
    journey: str
    entered: int = 0
    control: int = 0
    converted: int = 0
    converted_control: int = 0
    steps: dict[str, StepFigures] = field(default_factory=dict)

    @property
    def treated(self) -> int:
        return self.entered - self.control

    @property
    def rate(self) -> float | None:
        return self.converted / self.treated if self.treated else None

    @property
    def control_rate(self) -> float | None:
        return self.converted_control / self.control if self.control else None

    @property
    def uplift(self) -> float | None:
        """Treated conversion rate minus the control group's (percentage points / 100)."""
        if self.rate is None or self.control_rate is None:
            return None
        return self.rate - self.control_rate


def attribution(session: Session, journey_id: str | None = None) -> list[JourneyFigures]:
    out: dict[str, JourneyFigures] = {}

    def fig(jid: str) -> JourneyFigures:
        return out.setdefault(jid, JourneyFigures(jid))

    q = select(
        JourneyEntry.journey, JourneyEntry.control, func.count(), func.count(JourneyEntry.converted_at)
    )
    if journey_id:
        q = q.where(JourneyEntry.journey == journey_id)
    for jid, control, n, converted in session.execute(q.group_by(JourneyEntry.journey, JourneyEntry.control)):
        f = fig(jid)
        f.entered += n
        if control:
            f.control += n
            f.converted_control += converted
        else:
            f.converted += converted
    r = JourneyStepRun
    q2 = select(r.journey, r.step, r.kind, r.outcome, r.reason, func.count()).where(
        r.kind.in_(("send", "lead", "tag", "grant", "receipt"))
    )
    if journey_id:
        q2 = q2.where(r.journey == journey_id)
    for jid, step, kind, outcome, reason, n in session.execute(
        q2.group_by(r.journey, r.step, r.kind, r.outcome, r.reason)
    ):
        s = fig(jid).steps.setdefault(step or "", StepFigures(step or ""))
        if kind == "send":
            if outcome == "send":
                s.sent += n
            elif outcome == "defer":
                s.deferred += n
            else:
                s.suppressed[reason or "unknown"] += n
        elif kind == "receipt":
            if outcome == "delivered":
                s.delivered += n
            elif outcome == "clicked":
                s.clicked += n
            elif outcome == "failed":
                s.failed += n
        elif outcome == "suppress":
            s.suppressed[reason or "unknown"] += n
        else:
            s.done += n
    return [out[k] for k in sorted(out)]
