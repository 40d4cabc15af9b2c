"""Alert rules with owners (X3): rules in YAML, evaluated by one pure function for the worker and backtests.

A rules file holds ``rules:``, each with an ``id``, a ``name`` (Chinese, it heads the ticket), the ticket
``category`` and ``priority``, a ``dedupe`` window and a ``kind``:

* ``response``: a ``survey.response`` matching ``when`` (``survey``, ``nps``/``csat``/``ces`` comparisons
  such as ``{le: 6}``, and ``sentiment`` of its ``comment``: negative, neutral or positive, from
  :mod:`omnibank.cx.text`) → an alert about the customer, for the customer's owner;
* ``event``: an event of ``type`` whose typed columns satisfy ``where`` (the expression language's event
  conditions: ``channel = 'branch'``) and whose other fields satisfy ``fields`` (``wait_min: {gt: 30}``)
  → an alert about the customer (or, with ``subject: branch``, about the branch), for the customer's owner
  (``owner: rm``) or the branch's manager (``owner: branch_manager``);
* ``index_drop``: a branch's experience index of a journey ``map`` falls more than ``points`` week over
  week → an alert about the branch, for its manager (readings come from the live job, weekly);
* ``inflow``: more than ``threshold`` events of ``type`` (``complaint.filed``) in one bank-local clock hour,
  ``per`` branch or for the bank → a surge alert about the branch (or the bank), for its manager.

**One alert per window.** A rule raises at most one alert per subject (customer, branch, the bank) within
its ``dedupe`` window (defaults: a response or event rule 7 days, an index drop a week, an inflow an hour),
so a storm of events opens one ticket, not a storm of them. Each alert carries a deterministic key: the
rule, the subject and the window (the moment of the event that opened it; the hour of an inflow; the week of
an index drop), so running the same events again raises the same keys, which the store keeps once.

**Pure.** :func:`evaluate` takes the rules, events in time order, an :class:`~omnibank.cx.owners.OwnerLookup`
and the dedupe :class:`AlertState` (what was raised before: the live job reads it from ``cx_alerts``) and
returns the alerts; it touches no store. The worker (:mod:`omnibank.cx.alerting`) and :func:`backtest`
call it on the same events and get the same alerts. Sentiment is asked only for the comments of responses
that meet the rule's other conditions, in one batch per call, each distinct text once.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from omnibank.cx.owners import Owner, OwnerLookup
from omnibank.errors import AppError
from omnibank.kit.loading import read_text_file
from omnibank.kit.specfile import SpecDoc, clean_loc, validate_yaml
from omnibank.segments.expr import EventPredicate, event_predicate, parse_event_condition

KINDS = ("response", "event", "index_drop", "inflow")
LABELS = ("negative", "neutral", "positive")
LABEL_WORDS = {"negative": "负面", "neutral": "中性", "positive": "正面"}
RULE_ID = r"^[a-z][a-z0-9_]{0,47}$"
CATEGORY = r"^[a-z][a-z0-9_]{0,31}$"  # a ticket category (omnibank.service.tickets.CATEGORY)
SURVEY_ID = r"^[a-z][a-z0-9_]{0,63}$"
EVENT_TYPE = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: fields an ``event`` rule's ``fields`` may not name: the event's own keys (typed columns such as
#: ``amount`` are better compared in ``where``, which knows their types)
RESERVED_FIELDS = frozenset({"event_id", "type", "customer_id", "ts"})
DEFAULT_WINDOWS = {
    "response": timedelta(days=7),
    "event": timedelta(days=7),
    "index_drop": timedelta(days=7),
    "inflow": timedelta(hours=1),
}
SHAPE = "rules: a list of rules, each with id, name, kind, category, priority, dedupe and its conditions"

Label = Literal["negative", "neutral", "positive"]
Priority = Literal["low", "normal", "high", "urgent"]
#: labels (negative, neutral, positive) of texts, in order
Sentiment = Callable[[Sequence[str]], Sequence[str]]


# ------------------------------------------------------------------------------------------- the rules


class Compare(BaseModel):
    """A comparison of one value: any of ``gt``, ``ge``, ``lt``, ``le``, ``eq`` (all must hold)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gt: Decimal | None = None
    ge: Decimal | None = None
    lt: Decimal | None = None
    le: Decimal | None = None
    eq: Decimal | str | None = None

    @model_validator(mode="after")
    def _some(self) -> Compare:
        if all(v is None for v in (self.gt, self.ge, self.lt, self.le, self.eq)):
            raise ValueError("give at least one of gt, ge, lt, le, eq")
        return self

    def test(self, value: Any) -> bool:
        """Whether ``value`` satisfies every bound; a missing or non-numeric value does not."""
        if value is None or isinstance(value, bool):
            return False
        if isinstance(self.eq, str):
            return isinstance(value, str) and value == self.eq and self._numeric_bounds_unset()
        number = _number(value)
        if number is None:
            return False
        return (
            (self.gt is None or number > self.gt)
            and (self.ge is None or number >= self.ge)
            and (self.lt is None or number < self.lt)
            and (self.le is None or number <= self.le)
            and (self.eq is None or number == self.eq)
        )

    def _numeric_bounds_unset(self) -> bool:
        return self.gt is None and self.ge is None and self.lt is None and self.le is None

    def words(self) -> str:
        ops = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("eq", "="))
        return " ".join(
            f"{sign} {getattr(self, name)}" for name, sign in ops if getattr(self, name) is not None
        )


