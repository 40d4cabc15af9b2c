"""Benefit recommendations (requirement B2): which active benefits to offer a customer, and why.

Two signals, blended per customer:

* **Similar customers** (item-based collaborative filtering): benefits are similar when the same customers
  redeemed them (cosine over the customer × benefit "redeemed at least once" matrix). A customer's score for
  a benefit is its mean similarity to the benefits they redeemed; a benefit they redeemed themselves counts
  with similarity 1, so a coffee voucher used every month comes back.
* **Segment prior** (for customers with little history; seed 000: consumption and entertainment for the
  young, life services for older customers): the redemption rate of each benefit among customers of the
  same age band, averaged with its rate among customers who share one of their top spending categories
  (the ``mcc`` of their ``card.transaction`` events). Rates are shrunk towards the bank-wide rate with
  :data:`SMOOTHING` pseudo-customers, so a band of five customers does not swing the ranking.

Blend: each signal is scaled to its best candidate (max = 1), then
``w · similar + (1 − w) · segment`` with ``w = h / (h + HISTORY_WEIGHT)``, ``h`` the number of distinct
benefits the customer redeemed: nothing redeemed → the segment prior alone; one → half and half.

Redemptions are coupons that reached ``redeemed`` (points benefits excluded: they are credited, hence
"redeemed", on grant, not chosen) and ``points.redeem`` events of the log whose ``reward`` is a catalogue
benefit. Candidates are what a grant would accept now (``granting.grant``): active, not a points credit,
the supplier not suspended, a tracked benefit with stock left, within the budgets the caller names, and
not held unused by the customer (granted, claimed or active). Ties go by benefit id.

The similarity and the priors (the :class:`Model`) are built once per process and kept while the data they
come from is unchanged: the key is the last coupon history row (append-only, so any grant, claim or
redemption moves it), the customers' data version and the event log's files. On the demo bank (3,000
customers) building takes ~0.1 s and a recommendation afterwards a few ms (``benchmarks/
bench_recommend.py``). A caller that shows recommendations often (the customer 360) passes ``max_age``: the
last model of the bank is reused that long even when the key moved (on a live bank every grant moves it),
while stock, budgets and the coupons held are still read live (:class:`Ranker`). Nothing here writes; a
recommendation carries benefit ids, names and a reason in words, nothing personal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.benefits.ledger import BudgetKey
from omnibank.benefits.models import Benefit, BenefitStock, Budget, Coupon, CouponEvent, Supplier
from omnibank.config import Settings
from omnibank.customers.models import Customer
from omnibank.db import versions
from omnibank.errors import AppError, NotFound
from omnibank.events.log import EventLog

Floats = npt.NDArray[np.float64]

#: age bands: (lowest age, label); a customer's band is the last whose lowest age they reached
AGE_BANDS: tuple[tuple[int, str], ...] = ((0, "30岁以下"), (30, "30–44岁"), (45, "45–59岁"), (60, "60岁以上"))
HISTORY_WEIGHT = 1.0  # w = h / (h + HISTORY_WEIGHT): the weight of similar customers after h redeemed
SMOOTHING = 20.0  # pseudo-customers at the bank-wide rate added to every band's and category's rate
TOP_CATEGORIES = 3  # a customer's spending categories: their most frequent mcc codes
HELD = ("granted", "claimed", "active")  # a coupon the customer holds unused

Source = Literal["similar", "again", "age", "spending", "popular"]
REASONS: dict[str, str] = {
    "similar": "与您相似的客户常兑换",
    "again": "您曾兑换过同款权益",
    "age": "同年龄段热门",
    "spending": "消费偏好相近的客户常兑换",
    "popular": "热门权益",
}


@dataclass(frozen=True)
class Recommendation:
    benefit_id: str
    name: str
    score: Decimal  # 0..1 to 4 places, the blend above (a ranking score)
    source: Source
    reason: str  # in words, for the customer or staff


@dataclass(frozen=True)
class Redemption:
    customer_id: str
    benefit_id: str
    at: datetime


@dataclass
class Inputs:
    """What a model is built from (read from the store and the log by :func:`load_inputs`)."""

    benefits: list[str]  # every benefit that may be scored (the catalogue but points credits), sorted
    redemptions: list[Redemption]
    bands: dict[str, int]  # customer → index into AGE_BANDS (every customer: the population of the rates)
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)  # customer → top mcc codes


def age_band(birth: date, on: date) -> int:
    age = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return max(i for i, (lowest, _) in enumerate(AGE_BANDS) if age >= lowest) if age >= 0 else 0


def _rates(rows: npt.NDArray[np.bool_], overall: Floats) -> Floats:
    """Each benefit's redemption rate among ``rows``, shrunk towards ``overall``."""
    rates: Floats = (rows.sum(axis=0) + SMOOTHING * overall) / (rows.shape[0] + SMOOTHING)
    return rates


