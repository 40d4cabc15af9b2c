"""The demo bank's bill installments (issue 19): what the example model ``examples/models/installment/``
learns from and what its journey converts on.

Every month, on a card's statement day, the bank offers to split the bill into monthly instalments
(``installment.offered``, the bill's amount, in the app or by SMS) when the bill is large enough; some holders
take it within two weeks (``installment.accepted``, the amount and 3–24 ``terms``). Whether they take it
depends on what the bank saw before the offer, so a model on features as of a cut-off has something to find:

* the bill itself (the card spending of the cycle: a holder who spends more is offered bigger bills and
  takes them more often — and is seen through ``amount('card.transaction', 90)``);
* age and wealth (the young and those with little money in the bank revolve; the wealthy pay in full);
* a holder's own habit: a hidden share of "revolvers", who show themselves by the offers they took before
  (``events('installment.accepted', 365)``);
* how much the holder uses the app (engaged holders act on the in-app offer).

A naive ranking by recent spend finds the first part only; the model finds all four: on the 20,000-customer
demo, cut-off 2026-11-01, held-out AUC 0.933 and lift at 10% 6.8 against the spend baseline's 0.891 and 4.8
(``benchmarks/bench_installment.py``).

The bill is read from the day generator's own state (:attr:`EventDays.accum_fen <omnibank.demo.events.
EventDays>`, the spending since the last statement, which the nightly points batch turns into points on the
statement day): on day ``d`` the holders whose statement is tomorrow have their bill complete, and their offer
is written the next day. Deterministic by seed: one stream of its own per day (:data:`S_INSTALLMENTS`), drawn
only for the day's few offers, so the other streams' draws are unchanged. The volume follows
``events_per_customer``: at the default 50, 27,000 offers and 6,600 acceptances for 20,000 customers (3% of
the events), and about as much more time in the demo's generation and load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Protocol

import numpy as np

from omnibank.demo.sampling import BoolArr, FloatArr, IntArr, cdf, pick, stream

if TYPE_CHECKING:
    from omnibank.demo.people import Customers
    from omnibank.demo.rates import Behaviour

__all__ = ["INSTALLMENT_TYPES", "S_INSTALLMENTS", "Installments"]

S_INSTALLMENTS = 19  # the stream key (sampling.py's keys: 1-4 and 100; experience 17)
INSTALLMENT_TYPES = ("installment.offered", "installment.accepted")
_CARD_BASE = 1_000_000_000  # as in events.py: card ids are "CD" + str(_CARD_BASE + n)
_DEFAULT_RATE = 50.0

MIN_BILL_FEN = 30_000  # bills of 300 yuan or more are offered an installment plan
OFFER_SHARE = 0.75  # of those bills, the share the bank offers it on (at the default volume)
TERMS = (3, 6, 12, 24)
# terms chosen by bill size: < 2,000 yuan, < 10,000, more
_TERM_WEIGHTS = ((6, 3, 1, 0), (2, 4, 3, 1), (0, 2, 4, 3))
_ACCEPT_DELAY_WEIGHTS = (30, 18, 12, 9, 7, 6, 5, 4, 3, 3, 2, 2, 2, 1, 1)  # days 0..14 after the offer
_ACCEPT_CHANNELS = ("app", "wechat", "phone")
_OFFER_HOURS = (9, 12)  # the statement notice goes out in the morning
_ACCEPT_HOURS = (0, 0, 0, 0, 0, 0, 0.5, 2, 4, 5, 5, 5, 6, 5, 4, 4, 4, 5, 6, 7, 8, 7, 4, 1)

# The acceptance's log-odds (a plausible card-centre picture, not a measurement).
_BASE = -3.2
_PER_LOG_BILL = 0.4  # per e-fold of the bill over 1,500 yuan
_AGE = ((35, 1.3), (50, 0.6), (60, 0.0))  # under each age: the term; 60 and older: -1.3
_OLD = -1.3
_POOR_FEN, _POOR = 2_000_000, 0.7  # AUM under 20,000 yuan
_WEALTHY_FEN, _WEALTHY = 50_000_000, -1.4  # AUM of 500,000 yuan or more
_REVOLVER_SHARE, _REVOLVER = 0.2, 2.4  # a hidden habit, seen through the offers taken before
_PER_TAKEN, _MAX_TAKEN = 0.6, 3  # each earlier acceptance (up to three)
_APP = 1.0  # the top third of app users by login rate
_NOISE = 0.5

DayBatch = tuple[str, IntArr, Callable[[IntArr], tuple[list[bytes], IntArr]]]


class _Days(Protocol):
    def day(self, d: int, day: date) -> Sequence[DayBatch]: ...


class _Spending(Protocol):
    accum_fen: IntArr  # card spending since the last statement, per customer


class Installments:
    """More rows per day for :class:`~omnibank.demo.events.EventDays`: installment offers and acceptances,
    after those of ``inner`` (the experience data). :meth:`watch` gives it the day generator whose spending
    makes the bills."""

    def __init__(
        self,
        seed: int,
        start: date,
        days: int,
        cust: Customers,
        beh: Behaviour,
        events_per_customer: float,
        inner: _Days | None = None,
    ) -> None:
        n = cust.n
        self.seed = seed
        self.start = start
        self.days = days
        self.inner = inner
        self.sim: _Spending | None = None
        self.cid_width = max(6, len(str(n)))
        self.offer_share = OFFER_SHARE * min(1.0, events_per_customer / _DEFAULT_RATE)
        rng = stream(seed, S_INSTALLMENTS)
        # the part of the log-odds fixed for the year: age, wealth, the hidden habit, app use
        age = cust.age
        odds = np.full(n, _OLD)
        for limit, term in reversed(_AGE):
            odds = np.where(age < limit, term, odds)
        odds += np.where(cust.aum_fen < _POOR_FEN, _POOR, 0.0)
        odds += np.where(cust.aum_fen >= _WEALTHY_FEN, _WEALTHY, 0.0)
        odds += np.where(rng.random(n) < _REVOLVER_SHARE, _REVOLVER, 0.0)
        users = beh.login_w > 0
        top = np.quantile(beh.login_w[users], 2 / 3) if users.any() else np.inf
        odds += np.where(users & (beh.login_w >= top), _APP, 0.0)
        self.odds: FloatArr = odds.astype(np.float64)
        self.taken = np.zeros(n, dtype=np.int8)
        self.app_user: BoolArr = users
        # cards and statement days
        self.card0 = beh.card0.astype(np.int64)
        self.card1 = beh.card1.astype(np.int64)
        self.issue1 = beh.issue1.astype(np.int64)
        holders = np.flatnonzero((beh.card0 >= 0) | (beh.card1 >= 0))
        self.by_stmt = holders[np.argsort(beh.stmt_day[holders], kind="stable")]
        self.stmt_sorted = beh.stmt_day[self.by_stmt]
        self.old = age >= 60
        self.term_cdf = [cdf(w) for w in _TERM_WEIGHTS]
        self.delay_cdf = cdf(_ACCEPT_DELAY_WEIGHTS)
        self.accept_hour_cdf = cdf(_ACCEPT_HOURS)
        # rows waiting for their day: day index → (kind, customer, second, card, fen, terms, channel)
        self.pending: dict[int, list[tuple[int, int, int, int, int, int, str]]] = {}

    def watch(self, sim: _Spending) -> None:
        """The day generator whose card spending (``accum_fen``) makes the bills."""
        self.sim = sim

    def day(self, d: int, day: date) -> list[DayBatch]:
        """Day ``d``'s rows (the inner ones first); then, the bills that close tonight are offered
        tomorrow."""
        out = list(self.inner.day(d, day)) if self.inner is not None else []
        rows = self.pending.pop(d, [])
        if self.sim is not None and d + 1 < self.days:
            self._offer(d + 1, (day + timedelta(days=1)).day)
        for kind, name in enumerate(INSTALLMENT_TYPES):
            mine = [r for r in rows if r[0] == kind]
            if mine:
                secs = np.asarray([r[2] for r in mine], dtype=np.int64)
                out.append((name, secs, self._renderer(day, name, mine)))
        return out

    def _offer(self, d: int, dom: int) -> None:
        """Offers on day ``d`` (day of the month ``dom``: the statement day) for the bills complete now."""
        assert self.sim is not None
        if dom > 28:
            return
        lo, hi = np.searchsorted(self.stmt_sorted, [dom, dom + 1])
        c = self.by_stmt[lo:hi]
        bill = self.sim.accum_fen[c]
        held = (self.card0[c] >= 0) | (self.issue1[c] < d)
        c, bill = c[held & (bill >= MIN_BILL_FEN)], bill[held & (bill >= MIN_BILL_FEN)]
        rng = stream(self.seed, S_INSTALLMENTS, d)
        u = rng.random(len(c))
        c, bill = c[u < self.offer_share], bill[u < self.offer_share]
        k = len(c)
        card = np.where(self.card1[c] >= 0, self.card1[c], self.card0[c])
        card = np.where((self.card1[c] >= 0) & (self.issue1[c] >= d), self.card0[c], card) + _CARD_BASE
        offer_s = rng.integers(_OFFER_HOURS[0] * 3600, _OFFER_HOURS[1] * 3600, k)
        odds = (
            self.odds[c]
            + _BASE
            + _PER_LOG_BILL * np.log(bill / 150_000)
            + _PER_TAKEN * np.minimum(self.taken[c], _MAX_TAKEN)
            + _NOISE * rng.standard_normal(k)
        )
        takes = rng.random(k) < 1.0 / (1.0 + np.exp(-odds))
        band = np.where(bill < 200_000, 0, np.where(bill < 1_000_000, 1, 2))
        term_u = rng.random(k)
        delay = pick(rng, self.delay_cdf, k)
        accept_s = pick(rng, self.accept_hour_cdf, k) * 3600 + rng.integers(0, 3600, k)
        accept_ch = np.where(self.old[c], 2, np.where(rng.random(k) < 0.75, 0, 1))
        offers = self.pending.setdefault(d, [])
        for i in range(k):
            ci, card_i, fen = int(c[i]), int(card[i]), int(bill[i])
            channel = "app" if self.app_user[ci] else "sms"
            offers.append((0, ci, int(offer_s[i]), card_i, fen, 0, channel))
            if not takes[i]:
                continue
            self.taken[ci] += 1
            at, sec = d + int(delay[i]), int(accept_s[i])
            if at == d and sec <= offer_s[i]:
                sec = min(int(offer_s[i]) + 600, 86_399)
            terms = TERMS[int(np.searchsorted(self.term_cdf[int(band[i])], term_u[i], side="right"))]
            row = (1, ci, sec, card_i, fen, terms, _ACCEPT_CHANNELS[int(accept_ch[i])])
            self.pending.setdefault(at, []).append(row)

    def _renderer(
        self, day: date, kind: str, rows: list[tuple[int, int, int, int, int, int, str]]
    ) -> Callable[[IntArr], tuple[list[bytes], IntArr]]:
        w = self.cid_width
        prefix = f'","type":"{kind}","customer_id":"C'

        def render(eids: IntArr) -> tuple[list[bytes], IntArr]:
            width = max(10, len(str(int(eids.max())))) if len(eids) else 10
            lines = []
            for e, (_, c, s, card, fen, terms, channel) in zip(eids.tolist(), rows, strict=True):
                tail = f',"terms":{terms}}}\n' if terms else "}\n"
                lines.append(
                    (
                        f'{{"event_id":"EV{e:0{width}d}{prefix}{c + 1:0{w}d}","ts":"{day.isoformat()}T'
                        f'{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+08:00","channel":"{channel}",'
                        f'"card_id":"CD{card}","amount":"{fen // 100}.{fen % 100:02d}"' + tail
                    ).encode()
                )
            return lines, np.arange(len(rows), dtype=np.int64)

        return render
