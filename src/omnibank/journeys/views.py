"""Reading journeys: the list (with entries by status), the report of one (attribution per step, the sends
per step and channel, conversion against control and uplift) and a simulation of one started journey over
the event log — what ``omnibank journey list|report|simulate``, the API's /journeys and the console show.
Only reads; no personal data (counts only)."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.errors import NotFound
from omnibank.journeys.models import ENTRY_STATUSES, Journey, JourneyEntry, JourneyStepRun
from omnibank.journeys.report import JourneyFigures, attribution
from omnibank.journeys.simulate import SimulationReport, simulate
from omnibank.journeys.spec import parse_journey

#: entry statuses in the order lists show them
STATES = ("active", "control", "done", "converted", "exited")
assert set(STATES) == set(ENTRY_STATUSES)


@dataclass(frozen=True)
class JourneyRow:
    id: str
    name: str
    status: str
    entries: dict[str, int]  # by entry status

    @property
    def entered(self) -> int:
        return sum(self.entries.values())

    @property
    def active(self) -> int:
        return self.entries.get("active", 0)


@dataclass(frozen=True)
class ChannelFigures:
    """What one step did on one channel: sends decided, and what became of them."""

    step: str
    channel: str
    sent: int = 0
    deferred: int = 0
    suppressed: int = 0
    delivered: int = 0
    clicked: int = 0
    failed: int = 0


@dataclass(frozen=True)
class JourneyReport:
    journey: JourneyRow
    figures: JourneyFigures  # empty (all zero) when nothing was recorded yet
    channels: list[ChannelFigures] = field(default_factory=list)

    @property
    def recorded(self) -> bool:
        return bool(self.figures.entered or self.figures.steps)


def list_journeys(session: Session) -> list[JourneyRow]:
    """Every journey started, by id, with its entries by status (two queries)."""
    rows = list(session.execute(select(Journey.id, Journey.name, Journey.status).order_by(Journey.id)))
    counts: dict[str, dict[str, int]] = {}
    for jid, status, n in session.execute(
        select(JourneyEntry.journey, JourneyEntry.status, func.count()).group_by(
            JourneyEntry.journey, JourneyEntry.status
        )
    ):
        counts.setdefault(jid, {})[status] = int(n)
    return [JourneyRow(id=i, name=name, status=s, entries=counts.get(i, {})) for i, name, s in rows]


def journey_row(session: Session, journey_id: str) -> JourneyRow:
    journey = session.get(Journey, journey_id)
    if journey is None:
        raise NotFound(f"no journey {journey_id!r}")
    counts = session.execute(
        select(JourneyEntry.status, func.count())
        .where(JourneyEntry.journey == journey_id)
        .group_by(JourneyEntry.status)
    )
    return JourneyRow(journey.id, journey.name, journey.status, {s: int(n) for s, n in counts})


def channels(session: Session, journey_id: str) -> list[ChannelFigures]:
    """The sends of a journey per step and channel (one aggregate query), by step then channel."""
    r = JourneyStepRun
    q = (
        select(r.step, r.channel, r.kind, r.outcome, func.count())
        .where(r.journey == journey_id, r.kind.in_(("send", "receipt")), r.channel.is_not(None))
        .group_by(r.step, r.channel, r.kind, r.outcome)
    )
    cells: dict[tuple[str, str], Counter[str]] = {}
    for step, channel, kind, outcome, n in session.execute(q):
        c = cells.setdefault((step or "", channel or ""), Counter())
        if kind == "send":
            c[{"send": "sent", "defer": "deferred"}.get(outcome or "", "suppressed")] += int(n)
        elif outcome in ("delivered", "clicked", "failed"):
            c[outcome] += int(n)
    return [ChannelFigures(step, channel, **dict(c)) for (step, channel), c in sorted(cells.items())]


def report(session: Session, journey_id: str) -> JourneyReport:
    """One journey's report: attribution (:func:`omnibank.journeys.report.attribution`) and the sends per
    step and channel. An unknown journey: :class:`NotFound`."""
    row = journey_row(session, journey_id)
    found = attribution(session, journey_id)
    figures = found[0] if found else JourneyFigures(journey_id)
    return JourneyReport(journey=row, figures=figures, channels=channels(session, journey_id))


# ------------------------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class SimulatedStep:
    """What one step would do: its sends decided (a deferred send is decided again later: both count),
    and its leads, tags and grants."""

    step: str
    sent: int = 0
    deferred: int = 0
    suppressed: int = 0
    leads: int = 0
    tags: int = 0
    grants: int = 0

    @property
    def actions(self) -> int:
        return self.sent + self.deferred + self.suppressed + self.leads + self.tags + self.grants


@dataclass(frozen=True)
class SimulatedChannel:
    """The send decisions of one step on one channel ("" for a send that had no channel left: no route,
    or a lead refused for want of consent)."""

    step: str
    channel: str
    sent: int = 0
    deferred: int = 0
    suppressed: int = 0


@dataclass(frozen=True)
class JourneySimulation:
    """One journey's figures in a simulation (what ``omnibank journey simulate`` prints)."""

    journey: str
    entered: int = 0
    control: int = 0
    reached: int = 0  # customers with at least one send that goes
    deferred: int = 0
    converted: int = 0
    converted_control: int = 0
    tags: int = 0
    grants: int = 0
    sends: dict[str, int] = field(default_factory=dict)  # channel → sends that go
    suppressed: dict[str, int] = field(default_factory=dict)  # reason → sends
    spared: dict[str, int] = field(default_factory=dict)  # reason → customers with no send at all
    leads: dict[str, int] = field(default_factory=dict)  # branch → leads
    exits: dict[str, int] = field(default_factory=dict)  # reason → entries
    steps: tuple[SimulatedStep, ...] = ()  # in the definition's order (empty unless the actions were counted)
    channels: tuple[SimulatedChannel, ...] = ()  # by step (as ``steps``), then channel

    @property
    def sent(self) -> int:
        return sum(self.sends.values())

    @property
    def suppressed_total(self) -> int:
        return sum(self.suppressed.values())

    @property
    def spared_total(self) -> int:
        return sum(self.spared.values())

    @property
    def lead_total(self) -> int:
        return sum(self.leads.values())