@dataclass
class Model:
    """Item-item similarity and segment priors over one snapshot of the redemptions."""

    benefits: tuple[str, ...]
    index: dict[str, int]
    similarity: Floats  # benefits × benefits, cosine; 1 on the diagonal of anything redeemed
    overall: Floats  # bank-wide redemption rate of each benefit
    band_rate: Floats  # AGE_BANDS × benefits
    category_rate: dict[str, Floats]
    history: dict[str, frozenset[int]]  # customer → benefits redeemed (indices)
    bands: dict[str, int]
    categories: dict[str, tuple[str, ...]]
    build_seconds: float = 0.0

    def signals(self, customer_id: str, h: frozenset[int]) -> tuple[Floats, Floats, Floats, float]:
        """(similar, age, spending, w) for every benefit, for the customer with history ``h``."""
        m = len(self.benefits)
        similar = self.similarity[:, sorted(h)].mean(axis=1) if h else np.zeros(m)
        band = self.bands.get(customer_id)
        age = self.band_rate[band] if band is not None else self.overall
        cats = [
            self.category_rate[c] for c in self.categories.get(customer_id, ()) if c in self.category_rate
        ]
        spending = np.mean(cats, axis=0) if cats else np.zeros(m)
        w = len(h) / (len(h) + HISTORY_WEIGHT)
        return similar, age, spending, w

    def rank(
        self,
        customer_id: str,
        candidates: Iterable[str],
        n: int,
        *,
        history: frozenset[int] | None = None,
    ) -> list[tuple[str, float, Source]]:
        """The top ``n`` of ``candidates`` for the customer: (benefit id, score, source), ties by id."""
        h = self.history.get(customer_id, frozenset()) if history is None else history
        similar, age, spending, w = self.signals(customer_id, h)
        segment = (age + spending) / 2 if spending.any() else age
        idx = sorted({self.index[b] for b in candidates if b in self.index})
        if not idx:
            return []
        cand = np.asarray(idx)

        def scaled(x: Floats) -> Floats:
            top = float(x[cand].max())
            return x / top if top > 0 else np.zeros_like(x)

        cf, seg = w * scaled(similar), (1 - w) * scaled(segment)
        blend = cf + seg
        ranked = sorted(idx, key=lambda i: (-round(float(blend[i]), 9), self.benefits[i]))[:n]
        out: list[tuple[str, float, Source]] = []
        for i in ranked:
            source: Source
            if blend[i] <= 0:
                source = "popular"
            elif cf[i] >= seg[i]:
                source = "again" if i in h else "similar"
            else:
                source = "spending" if spending[i] > age[i] else "age"
            out.append((self.benefits[i], round(float(blend[i]), 6), source))
        return out

    def popular(self, candidates: Iterable[str], n: int) -> list[str]:
        """The most-popular baseline: the candidates by bank-wide redemption rate, ties by id."""
        idx = sorted({self.index[b] for b in candidates if b in self.index})
        return [self.benefits[i] for i in sorted(idx, key=lambda i: (-self.overall[i], self.benefits[i]))[:n]]


