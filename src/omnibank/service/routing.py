"""Where a ticket goes: queues, routing rules and shifts as data (``OMNIBANK_ROUTING_FILE``, YAML; see
``examples/service/routing.yaml``).

* **Queues** have an id, a name, an org (whose branch manager hears of the queue's surges and of breaches
  of the tickets it owns) and agents. An agent is on shift during the business calendar's working windows,
  or during their own ``hours`` (weekday → windows) when given: a weekend desk, a late shift.
* **Rules**, first match wins: a rule matches a ticket's ``kind``, ``category`` (one or a list) and the
  customer's ``branch`` (an org: the customer's branch is that org or below it); conditions left out match
  anything. The last rule must match everything, so every ticket has a queue.
* **Inside a queue** the ticket goes to the least-loaded agent on shift (fewest open tickets owned; the
  lowest staff id on a tie); with nobody on shift the queue owns it until someone comes on
  (``service.assign`` in the worker).
* **Surges**: a queue whose inflow in the last hour exceeds ``multiple`` times its usual hourly rate (the
  mean over the ``baseline_days`` before, counting every hour), and at least ``min_inflow`` tickets, alerts
  the queue's manager once for that hour.
* **Suppliers**: how long a benefit's supplier has to answer a ticket sent to it (business time by default;
  per supplier id, ``default`` for the rest).

Without a file: one queue ``desk`` (服务台) at the root of the org tree whose agents are every active
member of staff with the ``service_agent`` role, one catch-all rule, surges at 3× with at least 10 tickets
over 14 days, suppliers 8 business hours. A file with a mistake is refused as a whole, each problem named
with the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from omnibank.errors import InputRefused
from omnibank.kit.loading import read_text_file
from omnibank.service.calendar import BusinessCalendar, Window, parse_windows
from omnibank.service.sla import KINDS, TargetSpec

_ID = r"^[A-Za-z0-9_.-]{1,64}$"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_QUEUE = "desk"


class Agent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    staff: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    hours: dict[str, list[str]] | None = None

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if value is None:
            return None
        for day, windows in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"{day!r} is not a weekday ({', '.join(WEEKDAYS)})")
            try:
                parse_windows(windows)
            except ValueError as exc:
                raise ValueError(f"{day}: {exc}") from None
        return value

    def windows(self, weekday: int) -> tuple[Window, ...] | None:
        """The agent's own windows on an ISO weekday - 1 (None: the calendar's)."""
        if self.hours is None:
            return None
        return parse_windows(self.hours.get(WEEKDAYS[weekday], []))


class Queue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1, max_length=100)
    org: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    agents: list[Agent] = Field(default_factory=list)

    @field_validator("agents", mode="before")
    @classmethod
    def _plain_ids(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"staff": v} if isinstance(v, str) else v for v in value]
        return value


class RouteRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str = Field(pattern=_ID)
    kind: str | None = None
    category: list[str] | None = None
    branch: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$")

    @field_validator("category", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str | None) -> str | None:
        if value is not None and value not in KINDS:
            raise ValueError(f"{value!r} is not one of {', '.join(KINDS)}")
        return value

    @property
    def catch_all(self) -> bool:
        return self.kind is None and self.category is None and self.branch is None

    def matches(self, kind: str, category: str, branch_path: str | None) -> bool:
        if self.kind is not None and kind != self.kind:
            return False
        if self.category is not None and category not in self.category:
            return False
        return self.branch is None or (branch_path is not None and f"/{self.branch}/" in branch_path)


class Surge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    multiple: Decimal = Field(default=Decimal(3), gt=1)
    min_inflow: int = Field(default=10, ge=1)
    baseline_days: int = Field(default=14, ge=1, le=90)


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: list[Queue]
    rules: list[RouteRule]
    surge: Surge = Field(default_factory=Surge)
    suppliers: dict[str, TargetSpec] = Field(
        default_factory=lambda: {"default": TargetSpec(business_hours=8)}
    )
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> Routing:
        ids = [q.id for q in self.queues]
        if not ids:
            raise ValueError("queues: at least one queue")
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"queues: {', '.join(twice)} defined twice")
        for i, rule in enumerate(self.rules):
            if rule.queue not in ids:
                raise ValueError(f"rules[{i}].queue: no queue {rule.queue!r} (queues: {', '.join(ids)})")
        if not self.rules or not self.rules[-1].catch_all:
            raise ValueError("rules: the last rule must match every ticket (a rule with only a queue)")
        if "default" not in self.suppliers:
            raise ValueError("suppliers: give a default response target")
        return self

    def queue(self, queue_id: str) -> Queue | None:
        return next((q for q in self.queues if q.id == queue_id), None)

    def route(self, kind: str, category: str, branch_path: str | None) -> Queue:
        """The queue of a ticket: the first rule that matches it."""
        rule = next(r for r in self.rules if r.matches(kind, category, branch_path))
        queue = self.queue(rule.queue)
        assert queue is not None  # checked when loaded
        return queue

    def supplier_target(self, supplier_id: str | None) -> TargetSpec:
        return self.suppliers.get(supplier_id or "default") or self.suppliers["default"]


def default_routing(root_org: str | None, agents: Sequence[str]) -> Routing:
    return Routing(
        queues=[
            Queue(id=DEFAULT_QUEUE, name="服务台", org=root_org, agents=[Agent(staff=a) for a in agents])
        ],
        rules=[RouteRule(queue=DEFAULT_QUEUE)],
    )


def load_routing(path: Path) -> Routing:
    return parse_routing(read_text_file(path), source=str(path))


def parse_routing(text: str, *, source: str = "routing file") -> Routing:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputRefused(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise InputRefused(f"{source}: routing file refused: expected a mapping with queues and rules")
    try:
        routing = Routing.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
            msg = str(e["msg"]).removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise InputRefused(f"{source}: routing file refused:\n  " + "\n  ".join(problems)) from None
    return routing.model_copy(update={"source": source})


# ------------------------------------------------------------------------------------------- shifts


def on_shift(agent: Agent, calendar: BusinessCalendar, now: datetime) -> bool:
    """Whether ``agent`` works at ``now``: in their own hours on that weekday, or else in a working
    window of the calendar (holidays and closures included)."""
    local = now.astimezone(calendar.tz)
    minute = local.hour * 60 + local.minute
    own = agent.windows(local.weekday())
    if own is None:
        windows: Sequence[Window] = calendar.day(local.date()).windows
    else:
        windows = own
    return any(w.start <= minute < w.end for w in windows)


def pick_agent(
    queue: Queue,
    *,
    active: set[str],
    loads: Mapping[str, int],
    calendar: BusinessCalendar,
    now: datetime,
) -> str | None:
    """The least-loaded active agent of ``queue`` on shift at ``now`` (lowest id on a tie), or None."""
    candidates = [a.staff for a in queue.agents if a.staff in active and on_shift(a, calendar, now)]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (loads.get(s, 0), s))


@dataclass(frozen=True)
class SurgeCheck:
    queue: str
    inflow: int
    usual_per_hour: Decimal
    surging: bool


def surge_check(surge: Surge, queue: str, *, last_hour: int, baseline: int) -> SurgeCheck:
    """Whether ``last_hour`` tickets surge over ``baseline`` tickets in the ``baseline_days`` before."""
    usual = (Decimal(baseline) / Decimal(surge.baseline_days * 24)).quantize(Decimal("0.01"))
    surging = last_hour >= surge.min_inflow and Decimal(last_hour) > surge.multiple * usual
    return SurgeCheck(queue, last_hour, usual, surging)


def baseline_window(surge: Surge, now: datetime) -> tuple[datetime, datetime, datetime]:
    """(baseline start, last hour's start, now)."""
    hour_start = now - timedelta(hours=1)
    return hour_start - timedelta(days=surge.baseline_days), hour_start, now
