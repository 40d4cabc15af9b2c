"""Staff rewards (员工奖励, M3): the rules as data, what each member of staff earned in a bank-local month
through the customers bound to them, and the append-only staff reward ledger it is posted to.

Rules (``examples/invites/rewards.yaml``) are a YAML list validated by Pydantic; a problem is named with the
file, the rule and the field. Two kinds:

* ``per_event``: a fixed ``amount`` for each event of type ``event`` of a bound customer (e.g. 50.00 per
  new card: ``card.issued`` with ``where: {new_customer: true}``), within ``within_days`` (default 90) after
  the customer's binding;
* ``share_of_amount``: ``rate`` (a decimal, e.g. ``0.003``) of the summed ``amount`` of the events
  (default ``card.transaction``) within ``within_days`` (default 30), rounded half up to the fen.

Both may be capped per member of staff per month (``cap_per_month``). ``where`` holds equality filters on
the event's typed fields (an allow-list; values are quoted literals, never SQL from the file). Amounts are
read exactly: the YAML's numbers become ``Decimal`` from their text, never a binary float.

A month's figures are read with one DuckDB query per rule over the event log (the bindings registered as
an Arrow table and joined), not a query per customer.

The ledger: a posting is a positive amount in fen with a direction; the first figure of (rule, staff
member, month) is a credit keyed ``reward:{rule}:{staff}:{period}``. Posting the same figure again changes
nothing; a changed figure (late events, a changed rule) is corrected by a debit reversing the live credit
(key ``…:rev:{id}``, ``reverses`` set) and a new credit (``…:v{n}``). Nothing is edited or deleted; a
balance is derived (credits − debits) and :func:`verify` checks the whole ledger.

Flushes only; the caller commits.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.config import Settings
from omnibank.errors import Conflict, InputRefused, NotFound
from omnibank.events.log import duck, sql_string
from omnibank.events.reader import TYPE_FIELDS, event_sql, wanted_fields
from omnibank.invites.models import InviteBinding, StaffRewardEntry
from omnibank.kit.loading import read_text_file
from omnibank.kit.money import FEN, MAX_CNY, from_fen, to_fen
from omnibank.orgs.models import Org
from omnibank.segments.expr import TYPE_PATTERN

#: what ``where`` may filter on: the rule file's name → (the log's column, the value's type)
WHERE_FIELDS: dict[str, tuple[str, type]] = {
    "channel": ("channel", str),
    "product": ("product", str),
    "tier": ("tier", str),
    "primary": ("is_primary", bool),
    "new_customer": ("new_customer", bool),
    "merchant": ("merchant", str),
    "mcc": ("mcc", str),
    "product_id": ("product_id", str),
    "reward": ("reward", str),
}
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_FIGURE = re.compile(r"\d[\d,]*\.\d{2}(?!\d)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000

RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Money = Annotated[Decimal, Field(gt=0, lt=MAX_CNY, decimal_places=2)]


# --------------------------------------------------------------------------------------------- the rules


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("write it as a decimal string such as '0.003' (a float is not exact)")
    return value


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId
    name: str = Field(min_length=1, max_length=100, description="Shown to staff, e.g. 新客办卡奖励.")
    event: str
    where: dict[str, Any] = Field(default_factory=dict, description="Equality filters on the event's fields.")
    cap_per_month: Money | None = Field(None, description="At most this much per member of staff a month.")

    @field_validator("cap_per_month", mode="before")
    @classmethod
    def _exact_cap(cls, value: Any) -> Any:
        return _no_float(value)

    @field_validator("event")
    @classmethod
    def _type(cls, value: str) -> str:
        if not TYPE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not an event type such as 'card.issued'")
        return value

    @model_validator(mode="after")
    def _filters(self) -> _Rule:
        known = TYPE_FIELDS.get(self.event)
        for name, value in self.where.items():
            if name not in WHERE_FIELDS:
                raise ValueError(
                    f"where.{name}: not a field a rule can filter on ({', '.join(WHERE_FIELDS)})"
                )
            column, kind = WHERE_FIELDS[name]
            values = value if isinstance(value, list) and kind is str else [value]
            if not values or any(type(v) is not kind for v in values):
                wanted = "true or false" if kind is bool else "a text value or a list of them"
                raise ValueError(f"where.{name}: {value!r} is not {wanted}")
            if known is not None and column not in known:
                raise ValueError(f"where.{name}: {self.event} events carry no {name}")
        return self


class PerEventRule(_Rule):
    kind: Literal["per_event"]
    amount: Money = Field(description="CNY per event, e.g. '50.00'.")
    within_days: int = Field(90, ge=1, le=3660, description="Events this many days after the binding.")

    @field_validator("amount", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        return _no_float(value)


class ShareRule(_Rule):
    kind: Literal["share_of_amount"]
    event: str = "card.transaction"
    rate: Decimal = Field(gt=0, le=1, decimal_places=8, description="Of the summed amount, e.g. '0.003'.")
    within_days: int = Field(30, ge=1, le=3660, description="Events this many days after the binding.")

    @field_validator("rate", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        return _no_float(value)

    @model_validator(mode="after")
    def _amounts(self) -> ShareRule:
        known = TYPE_FIELDS.get(self.event)
        if known is not None and "amount" not in known:
            raise ValueError(f"event: {self.event} events carry no amount to take a share of")
        return self


Rule = Annotated[PerEventRule | ShareRule, Field(discriminator="kind")]


class RewardRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> RewardRules:
        seen: set[str] = set()
        for r in self.rules:
            if r.id in seen:
                raise ValueError(f"rule id {r.id!r} is used twice")
            seen.add(r.id)
        return self


class _ExactLoader(yaml.SafeLoader):
    """YAML whose floats are read as ``Decimal`` from their text: ``0.003`` is 0.003, not the nearest
    binary float."""


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a finite number", node.start_mark
        )
    return value


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _decimal)


def load_rules(path: Path) -> RewardRules:
    """Read and check a rules file; every problem is named with the file, the rule and the field."""
    return parse_rules(read_text_file(path), source=str(path))


def parse_rules(text: str, *, source: str = "rules") -> RewardRules:
    """Reward rules given as YAML text (InputRefused naming ``source``, the rule and the field)."""
    try:
        raw = yaml.load(text, Loader=_ExactLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise InputRefused(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(raw, list):
        raw = {"rules": raw}
    try:
        return RewardRules.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(e, raw) for e in exc.errors()]
        raise InputRefused(f"{source}: reward rules refused:\n  " + "\n  ".join(problems)) from None


def _problem(error: Any, raw: Any) -> str:
    loc = list(error["loc"])
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        msg = "kind: must be per_event or share_of_amount"
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        i = loc[1]
        rest = loc[2:]
        if rest and rest[0] in ("per_event", "share_of_amount"):
            rest = rest[1:]
        rules = raw.get("rules") if isinstance(raw, dict) else None
        rid = rules[i].get("id") if isinstance(rules, list) and isinstance(rules[i], dict) else None
        who = f"rule {rid!r} (rules[{i}])" if isinstance(rid, str) else f"rules[{i}]"
        where = ".".join(str(p) for p in rest)
        return f"{who}: {where}: {msg}" if where else f"{who}: {msg}"
    where = ".".join(str(p) for p in loc)
    return f"{where}: {msg}" if where else msg


# --------------------------------------------------------------------------------------------- a period


@dataclass(frozen=True)
class Period:
    """A bank-local calendar month: ``start`` (inclusive) to ``end`` (exclusive)."""

    text: str
    start: datetime
    end: datetime


def parse_period(text: str, tz: ZoneInfo) -> Period:
    m = _PERIOD.match(text.strip())
    if not m:
        raise InputRefused(f"--period: {text!r} is not a month such as 2026-11")
    year, month = int(m.group(1)), int(m.group(2))
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return Period(f"{year:04d}-{month:02d}", start, end)


def last_month(now: datetime, tz: ZoneInfo) -> str:
    """The bank-local month before the one ``now`` falls in."""
    local = now.astimezone(tz)
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


# ------------------------------------------------------------------------------------------- the figures


@dataclass(frozen=True)
class RewardLine:
    """What one member of staff earned under one rule in a month, and why."""

    staff_id: str
    rule: str
    name: str
    events: int  # events counted
    basis: Decimal  # what the rule works on: events × amount (per_event), the summed amounts (share)
    reward: Decimal  # after the cap
    capped: bool
    why: str  # ends with the reward: "3 card.issued × 50.00 = 150.00"


def _cny(value: Decimal) -> str:
    return f"{value:,.2f}"


def _percent(rate: Decimal) -> str:
    shown = (rate * 100).normalize()
    return f"{shown:f}%"


def figure(rule: PerEventRule | ShareRule, staff_id: str, events: int, amount_sum: Decimal) -> RewardLine:
    """A rule's reward for ``events`` events whose amounts add up to ``amount_sum``: per event, or the
    rate's share rounded half up to the fen; then the monthly cap."""
    if isinstance(rule, PerEventRule):
        basis = rule.amount * events
        raw = basis
        why = f"{events} {rule.event} × {_cny(rule.amount)} = {_cny(raw)}"
    else:
        basis = amount_sum
        raw = (rule.rate * amount_sum).quantize(FEN, rounding=ROUND_HALF_UP)
        why = f"{_percent(rule.rate)} of {_cny(amount_sum)} ({events} {rule.event}) = {_cny(raw)}"
    capped = rule.cap_per_month is not None and raw > rule.cap_per_month
    reward = rule.cap_per_month if capped and rule.cap_per_month is not None else raw
    if capped:
        why += f", capped at {_cny(reward)} a month"
    return RewardLine(
        staff_id, rule.id, rule.name, events, basis.quantize(FEN), reward.quantize(FEN), capped, why
    )