def build_model(inputs: Inputs) -> Model:
    """The similarity and the priors (numpy; ~1 s for 1M customers × 50 benefits, memory ~n·m bytes)."""
    started = time.perf_counter()
    benefits = tuple(sorted(set(inputs.benefits)))
    index = {b: i for i, b in enumerate(benefits)}
    m = len(benefits)
    history: dict[str, set[int]] = {}
    for r in inputs.redemptions:
        i = index.get(r.benefit_id)
        if i is not None:
            history.setdefault(r.customer_id, set()).add(i)
    people = sorted(set(inputs.bands) | set(history))
    row = {c: k for k, c in enumerate(people)}
    redeemed = np.zeros((len(people), m), dtype=np.bool_)
    for c, items in history.items():
        redeemed[row[c], sorted(items)] = True
    co = np.zeros((m, m))
    for start in range(0, len(people), 200_000):  # bounded memory: float copies of a slice at a time
        part = redeemed[start : start + 200_000].astype(np.float64)
        co += part.T @ part
    norms = np.sqrt(np.diag(co))
    with np.errstate(divide="ignore", invalid="ignore"):
        similarity = np.where(np.outer(norms, norms) > 0, co / np.outer(norms, norms), 0.0)
    overall = redeemed.mean(axis=0) if people else np.zeros(m)
    band_of = np.asarray([inputs.bands.get(c, -1) for c in people], dtype=np.int64)
    band_rate = np.stack([_rates(redeemed[band_of == b], overall) for b in range(len(AGE_BANDS))])
    members: dict[str, list[int]] = {}
    for c, cats in inputs.categories.items():
        if c in row:
            for cat in cats:
                members.setdefault(cat, []).append(row[c])
    category_rate = {cat: _rates(redeemed[sorted(rows)], overall) for cat, rows in members.items()}
    return Model(
        benefits=benefits,
        index=index,
        similarity=similarity,
        overall=overall,
        band_rate=band_rate,
        category_rate=category_rate,
        history={c: frozenset(items) for c, items in history.items()},
        bands=dict(inputs.bands),
        categories=dict(inputs.categories),
        build_seconds=time.perf_counter() - started,
    )


# -------------------------------------------------------------------------------------- from the store


def _aware(as_of: datetime | None) -> datetime | None:
    if as_of is not None and as_of.tzinfo is None:
        raise AppError("as_of: a naive datetime is refused; give a time zone")
    return as_of


def load_inputs(session: Session, settings: Settings, *, as_of: datetime | None = None) -> Inputs:
    """Redemptions up to ``as_of`` (all when None), every customer's age band on that day, and their top
    spending categories from the log."""
    benefits = sorted(session.scalars(select(Benefit.id).where(Benefit.type != "points")))
    known = set(benefits)
    stmt = (
        select(Coupon.customer_id, Coupon.benefit_id, Coupon.status_at)
        .join(Benefit, Benefit.id == Coupon.benefit_id)
        .where(Coupon.status == "redeemed", Benefit.type != "points")
    )
    if as_of is not None:
        stmt = stmt.where(Coupon.status_at <= as_of)
    redemptions = [Redemption(c, b, at) for c, b, at in session.execute(stmt)]
    day = (as_of or datetime.now(settings.tz)).astimezone(settings.tz).date()
    bands = {
        c: age_band(birth, day)
        for c, birth in session.execute(
            select(Customer.customer_id, Customer.birth_date).where(Customer.erased_at.is_(None))
        )
    }
    categories: dict[str, tuple[str, ...]] = {}
    log = EventLog(settings)
    if log.files():
        con = log.connect()
        try:
            limit = " AND ts <= ?" if as_of is not None else ""
            params: list[object] = [as_of] if as_of is not None else []
            for c, b, at in con.execute(
                f"SELECT customer_id, reward, ts FROM {log.scan_sql()} WHERE type = 'points.redeem' "
                f"AND customer_id IS NOT NULL AND reward IS NOT NULL{limit}",
                params,
            ).fetchall():
                if b in known:
                    redemptions.append(Redemption(c, b, at))
            rows = con.execute(
                "SELECT customer_id, list(mcc ORDER BY n DESC, mcc) FROM "
                "(SELECT customer_id, mcc, count(*) AS n "
                f"FROM {log.scan_sql()} WHERE type = 'card.transaction' AND customer_id IS NOT NULL "
                f"AND mcc IS NOT NULL{limit} GROUP BY customer_id, mcc) GROUP BY customer_id",
                params,
            ).fetchall()
        finally:
            con.close()
        categories = {c: tuple(cats[:TOP_CATEGORIES]) for c, cats in rows}
    return Inputs(benefits=benefits, redemptions=redemptions, bands=bands, categories=categories)


