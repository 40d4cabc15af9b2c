"""The customer read layer: a page of the customers a caller sees, the search by phone or ID number through
the blind index, and the customer 360 — what ``omnibank customer show``, ``GET /customers/{id}`` and the
console's customer pages all show, assembled once here.

Everything is scoped (a customer outside the caller's scope is "not found", as
:func:`~omnibank.customer_ops.profile.masked_profile` has it), masked, bounded (each list has a limit) and
audited once: the profile's view entry covers the whole 360 (the identifiers of customers merged into this
one are audited by :func:`~omnibank.customers.identity.identity_view` under their own ids).

"Which campaigns can this customer join now" (J6): the live campaigns (started, not stopped, today within
their period), each with the answer of the campaigns' own rule (:mod:`omnibank.campaigns.audience`) for this
one customer — the campaign's eligibility expression evaluated by the segment engine restricted to the
customer's id, and the consent its ``purpose`` needs; a campaign that also asks for a card says so (the card
is checked on each event, not in advance).

"Recommended benefits" (B2): the top :data:`RECOMMENDED_LIMIT` benefits the customer may be granted now, each
with its reason (:mod:`omnibank.benefits.recommend`). The recommender's model (item similarity and segment
priors) is built once per process and reused for :data:`MODEL_MAX_AGE` seconds even when coupons move (on a
live bank every grant moves them; a rebuild per view would cost ~0.15 s on the demo bank and seconds on a
large one); stock, budgets and the coupons the customer holds are read live on each view."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.benefits import ledger
from omnibank.benefits.models import Benefit, Coupon
from omnibank.benefits.recommend import Recommendation, ranker
from omnibank.campaigns.live import spec_of
from omnibank.campaigns.models import Campaign
from omnibank.config import Settings
from omnibank.consent.service import allowed as consent_allowed
from omnibank.contact.views import list_messages
from omnibank.customer_ops.profile import MaskedProfile, masked_profile
from omnibank.customers import identity, repository
from omnibank.customers.identity import IdentityView
from omnibank.customers.models import Customer
from omnibank.customers.repository import Scope
from omnibank.customers.service import find_customers
from omnibank.errors import NotFound
from omnibank.events.log import EventLog
from omnibank.journeys.models import Journey, JourneyEntry
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.masking import mask_card_id, mask_name, mask_phone
from omnibank.kit.money import from_fen
from omnibank.leads.models import Lead
from omnibank.segments.compile import quote
from omnibank.segments.engine import duck_engine, parse_in
from omnibank.segments.expr import And, Cmp, Expression, Field, Lit
from omnibank.segments.service import segments_of
from omnibank.tags.service import tags_of

COUPONS_LIMIT = 50
JOURNEYS_LIMIT = 20
LEADS_LIMIT = 20
CONTACTS_LIMIT = 20
EVENTS_LIMIT = 20
CAMPAIGNS_LIMIT = 50
PAGE_LIMIT = 100
RECOMMENDED_LIMIT = 5
MODEL_MAX_AGE = 600.0  # seconds a recommendation model is reused by the 360 though the data moved
SEARCH_KINDS = ("phone", "id_number", "customer_id")
_EVENT_KEYS = frozenset({"event_id", "type", "ts", "channel", "customer_id"})


# ------------------------------------------------------------------------------------------------ lists


@dataclass(frozen=True)
class CustomerLine:
    """A customer in a list: name and phone masked."""

    customer_id: str
    name: str
    phone: str
    branch_id: str
    rm_id: str | None


@dataclass(frozen=True)
class CustomerPage:
    items: list[CustomerLine]
    total: int  # the customers the caller sees
    next_after: str | None  # the last id of this page when there may be more


def customer_line(cipher: FieldCipher, c: Customer) -> CustomerLine:
    cid = c.customer_id
    return CustomerLine(
        customer_id=cid,
        name=mask_name(cipher.decrypt(c.name_enc, context=f"customers.name:{cid}")),
        phone=mask_phone(cipher.decrypt(c.phone_enc, context=f"customers.phone:{cid}")),
        branch_id=c.branch_id,
        rm_id=c.rm_id,
    )


def customer_page(
    session: Session,
    cipher: FieldCipher,
    scope: Scope,
    *,
    after: str | None,
    limit: int = 50,
    actor: str,
    source: str,
) -> CustomerPage:
    """The customers ``scope`` sees, by id after ``after``, ``limit`` at a time (at most
    :data:`PAGE_LIMIT`), masked, with their number; the listing is audited (which customers were shown)."""
    limit = max(1, min(limit, PAGE_LIMIT))
    rows = repository.page(session, scope, after=after, limit=limit)
    total = repository.count(session, scope)
    items = [customer_line(cipher, c) for c in rows]
    audit.record(
        session, actor=actor, action="customer.list", subject_type="customer", subject_id=None,
        detail={"shown": [c.customer_id for c in rows], "fields": ["name", "phone"]}, source=source,
    )  # fmt: skip
    next_after = rows[-1].customer_id if len(rows) == limit else None
    return CustomerPage(items=items, total=total, next_after=next_after)


def search_customers(
    session: Session,
    cipher: FieldCipher,
    scope: Scope,
    *,
    kind: Literal["phone", "id_number", "customer_id"],
    value: str,
    actor: str,
    source: str,
    limit: int = 50,
) -> CustomerPage:
    """Exact search among the customers ``scope`` sees: by phone or ID number through the blind index (the
    search is audited, without the number), or by customer id (nothing personal is searched: the view that
    follows is audited)."""
    if kind not in SEARCH_KINDS:
        raise ValueError(f"kind: one of {', '.join(SEARCH_KINDS)}")
    value = value.strip()
    if kind == "customer_id":
        found = repository.get(session, scope, value) if value else None
        rows = [found] if found is not None and found.erased_at is None else []
    else:
        rows = find_customers(
            session,
            cipher,
            actor=actor,
            scope=scope,
            source=source,
            phone=value if kind == "phone" else None,
            id_number=value if kind == "id_number" else None,
        )
    items = [customer_line(cipher, c) for c in rows[:limit]]
    return CustomerPage(items=items, total=len(rows), next_after=None)


# ------------------------------------------------------------------------------------------------ the 360


@dataclass(frozen=True)
class TagLine:
    tag: str
    category: str
    since: date


@dataclass(frozen=True)
class CouponLine:
    id: int
    campaign: str
    benefit_id: str
    benefit_name: str
    status: str
    face_value: str | None  # yuan, e.g. "20.00"
    granted_at: datetime
    valid_to: datetime | None


@dataclass(frozen=True)
class JourneyLine:
    journey: str
    name: str
    status: str  # active, control, done, exited, converted
    step: str | None
    entered_at: datetime
    converted_at: datetime | None


@dataclass(frozen=True)
class LeadLine:
    lead_id: str
    source: str
    product_id: str | None
    status: str
    owner_staff_id: str | None
    due_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class ContactLine:
    id: int
    channel: str
    purpose: str
    journey: str | None
    status: str
    reason: str | None
    asked_at: datetime


@dataclass(frozen=True)
class EventLine:
    ts: datetime  # bank-local
    type: str
    channel: str
    customer_id: str  # a customer merged into this one, for its events
    details: str  # typed fields, a card shown masked


@dataclass(frozen=True)
class CampaignChance:
    """A live campaign and whether this customer can take part now."""

    campaign_id: str
    name: str
    ends: date
    joinable: bool
    why_not: str | None  # "eligibility" or "consent:<purpose>"
    needs_card: bool  # it also asks for a card (checked on each event)


@dataclass(frozen=True)
class Customer360:
    profile: MaskedProfile
    identity: IdentityView
    tags: list[TagLine]
    segments: list[str]
    points: int
    coupons: list[CouponLine]
    journeys: list[JourneyLine]
    leads: list[LeadLine]
    contacts: list[ContactLine]
    events: list[EventLine]
    campaigns: list[CampaignChance]
    recommended: list[Recommendation]  # best first, each with its reason (nothing personal)

    @property
    def joinable(self) -> list[CampaignChance]:
        return [c for c in self.campaigns if c.joinable]

    def events_by_type(self) -> list[tuple[str, int]]:
        """The recent events counted by type, most first."""
        return Counter(e.type for e in self.events).most_common()


def customer_360(
    session: Session,
    settings: Settings,
    cipher: FieldCipher,
    customer_id: str,
    *,
    actor: str,
    today: date,
    scope: Scope | None = None,
    source: str = "cli",
    now: datetime | None = None,
    events: int = EVENTS_LIMIT,
    campaigns: bool = True,
    recommended: int = RECOMMENDED_LIMIT,
) -> Customer360:
    """The masked 360 of a customer ``scope`` sees (default: the whole bank; outside it: NotFound), audited
    once. ``events`` is how many recent events to read (0: none); ``campaigns`` False leaves out J6 (the
    two parts that read the event log, which the API's view does not show); ``recommended`` how many
    benefits to recommend (0: none)."""
    profile = masked_profile(
        session, cipher, customer_id, actor=actor, today=today, scope=scope, source=source
    )  # raises NotFound outside the scope, and audits the view
    ident = identity.identity_view(session, cipher, customer_id, actor=actor)
    return Customer360(
        profile=profile,
        identity=ident,
        tags=[TagLine(t, cat or "", since) for t, cat, since in tags_of(session, customer_id)],
        segments=segments_of(session, customer_id),
        points=ledger.balance(session, customer_id),
        coupons=coupons_of(session, customer_id),
        journeys=journeys_of(session, customer_id),
        leads=leads_of(session, customer_id),
        contacts=contacts_of(session, customer_id),
        events=recent_events(settings, customer_id, ident, limit=events) if events > 0 else [],
        campaigns=campaigns_open_to(session, settings, customer_id, today=today) if campaigns else [],
        recommended=recommended_for(session, settings, customer_id, n=recommended) if recommended > 0 else [],
    )


def recommended_for(
    session: Session, settings: Settings, customer_id: str, *, n: int = RECOMMENDED_LIMIT
) -> list[Recommendation]:
    """The benefits to offer the customer now, best first with the reason (a model up to
    :data:`MODEL_MAX_AGE` seconds old; what a grant would accept and what they hold, live)."""
    return ranker(session, settings, [customer_id], max_age=MODEL_MAX_AGE).top(customer_id, n)


def customer_events(
    session: Session,
    settings: Settings,
    cipher: FieldCipher,
    customer_id: str,
    *,
    scope: Scope,
    actor: str,
    limit: int = EVENTS_LIMIT,
) -> list[EventLine]:
    """The 360's recent events on their own (the console loads them after the rest of the page: they are
    read from the event log, the slowest part): NotFound for a customer outside ``scope``."""
    if repository.get(session, scope, customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    ident = identity.identity_view(session, cipher, customer_id, actor=actor)
    return recent_events(settings, customer_id, ident, limit=limit)


def coupons_of(session: Session, customer_id: str, *, limit: int = COUPONS_LIMIT) -> list[CouponLine]:
    """The customer's coupons, newest first."""
    stmt = (
        select(Coupon, Benefit.name)
        .join(Benefit, Benefit.id == Coupon.benefit_id)
        .where(Coupon.customer_id == customer_id)
        .order_by(Coupon.granted_at.desc(), Coupon.id.desc())
        .limit(limit)
    )
    return [
        CouponLine(
            id=c.id,
            campaign=c.campaign,
            benefit_id=c.benefit_id,
            benefit_name=name,
            status=c.status,
            face_value=None if c.face_value_fen is None else f"{from_fen(c.face_value_fen):.2f}",
            granted_at=c.granted_at,
            valid_to=c.valid_to,
        )
        for c, name in session.execute(stmt)
    ]


