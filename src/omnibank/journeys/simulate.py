"""``journey simulate``: run journeys over the loaded customers and an events file on a virtual clock,
touching nothing, and write every action (``ACTIONS.jsonl``): each entry, send, deferral, suppression, lead,
tag, grant, conversion and exit with its time, customer, channel and reason.

The step machine (:mod:`omnibank.journeys.machine`) is the worker's; sends go through the contact policy's
pure :func:`omnibank.contact.policy.decide` with in-memory counters shared by every journey simulated
together (caps hold across journeys), consent and do-not-disturb as the store has them now. A send
deferred by quiet hours is decided again when they end. A send that goes is taken as delivered at once
(unless the events file says otherwise): a route's fallback on ``until: clicked`` then shows its worst case.

A ``grant: {benefit: recommended}`` step is given the customer's top recommendation as the store stands now
(:mod:`omnibank.benefits.recommend`: active, in stock, within the journey's budgets, not held unused, nor
granted earlier in the simulation), written with ``"recommended": true``; with none it is written as a
``skip`` (reason ``no_recommendation``) and not counted as a grant. Stock is not drawn down by a simulation
(as for any grant step), so the figures are an upper bound. (A :class:`Simulator` given no
``recommended`` resolver writes such a grant unresolved, ``"benefit": "recommended"``.)
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.contact.policy import CHANNELS, Decision, MemoryCounters, PolicyConfig, Send, decide
from omnibank.events.log import sql_string
from omnibank.journeys.facts import MemoryFacts, aggregate_types
from omnibank.journeys.machine import (
    Action,
    EntryState,
    JourneyEvent,
    Outcome,
    decided,
    enter,
    may_enter,
    on_event,
    run,
)
from omnibank.journeys.source import read_journey_events, types_sql
from omnibank.journeys.spec import RECEIPTS, RECOMMENDED, Compiled, JourneySpec
from omnibank.segments.compile import event_condition_sql
from omnibank.segments.expr import parse_event_condition
from omnibank.segments.facts import Profile, identifier_kinds, load_profiles

VARS = ("product_id", "product", "card_id", "tier", "channel", "survey")


def policy_config(settings: Settings) -> PolicyConfig:
    """The contact policy's parameters from the settings (their defaults where the settings have none)."""
    try:
        return PolicyConfig.from_settings(settings)
    except AttributeError:
        return PolicyConfig(tz=settings.tz)


def horizon(c: Compiled) -> timedelta:
    """At most how long an entry lasts (no step runs twice): what the clock runs on after the last event."""
    total = timedelta(0)
    for s in c.spec.steps:
        if s.wait:
            total += s.wait
        if s.wait_for:
            total += s.wait_for.timeout
        if s.send and s.send.route:
            total += s.send.fallback_after * len(CHANNELS)
    if c.spec.conversion:
        total = max(total, c.spec.conversion.within)
    return total + timedelta(days=1)


def next_tick(c: Compiled, after: datetime, tz: Any) -> datetime:
    """The first time the segment trigger's schedule comes after ``after`` (bank-local)."""
    assert c.schedule is not None
    local = after.astimezone(tz)
    day = local.date()
    for _ in range(9):
        moment = datetime.combine(day, c.schedule.at, tzinfo=tz)
        if moment > local and (c.schedule.weekday is None or day.isoweekday() == c.schedule.weekday):
            return moment
        day += timedelta(days=1)
    raise AssertionError("a schedule comes within a week")  # pragma: no cover


@dataclass
class JourneySummary:
    journey: str
    entered: int = 0
    control: int = 0
    sends: Counter[str] = field(default_factory=Counter)  # channel → sends that go
    deferred: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)  # reason → sends
    leads: Counter[str] = field(default_factory=Counter)  # branch → leads
    tags: int = 0
    grants: int = 0
    converted: int = 0
    converted_control: int = 0
    exits: Counter[str] = field(default_factory=Counter)
    contacted: set[str] = field(default_factory=set)
    spared: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # reason → customers


@dataclass
class SimulationReport:
    journeys: dict[str, JourneySummary]
    events: int = 0
    unknown_customers: int = 0
    start: datetime | None = None
    end: datetime | None = None

    def spared(self, journey: str) -> dict[str, int]:
        """Customers who got no send at all, by the reason of their first suppression."""
        s = self.journeys[journey]
        seen: set[str] = set()
        out: Counter[str] = Counter()
        for reason, customers in sorted(s.spared.items()):
            fresh = customers - s.contacted - seen
            out[reason] += len(fresh)
            seen |= fresh
        return dict(out)


