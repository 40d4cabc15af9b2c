"""Journey definitions: YAML validated by Pydantic, with a published JSON schema.

A journey is data, not code::

    id: card_activation_nudge
    name: 新卡激活提醒
    purpose: marketing                 # or service (bypasses caps, never do-not-disturb)
    trigger:
      event: card.issued               # an event with a condition over its fields …
      where: primary = true
      # … or segment entry on a schedule:
      # segment: age >= 60 AND days_since('app.login') > 90
      # schedule: weekly mon 10:00
    audience: marketing_consent = true # who may enter (the expression language, as of entry)
    reentry: never                     # or a duration ("30d"): enter again that long after the last entry
    control_percent: 10                # held out (deterministic by customer and journey), for uplift
    conversion: {event: card.transaction, within: 14d}   # stops the journey (exit: true) and counts
    steps:
      - id: wait_14d
        wait: 14d
      - id: push
        send: {channel: app_push, template: 您的新卡已寄达, 激活即享首刷礼}
      - …

Step kinds: ``wait`` (a duration), ``wait_for`` (an event with a condition and a timeout, then
``on_event`` / ``on_timeout``), ``branch`` (``if`` an expression ``then`` / ``else``), ``split`` (weighted
variants, deterministic by customer), ``send`` (a ``channel``, or a ``route``: rules choosing a fallback
chain of channels), ``lead`` (for the customer's RM or branch queue, due in a duration), ``tag``
(add/remove), ``grant`` (a benefit, or ``recommended``: the customer's top recommended benefit a grant
accepts at run time, skipped when there is none), ``survey`` (an invitation to a survey: a send with purpose
``survey``, under the contact policy's survey fatigue), ``exit``. A step goes on to the next one in the list
unless it names ``next`` (or its targets); ``end`` ends the journey.

Durations: a whole number and a unit: ``30m``, ``4h``, ``2d``, ``90d``, ``2w``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from omnibank.contact.routing import Channel, Route
from omnibank.errors import InputRefused
from omnibank.kit.loading import read_text_file
from omnibank.kit.specfile import validate_yaml
from omnibank.segments.expr import (
    TAG_PATTERN,
    TYPE_PATTERN,
    EventPredicate,
    Expression,
    ExpressionError,
    Node,
    event_predicate,
    parse,
    parse_event_condition,
)

Purpose = Literal["marketing", "service"]
END = "end"  # a target that ends the journey

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> timedelta:
    """``"2d"`` → 2 days; also a timedelta as it is."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration such as '2d', '4h' or '30m'")
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a duration such as '2d', '4h' or '30m'")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0 or seconds > 3660 * 86400:
        raise ValueError(f"{value!r}: a duration is more than nothing and at most 3660 days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+[smhdw]$", "examples": ["2d", "4h", "30m"]}),
]
Id = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Target = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="A step id, or 'end'.")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _event_type(value: str) -> str:
    if not TYPE_PATTERN.match(value):
        raise ValueError(f"{value!r} is not an event type such as 'card.transaction'")
    return value


EventType = Annotated[str, BeforeValidator(lambda v: _event_type(v) if isinstance(v, str) else v)]

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SCHEDULE = re.compile(r"^\s*(daily|weekly\s+(mon|tue|wed|thu|fri|sat|sun))\s+([01]\d|2[0-3]):([0-5]\d)\s*$")


class Schedule(BaseModel):
    """When a segment trigger looks for customers: every day, or one day a week, at a bank-local time."""

    model_config = ConfigDict(frozen=True)
    weekday: int | None  # ISO 1 Monday … 7 Sunday; None: every day
    at: time


def parse_schedule(text: str) -> Schedule:
    m = _SCHEDULE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a schedule such as 'daily 09:00' or 'weekly mon 10:00'")
    weekday = _WEEKDAYS.index(m.group(2)) + 1 if m.group(2) else None
    return Schedule(weekday=weekday, at=time(int(m.group(3)), int(m.group(4))))


