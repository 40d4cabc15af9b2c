"""Channel routing (J2): which channels to try for one customer, in order.

A :class:`Route` is data (YAML or JSON inside a journey):

.. code-block:: yaml

    rules:                                  # tried in order; every matching rule adds its channel(s)
      - when: "aum >= 1000000"
        channel: [human_call, wecom]        # a list: equals, ordered by cost (cheaper first)
      - when: "age >= 60"
        channel: ai_call
    use_preference: true                    # then the customer's own channel_pref
    fallback: [app_push, [sms, wechat]]     # then these
    cost: {sms: "0.05", ai_call: "0.30", human_call: "8.00", app_push: "0"}   # CNY a contact

Rules are written in the expression language (:mod:`omnibank.segments.expr`) and parsed once, when the
route is built. :func:`choose` gives the ordered chain for one customer: matching rules first, then the
customer's ``channel_pref`` (``app`` → ``app_push``, ``wechat`` → ``wechat``, ``sms`` → ``sms``, ``phone`` →
``ai_call`` and ``human_call``, ``branch`` → ``branch_task``), then the fallback; a channel appears once (its
first place), unreachable channels are dropped. Channels that share a place (a list in a rule or the
fallback, or ``phone``'s two) are ordered by cost, cheapest first, channels without a cost after those with
one, then in :data:`~omnibank.contact.policy.CHANNELS` order.

Journeys use the chain for "send by routing" (the first channel) and for falling back when a message
failed or got no answer (the next one); the waiting is the journey's job. Routing never decides whether a
send may go: :func:`omnibank.contact.outbox.submit` does (consent, do-not-disturb, quiet hours, caps).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.contact.policy import CHANNELS
from omnibank.kit.delivery import Channel as Channel
from omnibank.segments.expr import CustomerFacts, Expression, evaluate, parse

Place = Channel | list[Channel]

PREFERENCE_CHANNELS: dict[str, tuple[str, ...]] = {
    "app": ("app_push",),
    "wechat": ("wechat",),
    "sms": ("sms",),
    "phone": ("ai_call", "human_call"),
    "branch": ("branch_task",),
}
_ORDER = {c: i for i, c in enumerate(CHANNELS)}


class RouteRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: Annotated[str, Field(min_length=1, max_length=4000)]
    channel: Place

    @field_validator("channel")
    @classmethod
    def _not_empty(cls, value: Place) -> Place:
        if isinstance(value, list) and not value:
            raise ValueError("a rule needs at least one channel")
        return value


class Route(BaseModel):
    """Routing rules, compiled once (each ``when`` parsed when the route is built; an expression that
    cannot be used is refused then, naming the rule)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[RouteRule] = Field(default_factory=list)
    use_preference: bool = True
    fallback: list[Place] = Field(default_factory=list)
    cost: dict[Channel, Decimal] = Field(default_factory=dict)

    _compiled: list[tuple[Expression, tuple[str, ...]]] = PrivateAttr(default_factory=list)

    @field_validator("cost")
    @classmethod
    def _costs(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for channel, amount in value.items():
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"cost of {channel}: a decimal amount >= 0 (CNY)")
        return value

    @model_validator(mode="after")
    def _compile(self) -> Route:
        from omnibank.segments.expr import ExpressionError

        compiled = []
        for i, rule in enumerate(self.rules, start=1):
            try:
                expression = parse(rule.when)
            except ExpressionError as exc:
                raise ValueError(f"rules[{i}].when: {exc.message}") from None
            compiled.append((expression, self._place(rule.channel)))
        self._compiled = compiled
        return self

    def _place(self, place: Place | str | Sequence[str]) -> tuple[str, ...]:
        """The channels of one place, ordered by cost (unknown cost last), then by CHANNELS order."""
        channels: list[str] = [place] if isinstance(place, str) else list(place)
        costs: dict[str, Decimal] = {str(k): v for k, v in self.cost.items()}
        return tuple(
            sorted(
                dict.fromkeys(channels), key=lambda c: (c not in costs, costs.get(c, Decimal(0)), _ORDER[c])
            )
        )

    def compiled(self) -> list[tuple[Expression, tuple[str, ...]]]:
        return self._compiled