def journeys_of(session: Session, customer_id: str, *, limit: int = JOURNEYS_LIMIT) -> list[JourneyLine]:
    """The journeys the customer entered (each pass), latest first."""
    stmt = (
        select(JourneyEntry, Journey.name)
        .join(Journey, Journey.id == JourneyEntry.journey)
        .where(JourneyEntry.customer_id == customer_id)
        .order_by(JourneyEntry.entered_at.desc(), JourneyEntry.id.desc())
        .limit(limit)
    )
    return [
        JourneyLine(
            journey=e.journey,
            name=name,
            status=e.status,
            step=e.step,
            entered_at=e.entered_at,
            converted_at=e.converted_at,
        )
        for e, name in session.execute(stmt)
    ]


def leads_of(session: Session, customer_id: str, *, limit: int = LEADS_LIMIT) -> list[LeadLine]:
    """The leads about the customer, latest first (the notes are left out: the lead pages show them)."""
    stmt = (
        select(Lead)
        .where(Lead.customer_id == customer_id)
        .order_by(Lead.created_at.desc(), Lead.lead_id)
        .limit(limit)
    )
    return [
        LeadLine(
            lead_id=x.lead_id,
            source=x.source,
            product_id=x.product_id,
            status=x.status,
            owner_staff_id=x.owner_staff_id,
            due_at=x.due_at,
            created_at=x.created_at,
        )
        for x in session.scalars(stmt)
    ]