class Trigger(_Model):
    event: EventType | None = Field(None, description="Enter on this event type, e.g. app.product_view.")
    where: str | None = Field(None, description="A condition over the event's fields, e.g. duration_s >= 60.")
    segment: str | None = Field(None, description="Enter when a customer matches this expression …")
    schedule: str | None = Field(
        None, description="… looked at on this schedule: 'daily 09:00', 'weekly mon 10:00'."
    )

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        if (self.event is None) == (self.segment is None):
            raise ValueError("give exactly one of event (with where) or segment (with schedule)")
        if self.segment is not None:
            if self.schedule is None:
                raise ValueError("a segment trigger needs a schedule, e.g. 'daily 09:00'")
            if self.where is not None:
                raise ValueError("where is a condition over a trigger event; a segment trigger has none")
            parse_schedule(self.schedule)
        elif self.schedule is not None:
            raise ValueError("schedule goes with segment, not with event")
        return self


class Conversion(_Model):
    event: EventType
    where: str | None = None
    within: Duration = Field(description="Counts when it happens this long after entry at most.")
    exit: bool = Field(True, description="The journey stops for the customer when they convert.")


class WaitFor(_Model):
    event: EventType
    where: str | None = None
    timeout: Duration
    on_event: Target | None = Field(None, description="Where to go when the event comes (default: next).")
    on_timeout: Target | None = Field(None, description="Where to go when it does not (default: next).")


class Branch(_Model):
    if_: str = Field(alias="if", description="An expression over the customer, as of now.")
    then: Target
    else_: Target | None = Field(None, alias="else", description="Default: the next step.")


class Variant(_Model):
    name: Id
    weight: int = Field(ge=1, le=10_000)
    next: Target


class Split(_Model):
    variants: list[Variant] = Field(min_length=2)

    @field_validator("variants")
    @classmethod
    def _names(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names repeat")
        return variants


class SendStep(_Model):
    channel: Channel | None = None
    route: Route | None = Field(
        None, description="Routing rules (omnibank.contact.routing): the chain of channels to try, in order."
    )
    template: str = Field(
        min_length=1,
        max_length=400,
        description="The message text or the gateway's template id; {field} takes the trigger event's field "
        "(the filled-in text is kept to 500 characters).",
    )
    purpose: Purpose | Literal["survey"] | None = Field(
        None, description="Default: the journey's purpose; 'survey' for a survey invitation."
    )
    survey: Id | None = Field(
        None, description="The survey this send invites to (a step 'survey: ID' is such a send)."
    )
    until: Literal["sent", "delivered", "clicked"] = Field(
        "sent", description="Fall back to the next channel of a route unless this happens …"
    )
    fallback_after: Duration = Field(timedelta(days=1), description="… within this long (a route only).")

    @model_validator(mode="after")
    def _one(self) -> SendStep:
        if (self.channel is None) == (self.route is None):
            raise ValueError("give exactly one of channel or route")
        if (self.survey is None) != (self.purpose != "survey"):
            raise ValueError("a survey invitation has purpose survey and names its survey ('survey: ID')")
        return self


class LeadStep(_Model):
    product: str = Field(
        min_length=1, max_length=64, description="A product id, or {product_id} of the trigger."
    )
    due_in: Duration
    note: str = Field("", max_length=200)


class TagStep(_Model):
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> TagStep:
        if not self.add and not self.remove:
            raise ValueError("add or remove at least one tag")
        for name in [*self.add, *self.remove]:
            if not TAG_PATTERN.match(name):
                raise ValueError(f"{name!r} is not a tag name (lower case letters, digits, _)")
        return self


#: ``grant: {benefit: recommended}``: the customer's top recommended benefit that a grant accepts at run time
RECOMMENDED = "recommended"


class GrantStep(_Model):
    benefit: Id = Field(
        description="A benefit id, or 'recommended': the customer's top recommendation a grant accepts then."
    )
    quantity: int = Field(1, ge=1, le=100)
    face_value: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)] | None = None
    valid_days: int | None = Field(None, ge=1, le=3660)

    @model_validator(mode="after")
    def _recommended(self) -> GrantStep:
        if self.benefit == RECOMMENDED and (self.quantity != 1 or self.face_value is not None):
            raise ValueError(
                "benefit: recommended grants one item at the catalogue's face value "
                "(leave out quantity and face_value)"
            )
        return self


