"""What journeys know about customers when they decide: attributes, tags, org path, consent, and the
events that expressions count (``events('app.login', 90) = 0``).

Profiles and the events already in the log come from the one customer-facts builder
(:mod:`omnibank.segments.facts`); :class:`MemoryFacts` adds the events a simulation or a worker sees go by,
and answers route rules (reachability, do-not-disturb) beside expressions."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from omnibank.contact import routing
from omnibank.contact.routing import Route
from omnibank.segments.expr import CustomerFacts, Expression, evaluate
from omnibank.segments.facts import Profile


@dataclass
class MemoryFacts:
    """Profiles plus the events seen so far, answering expressions in memory (same answers as the
    compiled SQL: :func:`omnibank.segments.expr.evaluate`)."""

    profiles: Mapping[str, Profile]
    tz: ZoneInfo
    events: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    event_types: frozenset[str] = frozenset()  # the types expressions count (others are not kept)
    identifiers: Mapping[str, Collection[str]] = field(default_factory=dict)  # kinds linked (app, WeChat)
    dnd_channels: Callable[[str, datetime], Collection[str]] | None = None

    def add_event(self, customer_id: str, type_: str, fields: Mapping[str, Any]) -> None:
        if type_ in self.event_types:
            self.events.setdefault(customer_id, []).append({"type": type_, **fields})

    def facts(self, customer_id: str) -> CustomerFacts | None:
        p = self.profiles.get(customer_id)
        return None if p is None else p.facts(self.events.get(customer_id, ()))

    def matches(self, expression: Expression, customer_id: str, at: datetime) -> bool:
        facts = self.facts(customer_id)
        return facts is not None and evaluate(expression, facts, at.astimezone(self.tz).date())

    def route(self, route: Route, customer_id: str, at: datetime) -> tuple[str, ...]:
        facts = self.facts(customer_id)
        if facts is None:
            return ()
        dnd = self.dnd_channels(customer_id, at) if self.dnd_channels else ()
        can = routing.reachable(facts, identifiers=self.identifiers.get(customer_id, ()), dnd_channels=dnd)
        return tuple(routing.choose(route, facts, at.astimezone(self.tz).date(), can))


def aggregate_types(expressions: Iterable[Expression]) -> frozenset[str]:
    return frozenset(a.type for e in expressions for a in e.aggregates)