@dataclass(frozen=True)
class SimulationSummary:
    """A simulation's figures: the events run over, the trigger events of customers not loaded, the first
    and last event's time, and each journey's figures."""

    events: int
    unknown_customers: int
    start: datetime | None
    end: datetime | None
    journeys: tuple[JourneySimulation, ...]

    def journey(self, journey_id: str) -> JourneySimulation:
        return next(j for j in self.journeys if j.journey == journey_id)


_DECISIONS = {"send": "sent", "defer": "deferred", "suppress": "suppressed"}
_ACTS = {"lead": "leads", "tag": "tags", "grant": "grants"}


class ActionTally(io.BytesIO):
    """A sink for a simulation's actions (``ACTIONS.jsonl`` lines) that keeps nothing but counts per
    journey, step and channel: no customer is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: dict[tuple[str, str], Counter[str]] = {}
        self.channels: dict[tuple[str, str, str], Counter[str]] = {}

    def write(self, data: Any) -> int:
        for line in bytes(data).splitlines():
            if not line.strip():
                continue
            row = orjson.loads(line)
            step, action = row.get("step"), row.get("action")
            if not step:
                continue
            journey = str(row.get("journey") or "")
            if action in _DECISIONS:
                key = _DECISIONS[action]
                self.steps.setdefault((journey, step), Counter())[key] += 1
                channel = str(row.get("channel") or "")
                self.channels.setdefault((journey, step, channel), Counter())[key] += 1
            elif action in _ACTS:
                self.steps.setdefault((journey, step), Counter())[_ACTS[action]] += 1
        return len(data)


def summarize(
    report: SimulationReport,
    tally: ActionTally | None = None,
    order: dict[str, list[str]] | None = None,
) -> SimulationSummary:
    """The figures of a simulation's report; with ``tally`` (the actions counted while it ran), per step and
    channel too, steps in ``order`` (journey → step ids) and then by name."""

    def rank(journey: str, step: str) -> tuple[int, str]:
        ids = (order or {}).get(journey, [])
        return (ids.index(step) if step in ids else len(ids), step)

    journeys = []
    for jid, s in report.journeys.items():
        steps: tuple[SimulatedStep, ...] = ()
        chans: tuple[SimulatedChannel, ...] = ()
        if tally is not None:
            steps = tuple(
                SimulatedStep(step, **dict(c))
                for (j, step), c in sorted(tally.steps.items(), key=lambda kv: rank(jid, kv[0][1]))
                if j == jid
            )
            chans = tuple(
                SimulatedChannel(step, channel, **dict(c))
                for (j, step, channel), c in sorted(
                    tally.channels.items(), key=lambda kv: (rank(jid, kv[0][1]), kv[0][2])
                )
                if j == jid
            )
        journeys.append(
            JourneySimulation(
                journey=jid, entered=s.entered, control=s.control, reached=len(s.contacted),
                deferred=s.deferred, converted=s.converted, converted_control=s.converted_control,
                tags=s.tags, grants=s.grants, sends=dict(sorted(s.sends.items())),
                suppressed=dict(sorted(s.suppressed.items())),
                spared={k: n for k, n in sorted(report.spared(jid).items()) if n},
                leads=dict(sorted(s.leads.items())), exits=dict(sorted(s.exits.items())),
                steps=steps, channels=chans,
            )
        )  # fmt: skip
    return SimulationSummary(
        events=report.events, unknown_customers=report.unknown_customers, start=report.start,
        end=report.end, journeys=tuple(journeys),
    )  # fmt: skip


def simulate_journey(
    session: Session,
    settings: Settings,
    journey_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> SimulationSummary:
    """A started journey's stored definition run over the data home's event log and the customers in the
    store, on a virtual clock, through the contact policy (:func:`omnibank.journeys.simulate.simulate`, as
    ``omnibank journey simulate FILE``): the figures, per step and channel too. Reads only; writes nothing
    and keeps no customer. An unknown journey: :class:`NotFound`."""
    journey = session.get(Journey, journey_id)
    if journey is None:
        raise NotFound(f"no journey {journey_id!r}")
    spec = parse_journey(journey.definition, source=f"journey {journey.id}")
    tally = ActionTally()
    found = simulate([spec], settings, events=None, out=tally, since=since, until=until)
    return summarize(found, tally, {spec.id: [s.id for s in spec.steps]})
