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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from omnibank.errors import InputRefused
from omnibank.kit.loading import read_text_file
from omnibank.service.calendar import BusinessCalendar, utc_micros

KINDS = ("complaint", "inquiry", "request", "alert")
PRIORITIES = ("low", "normal", "high", "urgent")
TARGETS = ("first_response", "next_update", "resolution")
STATUSES = ("new", "assigned", "in_progress", "waiting_customer", "waiting_supplier", "resolved", "closed",
            "reopened")  # fmt: skip
ACTIONS = ("responded", "updated")
PAUSING = frozenset({"waiting_customer", "waiting_supplier"})
#: level → (share of the target in percent, reached only when strictly past it)
LEVELS: dict[str, tuple[int, bool]] = {"warn": (80, False), "breach": (100, True), "breach2": (150, True)}

Kind = Literal["complaint", "inquiry", "request", "alert"]
Priority = Literal["low", "normal", "high", "urgent"]
_MINUTE_US = 60_000_000
_MICRO = timedelta(microseconds=1)
_KNOWN_EVENTS = frozenset(STATUSES) | frozenset(ACTIONS)
_CLOSING = frozenset({"resolved", "closed"})
_ROUND_EVENTS = frozenset({"responded", "updated", "reopened"})
_LEVELS = tuple((level, percent, strict) for level, (percent, strict) in LEVELS.items())
_BY_TIME = attrgetter("at")


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
        # a CX alert (docs/cx.md) is acted on within one business day (the default calendar's 8 hours)
        Rule(
            name="体验预警1个工作日", kind="alert", targets=Targets(resolution=TargetSpec(business_hours=8))
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
        at = entry.at
        if not isinstance(at, datetime) or at.utcoffset() is None:
            raise InputRefused(f"history[{i}]: {at!r} is not an aware datetime")
        event = entry.event
        if not (event in _KNOWN_EVENTS if type(event) is str else event in STATUSES or event in ACTIONS):
            raise InputRefused(
                f"history[{i}]: {entry.event!r} is neither a status ({', '.join(STATUSES)}) nor an action "
                f"({', '.join(ACTIONS)})"
            )
        checked.append(entry)
    if not checked:
        raise InputRefused("the ticket has no history: its first entry is its receipt")
    checked.sort(key=_BY_TIME)
    return checked


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


# The clocks count in whole microseconds (ints): exactly what timedelta arithmetic gives, without its cost.
# Moments are compared and calendar-day spans measured as the datetimes themselves would be; working time is
# the calendar's, from UTC microseconds.


def _share(allowed: int, percent: int) -> int:
    """``allowed * percent / 100`` rounded half to even, as ``timedelta / int`` rounds."""
    whole, rest = divmod(allowed * percent, 100)
    if 2 * rest > 100 or (2 * rest == 100 and whole & 1):
        whole += 1
    return whole


_PERCENTS: dict[int, Decimal] = {}


def _percent(used: int, allowed: int) -> Decimal:
    """``used / allowed`` in percent, floored to 0.1 (the tenths are exact: 28 digits cover any µs ratio)."""
    tenths = used * 1000 // allowed
    known = _PERCENTS.get(tenths)
    if known is None:
        known = Decimal(tenths).scaleb(-1)
        if len(_PERCENTS) < 100_000:
            _PERCENTS[tenths] = known
    return known


class _Clock:
    """One target's clock walked along the history."""

    __slots__ = ("target", "spec", "calendar", "days", "budget", "active", "stopped_at", "first_breach",
                 "reached_now", "allowed", "used", "paused", "limits")  # fmt: skip

    def __init__(self, target: str, spec: TargetSpec, calendar: BusinessCalendar, start: datetime) -> None:
        self.target = target
        self.spec = spec
        self.calendar = calendar
        self.days = spec.calendar_days
        self.budget = 0 if self.days is not None else spec.business_time // _MICRO
        self.active = True
        self.stopped_at: datetime | None = None
        self.first_breach: datetime | None = None
        self.reached_now: dict[str, datetime] = {}
        self._round(start)

    def _round(self, start: datetime) -> None:
        """A new round (next_update): a breach of the round before stays on record."""
        if "breach" in self.reached_now and self.first_breach is None:
            self.first_breach = self.reached_now["breach"]
        if self.days is not None:
            self.allowed = (self.calendar.calendar_days_due(start, self.days) - start) // _MICRO
        else:
            self.allowed = self.budget
        self.used = 0
        self.paused = 0
        self.reached_now = {}
        self.limits = [(level, _share(self.allowed, percent), strict) for level, percent, strict in _LEVELS]

    def advance(self, moment: datetime, micros: int | None, to_go: int) -> datetime:
        """The moment ``to_go`` µs of this clock's time after ``moment`` (``micros``: its UTC µs if known)."""
        if self.days is not None:
            return (moment + timedelta(microseconds=to_go)).astimezone(self.calendar.tz)
        if to_go <= 0:
            return self.calendar.add_business_time(moment, timedelta(microseconds=to_go))
        return self.calendar.add_business_micros(utc_micros(moment) if micros is None else micros, to_go)

    def span(self, a: datetime, a_us: int, m: int) -> None:
        used = self.used + m
        reached = self.reached_now
        for level, limit, strict in self.limits:
            if level not in reached and (used > limit if strict else used >= limit):
                reached[level] = self.advance(a, a_us, max(limit - self.used, 0))
        self.used = used

    def on(self, event: str, at: datetime) -> None:
        closing = event in _CLOSING
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
            elif self.active and event in _ROUND_EVENTS:
                self._round(at)

    def result(self, as_of: datetime, paused_now: bool) -> TargetState:
        stopped_at = self.stopped_at
        end = stopped_at or as_of
        reached = self.reached_now
        breach_now = reached.get("breach")
        due = breach_now or self.advance(end, None, self.allowed - self.used)
        breached_at = self.first_breach or breach_now
        if breached_at is not None:
            state: Literal["met", "breached", "running"] = "breached"
        else:
            state = "met" if stopped_at is not None else "running"
        level = next((lv for lv in reversed(LEVELS) if lv in reached), None)
        next_level = next((lv for lv in LEVELS if lv not in reached), None)
        next_at = None
        if next_level is not None and stopped_at is None and not paused_now:
            limit = next(limit for lv, limit, _ in self.limits if lv == next_level)
            next_at = self.advance(as_of, None, max(limit - self.used, 0))
        spec = self.spec
        return TargetState(
            target=self.target, spec=str(spec), clock=spec.clock, due_at=due,
            allowed_minutes=self.allowed // _MINUTE_US, used_minutes=self.used // _MINUTE_US,
            paused_minutes=self.paused // _MINUTE_US, state=state, breached_at=breached_at,
            stopped_at=stopped_at, paused=paused_now and stopped_at is None,
            percent_used=_percent(self.used, self.allowed), level=level, reached=dict(reached),
            next_level=next_level, next_level_at=next_at,
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
    return _walk(entries, targets, calendar, as_of)


def _walk(
    entries: list[Entry], targets: Mapping[str, TargetSpec], calendar: BusinessCalendar, as_of: datetime
) -> dict[str, TargetState]:
    """The clocks along checked entries in time order, none after ``as_of``."""
    start = entries[0].at
    clocks = [_Clock(name, spec, calendar, start) for name, spec in targets.items()]
    business = any(clock.days is None for clock in clocks)
    status = "new"
    previous = start
    previous_us = utc_micros(start) if business else 0
    for entry in [*entries, None]:
        at = as_of if entry is None else entry.at
        at_us = utc_micros(at) if business else 0
        if at > previous:  # a span of the history: each running clock counts it (or pauses through it)
            pausing = status in PAUSING
            worked = elapsed = -1
            for clock in clocks:
                if not clock.active:
                    continue
                if clock.days is None:
                    if worked < 0:
                        worked = calendar.business_micros_between(previous_us, at_us)
                    m = worked
                else:
                    if elapsed < 0:
                        elapsed = (at - previous) // _MICRO
                    m = elapsed
                if pausing:
                    clock.paused += m
                else:
                    clock.span(previous, previous_us, m)
        if entry is None:
            break
        if entry.event in STATUSES:
            status = entry.event
        for clock in clocks:
            clock.on(entry.event, at)
        previous, previous_us = at, at_us
    paused_now = status in PAUSING
    named = {clock.target: clock for clock in clocks}
    return {name: named[name].result(as_of, paused_now) for name in TARGETS if name in named}


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
