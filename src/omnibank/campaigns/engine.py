"""The campaign decision function: one event and the campaign's state in, decisions out.

:func:`decide` is the only place where rules are applied. It reads nothing and writes nothing but the
state object it is given, so the same function serves a backtest over a year of history (``campaign
simulate``), the live engine (which persists the state with its offset) and the tests.

Dates are bank-local. "N days (inclusive)" after a day X runs through X + N: a card issued on 1 March
qualifies spend up to and including 30 April for ``within_days_of_card: 60``; a grant on 1 March with
``claim_days: 30`` can be claimed until the end of 31 March.

An event counts once toward a count threshold, unless it carries the field :meth:`Decider.count_field`:
a backtest that left out the events before it (:meth:`Decider.prune_plan`) says so, and it counts for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from omnibank.benefits.grant import Grant
from omnibank.campaigns.spec import Compiled, Reward, Rule
from omnibank.kit.money import to_fen
from omnibank.segments.compile import event_condition_sql


class Event(NamedTuple):
    """One event as the engine sees it (a tuple: millions of them are made in a backtest)."""

    event_id: str
    type: str
    customer_id: str
    ts_us: int  # the instant, in microseconds since the epoch (UTC)
    local_date: date  # its bank-local day
    fields: Mapping[str, Any]  # the event log's typed columns (amount, tier, is_primary, quantity, …)

    def at(self, tz: ZoneInfo) -> datetime:
        """The instant in ``tz``: ``(epoch + ts_us).astimezone(tz)``, made from whole seconds (3x faster)."""
        seconds, micros = divmod(self.ts_us, 1_000_000)
        try:
            moment = datetime.fromtimestamp(seconds, tz)
        except (OverflowError, OSError, ValueError):  # beyond the platform's time_t
            return (_EPOCH + timedelta(microseconds=self.ts_us)).astimezone(tz)
        return moment.replace(microsecond=micros) if micros else moment


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Refusal:
    customer_id: str
    rule: str
    reason: str  # cap:<per>, budget:<rule|campaign>, insufficient_points
    items: int
    at: datetime


Decision = Grant | Refusal  # a Grant is the one shape a grant keeps on its way to the coupon ledger


class GrantSink(Protocol):
    """Takes a grant's values in place of a :class:`Grant` (:attr:`Decider.sink`): a backtest writes its
    line from them; the key, points and event of a campaign's grant follow from the event at hand."""

    def __call__(
        self,
        customer_id: str,
        rule: str,
        benefit_id: str,
        granted_at: datetime,
        valid_from: datetime,
        valid_to: datetime | None,
        claim_by: datetime | None,
        face_value_fen: int | None,
        discount_rate: Decimal | None,
        stage: int | None,
        /,
    ) -> None: ...


@dataclass(slots=True)
class CustomerState:
    cards: list[Event] = field(default_factory=list)  # card.issued events, in time order
    card_for: dict[str, Event | None] = field(default_factory=dict, compare=False)  # rule → card (a cache)
    counters: dict[tuple[str, str], int | Decimal] = field(default_factory=dict)  # (rule, period) → count/sum
    fired: set[tuple[str, str]] = field(default_factory=set)  # (rule, period) that granted
    items: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (rule, per, period) → items
    activated: dict[tuple[str, str], int] = field(default_factory=dict)  # (rule, month) → items in effect
    points: int = 0
    icons: dict[str, int] = field(default_factory=dict)  # map rule → icons lit
    stages: dict[str, int] = field(default_factory=dict)  # map rule → stages unlocked
    grants: int = 0


@dataclass(slots=True)
class CampaignState:
    customers: dict[str, CustomerState] = field(default_factory=dict)
    rule_items: dict[str, int] = field(default_factory=dict)
    rule_value: dict[str, Decimal] = field(default_factory=dict)
    campaign_items: int = 0
    campaign_value: Decimal = Decimal(0)
    events: int = 0


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def period_key(per: str, d: date) -> str:
    if per == "week":
        iso = d.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if per == "month":
        return f"{d.year}-{d.month:02d}"
    if per == "year":
        return str(d.year)
    return "all"


def _end_of_day(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(23, 59, 59), tz)


def _first_of_next_month(d: date, months: int = 1) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