class ExitStep(_Model):
    reason: str = Field("exit", max_length=64)


#: the text of a survey invitation unless the step gives its own (answers come back as survey.response events
#: from the app, WeChat or the bank's survey page, whose signed link the outbox puts for {survey_link})
SURVEY_TEMPLATE = "您的意见对我们很重要，邀请您花1分钟评价本次服务：{survey_link}"

KINDS = ("wait", "wait_for", "branch", "split", "send", "lead", "tag", "grant", "exit")
StepKind = Literal["wait", "wait_for", "branch", "split", "send", "lead", "tag", "grant", "exit"]


class Step(_Model):
    id: Id
    wait: Duration | None = None
    wait_for: WaitFor | None = None
    branch: Branch | None = None
    split: Split | None = None
    send: SendStep | None = None
    lead: LeadStep | None = None
    tag: TagStep | None = None
    grant: GrantStep | None = None
    exit: ExitStep | None = None
    next: Target | None = Field(None, description="The step after this one (default: the next in the list).")

    @model_validator(mode="before")
    @classmethod
    def _exit_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("exit") in (True, None) and "exit" in data:
            return {**data, "exit": {}}
        if isinstance(data, dict) and "survey" in data:  # survey: ID  or  survey: {id, channel, template}
            if "send" in data:
                raise ValueError("a step does exactly one of survey or send")
            given = data["survey"]
            spec = dict(given) if isinstance(given, dict) else {"id": given}
            unknown = set(spec) - {"id", "channel", "template"}
            if unknown:
                listed = ", ".join(sorted(unknown))
                raise ValueError(f"survey: unknown field(s) {listed} (id, channel, template)")
            send = {
                "channel": spec.get("channel", "sms"),
                "template": spec.get("template", SURVEY_TEMPLATE),
                "purpose": "survey",
                "survey": spec.get("id"),
            }
            rest = {k: v for k, v in data.items() if k != "survey"}
            return {**rest, "send": send}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            listed = ", ".join(kinds) if kinds else "none"
            raise ValueError(f"a step does exactly one of {', '.join(KINDS)} (this one: {listed})")
        if self.next is not None and kinds[0] in ("branch", "split", "wait_for", "exit"):
            raise ValueError(f"a {kinds[0]} step names its targets itself; next is not allowed")
        return self

    @property
    def kind(self) -> StepKind:
        for k in KINDS:
            if getattr(self, k) is not None:
                return k  # type: ignore[return-value]
        raise AssertionError("validated")  # pragma: no cover


class JourneySpec(_Model):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    purpose: Purpose = "marketing"
    trigger: Trigger
    audience: str | None = Field(None, description="Who may enter (the expression language, as of entry).")
    reentry: Literal["never"] | Duration = Field(
        "never", description="'never', or how long after an entry the customer may enter again."
    )
    control_percent: int = Field(0, ge=0, le=90, description="Customers held out, for uplift.")
    conversion: Conversion | None = None
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> JourneySpec:
        ids = [s.id for s in self.steps]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"step ids repeated: {', '.join(dupes)}")
        if END in ids:
            raise ValueError("'end' is reserved (a target that ends the journey); choose another step id")
        known = {*ids, END}
        for i, s in enumerate(self.steps):
            for target in targets(s):
                if target not in known:
                    raise ValueError(f"steps.{i} ({s.id}): unknown step {target!r}")
        return self

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def after(self, step_id: str) -> str:
        """The step that follows ``step_id`` in the list (or the end)."""
        ids = [s.id for s in self.steps]
        i = ids.index(step_id)
        return ids[i + 1] if i + 1 < len(ids) else END


def targets(s: Step) -> list[str]:
    out = [s.next] if s.next else []
    if s.wait_for:
        out += [t for t in (s.wait_for.on_event, s.wait_for.on_timeout) if t]
    if s.branch:
        out += [t for t in (s.branch.then, s.branch.else_) if t]
    if s.split:
        out += [v.next for v in s.split.variants]
    return out


def json_schema() -> str:
    """The published JSON schema of journey files."""
    return json.dumps(JourneySpec.model_json_schema(by_alias=True), ensure_ascii=False, indent=2)