_cache: dict[tuple[object, ...], Model] = {}
_cache_lock = threading.Lock()


def _version(session: Session, settings: Settings, as_of: datetime | None) -> tuple[object, ...]:
    """What the model depends on, cheaply: the last coupon history row (append-only), the customers' data
    version, the catalogue's benefits and the log's files. (On PostgreSQL a row committed late with a lower
    id could be missed until the next change: a recommendation, not a ledger, tolerates that.)"""
    last_event = session.scalar(select(func.max(CouponEvent.id)))
    catalogue = session.execute(select(func.count(), func.max(Benefit.updated_at))).one()
    files = tuple((p.name, p.stat().st_size) for p in EventLog(settings).files())
    return (
        settings.db_url,
        str(settings.home),  # the data home (its log): two banks may share a database server's URL
        as_of,
        last_event,
        tuple(catalogue),
        versions.current(session).get("customers"),
        files,
    )


#: the latest model of each store (and ``as_of``) with the monotonic time it was built, for callers that
#: accept a model a little older than the data (:func:`model_for` with ``max_age``)
_latest: dict[tuple[object, ...], tuple[float, Model]] = {}


def model_for(
    session: Session, settings: Settings, *, as_of: datetime | None = None, max_age: float | None = None
) -> Model:
    """The model of the data as it stands (built, or from this process's cache). With ``max_age`` (seconds),
    a model of the same store built less than that long ago is taken even if the data moved since: on a busy
    bank every grant or redemption moves the key, and the customer 360 must not rebuild the model on each
    view (what it excludes — stock, budgets, coupons held — is read live by :func:`candidates`/``_held``
    anyway; only the similarity and priors lag)."""
    as_of = _aware(as_of)
    store = (settings.db_url, str(settings.home), as_of)  # the bank: its store and its data home (the log)
    if max_age is not None:
        with _cache_lock:
            recent = _latest.get(store)
        if recent is not None and time.monotonic() - recent[0] < max_age:
            return recent[1]
    key = _version(session, settings, as_of)
    with _cache_lock:
        found = _cache.get(key)
    if found is None:
        found = build_model(load_inputs(session, settings, as_of=as_of))
        with _cache_lock:
            if len(_cache) >= 4:
                _cache.clear()
            _cache[key] = found
    with _cache_lock:
        if len(_latest) >= 4 and store not in _latest:
            _latest.clear()
        _latest[store] = (time.monotonic(), found)
    return found


@dataclass(frozen=True)
class _Candidate:
    id: str
    name: str
    face_value_fen: int


def candidates(session: Session, *, budgets: Sequence[BudgetKey] = ()) -> list[_Candidate]:
    """The benefits a grant would accept now: active, not a points credit, supplier not suspended, stock
    left (tracked ones), within every named budget (items left; face value left ≥ the benefit's)."""
    rows = session.execute(
        select(
            Benefit.id, Benefit.name, Benefit.face_value_fen, Benefit.stock_tracked, BenefitStock.available
        )
        .outerjoin(BenefitStock, BenefitStock.benefit_id == Benefit.id)
        .outerjoin(Supplier, Supplier.id == Benefit.supplier_id)
        .where(
            Benefit.status == "active",
            Benefit.type != "points",
            (Supplier.status.is_(None)) | (Supplier.status != "suspended"),
        )
        .order_by(Benefit.id)
    ).all()
    money_left: int | None = None
    ids = sorted({b.id for b in budgets})
    for count_left, money in session.execute(
        select(Budget.count_left, Budget.money_left_fen).where(Budget.id.in_(ids))
    ):
        if count_left is not None and count_left < 1:
            return []
        if money is not None:
            money_left = money if money_left is None else min(money_left, money)
    return [
        _Candidate(bid, name, face)
        for bid, name, face, tracked, available in rows
        if not (tracked and (available or 0) < 1) and (money_left is None or face <= money_left)
    ]


