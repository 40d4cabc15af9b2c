"""Journey maps (X1): stages → touchpoints → experience points → indicators, each with a weight.

A map is YAML (``examples/cx/credit_card_map.yaml``)::

    id: credit_card
    name: 信用卡旅程
    stages:
      - id: apply
        name: 申卡
        weight: 0.3                       # the weights of siblings sum to 1, at every level
        touchpoints:
          - id: online_apply
            name: 线上申请
            weight: 1
            experience_points:
              - id: approval_speed
                name: 审批速度
                weight: 1
                indicators:
                  - id: approved_3d
                    name: 3天内审批通过率
                    weight: 1
                    direction: higher_better  # or lower_better
                    target: 90                # the raw value scoring 100 …
                    floor: 50                 # … and the one scoring 0 (linear between, clamped)
                    within: {start: card.application_submitted, end: card.application_approved, days: 3}

An indicator has exactly one source (what its raw value is, per group and period):

* ``survey: {id, metric}`` — over ``survey.response`` events of that survey: ``nps`` (% promoters 9–10 −
  % detractors 0–6, −100…100), ``csat`` (% of answers 4–5), ``ces`` (mean 1–7), ``mean_nps``,
  ``mean_csat``, ``mean_ces`` (plain means);
* ``events: {count: TYPE, per: TYPE|customers, where: COND}`` — ``count`` events per ``per`` events × 100
  (a %), or per 1,000 customers of the group; ``where`` (a condition over the event's typed fields, the
  expression language's event scope) narrows the counted events;
  ``events: {mean: FIELD, of: TYPE, where: COND}`` — the mean of a numeric field (e.g. ``wait_min`` of
  ``branch.visit``);
* ``within: {start: TYPE, end: TYPE, days: N, case: FIELD}`` — % of the cases started in the period that
  reached ``end`` within N days (cases as :mod:`omnibank.process.report` reckons them);
* ``customers: {of: EXPR, share: EXPR}`` — % of the customers matching ``of`` who also match ``share``, as
  of the period's last day (the segment language);
* ``tickets: {metric: complaints_per_1000|sla_breach_share, kind, category}`` — service desk tickets opened
  in the period: per 1,000 customers of the group (``kind`` defaults to ``complaint``), or the % whose SLA
  was breached.

Refused, naming the file, the line and the field: weights of siblings not summing to 1 (Decimal, within
1e-9), a target equal to the floor or on the wrong side for the direction, an event type that is not one
(``^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)+$``), a field name that is not one, an expression that does not parse
or names an unknown field. A type the log has never carried is only *warned* about when the index is
computed (:func:`unseen_types`): a map may be written before its events flow.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from omnibank.errors import AppError
from omnibank.events.columns import KNOWN_TYPES
from omnibank.kit.specfile import SpecDoc, load_yaml, validate_yaml
from omnibank.segments.expr import TYPE_PATTERN, Vocabulary, parse, parse_event_condition

#: the event types of the CX contract (beside the data contract's :data:`KNOWN_TYPES`)
CX_TYPES = frozenset(
    {
        "survey.response",
        "branch.visit",
        "card.activated",
        "card.application_submitted",
        "card.application_approved",
        "card.application_declined",
        "app.login_failed",
        "complaint.filed",
        "ticket.opened",
        "ticket.resolved",
        "message.delivered",
        "message.failed",
        "message.clicked",
    }
)
CONTRACT_TYPES = frozenset(KNOWN_TYPES) | CX_TYPES
FIELD_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TOLERANCE = Decimal("1e-9")
Level = Literal["map", "stage", "touchpoint", "experience_point", "indicator"]


def _decimal(value: Any) -> Any:
    """YAML numbers as exact decimals: 0.1 is read as the float 0.1, meant as the decimal 0.1."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float | int):
        return Decimal(str(value))
    return value


def _event_type(value: Any) -> Any:
    if isinstance(value, str) and not TYPE_PATTERN.match(value):
        raise ValueError(f"{value!r} is not an event type such as 'card.transaction'")
    return value


def _field_name(value: Any) -> Any:
    if isinstance(value, str) and not FIELD_RE.match(value):
        raise ValueError(f"{value!r} is not a field name (lower-case letters, digits and _)")
    return value


