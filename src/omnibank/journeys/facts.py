"""What journeys know about customers when they decide: attributes, tags, org path, consent, and the
events that expressions count (``events('app.login', 90) = 0``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.consent import service as consent
from omnibank.contact import routing
from omnibank.contact.routing import Route
from omnibank.segments.expr import CUSTOMER_FIELDS, CustomerFacts, Expression, Value, evaluate

_CHUNK = 900


@dataclass
class Profile:
    """The parts of a customer an expression reads, except events (name, phone, ID number never)."""

    attributes: dict[str, Value]
    tags: frozenset[str]
    org_path: str
    branch_id: str
    rm_id: str | None


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def load_profiles(session: Session, customer_ids: Collection[str] | None = None) -> dict[str, Profile]:
    """Profiles of these customers (or all); erased customers are left out (they cannot be reached)."""
    from omnibank.customers.models import Customer
    from omnibank.orgs.models import Org
    from omnibank.tags.models import CustomerTag

    query = (
        select(Customer, Org.path)
        .join(Org, Org.org_id == Customer.branch_id)
        .where(Customer.erased_at.is_(None))
    )
    rows: list[Any] = []
    if customer_ids is None:
        rows = list(session.execute(query))
        tag_rows = list(session.execute(select(CustomerTag.customer_id, CustomerTag.tag)))
    else:
        ids = list(dict.fromkeys(customer_ids))
        tag_rows = []
        for chunk in _chunks(ids):
            rows += list(session.execute(query.where(Customer.customer_id.in_(chunk))))
            tag_rows += list(
                session.execute(
                    select(CustomerTag.customer_id, CustomerTag.tag).where(CustomerTag.customer_id.in_(chunk))
                )
            )
    marketing = consent.allowed_many(session, [c.customer_id for c, _ in rows], "marketing")
    tags: dict[str, set[str]] = {}
    for cid, tag in tag_rows:
        tags.setdefault(cid, set()).add(tag)
    out: dict[str, Profile] = {}
    for c, path in rows:
        attributes: dict[str, Value] = {n: getattr(c, n) for n in CUSTOMER_FIELDS if hasattr(c, n)}
        attributes["aum"] = Decimal(c.aum_fen) / 100
        attributes["marketing_consent"] = marketing.get(c.customer_id, False)
        out[c.customer_id] = Profile(
            attributes=attributes,
            tags=frozenset(tags.get(c.customer_id, ())),
            org_path=path,
            branch_id=c.branch_id,
            rm_id=c.rm_id,
        )
    return out


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
        if p is None:
            return None
        return CustomerFacts(p.attributes, p.tags, p.org_path, self.events.get(customer_id, ()))

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


def identifier_kinds(session: Session, customer_ids: Collection[str] | None = None) -> dict[str, set[str]]:
    """The kinds of identifiers linked to customers (``app_user_id``, ``wechat_openid``: reachability)."""
    from omnibank.customers.models import CustomerIdentifier

    query = select(CustomerIdentifier.customer_id, CustomerIdentifier.kind).distinct()
    out: dict[str, set[str]] = {}
    chunks: Iterable[list[str] | None] = [None] if customer_ids is None else _chunks(list(customer_ids))
    for chunk in chunks:
        q = query if chunk is None else query.where(CustomerIdentifier.customer_id.in_(chunk))
        for cid, kind in session.execute(q):
            out.setdefault(cid, set()).add(kind)
    return out
