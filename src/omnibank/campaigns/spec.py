"""Campaign definitions: YAML validated by Pydantic, with a published JSON schema.

A campaign is data, not code. It has a period (bank-local dates, inclusive), an optional eligibility
expression over customers (the expression language), an optional card requirement (a condition over
the fields of the customer's ``card.issued`` event: ``product``, ``tier``, ``primary``, ``new_customer``,
``channel``), and rules of two kinds:

* **threshold** rules: a trigger (an event type and a condition over its fields) feeds a counter (how
  many events, or the sum of their ``amount``) that is kept per period (the campaign, a natural week
  Monday–Sunday, a calendar month or year, bank-local); reaching the threshold grants the reward once
  for that period. A window may anchor the rule to the qualifying card (``within_days_of_card: 60``:
  from the day the card was issued to 60 days after it, inclusive). A ``per_event`` rule grants on every
  triggering event instead (e.g. a points exchange: the quantity comes from the event);
* **stage map** rules: cumulative counts over other rules' grants (each granted item lights ``icons``
  icons) unlock each stage's rewards once, in order.

Rewards name a benefit, a quantity, a face value (optionally by card tier), a discount rate, a claim
window and a validity; an activation schedule can spread items over months ("at most 3 take effect per
month, the rest on the 1st of the next month"). Caps limit the items a customer gets per period;
budgets limit the items (and face value) per rule and per campaign.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from omnibank.errors import InputRefused
from omnibank.kit.dates import BankDate
from omnibank.segments.expr import (
    EVENT_FIELDS,
    TYPE_PATTERN,
    And,
    Between,
    Cmp,
    EventPredicate,
    EvField,
    ExpressionError,
    In,
    IsNull,
    Like,
    Node,
    Not,
    Or,
    event_predicate,
    parse,
    parse_event_condition,
)

Per = Literal["campaign", "week", "month", "year"]
Id = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    event: str = Field(description="The event type, e.g. card.transaction.")
    where: str | None = Field(None, description="A condition over the event's fields, e.g. amount >= 99.")

    @field_validator("event")
    @classmethod
    def _type(cls, value: str) -> str:
        if not TYPE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not an event type such as 'card.transaction'")
        return value


class Threshold(_Model):
    count: int | None = Field(None, ge=1, description="Grant when this many triggering events are counted.")
    sum: Money | None = Field(None, description="Grant when their amounts add up to this (CNY).")
    per: Per = Field("campaign", description="The counter starts again each period; one grant per period.")

    @model_validator(mode="after")
    def _one(self) -> Threshold:
        if (self.count is None) == (self.sum is None):
            raise ValueError("give exactly one of count or sum")
        return self


class Activation(_Model):
    per_month: int = Field(ge=1, description="At most this many items take effect per calendar month.")


class Reward(_Model):
    benefit: Id
    quantity: int = Field(1, ge=1, le=1000)
    quantity_from: str | None = Field(None, description="Take the quantity from this event field instead.")
    face_value: Money | None = None
    face_value_by_tier: dict[str, Money] = Field(default_factory=dict)
    discount_rate: Annotated[Decimal, Field(gt=0, le=1)] | None = None
    claim_days: int | None = Field(
        None, ge=0, description="Claim within this many days of the grant (inclusive)."
    )
    valid_days: int | None = Field(None, ge=1, description="Each item is valid this many days (inclusive).")
    activation: Activation | None = None
    points_each: int | None = Field(None, ge=1, description="Points the customer spends per item.")


class Cap(_Model):
    per: Per
    max: int = Field(ge=1, description="At most this many items per customer per period.")


class Budget(_Model):
    count: int | None = Field(None, ge=0, description="Items.")
    face_value: Money | None = Field(None, description="Face value in CNY.")


class Stage(_Model):
    icons: int = Field(ge=1)
    rewards: list[Reward] = Field(min_length=1)


class StageMap(_Model):
    counts: dict[Id, int] = Field(description="Rule id → icons lit by each item that rule grants.")
    stages: list[Stage] = Field(min_length=1)

    @field_validator("stages")
    @classmethod
    def _increasing(cls, stages: list[Stage]) -> list[Stage]:
        icons = [s.icons for s in stages]
        if icons != sorted(set(icons)):
            raise ValueError("stage icon counts must increase")
        return stages


class Rule(_Model):
    id: Id
    name: str = ""
    card: str | None = Field(None, description="Card requirement for this rule (else the campaign's).")
    trigger: Trigger | None = None
    within_days_of_card: int | None = Field(None, ge=0)
    threshold: Threshold | None = None
    per_event: bool = False
    reward: Reward | None = None
    caps: list[Cap] = Field(default_factory=list)
    budget: Budget | None = None
    map: StageMap | None = None

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if self.map is not None:
            if self.trigger or self.threshold or self.reward or self.per_event:
                raise ValueError("a stage map rule has map only (no trigger, threshold, reward)")
        else:
            if self.trigger is None or self.reward is None:
                raise ValueError("a rule needs a trigger and a reward (or a map)")
            if self.per_event == (self.threshold is not None):
                raise ValueError("give a threshold, or per_event: true")
        return self


class CampaignPeriod(_Model):
    start: BankDate
    end: BankDate

    @model_validator(mode="after")
    def _order(self) -> CampaignPeriod:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class CampaignSpec(_Model):
    id: Id
    name: str
    description: str = ""
    period: CampaignPeriod
    eligibility: str | None = Field(None, description="Which customers (the expression language).")
    purpose: Literal["marketing", "profiling", "data_sharing"] | None = Field(
        None,
        description="The consent purpose the campaign uses: only customers whose consent for it holds take "
        "part, checked at every run (a revocation stops the campaign for that customer).",
    )
    card: str | None = Field(None, description="Condition over the customer's card.issued event fields.")
    rules: list[Rule] = Field(min_length=1)
    budget: Budget | None = None

    @model_validator(mode="after")
    def _references(self) -> CampaignSpec:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids repeated: {', '.join(dupes)}")
        for r in self.rules:
            if r.map:
                unknown = sorted(set(r.map.counts) - set(ids))
                if unknown:
                    raise ValueError(f"rule {r.id}: map counts unknown rules {', '.join(unknown)}")
                if any(self._rule(c).map for c in r.map.counts):
                    raise ValueError(f"rule {r.id}: a map cannot count another map")
            if r.within_days_of_card is not None and not (r.card or self.card):
                raise ValueError(f"rule {r.id}: within_days_of_card needs a card requirement")
        return self

    def _rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


def json_schema() -> str:
    """The published JSON schema of campaign files."""
    return json.dumps(CampaignSpec.model_json_schema(), ensure_ascii=False, indent=2)


class Compiled(BaseModel):
    """A campaign with its expressions parsed (event conditions and eligibility)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    spec: CampaignSpec
    card: dict[str, Node | None]  # rule id → card condition (None: any card, or no card needed)
    needs_card: dict[str, bool]
    where: dict[str, Node | None]  # rule id → trigger condition
    card_test: dict[str, EventPredicate]
    where_test: dict[str, EventPredicate]

    def columns(self) -> set[str]:
        """The event log columns the campaign reads."""
        cols: set[str] = {"tier"}
        for node in [*self.card.values(), *self.where.values()]:
            cols |= _columns(node)
        for r in self.spec.rules:
            rewards = (
                [r.reward] if r.reward else [x for st in (r.map.stages if r.map else []) for x in st.rewards]
            )
            for reward in rewards:
                if reward.quantity_from:
                    cols.add(
                        EVENT_FIELDS[reward.quantity_from][1] if reward.quantity_from in EVENT_FIELDS else ""
                    )
                if reward.points_each:
                    cols.add("points")
            if r.threshold and r.threshold.sum is not None:
                cols.add("amount")
        cols.discard("")
        return cols


