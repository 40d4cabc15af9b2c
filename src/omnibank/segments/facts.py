"""The one customer-facts builder: what :func:`omnibank.segments.expr.evaluate` needs to answer an
expression about one customer in memory (attributes, tags, org path, the events that ``events('app.login',
90)`` counts), for real-time decisions: a segment's member check, a journey's audience, branch and route
conditions (worker and simulation), a tag computed for a few customers.

The store gives the profile (:func:`load_profiles`: never name, phone or ID number; erased customers are
left out, they cannot be reached); the event log gives the events, through the one event reader
(:mod:`omnibank.events.reader`), those of customers merged into a survivor counted as the survivor's.
Ids go to the store in chunks (SQLite allows at most 999 parameters a statement on older builds)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.consent import service as consent
from omnibank.events.log import EventLog
from omnibank.events.reader import read_rows
from omnibank.kit.money import from_fen
from omnibank.orgs.models import Org
from omnibank.segments.expr import CUSTOMER_FIELDS, EVENT_FIELDS, CustomerFacts, Value
from omnibank.segments.tables import customer_tags, model_scores

_CHUNK = 900
#: the event fields expressions read (``weekday`` included: the bank-local ISO day)
EVENT_COLUMNS = tuple(dict.fromkeys(column for _, column in EVENT_FIELDS.values()))


@dataclass
class Profile:
    """The parts of a customer an expression reads, except events (name, phone, ID number never), and
    where the customer belongs (branch, relationship manager)."""

    attributes: dict[str, Value]
    tags: frozenset[str]
    org_path: str
    branch_id: str
    rm_id: str | None
    scores: Mapping[str, int] = field(default_factory=dict)  # model → stored score in millionths

    def facts(self, events: Sequence[Mapping[str, Any]] = ()) -> CustomerFacts:
        return CustomerFacts(self.attributes, self.tags, self.org_path, events, self.scores)


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def load_profiles(session: Session, customer_ids: Collection[str] | None = None) -> dict[str, Profile]:
    """Profiles of these customers (or all); erased customers are left out (they cannot be reached).
    ``marketing_consent`` is the effective consent (the latest record, else the customer file's flag)."""
    from omnibank.customers.models import Customer

    query = (
        select(Customer, Org.path)
        .join(Org, Org.org_id == Customer.branch_id)
        .where(Customer.erased_at.is_(None))
    )
    tag_query = select(customer_tags.c.customer_id, customer_tags.c.tag)
    s = model_scores.c
    score_query = select(s.customer_id, s.model, s.score_ppm)
    rows: list[Any] = []
    if customer_ids is None:
        rows = list(session.execute(query))
        tag_rows = list(session.execute(tag_query))
        score_rows = list(session.execute(score_query))
    else:
        tag_rows, score_rows = [], []
        for chunk in _chunks(list(dict.fromkeys(customer_ids))):
            rows += list(session.execute(query.where(Customer.customer_id.in_(chunk))))
            tag_rows += list(session.execute(tag_query.where(customer_tags.c.customer_id.in_(chunk))))
            score_rows += list(session.execute(score_query.where(s.customer_id.in_(chunk))))
    marketing = consent.allowed_many(session, [c.customer_id for c, _ in rows], "marketing")
    tags: dict[str, set[str]] = {}
    for cid, tag in tag_rows:
        tags.setdefault(cid, set()).add(tag)
    scores: dict[str, dict[str, int]] = {}
    for cid, model, ppm in score_rows:
        scores.setdefault(cid, {})[model] = int(ppm)
    out: dict[str, Profile] = {}
    for c, path in rows:
        attributes: dict[str, Value] = {n: getattr(c, n) for n in CUSTOMER_FIELDS if hasattr(c, n)}
        attributes["aum"] = from_fen(c.aum_fen)
        attributes["marketing_consent"] = marketing.get(c.customer_id, False)
        out[c.customer_id] = Profile(
            attributes=attributes,
            tags=frozenset(tags.get(c.customer_id, ())),
            org_path=path,
            branch_id=c.branch_id,
            rm_id=c.rm_id,
            scores=scores.get(c.customer_id, {}),
        )
    return out


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


def _owners(session: Session, survivors: list[str]) -> dict[str, str]:
    """Whose events count as whose: each survivor's own, and those of the customers merged into it."""
    from omnibank.customers.models import CustomerMerge

    owner = {cid: cid for cid in survivors}
    for chunk in _chunks(survivors):
        for merged, survivor in session.execute(
            select(CustomerMerge.merged_id, CustomerMerge.survivor_id).where(
                CustomerMerge.survivor_id.in_(chunk)
            )
        ):
            owner[merged] = survivor
    return owner


def _event_fact(
    _eid: str, etype: str, cid: str, _ts: int, local: date, fields: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    fields["type"] = etype
    fields["local_date"] = local
    return cid, fields


def customer_events(
    session: Session, settings: Settings, customer_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """The events of these customers (and of the customers merged into them) from the event log, in time
    order, as expressions read them (``type``, ``local_date``, ``weekday`` and the typed fields)."""
    owner = _owners(session, customer_ids)
    events: dict[str, list[dict[str, Any]]] = {}
    if not owner or not EventLog(settings).files():
        return events
    for cid, event in read_rows(settings, _event_fact, fields=EVENT_COLUMNS, customers=owner):
        events.setdefault(cid, []).append(event)
    return events


def customer_facts(
    session: Session,
    settings: Settings,
    customer_ids: list[str],
    *,
    profiles: Mapping[str, Profile] | None = None,
) -> dict[str, CustomerFacts]:
    """What :func:`omnibank.segments.expr.evaluate` needs for these customers, read from the store and the
    event log (events of customers merged into them included): for real-time decisions. A customer merged
    into another is left out (the survivor answers for both). ``profiles`` already loaded
    (:func:`load_profiles`) are used instead of reading them again."""
    from omnibank.customers.models import CustomerMerge

    merged_away: set[str] = set()
    wanted = list(dict.fromkeys(customer_ids))
    for chunk in _chunks(wanted):
        merged_away.update(
            session.scalars(select(CustomerMerge.merged_id).where(CustomerMerge.merged_id.in_(chunk)))
        )
    ids = [cid for cid in wanted if cid not in merged_away]  # they count as survivors
    if profiles is None:
        profiles = load_profiles(session, ids)
    known = [cid for cid in ids if cid in profiles]
    events = customer_events(session, settings, known)
    return {cid: profiles[cid].facts(events.get(cid, [])) for cid in known}