def contacts_of(session: Session, customer_id: str, *, limit: int = CONTACTS_LIMIT) -> list[ContactLine]:
    """The contact history: the customer's messages in the outbox, newest first."""
    return [
        ContactLine(
            id=m.id,
            channel=m.channel,
            purpose=m.purpose,
            journey=m.journey,
            status=m.status,
            reason=m.reason,
            asked_at=m.asked_at,
        )
        for m in list_messages(session, customer_id=customer_id, limit=limit)
    ]


def event_value(key: str, value: object, cards: dict[str, str] | None = None) -> str:
    """One typed field of an event as shown: a card as the bound card, masked; whole floats without '.0'."""
    if key == "card_id":  # events hold a card's token: shown as the bound card, masked
        text = str(value)
        if cards and text in cards:
            return cards[text]
        return identity.short_token(text) if text.startswith("⟨") else mask_card_id(text)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def recent_events(
    settings: Settings, customer_id: str, ident: IdentityView, *, limit: int = EVENTS_LIMIT
) -> list[EventLine]:
    """The customer's latest events (and those of customers merged into it), most recent first."""
    rows: list[dict[str, Any]] = EventLog(settings).recent([customer_id, *ident.merged_ids], limit=limit)
    return [
        EventLine(
            ts=e["ts"],
            type=e["type"],
            channel=e.get("channel") or "",
            customer_id=e["customer_id"],
            details=", ".join(
                f"{k}={event_value(k, v, ident.cards)}" for k, v in e.items() if k not in _EVENT_KEYS
            ),
        )
        for e in rows
    ]