def _number(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float | str):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


class Window(BaseModel):
    """A dedupe window: ``{days: 7}`` or ``{hours: 1}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: int | None = Field(default=None, ge=1, le=366)
    hours: int | None = Field(default=None, ge=1, le=24 * 366)

    @model_validator(mode="after")
    def _one(self) -> Window:
        if (self.days is None) == (self.hours is None):
            raise ValueError("give exactly one of days, hours")
        return self

    @property
    def delta(self) -> timedelta:
        return timedelta(days=self.days) if self.days is not None else timedelta(hours=self.hours or 0)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=RULE_ID)
    name: str = Field(min_length=1, max_length=60)
    category: str = Field(pattern=CATEGORY)
    priority: Priority = "normal"
    dedupe: Window | None = None

    @property
    def window(self) -> timedelta:
        kind: str = getattr(self, "kind")  # noqa: B009 - every rule model has its kind
        return self.dedupe.delta if self.dedupe is not None else DEFAULT_WINDOWS[kind]


class ResponseWhen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    survey: list[str] | None = None
    nps: Compare | None = None
    csat: Compare | None = None
    ces: Compare | None = None
    sentiment: list[Label] | None = None

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for name in ("survey", "sentiment"):
                if isinstance(data.get(name), str):
                    data[name] = [data[name]]
        return data

    @model_validator(mode="after")
    def _check(self) -> ResponseWhen:
        if all(v is None for v in (self.nps, self.csat, self.ces, self.sentiment)):
            raise ValueError("give at least one of nps, csat, ces, sentiment")
        for survey in self.survey or ():
            if not re.match(SURVEY_ID, survey):
                raise ValueError(
                    f"survey: {survey[:70]!r} is not a survey id (lower-case letters, digits, _)"
                )
        return self


class ResponseRule(_Rule):
    kind: Literal["response"]
    when: ResponseWhen
    owner: Literal["rm", "branch_manager"] = "rm"


class EventRule(_Rule):
    kind: Literal["event"]
    type: str = Field(pattern=EVENT_TYPE)
    where: str | None = Field(default=None, max_length=4000)
    fields: dict[str, Compare] = Field(default_factory=dict)
    owner: Literal["rm", "branch_manager"] = "rm"
    subject: Literal["customer", "branch"] = "customer"

    @model_validator(mode="after")
    def _check(self) -> EventRule:
        for name in self.fields:
            if not FIELD_NAME.match(name) or name in RESERVED_FIELDS:
                raise ValueError(f"fields: {name[:70]!r} is not a field name (lower-case letters, digits, _)")
        if self.subject == "branch" and self.owner != "branch_manager":
            raise ValueError("owner: a branch's alert goes to the branch manager (owner: branch_manager)")
        return self


class IndexDropRule(_Rule):
    kind: Literal["index_drop"]
    map: str = Field(min_length=1, max_length=500)
    points: Decimal = Field(gt=0, le=100)
    owner: Literal["branch_manager"] = "branch_manager"


class InflowRule(_Rule):
    kind: Literal["inflow"]
    type: str = Field(default="complaint.filed", pattern=EVENT_TYPE)
    per: Literal["branch", "bank"] = "branch"
    threshold: int = Field(ge=1, le=1_000_000)
    owner: Literal["branch_manager"] = "branch_manager"


AnyRule = ResponseRule | EventRule | IndexDropRule | InflowRule
_MODELS: dict[str, type[_Rule]] = {
    "response": ResponseRule,
    "event": EventRule,
    "index_drop": IndexDropRule,
    "inflow": InflowRule,
}


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True)
class _Compiled:
    rule: AnyRule
    window: timedelta
    where: EventPredicate | None = None
    fields: tuple[tuple[str, Compare], ...] = ()
    surveys: frozenset[str] | None = None
    sentiment: frozenset[str] | None = None
    weekday: bool = False  # ``where`` names the bank-local weekday


@dataclass(frozen=True)
class RuleSet:
    """Validated rules, compiled once; ``source`` names the file, ``base`` is where its maps are found."""

    rules: tuple[AnyRule, ...]
    source: str = "rules"
    base: Path | None = None
    compiled: tuple[_Compiled, ...] = ()

    @property
    def types(self) -> frozenset[str]:
        """The event types the rules read."""
        out: set[str] = set()
        for r in self.rules:
            if isinstance(r, ResponseRule):
                out.add("survey.response")
            elif isinstance(r, EventRule | InflowRule):
                out.add(r.type)
        return frozenset(out)

    def rule(self, rule_id: str) -> AnyRule:
        return next(r for r in self.rules if r.id == rule_id)

    def map_path(self, rule: IndexDropRule) -> Path:
        path = Path(rule.map)
        return path if path.is_absolute() or self.base is None else self.base / path


def _compile(rule: AnyRule) -> _Compiled:
    if isinstance(rule, ResponseRule):
        w = rule.when
        scores = tuple((n, c) for n, c in (("nps", w.nps), ("csat", w.csat), ("ces", w.ces)) if c is not None)
        return _Compiled(
            rule, rule.window, fields=scores, surveys=frozenset(w.survey) if w.survey else None,
            sentiment=frozenset(w.sentiment) if w.sentiment else None,
        )  # fmt: skip
    if isinstance(rule, EventRule):
        where = event_predicate(parse_event_condition(rule.where)) if rule.where else None
        weekday = bool(rule.where and re.search(r"\bweekday\b", rule.where, re.IGNORECASE))
        return _Compiled(rule, rule.window, where=where, fields=tuple(rule.fields.items()), weekday=weekday)
    return _Compiled(rule, rule.window)


def ruleset(rules: Sequence[AnyRule], *, source: str = "rules", base: Path | None = None) -> RuleSet:
    """A rule set of rules already validated (a test's, or a console form's)."""
    return RuleSet(tuple(rules), source, base, tuple(_compile(r) for r in rules))


def parse_rules(text: str, *, source: str = "alert rules", base: Path | None = None) -> RuleSet:
    """Validate a rules file's text; every problem is named with its field and line, all at once."""
    doc: SpecDoc[RulesFile] = validate_yaml(text, RulesFile, source=source, kind="alert rules", shape=SHAPE)
    problems: list[str] = []
    rules: list[AnyRule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(doc.value.rules):
        at: tuple[int | str, ...] = ("rules", i)
        kind = raw.get("kind")
        model = _MODELS.get(kind) if isinstance(kind, str) else None
        if model is None:
            problems.append(doc.problem((*at, "kind"), f"give one of {', '.join(KINDS)}"))
            continue
        try:
            rule: AnyRule = model.model_validate(raw)  # type: ignore[assignment]
        except ValidationError as exc:
            for e in exc.errors():
                message = str(e["msg"]).removeprefix("Value error, ")
                problems.append(doc.problem((*at, *clean_loc(tuple(e["loc"]))), message))
            continue
        if rule.id in seen:
            problems.append(doc.problem((*at, "id"), f"{rule.id} is also rule {seen[rule.id]}'s id"))
        seen.setdefault(rule.id, i)
        if isinstance(rule, EventRule) and rule.where:
            try:
                parse_event_condition(rule.where)
            except AppError as exc:
                problems.append(doc.problem((*at, "where"), exc.message))
                continue
        if isinstance(rule, IndexDropRule):
            path = Path(rule.map) if Path(rule.map).is_absolute() or base is None else base / rule.map
            if not path.is_file():
                problems.append(doc.problem((*at, "map"), f"no journey map file {path}"))
            else:
                try:
                    importlib.import_module("omnibank.cx.maps").load_map(path)
                except ImportError:
                    pass  # checked when the worker reads the index
                except AppError as exc:
                    problems.append(doc.problem((*at, "map"), " ".join(exc.message.split())[:400]))
        rules.append(rule)
    if problems:
        raise doc.refuse(problems)
    return ruleset(rules, source=source, base=base)


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rules file (maps are found beside it)."""
    return parse_rules(read_text_file(path), source=str(path), base=path.parent)


# ------------------------------------------------------------------------------------------- evaluation


class AlertEvent(NamedTuple):
    """One event as the rules see it: ``fields`` holds its other fields (payload and typed columns)."""

    event_id: str
    type: str
    customer_id: str
    ts: datetime  # aware
    channel: str | None
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class IndexReading:
    """A branch's experience index of an ``index_drop`` rule's map: the week starting ``week`` (a bank-local
    Monday) and the week before; ``at``: when it was read (the alert's moment)."""

    rule_id: str
    week: date
    branch_id: str
    previous: Decimal | None
    current: Decimal | None
    at: datetime


@dataclass(frozen=True)
class Alert:
    key: str  # cx:<rule>:<subject>:<window>, deterministic
    rule_id: str
    kind: str  # the rule's kind
    subject_kind: Literal["customer", "branch", "bank"]
    subject_id: str  # customer id, branch id, or "bank"
    customer_id: str | None
    branch_id: str | None
    owner_staff_id: str | None
    owner_queue: str | None
    reason: str  # why this owner
    event_id: str | None  # the event that raised it (None: an index reading)
    raised_at: datetime  # the moment of that event (or reading)
    context: str  # a few words for the ticket's subject; never personal data
    window_start: datetime  # when its dedupe window opened (the event's moment, the hour, the week)
    channel: str | None = None

    @property
    def owner(self) -> str:
        return self.owner_staff_id or f"queue:{self.owner_queue}"


@dataclass
class AlertState:
    """What evaluation remembers: the windows opened per (rule, subject) and inflow counts per hour. The live
    job fills it from ``cx_alerts`` (and the log) before a run; a backtest starts empty."""

    opened: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)  # windows opened
    inflow: dict[tuple[str, str, datetime], int] = field(default_factory=dict)


def text_sentiment(texts: Sequence[str]) -> list[str]:
    """Labels of ``texts`` from :mod:`omnibank.cx.text` (imported when first needed)."""
    text = importlib.import_module("omnibank.cx.text")
    return [str(f.label) for f in text.analyse(list(texts))]


def _stamp(moment: datetime) -> str:
    u = moment.astimezone(UTC)  # as strftime("%Y%m%dT%H%M%SZ"), three times faster
    return f"{u.year:04d}{u.month:02d}{u.day:02d}T{u.hour:02d}{u.minute:02d}{u.second:02d}Z"


def _hour(moment: datetime, tz: tzinfo) -> datetime:
    return moment.astimezone(tz).replace(minute=0, second=0, microsecond=0)


def _subject(kind: str, subject_id: str) -> str:
    return "bank" if kind == "bank" else f"{kind[0]}:{subject_id}"


def _fresh(state: AlertState, rule_id: str, subject: str, at: datetime, window: timedelta) -> bool:
    """Whether no alert of the rule about the subject lies within ``window`` of ``at`` (and remember it)."""
    opened = state.opened.get((rule_id, subject))
    if opened is None:
        state.opened[(rule_id, subject)] = [at]
        return True
    for start in opened:
        if abs(at - start) < window:
            return False
    opened.append(at)
    return True


def _context(c: _Compiled, e: AlertEvent, label: str | None) -> str:
    parts = []
    for name, _cmp in c.fields:
        value = e.fields.get(name)
        if value is not None:
            parts.append(f"{name.upper() if name in ('nps', 'csat', 'ces') else name} {value}")
    if label is not None:
        parts.append(f"{LABEL_WORDS.get(label, label)}评价")
    return " · ".join(parts)[:80]


def _matches(c: _Compiled, e: AlertEvent, tz: tzinfo) -> bool:
    """The rule's conditions but sentiment."""
    if c.surveys is not None and e.fields.get("survey") not in c.surveys:
        return False
    if c.where is not None:
        columns = e.fields
        if c.weekday or columns.get("channel") != e.channel:
            columns = {**columns, "channel": e.channel}
            if c.weekday:
                columns["weekday"] = e.ts.astimezone(tz).isoweekday()
        if not c.where(columns):
            return False
    for name, cmp in c.fields:  # noqa: SIM110 - no generator per event: the hot path
        if not cmp.test(e.fields.get(name)):
            return False
    return True


def evaluate(
    rules: RuleSet,
    events: Iterable[AlertEvent],
    *,
    owners: OwnerLookup,
    state: AlertState,
    tz: tzinfo = UTC,
    sentiment: Sentiment | None = None,
    readings: Sequence[IndexReading] = (),
) -> list[Alert]:
    """The alerts ``events`` (in time order) and index ``readings`` raise (see the module's docstring);
    ``state`` is updated with them. ``tz``: the bank's zone (inflow counts bank-local clock hours)."""
    by_type: dict[str, list[_Compiled]] = {}
    for c in rules.compiled:
        if isinstance(c.rule, ResponseRule):
            by_type.setdefault("survey.response", []).append(c)
        elif isinstance(c.rule, EventRule | InflowRule):
            by_type.setdefault(c.rule.type, []).append(c)
    # first pass: the cheap conditions; comments to be read are gathered for one batch
    candidates: list[tuple[_Compiled, AlertEvent]] = []
    texts: dict[str, str | None] = {}
    for e in events:
        for c in by_type.get(e.type, ()):
            if isinstance(c.rule, InflowRule):
                candidates.append((c, e))
                continue
            if not _matches(c, e, tz):
                continue
            if c.sentiment is not None:
                comment = e.fields.get("comment")
                if not isinstance(comment, str) or not comment.strip():
                    continue
                texts.setdefault(comment, None)
            candidates.append((c, e))
    if texts:
        distinct = list(texts)
        for text, label in zip(distinct, (sentiment or text_sentiment)(distinct), strict=True):
            texts[text] = label
    alerts: list[Alert] = []
    for c, e in candidates:
        alert = _decide(c, e, texts, owners, state, tz)
        if alert is not None:
            alerts.append(alert)
    for reading in readings:
        alert = _index_alert(rules, reading, owners, state, tz)
        if alert is not None:
            alerts.append(alert)
    return alerts


def _decide(
    c: _Compiled, e: AlertEvent, texts: Mapping[str, str | None], owners: OwnerLookup, state: AlertState,
    tz: tzinfo,
) -> Alert | None:  # fmt: skip
    rule = c.rule
    if isinstance(rule, InflowRule):
        return _inflow(rule, c, e, owners, state, tz)
    label = None
    if c.sentiment is not None:
        label = texts.get(str(e.fields.get("comment")))
        if label not in c.sentiment:
            return None
    assert isinstance(rule, ResponseRule | EventRule)
    event_branch = e.fields.get("branch_id")
    branch = (
        event_branch if isinstance(event_branch, str) and event_branch else owners.branch_of(e.customer_id)
    )
    if isinstance(rule, EventRule) and rule.subject == "branch":
        if branch is None:
            return None  # a branch's alert needs a branch
        subject_kind: Literal["customer", "branch", "bank"] = "branch"
        subject_id = branch
        owner = owners.of_branch(branch)
    else:
        subject_kind, subject_id = "customer", e.customer_id
        owner = owners.of_customer(e.customer_id, prefer=rule.owner, branch_id=branch)
    subject = _subject(subject_kind, subject_id)
    if not _fresh(state, rule.id, subject, e.ts, c.window):
        return None
    return _alert(
        rule, subject_kind, subject_id, subject, _stamp(e.ts), owner, e, _context(c, e, label), branch, e.ts
    )


def _alert(
    rule: AnyRule, subject_kind: Literal["customer", "branch", "bank"], subject_id: str, subject: str,
    window: str, owner: Owner, e: AlertEvent, context: str, branch: str | None, window_at: datetime,
) -> Alert:  # fmt: skip
    return Alert(
        key=f"cx:{rule.id}:{subject}:{window}", rule_id=rule.id, kind=rule.kind, subject_kind=subject_kind,
        subject_id=subject_id, customer_id=e.customer_id if subject_kind == "customer" else None,
        branch_id=branch, owner_staff_id=owner.staff_id, owner_queue=owner.queue, reason=owner.reason,
        event_id=e.event_id, raised_at=e.ts, context=context, window_start=window_at, channel=e.channel,
    )  # fmt: skip


def _inflow_subject(rule: InflowRule, e: AlertEvent, owners: OwnerLookup) -> str | None:
    if rule.per == "bank":
        return "bank"
    event_branch = e.fields.get("branch_id")
    if isinstance(event_branch, str) and event_branch:
        return event_branch
    return owners.branch_of(e.customer_id)


def prime_inflow(
    rules: RuleSet, events: Iterable[AlertEvent], *, owners: OwnerLookup, state: AlertState, tz: tzinfo
) -> None:
    """Count events already acted on (read in an earlier pass) into the inflow counts of their hours, so an
    hour split over two passes is counted whole; raises nothing."""
    inflow = [r for r in rules.rules if isinstance(r, InflowRule)]
    for e in events:
        for rule in inflow:
            if e.type != rule.type:
                continue
            subject_id = _inflow_subject(rule, e, owners)
            if subject_id is not None:
                counter = (rule.id, subject_id, _hour(e.ts, tz))
                state.inflow[counter] = state.inflow.get(counter, 0) + 1


def _inflow(
    rule: InflowRule, c: _Compiled, e: AlertEvent, owners: OwnerLookup, state: AlertState, tz: tzinfo
) -> Alert | None:
    subject_kind: Literal["customer", "branch", "bank"] = "bank" if rule.per == "bank" else "branch"
    subject_id = _inflow_subject(rule, e, owners)
    if subject_id is None:
        return None
    hour = _hour(e.ts, tz)
    counter = (rule.id, subject_id, hour)
    count = state.inflow.get(counter, 0) + 1
    state.inflow[counter] = count
    if count != rule.threshold + 1:
        return None
    subject = _subject(subject_kind, subject_id)
    if not _fresh(state, rule.id, subject, hour, c.window):
        return None
    owner = owners.of_bank() if subject_kind == "bank" else owners.of_branch(subject_id)
    local = hour.strftime("%Y%m%dT%H")
    context = f"{hour.strftime('%m-%d %H')}时 超过{rule.threshold}件"
    branch = None if subject_kind == "bank" else subject_id
    return _alert(rule, subject_kind, subject_id, subject, local, owner, e, context, branch, hour)


def _index_alert(
    rules: RuleSet, reading: IndexReading, owners: OwnerLookup, state: AlertState, tz: tzinfo
) -> Alert | None:
    rule = rules.rule(reading.rule_id)
    if not isinstance(rule, IndexDropRule) or reading.previous is None or reading.current is None:
        return None
    drop = reading.previous - reading.current
    if drop <= rule.points:
        return None
    subject = _subject("branch", reading.branch_id)
    week_start = datetime.combine(reading.week, datetime.min.time(), tzinfo=tz)
    if not _fresh(state, rule.id, subject, week_start, rule.window):
        return None
    owner = owners.of_branch(reading.branch_id)
    iso = reading.week.isocalendar()
    context = f"{iso.year}-W{iso.week:02d} 体验指数下降{drop.quantize(Decimal('0.1'))}分"
    return Alert(
        key=f"cx:{rule.id}:{subject}:{iso.year}W{iso.week:02d}", rule_id=rule.id, kind=rule.kind,
        subject_kind="branch", subject_id=reading.branch_id, customer_id=None, branch_id=reading.branch_id,
        owner_staff_id=owner.staff_id, owner_queue=owner.queue, reason=owner.reason, event_id=None,
        raised_at=reading.at, context=context, window_start=week_start,
    )  # fmt: skip


def event_of(event_id: str, type_: str, customer_id: str, ts: datetime, channel: str | None,
             obj: Mapping[str, Any], columns: Mapping[str, Any]) -> AlertEvent:  # fmt: skip
    """An :class:`AlertEvent` from an event object (its JSON fields) and its typed columns."""
    fields = {k: v for k, v in obj.items() if k not in RESERVED_FIELDS}
    fields.update(columns)
    fields["channel"] = channel
    return AlertEvent(event_id, type_, customer_id, ts, channel, fields)