def _held(
    session: Session, customer_ids: Sequence[str] | None, as_of: datetime | None
) -> dict[str, set[str]]:
    """customer → the benefits they hold unused (``customer_ids`` None: every customer)."""
    held: dict[str, set[str]] = {}
    parts = [None] if customer_ids is None else [
        customer_ids[start : start + 500] for start in range(0, len(customer_ids), 500)
    ]  # fmt: skip
    for part in parts:
        stmt = select(Coupon.customer_id, Coupon.benefit_id).where(Coupon.status.in_(HELD))
        if part is not None:
            stmt = stmt.where(Coupon.customer_id.in_(part))
        if as_of is not None:
            stmt = stmt.where(Coupon.granted_at <= as_of)
        for c, b in session.execute(stmt):
            held.setdefault(c, set()).add(b)
    return held


@dataclass
class Ranker:
    """A model, what a grant would accept now and what the given customers hold unused: ranks any of them
    in memory (a journey's batch, a simulation). ``held`` may be extended by the caller (what it granted
    meanwhile), so the same benefit is not recommended to a customer twice in one pass."""

    model: Model
    names: dict[str, str]  # candidate id → name, by id
    held: dict[str, set[str]]

    def top(self, customer_id: str, n: int) -> list[Recommendation]:
        mine = self.held.get(customer_id, set())
        ranked = self.model.rank(customer_id, (b for b in self.names if b not in mine), n)
        return [
            Recommendation(b, self.names[b], Decimal(f"{score:.4f}"), source, REASONS[source])
            for b, score, source in ranked
        ]


def ranker(
    session: Session,
    settings: Settings,
    customer_ids: Sequence[str] | None,
    *,
    as_of: datetime | None = None,
    budgets: Sequence[BudgetKey] = (),
    max_age: float | None = None,
) -> Ranker:
    """A :class:`Ranker` for ``customer_ids`` (None: every customer holding a coupon unused). A customer
    the model does not know (created after a model ``max_age`` allows) ranks by the bank-wide rates."""
    model = model_for(session, settings, as_of=as_of, max_age=max_age)
    names = {c.id: c.name for c in candidates(session, budgets=budgets)}
    return Ranker(model, names, _held(session, customer_ids, as_of))


def recommend_many(
    session: Session,
    settings: Settings,
    customer_ids: Sequence[str],
    *,
    n: int = 5,
    as_of: datetime | None = None,
    budgets: Sequence[BudgetKey] = (),
) -> dict[str, list[Recommendation]]:
    """:func:`recommend` for many customers at once (one model, one candidates query)."""
    if n < 1:
        raise AppError("n: at least 1 recommendation")
    ids = list(dict.fromkeys(customer_ids))
    model = model_for(session, settings, as_of=as_of)
    unknown = [c for c in ids if c not in model.bands]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise NotFound(f"no customer {shown} in the store")
    names = {c.id: c.name for c in candidates(session, budgets=budgets)}
    r = Ranker(model, names, _held(session, ids, as_of))
    return {c: r.top(c, n) for c in ids}


def recommend(
    session: Session,
    settings: Settings,
    customer_id: str,
    *,
    n: int = 5,
    as_of: datetime | None = None,
    budgets: Sequence[BudgetKey] = (),
) -> list[Recommendation]:
    """The top ``n`` benefits for the customer, best first, each with its reason; NotFound for an unknown
    (or erased) customer. ``budgets``: those a grant would count against (e.g. a campaign's), so that what
    they cannot pay for is left out. Reads only."""
    return recommend_many(session, settings, [customer_id], n=n, as_of=as_of, budgets=budgets)[customer_id]