def _where_sql(where: dict[str, Any]) -> str | None:
    parts = []
    for name, value in sorted(where.items()):
        column = WHERE_FIELDS[name][0]
        if isinstance(value, bool):
            parts.append(f"{column} = {'TRUE' if value else 'FALSE'}")
        elif isinstance(value, list):
            parts.append(f"{column} IN ({', '.join(sql_string(v) for v in value)})")
        else:
            parts.append(f"{column} = {sql_string(value)}")
    return " AND ".join(parts) or None


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def compute(
    session: Session, settings: Settings, rules: RewardRules, period: str, *, org: str | None = None
) -> list[RewardLine]:
    """Each member of staff's reward under each rule in ``period`` (a bank-local month ``YYYY-MM``): over
    the customers bound to them (bindings whose org path holds ``org``, when given), the rule's events in
    that month and within its window after the binding. Members of staff with no such event have no line."""
    p = parse_period(period, settings.tz)
    longest = max(r.within_days for r in rules.rules)
    stmt = select(InviteBinding.customer_id, InviteBinding.staff_id, InviteBinding.bound_at).where(
        InviteBinding.bound_at < p.end, InviteBinding.bound_at >= p.start - timedelta(days=longest)
    )
    if org is not None:
        if session.get(Org, org) is None:
            raise NotFound(f"no org {org} (see omnibank org tree)")
        stmt = stmt.where(InviteBinding.org_path.contains(f"/{org}/", autoescape=True))
    bindings = session.execute(stmt).all()
    if not bindings:
        return []
    table = pa.table(
        {
            "customer_id": pa.array([b.customer_id for b in bindings], pa.string()),
            "staff_id": pa.array([b.staff_id for b in bindings], pa.string()),
            "bound_us": pa.array([_micros(b.bound_at) for b in bindings], pa.int64()),
        }
    )
    lines: list[RewardLine] = []
    con = duck(settings)
    try:
        con.register("_reward_bindings", table)
        for rule in rules.rules:
            fields = wanted_fields({"amount", *(WHERE_FIELDS[k][0] for k in rule.where)})
            events = event_sql(
                con,
                settings,
                fields=fields,
                types=[rule.event],
                where=_where_sql(rule.where),
                since=p.start,
                until=p.end - timedelta(microseconds=1),
                ordered=False,
            )
            window = rule.within_days * _DAY_US
            totals = con.execute(f"""
                SELECT b.staff_id, count(*), coalesce(sum(e.amount), 0)
                FROM ({events}) AS e JOIN _reward_bindings AS b ON e.customer_id = b.customer_id
                WHERE e.ts_us >= b.bound_us AND e.ts_us < b.bound_us + {window}
                GROUP BY b.staff_id
            """).fetchall()
            for staff_id, n, fen in totals:
                lines.append(figure(rule, str(staff_id), int(n), from_fen(int(fen))))
    finally:
        con.close()
    order = {r.id: i for i, r in enumerate(rules.rules)}
    return sorted(lines, key=lambda line: (line.staff_id, order[line.rule]))