# ------------------------------------------------------------------------------------------- compiled


class Compiled:
    """A journey with its expressions parsed once (events' conditions as predicates)."""

    def __init__(self, spec: JourneySpec, *, source: str = "journey"):
        self.spec = spec
        problems: list[str] = []

        def customer(text: str | None, where: str) -> Expression | None:
            if text is None:
                return None
            try:
                return parse(text)
            except ExpressionError as exc:
                problems.append(f"{where}: {exc.message}")
                return None

        def event(text: str | None, where: str) -> EventPredicate:
            if text is None:
                return event_predicate(None)
            try:
                node: Node = parse_event_condition(text)
            except ExpressionError as exc:
                problems.append(f"{where}: {exc.message}")
                return event_predicate(None)
            return event_predicate(node)

        t = spec.trigger
        self.trigger_test = event(t.where, "trigger.where")
        self.segment = customer(t.segment, "trigger.segment")
        self.schedule = parse_schedule(t.schedule) if t.schedule else None
        self.audience = customer(spec.audience, "audience")
        self.conversion_test = event(spec.conversion.where if spec.conversion else None, "conversion.where")
        self.wait_tests: dict[str, EventPredicate] = {}
        self.branches: dict[str, Expression] = {}
        self.routes: dict[str, Route] = {}
        for i, s in enumerate(spec.steps):
            if s.wait_for:
                self.wait_tests[s.id] = event(s.wait_for.where, f"steps.{i}.wait_for.where")
            if s.branch:
                expr = customer(s.branch.if_, f"steps.{i}.branch.if")
                if expr is not None:
                    self.branches[s.id] = expr
            if s.send and s.send.route:
                self.routes[s.id] = s.send.route
        if problems:
            raise InputRefused(f"{source}: journey refused:\n  " + "\n  ".join(problems))
        self.index = {s.id: s for s in spec.steps}
        self.first = spec.steps[0].id
        self.expressions = [
            e
            for e in [self.audience, self.segment, *self.branches.values()]
            + [w for route in self.routes.values() for w, _ in route.compiled()]
            if e is not None
        ]

    @property
    def id(self) -> str:
        return self.spec.id

    def step_expressions(self) -> list[Expression]:
        """The expressions steps evaluate (branches, route rules), not the trigger's or the audience's."""
        return [*self.branches.values(), *(w for r in self.routes.values() for w, _ in r.compiled())]

    def event_types(self) -> set[str]:
        """Every event type the journey listens to: its trigger, waits, conversion and receipts."""
        types = {s.wait_for.event for s in self.spec.steps if s.wait_for}
        if self.spec.trigger.event:
            types.add(self.spec.trigger.event)
        if self.spec.conversion:
            types.add(self.spec.conversion.event)
        if any(s.send and s.send.route and s.send.until != "sent" for s in self.spec.steps):
            types |= RECEIPTS
        return types

    def in_control(self, customer_id: str) -> bool:
        """Deterministic hold-out: the same customer is always in or out of a journey's control group."""
        return (
            self.spec.control_percent > 0
            and bucket(customer_id, self.id, "control") < self.spec.control_percent
        )

    def variant(self, customer_id: str, step: Step) -> str:
        assert step.split is not None
        total = sum(v.weight for v in step.split.variants)
        point = bucket(customer_id, self.id, step.id, modulo=total)
        for v in step.split.variants:
            if point < v.weight:
                return v.name
            point -= v.weight
        raise AssertionError("weights add up")  # pragma: no cover


RECEIPTS = {"message.delivered", "message.failed", "message.clicked"}


def bucket(*parts: str, modulo: int = 100) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % modulo


# ----------------------------------------------------------------------------------------------- load


def parse_journey(text: str, *, source: str = "journey") -> JourneySpec:
    """Validate a journey's YAML text; every problem is named with its field and line."""
    doc = validate_yaml(text, JourneySpec, source=source, kind="journey", shape="id, name, trigger, steps, …")
    Compiled(doc.value, source=source)
    return doc.value


def load_journey(path: Path) -> JourneySpec:
    """Read and validate a journey file."""
    return parse_journey(read_text_file(path), source=str(path))
