"""SLA clocks: what a ticket's history, a policy and the business calendar say about each target at a moment.

Pure: no database, no wall clock. ``sla_state(history, policy=…, calendar=…, kind=…, as_of=…)`` is a function
of its arguments only, so editing a calendar or a policy and computing again gives the right answer, and the
same function serves the live worker, ``omnibank tickets sla`` and a replay of a bank's imported history.

Policies (``examples/service/sla.yaml``, ``OMNIBANK_SLA_FILE``) are rules that match a ticket's kind,
category and priority; each rule sets some of the targets ``first_response``, ``next_update`` and
``resolution``, in business minutes or hours (working time of the calendar) or calendar days (reckoned as the
law reckons a period). For each target the most specific matching rule that sets it wins (kind weighs more
than category, category more than priority), so a narrow rule can tighten one target and keep the others.

The clocks, from the ticket's first history entry (its receipt):
* ``first_response`` stops at the first ``responded`` (or when the ticket is resolved or closed first);
* ``next_update`` runs from the receipt and starts again at every ``responded`` or ``updated`` and at a
  reopening; it stops when the ticket is resolved or closed; a breach in any of its rounds stays a breach;
* ``resolution`` stops at ``resolved`` or ``closed`` and goes on (with the time used so far) when the ticket
  is ``reopened``.
While the ticket is ``waiting_customer`` or ``waiting_supplier`` every clock is paused: the pause extends the
due time minute for minute (working minutes for a business target, elapsed minutes for a calendar-day one).

Escalation levels follow the share of the target used: ``warn`` from 80 %, ``breach`` past 100 % (the due time
itself is still in time), ``breach2`` past 150 %.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from omnibank.errors import InputRefused
from omnibank.kit.loading import read_text_file
from omnibank.service.calendar import BusinessCalendar

KINDS = ("complaint", "inquiry", "request")
PRIORITIES = ("low", "normal", "high", "urgent")
TARGETS = ("first_response", "next_update", "resolution")
STATUSES = ("new", "assigned", "in_progress", "waiting_customer", "waiting_supplier", "resolved", "closed",
            "reopened")  # fmt: skip
ACTIONS = ("responded", "updated")
PAUSING = frozenset({"waiting_customer", "waiting_supplier"})
#: level → (share of the target in percent, reached only when strictly past it)
LEVELS: dict[str, tuple[int, bool]] = {"warn": (80, False), "breach": (100, True), "breach2": (150, True)}

Kind = Literal["complaint", "inquiry", "request"]
Priority = Literal["low", "normal", "high", "urgent"]
_MINUTE = timedelta(minutes=1)
_MICRO = timedelta(microseconds=1)


# -------------------------------------------------------------------------------------------- policies


class TargetSpec(BaseModel):
    """One target: exactly one of business minutes, business hours or calendar days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    business_minutes: int | None = Field(default=None, ge=1, le=366 * 24 * 60)
    business_hours: int | None = Field(default=None, ge=1, le=366 * 24)
    calendar_days: int | None = Field(default=None, ge=1, le=366)

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetSpec:
        given = [v for v in (self.business_minutes, self.business_hours, self.calendar_days) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of business_minutes, business_hours, calendar_days")
        return self

    @property
    def clock(self) -> Literal["business", "calendar"]:
        return "calendar" if self.calendar_days is not None else "business"

    @property
    def business_time(self) -> timedelta:
        if self.business_minutes is not None:
            return timedelta(minutes=self.business_minutes)
        if self.business_hours is not None:
            return timedelta(hours=self.business_hours)
        raise ValueError("a calendar-day target has no business time")

    def __str__(self) -> str:
        if self.calendar_days is not None:
            return f"{self.calendar_days} calendar days"
        if self.business_hours is not None:
            return f"{self.business_hours} business hours"
        return f"{self.business_minutes} business minutes"


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    first_response: TargetSpec | None = None
    next_update: TargetSpec | None = None
    resolution: TargetSpec | None = None

    def given(self) -> dict[str, TargetSpec]:
        return {name: spec for name in TARGETS if (spec := getattr(self, name)) is not None}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=80)
    kind: Kind | None = None
    category: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,39}$")
    priority: Priority | None = None
    targets: Targets

    @model_validator(mode="after")
    def _sets_something(self) -> Rule:
        if not self.targets.given():
            raise ValueError(f"targets: set at least one of {', '.join(TARGETS)}")
        return self

    def matches(self, kind: str, category: str | None, priority: str | None) -> bool:
        return (
            (self.kind is None or self.kind == kind)
            and (self.category is None or self.category == category)
            and (self.priority is None or self.priority == priority)
        )

    @property
    def weight(self) -> int:
        return 4 * (self.kind is not None) + 2 * (self.category is not None) + (self.priority is not None)

    def label(self, index: int) -> str:
        return f"rule {self.name!r} (rules[{index}])" if self.name else f"rules[{index}]"


class SlaPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_two_alike(self) -> SlaPolicy:
        seen: dict[tuple[str | None, str | None, str | None, str], int] = {}
        for i, rule in enumerate(self.rules):
            for target in rule.targets.given():
                key = (rule.kind, rule.category, rule.priority, target)
                if key in seen:
                    first = self.rules[seen[key]].label(seen[key])
                    raise ValueError(f"{rule.label(i)} sets {target} for the same tickets as {first}")
                seen[key] = i
        return self

    def targets_for(
        self, kind: str, category: str | None = None, priority: str | None = None
    ) -> dict[str, TargetSpec]:
        """Each target the policy sets for such a ticket, from the most specific matching rule."""
        if kind not in KINDS:
            raise InputRefused(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        if priority is not None and priority not in PRIORITIES:
            raise InputRefused(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
        found: dict[str, tuple[int, TargetSpec]] = {}
        for rule in self.rules:
            if not rule.matches(kind, category, priority):
                continue
            for target, spec in rule.targets.given().items():
                if target not in found or rule.weight > found[target][0]:
                    found[target] = (rule.weight, spec)
        return {target: found[target][1] for target in TARGETS if target in found}


DEFAULT_POLICY = SlaPolicy(
    rules=[
        Rule(name="投诉15日办结", kind="complaint", targets=Targets(resolution=TargetSpec(calendar_days=15))),
        Rule(
            name="咨询4小时响应", kind="inquiry", targets=Targets(first_response=TargetSpec(business_hours=4))
        ),
    ]
)


def load_policy(path: Path | None) -> SlaPolicy:
    """The SLA policy in ``path`` (None: :data:`DEFAULT_POLICY`); problems named with file, rule and field."""
    if path is None:
        return DEFAULT_POLICY
    return parse_policy(read_text_file(path), source=str(path))


def parse_policy(text: str, *, source: str = "SLA policy") -> SlaPolicy:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputRefused(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(raw, list):
        raw = {"rules": raw}
    try:
        return SlaPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(e, raw) for e in exc.errors()]
        raise InputRefused(f"{source}: SLA policy refused:\n  " + "\n  ".join(problems)) from None


def _problem(error: Any, raw: Any) -> str:
    loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    msg = str(error["msg"]).removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        i = loc[1]
        rules = raw.get("rules") if isinstance(raw, dict) else None
        item = rules[i] if isinstance(rules, list) and i < len(rules) else None
        name = item.get("name") if isinstance(item, dict) else None
        who = f"rule {name!r} (rules[{i}])" if isinstance(name, str) else f"rules[{i}]"
        where = ".".join(str(p) for p in loc[2:])
        return f"{who}: {where}: {msg}" if where else f"{who}: {msg}"
    where = ".".join(str(p) for p in loc)
    return f"{where}: {msg}" if where else msg


# --------------------------------------------------------------------------------------------- history


@dataclass(frozen=True)
class Entry:
    """One line of a ticket's history: a status it entered, or an action (``responded``, ``updated``)."""

    at: datetime
    event: str


def history_of(entries: Iterable[Entry | tuple[datetime, str]]) -> list[Entry]:
    """Entries checked (aware times, known statuses and actions) and in time order (ties keep their order)."""
    checked = []
    for i, item in enumerate(entries):
        entry = item if isinstance(item, Entry) else Entry(*item)
        if not isinstance(entry.at, datetime) or entry.at.utcoffset() is None:
            raise InputRefused(f"history[{i}]: {entry.at!r} is not an aware datetime")
        if entry.event not in STATUSES and entry.event not in ACTIONS:
            raise InputRefused(
                f"history[{i}]: {entry.event!r} is neither a status ({', '.join(STATUSES)}) nor an action "
                f"({', '.join(ACTIONS)})"
            )
        checked.append(entry)
    if not checked:
        raise InputRefused("the ticket has no history: its first entry is its receipt")
    return sorted(checked, key=lambda e: e.at)


# ------------------------------------------------------------------------------------------ the clocks


@dataclass(frozen=True)
class TargetState:
    """A target at ``as_of``. Minutes are working minutes for a business target, elapsed minutes for a
    calendar-day one (``clock``); for ``next_update`` the figures are those of its current round."""

    target: str
    spec: str
    clock: str
    due_at: datetime
    allowed_minutes: int
    used_minutes: int
    paused_minutes: int
    state: Literal["met", "breached", "running"]
    breached_at: datetime | None
    stopped_at: datetime | None
    paused: bool
    percent_used: Decimal
    level: str | None
    reached: dict[str, datetime]
    next_level: str | None
    next_level_at: datetime | None


@dataclass(frozen=True)
class _Meter:
    measure: Callable[[datetime, datetime], timedelta]
    advance: Callable[[datetime, timedelta], datetime]
    allowed: Callable[[datetime], timedelta]


def _meter(spec: TargetSpec, calendar: BusinessCalendar) -> _Meter:
    if spec.calendar_days is not None:
        days = spec.calendar_days
        return _Meter(
            measure=lambda a, b: b - a,
            advance=lambda t, d: (t + d).astimezone(calendar.tz),
            allowed=lambda start: calendar.calendar_days_due(start, days) - start,
        )
    budget = spec.business_time
    return _Meter(
        measure=calendar.business_time_between, advance=calendar.add_business_time, allowed=lambda _: budget
    )


def _threshold(allowed: timedelta, level: str) -> timedelta:
    return allowed * LEVELS[level][0] / 100


def _reached(used: timedelta, allowed: timedelta, level: str) -> bool:
    limit = _threshold(allowed, level)
    return used > limit if LEVELS[level][1] else used >= limit


class _Clock:
    """One target's clock walked along the history."""

    def __init__(self, target: str, meter: _Meter, start: datetime) -> None:
        self.target = target
        self.meter = meter
        self.active = True
        self.stopped_at: datetime | None = None
        self.first_breach: datetime | None = None
        self.reached_now: dict[str, datetime] = {}
        self._round(start)

    def _round(self, start: datetime) -> None:
        """A new round (next_update): a breach of the round before stays on record."""
        if "breach" in self.reached_now and self.first_breach is None:
            self.first_breach = self.reached_now["breach"]
        self.allowed = self.meter.allowed(start)
        self.used = timedelta(0)
        self.paused = timedelta(0)
        self.reached_now = {}

    def span(self, a: datetime, b: datetime, pausing: bool) -> None:
        if not self.active or b <= a:
            return
        m = self.meter.measure(a, b)
        if pausing:
            self.paused += m
            return
        for level in LEVELS:
            if level not in self.reached_now and _reached(self.used + m, self.allowed, level):
                to_go = max(_threshold(self.allowed, level) - self.used, timedelta(0))
                self.reached_now[level] = self.meter.advance(a, to_go)
        self.used += m

    def on(self, event: str, at: datetime) -> None:
        closing = event in ("resolved", "closed")
        if self.target == "first_response":
            if self.active and (event == "responded" or closing):
                self.active, self.stopped_at = False, at
        elif self.target == "resolution":
            if self.active and closing:
                self.active, self.stopped_at = False, at
            elif not self.active and event == "reopened":
                self.active, self.stopped_at = True, None
        else:  # next_update
            if self.active and closing:
                self.active, self.stopped_at = False, at
            elif event == "reopened" and not self.active:
                self.active, self.stopped_at = True, None
                self._round(at)
            elif self.active and event in ("responded", "updated", "reopened"):
                self._round(at)

    def result(self, spec: TargetSpec, as_of: datetime, paused_now: bool) -> TargetState:
        end = self.stopped_at or as_of
        breach_now = self.reached_now.get("breach")
        due = self.reached_now.get("breach") or self.meter.advance(end, self.allowed - self.used)
        breached_at = self.first_breach or breach_now
        if breached_at is not None:
            state: Literal["met", "breached", "running"] = "breached"
        else:
            state = "met" if self.stopped_at is not None else "running"
        level = next((lv for lv in reversed(LEVELS) if lv in self.reached_now), None)
        next_level = next((lv for lv in LEVELS if lv not in self.reached_now), None)
        next_at = None
        if next_level is not None and self.stopped_at is None and not paused_now:
            to_go = max(_threshold(self.allowed, next_level) - self.used, timedelta(0))
            next_at = self.meter.advance(as_of, to_go)
        percent = (Decimal(self.used // _MICRO) * 100 / Decimal(self.allowed // _MICRO)).quantize(
            Decimal("0.1"), rounding=ROUND_FLOOR
        )
        return TargetState(
            target=self.target, spec=str(spec), clock=spec.clock, due_at=due,
            allowed_minutes=self.allowed // _MINUTE, used_minutes=self.used // _MINUTE,
            paused_minutes=self.paused // _MINUTE, state=state, breached_at=breached_at,
            stopped_at=self.stopped_at, paused=paused_now and self.stopped_at is None, percent_used=percent,
            level=level, reached=dict(self.reached_now), next_level=next_level, next_level_at=next_at,
        )  # fmt: skip


def evaluate(
    history: Iterable[Entry | tuple[datetime, str]],
    targets: Mapping[str, TargetSpec],
    calendar: BusinessCalendar,
    *,
    as_of: datetime,
) -> dict[str, TargetState]:
    """Each target's state at ``as_of`` (entries after it are not known yet)."""
    if as_of.utcoffset() is None:
        raise InputRefused("as_of must be an aware datetime")
    entries = [e for e in history_of(history) if e.at <= as_of]
    if not entries:
        raise InputRefused(f"as_of ({as_of.isoformat()}) is before the ticket was received")
    start = entries[0].at
    clocks = {name: _Clock(name, _meter(spec, calendar), start) for name, spec in targets.items()}
    status = "new"
    previous = start
    for entry in entries:
        for clock in clocks.values():
            clock.span(previous, entry.at, status in PAUSING)
        if entry.event in STATUSES:
            status = entry.event
        for clock in clocks.values():
            clock.on(entry.event, entry.at)
        previous = entry.at
    for clock in clocks.values():
        clock.span(previous, as_of, status in PAUSING)
    return {
        name: clocks[name].result(targets[name], as_of, status in PAUSING)
        for name in TARGETS
        if name in clocks
    }


def sla_state(
    history: Iterable[Entry | tuple[datetime, str]],
    *,
    policy: SlaPolicy,
    calendar: BusinessCalendar,
    kind: str,
    category: str | None = None,
    priority: str | None = None,
    as_of: datetime,
) -> dict[str, TargetState]:
    """The SLA state of one ticket: the policy's targets for its kind, category and priority, evaluated."""
    return evaluate(history, policy.targets_for(kind, category, priority), calendar, as_of=as_of)