# ---------------------------------------------------------------------------------------------- posting

Action = Literal["new", "unchanged", "corrected", "withdrawn"]


@dataclass(frozen=True)
class Posted:
    staff_id: str
    rule: str
    period: str
    action: Action
    amount: Decimal  # the figure now (0: withdrawn)
    previous: Decimal | None  # the live credit before (None: there was none)


@dataclass(frozen=True)
class PostReport:
    period: str
    lines: list[RewardLine]
    posted: list[Posted]

    def count(self, action: Action) -> int:
        return sum(1 for p in self.posted if p.action == action)


def base_key(rule: str, staff_id: str, period: str) -> str:
    return f"reward:{rule}:{staff_id}:{period}"


def _entries(
    session: Session, *, period: str | None = None, rules: Iterable[str] | None = None
) -> list[StaffRewardEntry]:
    stmt = select(StaffRewardEntry).order_by(StaffRewardEntry.id)
    if period is not None:
        stmt = stmt.where(StaffRewardEntry.period == period)
    if rules is not None:
        stmt = stmt.where(StaffRewardEntry.rule.in_(sorted(rules)))
    return list(session.scalars(stmt.execution_options(populate_existing=True)))


def _live(entries: Sequence[StaffRewardEntry]) -> list[StaffRewardEntry]:
    reversed_ids = {e.reverses for e in entries if e.direction == "debit" and e.reverses is not None}
    return [e for e in entries if e.direction == "credit" and e.id not in reversed_ids]