def _columns(node: Node | None) -> set[str]:
    if node is None:
        return set()
    if isinstance(node, EvField):
        return {node.column}
    out: set[str] = set()
    for child in vars(node).values():
        for item in child if isinstance(child, tuple) else (child,):
            if isinstance(item, EvField | Cmp | And | Or | Not | In | Between | IsNull | Like):
                out |= _columns(item)
    return out


def load_campaign(path: Path) -> CampaignSpec:
    """Read and validate a campaign file; every problem is named with its place in the file."""
    if not path.is_file():
        raise InputRefused(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputRefused(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_campaign(text, source=str(path), where=f"{path}: ", one_line=False)


def parse_campaign(
    text: str, *, source: str = "campaign", where: str = "", one_line: bool = True
) -> CampaignSpec:
    """A campaign definition given as YAML (or JSON) text, checked as a file is: every problem named with
    its place (InputRefused, prefixed with ``where``; the problems on one line, or one a line)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputRefused(f"{where}not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        spec = CampaignSpec.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'campaign'}: {e['msg']}" for e in exc.errors()]
        listed = " " + "; ".join(problems) if one_line else "\n  " + "\n  ".join(problems)
        raise InputRefused(f"{where}campaign refused:{listed}") from None
    compile_campaign(spec, source=source)
    return spec


def compile_campaign(spec: CampaignSpec, *, source: str = "campaign") -> Compiled:
    problems: list[str] = []

    def event_condition(text: str | None, where: str) -> Node | None:
        if text is None:
            return None
        try:
            return parse_event_condition(text)
        except ExpressionError as exc:
            problems.append(f"{where}: {exc.message}")
            return None

    if spec.eligibility:
        try:
            parse(spec.eligibility)
        except ExpressionError as exc:
            problems.append(f"eligibility: {exc.message}")
    cards: dict[str, Node | None] = {}
    needs: dict[str, bool] = {}
    wheres: dict[str, Node | None] = {}
    for i, r in enumerate(spec.rules):
        text = r.card or spec.card
        needs[r.id] = text is not None
        cards[r.id] = event_condition(text, f"rules.{i}.card")
        wheres[r.id] = event_condition(r.trigger.where if r.trigger else None, f"rules.{i}.trigger.where")
    if problems:
        raise InputRefused(f"{source}: campaign refused:\n  " + "\n  ".join(problems))
    for i, r in enumerate(spec.rules):
        for reward in [r.reward] if r.reward else []:
            if reward.quantity_from and reward.quantity_from not in EVENT_FIELDS:
                problems.append(
                    f"rules.{i}.reward.quantity_from: unknown event field {reward.quantity_from!r}"
                )
    if problems:
        raise InputRefused(f"{source}: campaign refused:\n  " + "\n  ".join(problems))
    return Compiled(
        spec=spec,
        card=cards,
        needs_card=needs,
        where=wheres,
        card_test={k: event_predicate(v) for k, v in cards.items()},
        where_test={k: event_predicate(v) for k, v in wheres.items()},
    )