class _Item:
    """Kinds of things on the virtual clock besides the events of the file (ties: this order)."""

    DEFERRED = 0
    DUE = 1
    TICK = 2
    RECEIPT = 3


class Simulator:
    """The journeys over a stream of events, on a virtual clock (also used by the demo and the benchmark)."""

    def __init__(
        self,
        compiled: Sequence[Compiled],
        settings: Settings,
        profiles: dict[str, Profile],
        *,
        dnd: Callable[[str, str, datetime], bool] | None = None,
        identifiers: dict[str, set[str]] | None = None,
        out: IO[bytes] | None = None,
        config: PolicyConfig | None = None,
    ):
        self.journeys = {c.id: c for c in compiled}
        self.settings = settings
        self.tz = settings.tz
        self.profiles = profiles
        self.config = config or policy_config(settings)
        self.counters = MemoryCounters()
        self.dnd = dnd or (lambda _cid, _channel, _at: False)
        self.out = out
        expressions = [e for c in compiled for e in c.expressions]
        self.facts = MemoryFacts(
            profiles, self.tz, event_types=aggregate_types(expressions), identifiers=identifiers or {},
            dnd_channels=lambda cid, at: [ch for ch in CHANNELS if self.dnd(cid, ch, at)],
        )  # fmt: skip
        self.entries: dict[tuple[str, str], EntryState] = {}
        self.entry_counts: Counter[tuple[str, str]] = Counter()
        self.heap: list[tuple[datetime, int, int, Any]] = []
        self.seq = itertools.count()
        self.report = SimulationReport({c.id: JourneySummary(c.id) for c in compiled})
        self.seen_keys: set[str] = set()
        self.interested: dict[str, list[Compiled]] = {}
        #: who matches a segment trigger at a moment; default: the expression in memory over every profile
        self.members: Callable[[Compiled, datetime], Iterable[str]] | None = None
        #: the benefit a ``benefit: recommended`` grant gives (None: none to give); default: left unresolved
        self.recommended: Callable[[Action], str | None] | None = None

    # -- the clock ---------------------------------------------------------------------------------------

    def push(self, at: datetime, kind: int, payload: Any) -> None:
        heapq.heappush(self.heap, (at, kind, next(self.seq), payload))

    def run_stream(
        self,
        events: Iterator[JourneyEvent],
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> SimulationReport:
        """Run the journeys over ``events`` (in time order). With ``since``, they start then: earlier events
        only count in expressions, and a scheduled trigger first fires at its first moment at or after
        ``since``. With ``until``, nothing happens after it. Every action falls inside the two."""
        last: datetime | None = None
        pending = next(events, None)
        while pending is not None and since is not None and pending.ts < since:
            self.on_event(pending, react=False)
            pending = next(events, None)
        if pending is not None and until is not None and pending.ts > until:
            pending = None
        first = pending.ts if pending is not None else None
        start = since or first
        if start is not None:
            for c in self.journeys.values():
                if c.schedule is not None:
                    self.push(next_tick(c, start - timedelta(microseconds=1), self.tz), _Item.TICK, c.id)
        settle = max((horizon(c) for c in self.journeys.values()), default=timedelta(0))
        while True:
            if pending is not None and (not self.heap or pending.ts < self.heap[0][0]):
                self.on_event(pending)
                last = pending.ts
                self.report.events += 1
                pending = next(events, None)
                if pending is not None and until is not None and pending.ts > until:
                    pending = None
                continue
            if not self.heap:
                break
            at = self.heap[0][0]
            if until is not None and at > until:
                break
            if pending is None and until is None and at > (last or start or at) + settle:
                break
            _, kind, _, payload = heapq.heappop(self.heap)
            if kind == _Item.TICK:
                self.tick(self.journeys[payload], at)
            elif kind == _Item.DUE:
                self.advance(payload, at)
            elif kind == _Item.DEFERRED:
                self.decide_again(payload, at)
            elif kind == _Item.RECEIPT:
                self.on_event(payload, facts=False)
        self.report.start, self.report.end = first, last
        return self.report

    # -- entering --------------------------------------------------------------------------------------------

    def try_enter(self, c: Compiled, customer_id: str, at: datetime, vars: dict[str, str]) -> None:
        if customer_id not in self.profiles:
            self.report.unknown_customers += 1
            return
        key = (c.id, customer_id)
        if not may_enter(c, self.entries.get(key), at):
            return
        if c.audience is not None and not self.facts.matches(c.audience, customer_id, at):
            return
        self.entry_counts[key] += 1
        actions, state = enter(c, customer_id, self.entry_counts[key], at, vars)
        self.entries[key] = state
        self.record(c, actions)
        self.advance(key, at)

    def tick(self, c: Compiled, at: datetime) -> None:
        segment = c.segment
        assert segment is not None
        if self.members is not None:
            for cid in self.members(c, at):
                self.try_enter(c, cid, at, {})
        else:
            for cid in self.profiles:
                prev = self.entries.get((c.id, cid))
                if prev is not None and not may_enter(c, prev, at):
                    continue
                if self.facts.matches(segment, cid, at):
                    self.try_enter(c, cid, at, {})
        self.push(next_tick(c, at, self.tz), _Item.TICK, c.id)

    # -- events ----------------------------------------------------------------------------------------------

    def on_event(self, event: JourneyEvent, *, facts: bool = True, react: bool = True) -> None:
        """An event: counted in the facts (``facts``); moves and starts entries (``react``)."""
        if facts and event.type in self.facts.event_types:
            self.facts.add_event(event.customer_id, event.type, event.fields)
        if not react:
            return
        interested = self.interested.get(event.type)
        if interested is None:
            interested = self.interested[event.type] = [
                c for c in self.journeys.values()
                if event.type in c.event_types() or event.type in RECEIPTS
            ]  # fmt: skip
        for c in interested:
            key = (c.id, event.customer_id)
            state = self.entries.get(key)
            if state is not None and state.listening(c, event.ts):
                actions, new = on_event(c, state, event)
                self.entries[key] = new
                self.record(c, actions)
                if new.status == "active" and new.due is not None and new.due != state.due:
                    self.push(new.due, _Item.DUE, key)
            if c.spec.trigger.event == event.type and c.trigger_test(event.fields):
                vars = {k: str(event.fields[k]) for k in VARS if event.fields.get(k) is not None}
                self.try_enter(c, event.customer_id, event.ts, vars)

    # -- steps -----------------------------------------------------------------------------------------------

    def advance(self, key: tuple[str, str], now: datetime) -> None:
        c = self.journeys[key[0]]
        state = self.entries[key]
        if state.due is None or state.due > now:
            return
        for _ in range(64):
            actions, state = run(c, state, now, self.facts)
            self.entries[key] = state
            self.record(c, actions)
            if state.awaiting != "decision":
                break
            send = next(a for a in reversed(actions) if a.kind == "send")
            d = self.decide(send, send.at)
            state = decided(c, state, Outcome(d.action, d.reason, d.at))
            self.entries[key] = state
            if d.action == "send" and state.awaiting == "receipt":
                self.push(d.at, _Item.RECEIPT, _receipt(send, d.at, "delivered"))
        if state.due is not None and not state.finished:
            self.push(state.due, _Item.DUE, key)

    def decide(self, a: Action, at: datetime) -> Decision:
        """The policy on one send of the machine; records the decision."""
        assert a.channel is not None
        assert a.purpose in ("marketing", "service")
        profile = self.profiles.get(a.customer_id)
        send = Send(
            key=a.key, customer_id=a.customer_id, channel=a.channel, purpose=a.purpose,  # type: ignore[arg-type]
            at=at, journey=a.journey, step=a.step, template=a.template,
        )  # fmt: skip
        if a.key in self.seen_keys and at == a.at:
            d = Decision("suppress", "duplicate", at)
        else:
            self.seen_keys.add(a.key)
            d = decide(
                send,
                self.config,
                consent=bool(profile and profile.attributes.get("marketing_consent")),
                dnd=self.dnd(a.customer_id, a.channel, at),
                counters=self.counters,
                reachable=profile is not None,
            )
        self.write_decision(a, d, at)
        if d.action == "defer":
            self.push(d.at, _Item.DEFERRED, a)
        return d

    def decide_again(self, a: Action, at: datetime) -> None:
        d = self.decide(a, at)
        c = self.journeys[a.journey]
        state = self.entries.get((a.journey, a.customer_id))
        step = c.index[a.step] if a.step else None
        if (
            d.action == "send"
            and state is not None
            and state.awaiting == "receipt"
            and step is not None
            and step.send is not None
            and state.step == a.step
        ):
            self.push(at, _Item.RECEIPT, _receipt(a, at, "delivered"))

    # -- output ----------------------------------------------------------------------------------------------

    def write_decision(self, a: Action, d: Decision, at: datetime) -> None:
        s = self.report.journeys[a.journey]
        if d.action == "send":
            s.sends[a.channel or ""] += 1
            s.contacted.add(a.customer_id)
        elif d.action == "defer":
            s.deferred += 1
        else:
            s.suppressed[d.reason or ""] += 1
            s.spared[d.reason or ""].add(a.customer_id)
        row: dict[str, Any] = {
            "time": at.astimezone(self.tz).isoformat(),
            "journey": a.journey,
            "step": a.step,
            "customer_id": a.customer_id,
            "action": d.action,
            "channel": a.channel,
            "purpose": a.purpose,
            "reason": d.reason,
            "template": a.template,
        }
        if d.action == "defer":
            row["until"] = d.at.astimezone(self.tz).isoformat()
        self.write(row)

    def record(self, c: Compiled, actions: list[Action]) -> None:
        s = self.report.journeys[c.id]
        for a in actions:
            if a.kind == "send":
                if a.reason == "no_route":
                    self.write_decision(a, Decision("suppress", "no_route", a.at), a.at)
                continue  # written with its decision
            if a.kind == "enter":
                s.entered += 1
                s.control += bool(a.detail.get("control"))
            elif a.kind == "lead":
                p = self.profiles.get(a.customer_id)
                if c.spec.purpose == "marketing" and not (p and p.attributes.get("marketing_consent")):
                    # an RM's call is marketing too: no lead without consent (as the worker does)
                    self.write_decision(a, Decision("suppress", "no_consent", a.at), a.at)
                    continue
                s.leads[branch_of(p)] += 1
            elif a.kind == "tag":
                s.tags += 1
            elif a.kind == "grant":
                if a.detail.get("benefit") == RECOMMENDED and self.recommended is not None:
                    chosen = self.recommended(a)
                    if chosen is None:
                        self.write(self._row(a, "skip", "no_recommendation"))
                        continue
                    a = replace(a, detail={**a.detail, "benefit": chosen, "recommended": True})
                s.grants += 1
            elif a.kind == "convert":
                if a.detail.get("control"):
                    s.converted_control += 1
                else:
                    s.converted += 1
            elif a.kind == "exit":
                s.exits[a.reason or ""] += 1
            elif a.kind == "receipt":
                continue
            row = self._row(a, a.kind, a.reason)
            if a.kind == "lead":
                p = self.profiles.get(a.customer_id)
                row["to"] = (p.rm_id or p.branch_id) if p else None
            row.update({k: v for k, v in a.detail.items() if k not in row})
            self.write(row)

    def _row(self, a: Action, action: str, reason: str | None) -> dict[str, Any]:
        return {
            "time": a.at.astimezone(self.tz).isoformat(),
            "journey": a.journey,
            "step": a.step,
            "customer_id": a.customer_id,
            "action": action,
            "channel": a.channel,
            "reason": reason,
        }

    def write(self, row: dict[str, Any]) -> None:
        if self.out is not None:
            self.out.write(orjson.dumps({k: v for k, v in row.items() if v is not None}) + b"\n")


def branch_of(p: Profile | None) -> str:
    """The branch (second level of the org tree) of a customer's home org."""
    if p is None:
        return ""
    parts = [x for x in p.org_path.split("/") if x]
    return parts[1] if len(parts) > 1 else p.branch_id


def _receipt(a: Action, at: datetime, kind: str) -> JourneyEvent:
    return JourneyEvent(
        f"sim:{a.key}:{kind}", f"message.{kind}", a.customer_id, at,
        {"journey": a.journey, "step": a.step, "channel": a.channel, "message_id": a.key},
    )  # fmt: skip


def selection(compiled: Sequence[Compiled], *, aggregates: Collection[str]) -> str:
    """SQL choosing the events a simulation needs: each journey's trigger events (their condition applied),
    the other events it listens to only for customers it triggered on and within its horizon after the
    trigger, receipts, and the ``aggregates`` types (that expressions count)."""
    clauses = ["type LIKE 'message.%'"]
    if aggregates:
        clauses.append(types_sql(set(aggregates)))
    for c in compiled:
        t = c.spec.trigger
        others = c.event_types() - RECEIPTS
        if t.event is None:
            if others:
                clauses.append(types_sql(others))
            continue
        trigger = f"type = {sql_string(t.event)}"
        if t.where:
            trigger += f" AND ({event_condition_sql(parse_event_condition(t.where))})"
        clauses.append(f"({trigger})")
        others.discard(t.event)
        if others:
            seconds = int(horizon(c).total_seconds())
            clauses.append(
                f"({types_sql(others)} AND EXISTS (SELECT 1 FROM src t WHERE t.customer_id = src.customer_id "
                f"AND {trigger.replace('type =', 't.type =', 1)} AND src.ts >= t.ts "
                f"AND src.ts <= t.ts + INTERVAL {seconds} SECOND))"
            )
    return " OR ".join(clauses)


def dnd_lookup(session: Session, customer_ids: Collection[str]) -> Callable[[str, str, datetime], bool]:
    """Do-not-disturb as the store has it now: is the customer's channel closed at a moment?"""
    from omnibank.contact.standing import dnd_many

    windows = dnd_many(session, customer_ids)
    return lambda cid, channel, at: any(w.covers(channel, at) for w in windows.get(cid, ()))


def segment_members(settings: Settings, c: Compiled, at: datetime) -> list[str]:
    """Who matches a segment trigger (and the audience) as of ``at``'s bank-local day: the segment engine
    over the profile snapshot and the event log (aggregates count events up to that day only)."""
    from omnibank.db import unit_of_work
    from omnibank.segments.service import member_set

    assert c.spec.trigger.segment is not None
    text = f"({c.spec.trigger.segment})" + (f" AND ({c.spec.audience})" if c.spec.audience else "")
    with unit_of_work(settings) as session:
        members = member_set(session, settings, text, as_of=at.astimezone(settings.tz).date())
        session.rollback()
    return sorted(members)


def recommender(settings: Settings, compiled: Sequence[Compiled]) -> Callable[[Action], str | None]:
    """What a ``benefit: recommended`` step would grant, from the store as it stands now (one ranker per such
    step: its journey's budgets); a benefit given is not recommended to the same customer again."""
    from omnibank.benefits.ledger import defined_budgets
    from omnibank.benefits.recommend import Ranker, ranker
    from omnibank.db import unit_of_work

    rankers: dict[tuple[str, str], Ranker] = {}
    with unit_of_work(settings) as session:
        for c in compiled:
            for s in c.spec.steps:
                if s.grant and s.grant.benefit == RECOMMENDED:
                    budgets = defined_budgets(session, f"journey:{c.id}", s.id)
                    rankers[(c.id, s.id)] = ranker(session, settings, None, budgets=budgets)
        session.rollback()

    def pick(a: Action) -> str | None:
        top = rankers[(a.journey, a.step or "")].top(a.customer_id, 1)
        if not top:
            return None
        for r in rankers.values():
            r.held.setdefault(a.customer_id, set()).add(top[0].benefit_id)
        return top[0].benefit_id

    return pick


def simulate(
    specs: Sequence[JourneySpec],
    settings: Settings,
    *,
    events: Path | None,
    out: IO[bytes] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> SimulationReport:
    """Run ``specs`` together over ``events`` (a JSONL file; None: the data home's event log) and the
    customers in the store; writes the actions to ``out``. With ``since``, the journeys start then: earlier
    events only count in expressions. Reads the store, writes nothing to it."""
    from omnibank.db import unit_of_work

    compiled = [Compiled(s) for s in specs]
    with unit_of_work(settings) as session:
        profiles = load_profiles(session)
        dnd = dnd_lookup(session, list(profiles))
        identifiers = identifier_kinds(session)
        session.rollback()
    sim = Simulator(compiled, settings, profiles, dnd=dnd, identifiers=identifiers, out=out)
    if any(s.grant and s.grant.benefit == RECOMMENDED for c in compiled for s in c.spec.steps):
        sim.recommended = recommender(settings, compiled)
    if events is None:  # the log: segment triggers are looked at by the segment engine, as the worker does
        sim.members = lambda c, at: segment_members(settings, c, at)
    if events is None:  # segment triggers go to the engine: only the audience and the steps count in memory
        counted = aggregate_types(
            e for c in compiled for e in [c.audience, *c.step_expressions()] if e is not None
        )
    else:
        counted = aggregate_types(e for c in compiled for e in c.expressions)
    sim.facts.event_types = counted
    where = selection(compiled, aggregates=counted)
    if since is not None:
        start = int(since.timestamp() * 1_000_000)
        where = f"({where}) AND (epoch_us(ts) >= {start}" + (
            f" OR {types_sql(set(counted))})" if counted else ")"
        )
    if until is not None:
        where = f"({where}) AND epoch_us(ts) <= {int(until.timestamp() * 1_000_000)}"
    stream = read_journey_events(settings, where=where, path=events)
    return sim.run_stream(stream, since=since, until=until)