def _add(session: Session, entry: StaffRewardEntry) -> StaffRewardEntry:
    try:
        with session.begin_nested():
            session.add(entry)
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"{entry.key} was posted meanwhile by another run: run it again to post what is still due"
        ) from None
    return entry


def post(
    session: Session, settings: Settings, rules: RewardRules, period: str, *, now: datetime, actor: str
) -> PostReport:
    """Compute ``period`` for the whole bank and bring the ledger to it (:func:`post_lines`). Audited once
    when anything was posted."""
    p = parse_period(period, settings.tz)
    lines = compute(session, settings, rules, p.text)
    rule_ids = [r.id for r in rules.rules]
    report = PostReport(p.text, lines, post_lines(session, lines, rules=rule_ids, period=p.text, now=now,
                                                  actor=actor))  # fmt: skip
    changed = {a: report.count(a) for a in ("new", "corrected", "withdrawn")}
    if any(changed.values()):
        audit.record(session, actor=actor, action="invites.rewards.post", subject_type="period",
                     subject_id=p.text, detail={"rules": rule_ids, **changed}, at=now)  # fmt: skip
    return report


def post_lines(
    session: Session,
    lines: Sequence[RewardLine],
    *,
    rules: Sequence[str],
    period: str,
    now: datetime,
    actor: str,
) -> list[Posted]:
    """Bring the ledger's live credits of ``rules`` in ``period`` to ``lines`` (the month's whole figures):
    a new figure is credited; the same figure posts nothing; a changed one reverses the live credit and
    credits the new figure; a live credit with no figure now (or zero) is only reversed."""
    if _PERIOD.match(period) is None:
        raise InputRefused(f"{period!r} is not a month such as 2026-11")
    wanted = {(line.rule, line.staff_id): line for line in lines if line.rule in rules}
    entries = _entries(session, period=period, rules=rules)
    credits: dict[tuple[str, str], int] = defaultdict(int)
    for e in entries:
        if e.direction == "credit":
            credits[(e.rule, e.staff_id)] += 1
    live: dict[tuple[str, str], StaffRewardEntry] = {}
    for e in _live(entries):
        if (e.rule, e.staff_id) in live:
            raise Conflict(
                f"{e.staff_id}, rule {e.rule}, {period}: more than one live credit; see omnibank invites "
                "rewards-verify"
            )
        live[(e.rule, e.staff_id)] = e
    posted: list[Posted] = []
    for rule_id, staff_id in sorted(set(wanted) | set(live)):
        line = wanted.get((rule_id, staff_id))
        target = to_fen(line.reward) if line is not None else 0
        current = live.get((rule_id, staff_id))
        previous = from_fen(current.amount_fen) if current is not None else None
        if current is not None and current.amount_fen == target:
            posted.append(Posted(staff_id, rule_id, period, "unchanged", from_fen(target), previous))
            continue
        if current is None and target == 0:
            continue
        key = base_key(rule_id, staff_id, period)
        if current is not None:
            _add(session, StaffRewardEntry(
                key=f"{key}:rev:{current.id}", staff_id=staff_id, rule=rule_id, period=period,
                direction="debit", amount_fen=current.amount_fen, reverses=current.id,
                basis=f"reversal of entry {current.id}: the figure is now {from_fen(target):,.2f}",
                created_at=now, created_by=actor,
            ))  # fmt: skip
        if target > 0 and line is not None:
            n = credits[(rule_id, staff_id)]
            _add(session, StaffRewardEntry(
                key=key if n == 0 else f"{key}:v{n + 1}", staff_id=staff_id, rule=rule_id, period=period,
                direction="credit", amount_fen=target, basis=line.why[:500], created_at=now, created_by=actor,
            ))  # fmt: skip
        action: Action = "new" if current is None else "corrected" if target > 0 else "withdrawn"
        posted.append(Posted(staff_id, rule_id, period, action, from_fen(target), previous))
    return posted