class Decider:
    """Applies one campaign to events, in time order; ``eligible`` (customer ids) limits who takes part."""

    def __init__(self, campaign: Compiled, tz: ZoneInfo, *, eligible: frozenset[str] | None = None):
        self.c = campaign
        self.spec = campaign.spec
        self.tz = tz
        self.eligible = eligible
        self.by_type: dict[str, list[Rule]] = {}
        for r in self.spec.rules:
            if r.trigger:
                self.by_type.setdefault(r.trigger.event, []).append(r)
        self.maps = [r for r in self.spec.rules if r.map]
        self.types = set(self.by_type) | ({"card.issued"} if any(campaign.needs_card.values()) else set())
        if any(r.reward and r.reward.points_each for r in self.spec.rules):
            self.types.add("points.earned")
        self.columns = sorted(campaign.columns())
        # per event type: (rule, trigger test, needs a card, card window, threshold period)
        self._plan = {
            etype: [
                (
                    r,
                    campaign.where_test[r.id] if campaign.where[r.id] is not None else None,
                    campaign.needs_card[r.id],
                    timedelta(days=r.within_days_of_card) if r.within_days_of_card is not None else None,
                    r.threshold.per if r.threshold else None,
                )
                for r in rules
            ]
            for etype, rules in self.by_type.items()
        }
        self._periods: dict[str, dict[date, str]] = {
            per: {} for per in ("week", "month", "year", "campaign")
        }  # per → day → period key (a cache)
        # the last event that granted, its instant and the instant's day
        self._moment: tuple[Event | None, datetime, date] = (None, _EPOCH, _EPOCH.date())
        self._values: dict[tuple[int, Any], tuple[Decimal | None, Decimal, int | None]] = {}
        # rule id → the stage maps its grants light: (map rule, icons per item, icons of each stage)
        self._lights: dict[str, list[tuple[Rule, int, list[int]]]] = {}
        for m in self.maps:
            assert m.map is not None
            icons = [stage.icons for stage in m.map.stages]
            for rule_id, per_item in m.map.counts.items():
                if per_item:
                    self._lights.setdefault(rule_id, []).append((m, per_item, icons))
        self._budgets = self.spec.budget is not None or any(r.budget is not None for r in self.spec.rules)
        self._start, self._end = self.spec.period.start, self.spec.period.end
        self._ends: dict[tuple[date, int], datetime] = {}  # (day, days) → end of the day days later
        self._counts = {r.id: self.count_field(r.id) for r in self.spec.rules}
        self.unfired = 0  # times a threshold was reached and its reward not granted (see prune_plan)
        #: when set, grants go to it as their values instead of into the decisions as :class:`Grant`
        #: objects (a backtest writes a million of them: see :class:`GrantSink`)
        self.sink: GrantSink | None = None

    def holders_sql(self) -> str | None:
        """When every rule needs a card: SQL over card.issued fields that any qualifying card meets (the
        source then reads only those customers' events). None when some rule needs no card."""
        rules = [r for r in self.spec.rules if r.trigger]
        if not rules or not all(self.c.needs_card[r.id] for r in rules):
            return None
        conditions = {self.c.card[r.id] for r in rules}
        if None in conditions:
            return "TRUE"
        return " OR ".join(f"({event_condition_sql(c)})" for c in conditions if c is not None)

    def prune_plan(self) -> tuple[list[str], list[tuple[str, str, int | None]]] | None:
        """How a backtest may leave out trigger events that change no decision, or None when it cannot:
        the trigger types concerned, and per rule they trigger (id, SQL over the event reader's ``src``
        relation, count goal or None) the events the rule counts with, for a count threshold, their rank
        in the period (``event_id, customer_id, _period, _rank``). These are :meth:`decide`'s own tests
        that need no state: the campaign period, the trigger's condition, a qualifying card issued before
        the event (cards and points are state: always kept), the window after it.

        A count threshold needs only the event of rank ``count`` in each period (the one that grants;
        :meth:`decide` skips the rest of the period): the events before it are left out and it counts for
        all of them (its field ``_n_<rule>``, see :meth:`count_field`); a rule of another kind needs every
        event it counts. That holds only if the reward is granted when the threshold is reached: when it is
        not (a cap, a budget, points, no face value), ``unfired`` counts it and the caller must run again
        over every event."""
        types: list[str] = []
        rules: list[tuple[str, str, int | None]] = []
        for etype, plan in self._plan.items():
            if etype in ("card.issued", "points.earned"):
                continue
            types.append(etype)
            for rule, _, needs_card, window, per in plan:
                conditions = [
                    f"e.type = {_sql_string(etype)}",
                    f"e.local_date BETWEEN DATE '{self._start}' AND DATE '{self._end}'",
                ]
                where = self.c.where[rule.id]
                if where is not None:
                    conditions.append(f"({event_condition_sql(where)})")
                join = ""
                if needs_card:
                    card = self.c.card[rule.id]
                    test = event_condition_sql(card) if card is not None else "TRUE"
                    join = (
                        " JOIN (SELECT customer_id, ts AS _card_ts, event_id AS _card_id,"
                        " local_date AS _card_day"
                        f" FROM src WHERE type = 'card.issued' AND ({test}) QUALIFY row_number() OVER"
                        " (PARTITION BY customer_id ORDER BY ts, event_id) = 1) fc USING (customer_id)"
                    )
                    conditions.append(
                        "(e.ts > fc._card_ts OR (e.ts = fc._card_ts AND e.event_id > fc._card_id))"
                    )
                    if window is not None:
                        conditions.append(f"e.local_date <= fc._card_day + {window.days}")
                th = rule.threshold
                goal = th.count if th is not None and th.count is not None and per is not None else None
                period = {
                    "week": "yearweek(e.local_date)",
                    "month": "year(e.local_date) * 100 + month(e.local_date)",
                    "year": "year(e.local_date)",
                }.get(per or "", "0")
                ranked = (
                    f", {period} AS _period, row_number() OVER (PARTITION BY e.customer_id, {period} "
                    "ORDER BY e.ts, e.event_id) AS _rank"
                    if goal is not None
                    else ""
                )
                # weekday is the reader's (from the time, bank-local), not a column of src
                events = "(SELECT *, isodow(ts) AS weekday FROM src)"
                test = " AND ".join(conditions)
                sql = f"SELECT e.event_id, e.customer_id{ranked} FROM {events} e{join} WHERE {test}"
                rules.append((rule.id, sql, goal))
        return (types, rules) if types else None

    @staticmethod
    def count_field(rule_id: str) -> str:
        """The field that, when an event has it, says for how many events it counts toward the rule's
        count threshold (a pruned backtest's: see :meth:`prune_plan`)."""
        return f"_n_{rule_id}"

    # ------------------------------------------------------------------------------------------ events
    def decide(self, state: CampaignState, event: Event) -> list[Decision]:
        """The decisions one event causes; ``state`` is updated in place (and is all there is to persist)."""
        _, etype, customer_id, _, day, fields = event
        if self.eligible is not None and customer_id not in self.eligible:
            return []
        state.events += 1
        cust = state.customers.get(customer_id)
        if cust is None:
            cust = state.customers[customer_id] = CustomerState()
        # cards and points count whenever they came (a card issued before the campaign qualifies its holder)
        if etype == "card.issued":
            cust.cards.append(event)
            cust.card_for.clear()
        elif etype == "points.earned":
            cust.points += int(fields.get("points") or 0)
        if not self._start <= day <= self._end:
            return []
        out: list[Decision] = []
        for rule, where, needs_card, window, per in self._plan.get(etype, ()):
            if per is None:
                counted = None
            else:  # a threshold rule
                key = self._periods[per].get(day)
                counted = (rule.id, key if key is not None else self._period(per, day))
                if counted in cust.fired:
                    continue  # this period's reward was granted: nothing more to count
            # the card first: its answer is cached, the trigger's condition is evaluated (both are pure)
            card = self._card(rule, cust, day)
            if card is None:
                if needs_card:
                    continue
            elif window is not None and day > card.local_date + window:
                continue
            if where is not None and not where(fields):
                continue
            self._apply(state, cust, rule, event, card, counted, out)
        return out

    def _period(self, per: str, day: date) -> str:
        keys = self._periods.get(per)
        if keys is None:
            keys = self._periods[per] = {}
        key = keys.get(day)
        if key is None:
            key = keys[day] = period_key(per, day)
        return key

    def _end_of_day(self, day: date, days: int) -> datetime:
        """The end of the bank-local day ``days`` after ``day`` (a cache: grants share a few hundred)."""
        key = (day, days)
        end = self._ends.get(key)
        if end is None:
            end = self._ends[key] = _end_of_day(day + timedelta(days=days), self.tz)
        return end

    def _card(self, rule: Rule, cust: CustomerState, day: date) -> Event | None:
        """The customer's first card (by issue time, on or before ``day``) that meets the rule's card
        requirement; cards arrive in time order, so the answer is kept until the next card arrives."""
        if rule.id in cust.card_for:
            card = cust.card_for[rule.id]
            return card if card is None or card.local_date <= day else None
        test = self.c.card_test[rule.id]
        found = next((c for c in cust.cards if test(c.fields)), None)
        cust.card_for[rule.id] = found
        return found if found is None or found.local_date <= day else None

    def _apply(
        self,
        state: CampaignState,
        cust: CustomerState,
        rule: Rule,
        event: Event,
        card: Event | None,
        counted: tuple[str, str] | None,
        out: list[Decision],
    ) -> None:
        """Count the event for ``rule`` and grant what it earns; ``counted`` is (rule, period) for a
        threshold rule."""
        reward = rule.reward
        assert reward is not None
        th = rule.threshold
        if th is not None:
            assert counted is not None
            counters = cust.counters
            if th.count is not None:
                total: int | Decimal = counters.get(counted, 0) + (
                    event.fields.get(self._counts[rule.id]) or 1
                )
                goal: int | Decimal = th.count
            else:
                total = counters.get(counted, 0) + Decimal(event.fields.get("amount") or 0)
                goal = th.sum or Decimal(0)
            counters[counted] = total
            if total < goal:
                return
            quantity = reward.quantity
            all_or_nothing = True
            slot = f"{th.per}:{counted[1]}" if self.sink is None else ""  # (a sink makes no key)
        else:
            quantity = (
                int(event.fields.get(reward.quantity_from) or 0) if reward.quantity_from else reward.quantity
            )
            if quantity <= 0:
                return
            all_or_nothing = False
            slot = f"event:{event.event_id}" if self.sink is None else ""
        granted = self._grant(
            state, cust, rule, reward, event, card, quantity, all_or_nothing, slot, None, out
        )
        if counted is not None:
            if granted:
                cust.fired.add(counted)
            else:
                self.unfired += 1
        if granted and rule.id in self._lights:
            self._light(state, cust, rule.id, granted, event, out)

    def _allowed(
        self,
        state: CampaignState,
        cust: CustomerState,
        rule: Rule,
        reward: Reward,
        value: Decimal,
        wanted: int,
        keys: Sequence[tuple[str, str, str]],
    ) -> tuple[int, str | None]:
        """How many of ``wanted`` items caps (``keys``: their counters), budgets and points allow, and the
        first limit that bit."""
        allowed, reason = wanted, None
        if keys:
            items = cust.items
            for cap, key in zip(rule.caps, keys, strict=True):
                n = cap.max - items.get(key, 0)
                if n < allowed:
                    allowed, reason = max(n, 0), f"cap:{cap.per}"
        if self._budgets:
            for scope, budget, used, spent in (
                (
                    "rule",
                    rule.budget,
                    state.rule_items.get(rule.id, 0),
                    state.rule_value.get(rule.id, Decimal(0)),
                ),
                ("campaign", self.spec.budget, state.campaign_items, state.campaign_value),
            ):
                if budget is None:
                    continue
                if budget.count is not None and budget.count - used < allowed:
                    allowed, reason = max(budget.count - used, 0), f"budget:{scope}"
                if budget.face_value is not None and value > 0:
                    n = int((budget.face_value - spent) // value)
                    if n < allowed:
                        allowed, reason = max(n, 0), f"budget:{scope}"
        if reward.points_each:
            n = cust.points // reward.points_each
            if n < allowed:
                allowed, reason = max(n, 0), "insufficient_points"
        return allowed, reason

    def _value(self, reward: Reward, tier: Any) -> tuple[Decimal | None, Decimal, int | None]:
        """The reward's face value for a card of ``tier`` (or None), that value or 0, and it in fen."""
        key = (id(reward), tier)
        found = self._values.get(key)
        if found is None:
            by_tier = reward.face_value_by_tier
            value = by_tier.get(str(tier), reward.face_value) if tier else reward.face_value
            found = self._values[key] = (
                value,
                value or Decimal(0),
                to_fen(value) if value is not None else None,
            )
        return found

    def _grant(
        self,
        state: CampaignState,
        cust: CustomerState,
        rule: Rule,
        reward: Reward,
        event: Event,
        card: Event | None,
        quantity: int,
        all_or_nothing: bool,
        slot: str,
        stage: int | None,
        out: list[Decision],
    ) -> int:
        tier = card.fields.get("tier") if card is not None else None
        value, value_each, value_fen = self._value(reward, tier)
        if value is None and reward.face_value_by_tier:
            out.append(
                Refusal(event.customer_id, rule.id, f"no_face_value:{tier}", quantity, event.at(self.tz))
            )
            return 0
        day = event.local_date
        rule_id = rule.id
        keys = [(rule_id, cap.per, self._period(cap.per, day)) for cap in rule.caps]
        allowed, reason = self._allowed(state, cust, rule, reward, value_each, quantity, keys)
        if all_or_nothing and allowed < quantity:
            allowed = 0
        if allowed < quantity:
            out.append(
                Refusal(event.customer_id, rule_id, reason or "limit", quantity - allowed, event.at(self.tz))
            )
        if allowed == 0:
            return 0
        tz = self.tz
        items = cust.items
        for key in keys:
            items[key] = items.get(key, 0) + allowed
        state.rule_items[rule_id] = state.rule_items.get(rule_id, 0) + allowed
        state.campaign_items += allowed
        sink = self.sink
        if sink is None or self._budgets:  # a backtest (sink) reads spent values only against budgets
            spent = value_each * allowed
            state.rule_value[rule_id] = state.rule_value.get(rule_id, Decimal(0)) + spent
            state.campaign_value += spent
        if reward.points_each:
            cust.points -= reward.points_each * allowed
        claim_by = self._end_of_day(day, reward.claim_days) if reward.claim_days is not None else None
        last, granted_at, granted_day = self._moment
        if event is not last:  # the grants of one event share its instant
            granted_at = event.at(tz)
            granted_day = granted_at.date()
            self._moment = (event, granted_at, granted_day)
        activation, valid_days = reward.activation, reward.valid_days
        for i in range(allowed):
            valid_from, valid_day = granted_at, granted_day
            if activation is not None:
                month, ahead = day, 0
                while cust.activated.get((rule_id, self._period("month", month)), 0) >= activation.per_month:
                    ahead += 1
                    month = _first_of_next_month(day, ahead)
                slot_key = (rule_id, self._period("month", month))
                cust.activated[slot_key] = cust.activated.get(slot_key, 0) + 1
                if ahead:
                    valid_from = datetime.combine(month, time(0, 0), tz)
                    valid_day = valid_from.date()
            valid_to = self._end_of_day(valid_day, valid_days) if valid_days is not None else None
            cust.grants += 1
            if sink is not None:
                sink(
                    event.customer_id, rule_id, reward.benefit, granted_at, valid_from, valid_to, claim_by,
                    value_fen, reward.discount_rate, stage,
                )  # fmt: skip
                continue
            out.append(
                Grant(
                    key=f"{self.spec.id}:{rule_id}:{event.customer_id}:{slot}:{reward.benefit}:{i + 1}",
                    customer_id=event.customer_id,
                    campaign=self.spec.id,
                    rule=rule_id,
                    benefit_id=reward.benefit,
                    granted_at=granted_at,
                    valid_from=valid_from,
                    valid_to=valid_to,
                    claim_by=claim_by,
                    face_value_fen=value_fen,
                    discount_rate=reward.discount_rate,
                    stage=stage,
                    points_spent=reward.points_each,
                    event_id=event.event_id,
                )
            )
        return allowed

    def _light(
        self,
        state: CampaignState,
        cust: CustomerState,
        rule_id: str,
        items: int,
        event: Event,
        out: list[Decision],
    ) -> None:
        """Granted items light icons on every stage map counting their rule; a stage reached unlocks."""
        for m, per_item, icons in self._lights.get(rule_id, ()):
            assert m.map is not None
            lit = cust.icons.get(m.id, 0) + per_item * items
            cust.icons[m.id] = lit
            done = cust.stages.get(m.id, 0)
            if done >= len(icons) or lit < icons[done]:
                continue  # no stage reached (most grants)
            for n, stage in enumerate(m.map.stages[done:], start=done + 1):
                if lit < stage.icons:
                    break
                cust.stages[m.id] = n
                for reward in stage.rewards:
                    self._grant(
                        state,
                        cust,
                        m,
                        reward,
                        event,
                        self._card(m, cust, event.local_date),
                        reward.quantity,
                        True,
                        f"stage:{n}",
                        n,
                        out,
                    )