Num = Annotated[Decimal, BeforeValidator(_decimal)]
Weight = Annotated[Decimal, BeforeValidator(_decimal), Field(gt=0, le=1)]
Id = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Name = Annotated[str, Field(min_length=1, max_length=100)]
EventType = Annotated[str, BeforeValidator(_event_type)]
FieldName = Annotated[str, BeforeValidator(_field_name)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SurveyMetric = Literal["nps", "csat", "ces", "mean_nps", "mean_csat", "mean_ces"]


class SurveySource(_Model):
    id: Id
    metric: SurveyMetric


class EventsSource(_Model):
    count: EventType | None = None
    per: EventType | Literal["customers"] | None = None
    mean: FieldName | None = None
    of: EventType | None = None
    where: str | None = Field(None, description="A condition over the counted (or averaged) events.")

    @model_validator(mode="after")
    def _shape(self) -> EventsSource:
        ratio = self.count is not None or self.per is not None
        mean = self.mean is not None or self.of is not None
        if ratio == mean:
            raise ValueError("give either count and per, or mean and of")
        if ratio and (self.count is None or self.per is None):
            raise ValueError("count goes with per (an event type, or customers)")
        if mean and (self.mean is None or self.of is None):
            raise ValueError("mean (a numeric field) goes with of (an event type)")
        return self

    def types(self) -> list[str]:
        return [t for t in (self.count, self.per, self.of) if t is not None and t != "customers"]


class WithinSource(_Model):
    start: EventType
    end: EventType
    days: int = Field(ge=1, le=3660)
    case: FieldName = "application_id"

    @model_validator(mode="after")
    def _two(self) -> WithinSource:
        if self.start == self.end:
            raise ValueError(f"start and end are the same type ({self.start})")
        return self


class CustomersSource(_Model):
    of: str = Field("true", description="Who is counted (an expression; default everyone).")
    share: str = Field(description="Of those, who is in the share.")


class TicketsSource(_Model):
    metric: Literal["complaints_per_1000", "sla_breach_share"]
    kind: Literal["complaint", "inquiry", "request", "alert"] | None = None
    category: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,31}$")] | None = None

    @property
    def ticket_kind(self) -> str | None:
        return self.kind or ("complaint" if self.metric == "complaints_per_1000" else None)