# --------------------------------------------------------------------------------- balances and reading


def balances(session: Session, *, staff_ids: Iterable[str] | None = None) -> dict[str, Decimal]:
    """Each member of staff's balance, derived: credits − debits."""
    signed = case(
        (StaffRewardEntry.direction == "credit", StaffRewardEntry.amount_fen),
        else_=-StaffRewardEntry.amount_fen,
    )
    stmt = select(StaffRewardEntry.staff_id, func.sum(signed)).group_by(StaffRewardEntry.staff_id)
    if staff_ids is not None:
        stmt = stmt.where(StaffRewardEntry.staff_id.in_(sorted(staff_ids)))
    return {sid: from_fen(int(total)) for sid, total in session.execute(stmt)}


@dataclass(frozen=True)
class LedgerLine:
    """A live credit: what a member of staff was credited under a rule for a month, and why."""

    staff_id: str
    rule: str
    period: str
    reward: Decimal
    why: str
    entry_id: int
    posted_at: datetime


def posted(session: Session, period: str, *, staff_ids: Iterable[str] | None = None) -> list[LedgerLine]:
    """The live credits of ``period`` (of ``staff_ids``, or everyone), by staff member and rule."""
    entries = _entries(session, period=period)
    wanted = set(staff_ids) if staff_ids is not None else None
    return sorted(
        (
            LedgerLine(e.staff_id, e.rule, e.period, from_fen(e.amount_fen), e.basis, e.id, e.created_at)
            for e in _live(entries)
            if wanted is None or e.staff_id in wanted
        ),
        key=lambda line: (line.staff_id, line.rule),
    )


# ------------------------------------------------------------------------------------------------ verify