def _for_one(expression: Expression, customer_id: str) -> Expression:
    """``expression AND customer_id = '<id>'``, combined on the checked tree."""
    one = Cmp("=", Field("customer_id", "str"), Lit(customer_id, "str"))
    return Expression(
        text=f"({expression.text}) AND customer_id = {quote(customer_id)}",
        root=And((expression.root, one)),
        tags=expression.tags,
        orgs=expression.orgs,
        aggregates=expression.aggregates,
    )


def live_campaigns(session: Session, *, today: date, limit: int = CAMPAIGNS_LIMIT) -> list[Campaign]:
    """The campaigns running today: started, not stopped, today within their period."""
    rows = session.scalars(select(Campaign).where(Campaign.status == "active").order_by(Campaign.id))
    live = [c for c in rows if spec_of(c).period.start <= today <= spec_of(c).period.end]
    return live[:limit]


def campaigns_open_to(
    session: Session, settings: Settings, customer_id: str, *, today: date, limit: int = CAMPAIGNS_LIMIT
) -> list[CampaignChance]:
    """Each live campaign with whether the customer can take part now (J6): the campaign's eligibility (the
    segment engine, for this customer only, as of ``today``) and the consent its purpose needs — the rule
    of :func:`omnibank.campaigns.audience.eligible`, asked about one customer."""
    chances: list[CampaignChance] = []
    live = live_campaigns(session, today=today, limit=limit)
    if not live:
        return chances
    specs = [spec_of(c) for c in live]
    matched: dict[str, bool] = {}
    conditional = [s for s in specs if s.eligibility]
    if conditional:
        with duck_engine(session, settings) as duck:
            for spec in conditional:
                expression = _for_one(parse_in(session, spec.eligibility or "TRUE"), customer_id)
                matched[spec.id] = duck.count(expression, today) > 0
    for row, spec in zip(live, specs, strict=True):
        why_not: str | None = None
        if not matched.get(spec.id, True):
            why_not = "eligibility"
        elif spec.purpose is not None and not consent_allowed(session, customer_id, spec.purpose):
            why_not = f"consent:{spec.purpose}"
        chances.append(
            CampaignChance(
                campaign_id=row.id,
                name=row.name,
                ends=spec.period.end,
                joinable=why_not is None,
                why_not=why_not,
                needs_card=bool(spec.card or any(r.card for r in spec.rules)),
            )
        )
    return chances