def route_from(data: Mapping[str, Any]) -> Route:
    """Build a route from parsed YAML/JSON; refuses bad input naming what is wrong (pydantic errors)."""
    return Route.model_validate(data)


def choose(route: Route, facts: CustomerFacts, as_of: date, reachable: Collection[str]) -> list[str]:
    """The ordered channel chain for one customer on ``as_of`` (bank-local date): matching rules, then the
    customer's preference (when the route uses it), then the fallback; each channel once; those not in
    ``reachable`` dropped. Empty when no channel reaches the customer."""
    chain: dict[str, None] = {}
    for expression, channels in route.compiled():
        if evaluate(expression, facts, as_of):
            chain.update(dict.fromkeys(channels))
    if route.use_preference:
        pref = facts.attributes.get("channel_pref")
        if isinstance(pref, str) and pref in PREFERENCE_CHANNELS:
            chain.update(dict.fromkeys(route._place(PREFERENCE_CHANNELS[pref])))
    for place in route.fallback:
        chain.update(dict.fromkeys(route._place(place)))
    return [c for c in chain if c in reachable]


# ---------------------------------------------------------------------------------------- reachability


def reachable(
    facts: CustomerFacts,
    *,
    identifiers: Collection[str] = (),
    dnd_channels: Collection[str] = (),
) -> frozenset[str]:
    """The channels through which we can reach a customer, from what we know (an assumption each):

    * ``sms``, ``ai_call``, ``human_call`` — every customer file carries a mobile number (the contract
      requires it), so always;
    * ``app_push`` — an app user id is linked (``identity.linked``), or the customer prefers the app;
    * ``wechat`` — a WeChat openid is linked, or the customer prefers WeChat;
    * ``wecom`` — the customer has a relationship manager (``rm_id``), whose WeCom contact they are;
    * ``branch_task`` — the customer has a home branch (``branch_id``), whose staff can do the task.

    ``identifiers`` are the kinds known for the customer (``app_user_id``, ``wechat_openid``, …);
    ``dnd_channels`` the channels under do-not-disturb now (``all`` removes every channel)."""
    if "all" in dnd_channels:
        return frozenset()
    attrs = facts.attributes
    pref = attrs.get("channel_pref")
    out = {"sms", "ai_call", "human_call"}
    if "app_user_id" in identifiers or pref == "app":
        out.add("app_push")
    if "wechat_openid" in identifiers or pref == "wechat":
        out.add("wechat")
    if attrs.get("rm_id"):
        out.add("wecom")
    if attrs.get("branch_id"):
        out.add("branch_task")
    return frozenset(out - set(dnd_channels))


def reachable_many(session: Session, customer_ids: Collection[str], *, now: Any) -> dict[str, frozenset[str]]:
    """:func:`reachable` for many customers from the store (customer file, linked identifiers and open
    do-not-disturb windows at ``now``); unknown and erased customers: nothing."""
    from omnibank.contact.standing import dnd_many
    from omnibank.customers.models import Customer, CustomerIdentifier

    ids = list(dict.fromkeys(customer_ids))
    out: dict[str, frozenset[str]] = {cid: frozenset() for cid in ids}
    for i in range(0, len(ids), 900):
        chunk = ids[i : i + 900]
        kinds: dict[str, set[str]] = {}
        for cid, kind in session.execute(
            select(CustomerIdentifier.customer_id, CustomerIdentifier.kind).where(
                CustomerIdentifier.customer_id.in_(chunk)
            )
        ):
            kinds.setdefault(cid, set()).add(kind)
        windows = dnd_many(session, chunk)
        rows = session.execute(
            select(Customer.customer_id, Customer.channel_pref, Customer.rm_id, Customer.branch_id).where(
                Customer.customer_id.in_(chunk), Customer.erased_at.is_(None)
            )
        )
        for cid, pref, rm_id, branch_id in rows:
            facts = CustomerFacts(
                attributes={"channel_pref": pref, "rm_id": rm_id, "branch_id": branch_id},
                tags=frozenset(),
                org_path="",
                events=(),
            )
            closed = {w.channel for w in windows.get(cid, []) if w.covers(w.channel, now)}
            out[cid] = reachable(facts, identifiers=kinds.get(cid, set()), dnd_channels=closed)
    return out