@dataclass
class VerifyReport:
    entries: int = 0
    balances: dict[str, Decimal] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session) -> VerifyReport:
    """Check the whole ledger: positive amounts; each credit's key of its own (rule, staff, month) and its
    amount the figure its basis states; each debit a reversal of an existing credit of the same staff
    member, rule and month for the same amount, with its key, no credit reversed twice; at most one live
    credit per (rule, staff, month); every balance (credits − debits) the sum of the live credits."""
    entries = _entries(session)
    report = VerifyReport(entries=len(entries))
    problems = report.problems
    by_id = {e.id: e for e in entries}
    reversals: dict[int, list[int]] = defaultdict(list)
    for e in entries:
        where = f"entry {e.id} ({e.staff_id}, {e.rule}, {e.period})"
        base = base_key(e.rule, e.staff_id, e.period)
        if e.amount_fen <= 0:
            problems.append(f"{where}: amount {from_fen(e.amount_fen)} is not positive")
        if e.direction == "credit":
            if e.reverses is not None:
                problems.append(f"{where}: a credit that says it reverses entry {e.reverses}")
            if e.key != base and not re.fullmatch(re.escape(base) + r":v\d+", e.key):
                problems.append(f"{where}: key {e.key!r} is not a key of its rule, staff member and month")
            figures = _FIGURE.findall(e.basis)
            if not figures or Decimal(figures[-1].replace(",", "")) != from_fen(e.amount_fen):
                problems.append(
                    f"{where}: amount {from_fen(e.amount_fen):,.2f} differs from its basis {e.basis!r}"
                )
        elif e.direction == "debit":
            if e.reverses is None:
                problems.append(f"{where}: a debit that reverses nothing")
                continue
            reversals[e.reverses].append(e.id)
            if e.key != f"{base}:rev:{e.reverses}":
                problems.append(f"{where}: key {e.key!r} is not the key of a reversal of entry {e.reverses}")
            target = by_id.get(e.reverses)
            if target is None:
                problems.append(f"{where}: reverses entry {e.reverses}, which does not exist")
            elif target.direction != "credit":
                problems.append(f"{where}: reverses entry {e.reverses}, which is not a credit")
            elif (target.staff_id, target.rule, target.period) != (e.staff_id, e.rule, e.period):
                problems.append(
                    f"{where}: reverses entry {e.reverses}, which is of "
                    f"{target.staff_id}, {target.rule}, {target.period}"
                )
            elif target.amount_fen != e.amount_fen:
                problems.append(
                    f"{where}: reverses {from_fen(e.amount_fen):,.2f} of entry {e.reverses}, which is "
                    f"{from_fen(target.amount_fen):,.2f}"
                )
        else:
            problems.append(f"{where}: direction {e.direction!r} is neither credit nor debit")
    for credit_id, by in sorted(reversals.items()):
        if len(by) > 1:
            problems.append(
                f"entry {credit_id} is reversed more than once (by entries {', '.join(map(str, by))})"
            )
    live: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    live_sum: dict[str, int] = defaultdict(int)
    for e in _live(entries):
        live[(e.rule, e.staff_id, e.period)].append(e.id)
        live_sum[e.staff_id] += e.amount_fen
    for (rule, staff_id, period), ids in sorted(live.items()):
        if len(ids) > 1:
            problems.append(
                f"{staff_id}, {rule}, {period}: {len(ids)} live credits (entries {', '.join(map(str, ids))})"
            )
    signed: dict[str, int] = defaultdict(int)
    for e in entries:
        signed[e.staff_id] += e.amount_fen if e.direction == "credit" else -e.amount_fen
    for staff_id, total in sorted(signed.items()):
        if total != live_sum.get(staff_id, 0):
            problems.append(
                f"{staff_id}: balance {from_fen(total):,.2f} differs from the sum of the live credits "
                f"{from_fen(live_sum.get(staff_id, 0)):,.2f}"
            )
    report.balances = {sid: from_fen(total) for sid, total in sorted(signed.items())}
    return report