SourceKind = Literal["survey", "events", "within", "customers", "tickets"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("survey", "events", "within", "customers", "tickets")


class Indicator(_Model):
    id: Id
    name: Name
    weight: Weight
    direction: Literal["higher_better", "lower_better"]
    target: Num
    floor: Num
    survey: SurveySource | None = None
    events: EventsSource | None = None
    within: WithinSource | None = None
    customers: CustomersSource | None = None
    tickets: TicketsSource | None = None

    @model_validator(mode="after")
    def _check(self) -> Indicator:
        given = [k for k in SOURCE_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            shown = ", ".join(given) or "none"
            raise ValueError(
                f"give exactly one source of survey, events, within, customers, tickets ({shown})"
            )
        if self.target == self.floor:
            raise ValueError("target and floor are the same: no range to score on")
        if self.direction == "higher_better" and self.target < self.floor:
            raise ValueError("higher_better: target (scoring 100) must be above floor (scoring 0)")
        if self.direction == "lower_better" and self.target > self.floor:
            raise ValueError("lower_better: target (scoring 100) must be below floor (scoring 0)")
        return self

    @property
    def kind(self) -> SourceKind:
        return next(k for k in SOURCE_KINDS if getattr(self, k) is not None)

    def score(self, raw: Decimal) -> Decimal:
        """0–100, linear between floor (0) and target (100), clamped."""
        value = (raw - self.floor) * 100 / (self.target - self.floor)
        return min(Decimal(100), max(Decimal(0), value))

    def event_types(self) -> list[str]:
        if self.events is not None:
            return self.events.types()
        if self.within is not None:
            return [self.within.start, self.within.end]
        if self.survey is not None:
            return ["survey.response"]
        return []


class ExperiencePoint(_Model):
    id: Id
    name: Name
    weight: Weight
    indicators: list[Indicator] = Field(min_length=1)


class Touchpoint(_Model):
    id: Id
    name: Name
    weight: Weight
    experience_points: list[ExperiencePoint] = Field(min_length=1)


class Stage(_Model):
    id: Id
    name: Name
    weight: Weight
    touchpoints: list[Touchpoint] = Field(min_length=1)


class JourneyMap(_Model):
    id: Id
    name: Name
    description: str = ""
    stages: list[Stage] = Field(min_length=1)

    def indicators(self) -> Iterator[tuple[str, Indicator]]:
        """Every indicator with its path ``stage/touchpoint/point/indicator``."""
        for s in self.stages:
            for t in s.touchpoints:
                for p in t.experience_points:
                    for i in p.indicators:
                        yield f"{s.id}/{t.id}/{p.id}/{i.id}", i

    def event_types(self) -> set[str]:
        return {t for _, i in self.indicators() for t in i.event_types()}

    def located_indicators(self) -> Iterator[tuple[tuple[int | str, ...], Indicator]]:
        """Each indicator with its location in the document (for messages naming the line)."""
        for si, s in enumerate(self.stages):
            for ti, t in enumerate(s.touchpoints):
                for pi, p in enumerate(t.experience_points):
                    for ii, ind in enumerate(p.indicators):
                        loc = ("stages", si, "touchpoints", ti, "experience_points", pi, "indicators", ii)
                        yield loc, ind


_SHAPE = "id, name, stages"
_KIND = "journey map"


def parse_map(
    text: str,
    *,
    source: str = "map",
    vocabulary: Vocabulary | None = None,
    known_types: Collection[str] | None = None,
) -> JourneyMap:
    """Validate a map's YAML text; every problem is named with its field and line."""
    doc = validate_yaml(text, JourneyMap, source=source, kind=_KIND, shape=_SHAPE)
    return _checked(doc, vocabulary, known_types)


def load_map(
    path: Path, *, vocabulary: Vocabulary | None = None, known_types: Collection[str] | None = None
) -> JourneyMap:
    """Read and validate a map file (``vocabulary``: the tags and orgs expressions may name; None: any;
    ``known_types``: the event types that exist besides the contract's — those the log has carried
    (:func:`omnibank.cx.reading.log_types`); None: any type that matches the pattern)."""
    return _checked(load_yaml(path, JourneyMap, kind=_KIND, shape=_SHAPE), vocabulary, known_types)


def _unknown_types(doc: SpecDoc[JourneyMap], known: Collection[str]) -> list[str]:
    """An event type neither in the data contract nor in the log is refused (most likely a typo)."""
    everything = set(known) | CONTRACT_TYPES
    problems = []
    for loc, ind in doc.value.located_indicators():
        fields: list[tuple[str, str, str | None]] = []
        if ind.events is not None:
            fields += [("events", f, getattr(ind.events, f)) for f in ("count", "per", "of")]
        if ind.within is not None:
            fields += [("within", f, getattr(ind.within, f)) for f in ("start", "end")]
        for source, name, value in fields:
            if value is None or value == "customers" or value in everything:
                continue
            near = difflib.get_close_matches(value, sorted(everything), n=2, cutoff=0.7)
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            problems.append(
                doc.problem(
                    (*loc, source, name), f"{value!r} is not a contract event type nor in the log{hint}"
                )
            )
    return problems


def _checked(
    doc: SpecDoc[JourneyMap], vocabulary: Vocabulary | None, known_types: Collection[str] | None = None
) -> JourneyMap:
    spec = doc.value
    problems: list[str] = [] if known_types is None else _unknown_types(doc, known_types)

    def weights(loc: tuple[int | str, ...], children: list[Any], what: str) -> None:
        total = sum((c.weight for c in children), Decimal(0))
        if abs(total - 1) > TOLERANCE:
            problems.append(doc.problem(loc, f"the weights of the {what} sum to {total}, not 1"))

    def ids(loc: tuple[int | str, ...], children: list[Any]) -> None:
        seen = [c.id for i, c in enumerate(children) if c.id in [d.id for d in children[:i]]]
        if seen:
            problems.append(doc.problem(loc, f"ids repeated: {', '.join(sorted(set(seen)))}"))

    weights(("stages",), spec.stages, "stages")
    ids(("stages",), spec.stages)
    every: list[str] = []
    for si, s in enumerate(spec.stages):
        sl: tuple[int | str, ...] = ("stages", si, "touchpoints")
        weights(sl, s.touchpoints, f"touchpoints of stage {s.id}")
        ids(sl, s.touchpoints)
        for ti, t in enumerate(s.touchpoints):
            tl = (*sl, ti, "experience_points")
            weights(tl, t.experience_points, f"experience points of touchpoint {t.id}")
            ids(tl, t.experience_points)
            for pi, p in enumerate(t.experience_points):
                pl = (*tl, pi, "indicators")
                weights(pl, p.indicators, f"indicators of experience point {p.id}")
                for ii, ind in enumerate(p.indicators):
                    every.append(ind.id)
                    problems += _expressions(doc, (*pl, ii), ind, vocabulary)
    repeated = sorted({i for n, i in enumerate(every) if i in every[:n]})
    if repeated:
        problems.append(doc.problem(("stages",), f"indicator ids repeated: {', '.join(repeated)}"))
    if problems:
        raise doc.refuse(problems)
    return spec


def _expressions(
    doc: SpecDoc[JourneyMap], loc: tuple[int | str, ...], ind: Indicator, vocabulary: Vocabulary | None
) -> list[str]:
    problems = []
    try:
        if ind.events is not None and ind.events.where is not None:
            parse_event_condition(ind.events.where)
    except AppError as exc:
        problems.append(doc.problem((*loc, "events", "where"), exc.message))
    if ind.customers is not None:
        for name in ("of", "share"):
            try:
                parse(getattr(ind.customers, name), vocabulary)
            except AppError as exc:
                problems.append(doc.problem((*loc, "customers", name), exc.message))
    return problems


def unseen_types(spec: JourneyMap, seen: set[str]) -> list[str]:
    """Warnings for the map's event types the log has never carried."""
    return [
        f"{t}: no such event in the log yet"
        + ("" if t in CONTRACT_TYPES else " (not a contract type either)")
        for t in sorted(spec.event_types() - seen)
    ]


__all__ = [
    "CONTRACT_TYPES",
    "CX_TYPES",
    "CustomersSource",
    "EventsSource",
    "ExperiencePoint",
    "Indicator",
    "JourneyMap",
    "Level",
    "Stage",
    "SurveySource",
    "TicketsSource",
    "Touchpoint",
    "WithinSource",
    "load_map",
    "parse_map",
    "unseen_types",
]
