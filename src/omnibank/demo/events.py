"""The demo bank's year of events, one day at a time: card issues, card spending and Luckin coffee, the
nightly points batch, voucher redemptions, app logins and product views.

Each day is a thinned Poisson process per customer over the rates of :mod:`omnibank.demo.rates` (the
design notes of :mod:`omnibank.demo.generator` say how), drawn from the day's own stream. Apart because it
is the one part whose state changes as the year goes (points, spend since the last statement, redemptions
this month) and the one that writes almost all of the output; the merchants, coffee prices, app products and
hours of the day are here because only the days use them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

import numpy as np
from numpy.random import Generator

from omnibank.customers.values import CARD_TIERS, EVENT_CHANNELS
from omnibank.demo.rates import CARD_PRODUCTS, Behaviour
from omnibank.demo.render import (
    JSON_BOOL,
    Choices,
    Digits,
    Lookup,
    Part,
    concat,
    group_rows,
    n_digits,
    render,
    text_table,
)
from omnibank.demo.sampling import (
    S_DAY,
    FloatArr,
    IntArr,
    cdf,
    cdf_table,
    hour_seconds,
    pick,
    pick_rows,
    stream,
)

EVENT_TYPES = (
    "card.issued",
    "card.transaction",
    "points.earned",
    "points.redeem",
    "app.login",
    "app.product_view",
)

VOUCHER_POINTS = 1_000
MAX_REDEEMS_PER_MONTH = 3
_CARD_BASE = 1_000_000_000  # card ids are "CD" + str(_CARD_BASE + n)

# Merchants: (name, MCC, median amount in CNY, log-sigma, round to whole yuan share)
_MERCHANTS: tuple[tuple[str, str, float, float, float], ...] = (
    ("瑞幸咖啡", "5814", 19.9, 0.25, 0.0),
    ("美团外卖", "5814", 35.0, 0.45, 0.0),
    ("京东商城", "5399", 150.0, 1.00, 0.1),
    ("永辉超市", "5411", 80.0, 0.75, 0.0),
    ("中国石化", "5541", 300.0, 0.35, 0.6),
    ("盒马鲜生", "5411", 120.0, 0.60, 0.0),
    ("携程旅行", "4722", 800.0, 0.80, 0.5),
    ("滴滴出行", "4121", 25.0, 0.60, 0.0),
    ("老百姓大药房", "5912", 60.0, 0.70, 0.0),
    ("中国移动", "4814", 100.0, 0.40, 0.9),
)
_MERCHANT_MIX_YOUNG = (0.03, 0.24, 0.18, 0.12, 0.07, 0.10, 0.04, 0.14, 0.02, 0.06)
_MERCHANT_MIX_MIDDLE = (0.01, 0.14, 0.16, 0.20, 0.15, 0.10, 0.05, 0.07, 0.05, 0.07)
_MERCHANT_MIX_OLD = (0.00, 0.04, 0.06, 0.38, 0.08, 0.08, 0.03, 0.02, 0.22, 0.09)
_NEAR_THRESHOLD_SHARE = 0.03
_NEAR_THRESHOLD_FEN = (9_800, 9_850, 9_899, 9_900, 9_900, 9_901, 9_950, 10_000)

# Luckin menu prices in fen with weights; 10% of orders are for two drinks.
_COFFEE_PRICES_FEN = (990, 1290, 1390, 1590, 1690, 1800, 1990, 2100, 2300, 2500, 2600, 2900)
_COFFEE_PRICE_WEIGHTS = (10, 8, 10, 8, 12, 8, 14, 6, 8, 6, 5, 5)
_COFFEE_DOUBLE_SHARE = 0.10

# App products: (product id, category)
_PRODUCTS: tuple[tuple[str, str], ...] = (
    *((f"WM2026A{i:02d}", "wealth") for i in range(1, 9)),
    *((f"WM2026P{i:02d}", "pension") for i in range(1, 5)),
    *((f"DEPO2026L{i:02d}", "deposit") for i in range(1, 4)),
    *((f"FUND{code}", "fund") for code in ("000001", "110011", "161725", "519300", "005827", "260108")),
    *((f"LOAN{code}", "loan") for code in ("CONS01", "CAR01", "MORT01", "BIZ01")),
)
_PRODUCT_CATEGORY_MIX = {  # by young / middle / old
    "wealth": (0.25, 0.35, 0.35),
    "pension": (0.00, 0.05, 0.25),
    "deposit": (0.05, 0.10, 0.30),
    "fund": (0.45, 0.30, 0.08),
    "loan": (0.25, 0.20, 0.02),
}
_VIEW_MEDIAN_S = {"wealth": 45.0, "pension": 55.0, "deposit": 35.0, "fund": 40.0, "loan": 30.0}
_VIEW_LOG_SIGMA = 1.0
_VIEW_MAX_S = 1800

_HOURS_LOGIN = (2, 1, 0.5, 0.3, 0.3, 0.8, 3, 6, 9, 7, 5, 5, 8, 6, 4, 4, 4, 5, 6, 7, 9, 10, 8, 5)
_HOURS_TXN = (0.8, 0.4, 0.2, 0.1, 0.1, 0.3, 1, 3, 5, 6, 7, 8, 10, 8, 6, 6, 7, 8, 10, 10, 9, 7, 4, 2)
_HOURS_COFFEE = (0, 0, 0, 0, 0, 0, 1, 8, 14, 12, 7, 5, 4, 7, 8, 7, 5, 3, 2, 1, 1, 0.5, 0, 0)
_HOURS_REDEEM = (0.5, 0.2, 0, 0, 0, 0, 0.5, 2, 5, 6, 5, 4, 6, 5, 4, 4, 4, 4, 5, 6, 7, 6, 4, 2)
_POINTS_BATCH_SECONDS = (1_800, 7_200)  # nightly points batch, 00:30-02:00


def _sorted_uniform(rng: Generator, k: int, scale: float) -> FloatArr:
    """``k`` uniform draws on [0, scale) in increasing order (sorted keys make the binary searches into the
    cumulative rates cache-friendly)."""
    u = rng.random(k) * scale
    u.sort()
    return u


@dataclass
class _Batch:
    """One kind of event of one day: the times (seconds after local midnight) of its rows and a renderer
    that gets the event numbers (one per row) and returns the lines with the row index of each line."""

    kind: str
    secs: IntArr
    render: Callable[[IntArr], tuple[list[bytes], IntArr]]


class ExtraDays(Protocol):
    """More rows for a day: (type, seconds of the day, renderer as :class:`_Batch` takes it) per type."""

    def day(
        self, d: int, day: date
    ) -> Sequence[tuple[str, IntArr, Callable[[IntArr], tuple[list[bytes], IntArr]]]]: ...


class EventDays:
    """Holds the O(customers) state and produces each day's events as time-sorted JSON lines (bytes)."""

    def __init__(
        self,
        seed: int,
        start: date,
        ages: IntArr,
        beh: Behaviour,
        mult: dict[str, FloatArr],
        extra: ExtraDays | None = None,
    ) -> None:
        n = len(ages)
        self.extra = extra  # more rows per day (the experience data), numbered with the rest
        self.seed = seed
        self.start = start
        self.mult = mult
        self.cid_width = max(6, len(str(n)))
        # Cumulative per-customer rates (the rates themselves are not kept).
        self.cum_login = np.cumsum(beh.login_w)
        self.cum_txn = np.cumsum(beh.txn_w)
        self.cum_coffee = np.cumsum(beh.coffee_w)
        self.cum_redeem = np.cumsum(beh.redeem_w)
        # Narrow copies of the per-customer columns the days need.
        self.group = beh.group.astype(np.int8)
        self.view_mean = beh.view_mean
        self.card0 = beh.card0.astype(np.int32)
        self.card1 = beh.card1.astype(np.int32)
        self.issue1 = beh.issue1.astype(np.int32)
        self.issue_sec = beh.issue_sec.astype(np.int32)
        self.issued_code = (
            (
                ((beh.issue_channel * len(CARD_PRODUCTS) + beh.product1) * len(CARD_TIERS) + beh.tier1) * 2
                + beh.primary1
            )
            * 2
            + beh.new_customer1
        ).astype(np.int16)
        # Mutable state.
        self.accum_fen = np.zeros(n, dtype=np.int64)  # card spend since the last statement
        self.balance = beh.balance.copy()  # points
        self.month_redeems = np.zeros(n, dtype=np.int8)
        self.current_month = -1
        # Customers by in-year issue day and by statement day, for O(1) slicing per day.
        holders = np.flatnonzero(beh.card1 >= 0)
        self.by_issue = holders[np.argsort(beh.issue1[holders], kind="stable")]
        self.issue_days_sorted = beh.issue1[self.by_issue]
        cardholders = np.flatnonzero((beh.card0 >= 0) | (beh.card1 >= 0))
        self.by_stmt = cardholders[np.argsort(beh.stmt_day[cardholders], kind="stable")]
        self.stmt_sorted = beh.stmt_day[self.by_stmt]
        # Young (< 35) / middle / old (60+): product and merchant preferences.
        self.life = np.where(ages < 35, 0, np.where(ages < 60, 1, 2)).astype(np.int8)
        # Lookup tables.
        self.cdf_login_h = cdf(_HOURS_LOGIN)
        self.cdf_txn_h = cdf(_HOURS_TXN)
        self.cdf_coffee_h = cdf(_HOURS_COFFEE)
        self.cdf_redeem_h = cdf(_HOURS_REDEEM)
        self.hms = text_table([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)])
        cats = [c for _, c in _PRODUCTS]
        zipf = [1.0 / (1 + cats[:i].count(cat)) for i, cat in enumerate(cats)]
        zipf_sum = {cat: sum(z for z, c in zip(zipf, cats, strict=True) if c == cat) for cat in set(cats)}
        self.product_cdf = cdf_table(
            [
                [
                    _PRODUCT_CATEGORY_MIX[cat][col] * z / zipf_sum[cat]
                    for z, cat in zip(zipf, cats, strict=True)
                ]
                for col in range(3)
            ]
        )
        self.view_log_median = np.log(np.array([_VIEW_MEDIAN_S[c] for c in cats]))
        self.merchant_cdf = cdf_table([_MERCHANT_MIX_YOUNG, _MERCHANT_MIX_MIDDLE, _MERCHANT_MIX_OLD])
        self.merchant_log_median = np.log(np.array([m[2] * 100 for m in _MERCHANTS]))
        self.merchant_sigma = np.array([m[3] for m in _MERCHANTS])
        self.merchant_round = np.array([m[4] for m in _MERCHANTS])
        self.product_text = Choices(
            [f'","channel":"app","product_id":"{p}","duration_s":' for p, _ in _PRODUCTS]
        )
        self.merchant_text = Choices([f'","merchant":"{m[0]}","mcc":"{m[1]}"}}\n' for m in _MERCHANTS])
        self.coffee_cdf = cdf(_COFFEE_PRICE_WEIGHTS)
        self.coffee_prices = np.array(_COFFEE_PRICES_FEN, dtype=np.int64)
        self.near = np.array(_NEAR_THRESHOLD_FEN, dtype=np.int64)

    def _draw(self, rng: Generator, cum: FloatArr, factor: float) -> IntArr:
        """Customers of the day's Poisson draws of one kind, each in proportion to its rate."""
        total = float(cum[-1]) if len(cum) else 0.0
        if total <= 0 or factor <= 0:
            return np.zeros(0, dtype=np.int64)
        k = int(rng.poisson(total * factor))
        idx = np.searchsorted(cum, _sorted_uniform(rng, k, total), side="right").astype(np.int64)
        out: IntArr = idx[idx < len(cum)]
        return out

    def _head(self, kind: str, day: date, eids: IntArr, cust: IntArr, secs: IntArr) -> list[Part]:
        """``{"event_id":"EV…","type":…,"customer_id":"C…","ts":"…+08:00`` (the ts string is left open)."""
        eid_width = max(10, int(n_digits(eids).max()) if len(eids) else 10)
        return [
            b'{"event_id":"EV',
            Digits(eids, eid_width),
            f'","type":"{kind}","customer_id":"C'.encode(),
            Digits(cust + 1, self.cid_width),
            f'","ts":"{day.isoformat()}T'.encode(),
            Lookup(self.hms, secs),
            b"+08:00",
        ]

    def day(self, d: int, first_event: int) -> tuple[Sequence[bytes], dict[str, int]]:
        """The events of day ``d`` (0-based from ``start``), numbered from ``first_event`` in time order."""
        rng = stream(self.seed, S_DAY, d)
        day = self.start + timedelta(days=d)
        head = self._head
        batches: list[_Batch] = []

        if day.month != self.current_month:
            self.current_month = day.month
            self.month_redeems[:] = 0

        # 1. Nightly points batch for the cardholders whose statement day it is: 1 point per CNY spent.
        if day.day <= 28:
            lo, hi = np.searchsorted(self.stmt_sorted, [day.day, day.day + 1])
        else:
            lo = hi = 0
        pts_c = self.by_stmt[lo:hi]
        pts_c = pts_c[self.accum_fen[pts_c] >= 100]
        points = self.accum_fen[pts_c] // 100
        self.accum_fen[pts_c] -= points * 100
        self.balance[pts_c] += points
        pts_s = rng.integers(*_POINTS_BATCH_SECONDS, len(pts_c)).astype(np.int64)

        def render_points(eids: IntArr) -> tuple[list[bytes], IntArr]:
            lines: list[bytes] = []
            groups = group_rows(n_digits(points))
            for g in groups:
                width = int(n_digits(points[g[:1]])[0])
                parts = [
                    *head("points.earned", day, eids[g], pts_c[g], pts_s[g]),
                    b'","points":',
                    Digits(points[g], width),
                    b"}\n",
                ]
                lines.extend(render(len(g), parts))
            return lines, concat(groups)

        batches.append(_Batch("points.earned", pts_s, render_points))

        # 2. Cards issued today.
        lo, hi = np.searchsorted(self.issue_days_sorted, [d, d + 1])
        iss_c = self.by_issue[lo:hi]
        iss_s = self.issue_sec[iss_c].astype(np.int64)
        iss_code = self.issued_code[iss_c].astype(np.int64)
        iss_card = self.card1[iss_c].astype(np.int64) + _CARD_BASE

        def render_issued(eids: IntArr) -> tuple[list[bytes], IntArr]:
            lines: list[bytes] = []
            groups = group_rows(iss_code)
            for g in groups:
                code = int(iss_code[g[0]])
                new, primary = code % 2, code // 2 % 2
                rest = code // 4
                tier, product, channel = rest % 3, rest // 3 % 4, rest // 12
                parts = [
                    *head("card.issued", day, eids[g], iss_c[g], iss_s[g]),
                    f'","channel":"{EVENT_CHANNELS[channel]}","card_id":"CD'.encode(),
                    Digits(iss_card[g], 10),
                    f'","product":"{CARD_PRODUCTS[product]}","tier":"{CARD_TIERS[tier]}",'
                    f'"primary":{JSON_BOOL[primary]},"new_customer":{JSON_BOOL[new]}}}\n'.encode(),
                ]
                lines.extend(render(len(g), parts))
            return lines, concat(groups)

        batches.append(_Batch("card.issued", iss_s, render_issued))

        # 3. App logins, and product views following some of them.
        lg_c = self._draw(rng, self.cum_login, self.mult["login"][d])
        lg_s = hour_seconds(rng, self.cdf_login_h, len(lg_c))

        def render_login(eids: IntArr) -> tuple[list[bytes], IntArr]:
            parts = [*head("app.login", day, eids, lg_c, lg_s), b'","channel":"app"}\n']
            return render(len(lg_c), parts), np.arange(len(lg_c), dtype=np.int64)

        batches.append(_Batch("app.login", lg_s, render_login))

        n_views = rng.poisson(self.view_mean[self.group[lg_c]])
        vw_c = np.repeat(lg_c, n_views)
        vw_s = np.minimum(np.repeat(lg_s, n_views) + rng.integers(8, 900, len(vw_c)), 86_399)
        vw_p = pick_rows(rng, self.product_cdf, self.life[vw_c])
        vw_dur = np.clip(
            np.rint(np.exp(self.view_log_median[vw_p] + _VIEW_LOG_SIGMA * rng.standard_normal(len(vw_c)))),
            1,
            _VIEW_MAX_S,
        ).astype(np.int64)

        def render_view(eids: IntArr) -> tuple[list[bytes], IntArr]:
            lines: list[bytes] = []
            dur_digits = n_digits(vw_dur)
            groups = group_rows(self.product_text.length_class[vw_p] * 8 + dur_digits)
            for g in groups:
                parts = [
                    *head("app.product_view", day, eids[g], vw_c[g], vw_s[g]),
                    self.product_text.part(vw_p[g]),
                    Digits(vw_dur[g], int(dur_digits[g[0]])),
                    b"}\n",
                ]
                lines.extend(render(len(g), parts))
            return lines, concat(groups)

        batches.append(_Batch("app.product_view", vw_s, render_view))

        # 4. Coffee at Luckin with the co-branded card, from the day after it was issued.
        cf_c = self._draw(rng, self.cum_coffee, self.mult["coffee"][d])
        cf_c = cf_c[self.issue1[cf_c] < d]
        cf_s = hour_seconds(rng, self.cdf_coffee_h, len(cf_c))
        cf_fen = self.coffee_prices[pick(rng, self.coffee_cdf, len(cf_c))]
        double = rng.random(len(cf_c)) < _COFFEE_DOUBLE_SHARE
        cf_fen = cf_fen + np.where(double, self.coffee_prices[pick(rng, self.coffee_cdf, len(cf_c))], 0)

        # 5. Everyday spending on a card the customer holds that day.
        tx_c = self._draw(rng, self.cum_txn, self.mult["txn"][d])
        tx_c = tx_c[(self.card0[tx_c] >= 0) | (self.issue1[tx_c] < d)]
        active1 = self.issue1[tx_c] < d
        use1 = active1 & ((self.card0[tx_c] < 0) | (rng.random(len(tx_c)) < 0.5))
        tx_card = np.where(use1, self.card1[tx_c], self.card0[tx_c])
        tx_s = hour_seconds(rng, self.cdf_txn_h, len(tx_c))
        tx_m = pick_rows(rng, self.merchant_cdf, self.life[tx_c])
        noise = rng.standard_normal(len(tx_c))
        fen = np.exp(self.merchant_log_median[tx_m] + self.merchant_sigma[tx_m] * noise)
        whole = rng.random(len(tx_c)) < self.merchant_round[tx_m]
        tx_fen = np.where(whole, np.rint(fen / 100) * 100, np.rint(fen)).astype(np.int64)
        near = rng.random(len(tx_c)) < _NEAR_THRESHOLD_SHARE
        near_fen = self.near[rng.integers(0, len(self.near), len(tx_c))]
        tx_fen = np.maximum(np.where(near, near_fen, tx_fen), 100)

        sp_c = np.concatenate([cf_c, tx_c])
        sp_s = np.concatenate([cf_s, tx_s])
        sp_fen = np.concatenate([cf_fen, tx_fen])
        sp_card = np.concatenate([self.card1[cf_c], tx_card]).astype(np.int64) + _CARD_BASE
        sp_m = np.concatenate([np.zeros(len(cf_c), dtype=np.int64), tx_m])
        np.add.at(self.accum_fen, sp_c, sp_fen)

        def render_txn(eids: IntArr) -> tuple[list[bytes], IntArr]:
            lines: list[bytes] = []
            yuan = sp_fen // 100
            yuan_digits = n_digits(yuan)
            groups = group_rows(self.merchant_text.length_class[sp_m] * 32 + yuan_digits)
            for g in groups:
                parts = [
                    *head("card.transaction", day, eids[g], sp_c[g], sp_s[g]),
                    b'","card_id":"CD',
                    Digits(sp_card[g], 10),
                    b'","amount":"',
                    Digits(yuan[g], int(yuan_digits[g[0]])),
                    b".",
                    Digits(sp_fen[g] % 100, 2),
                    self.merchant_text.part(sp_m[g]),
                ]
                lines.extend(render(len(g), parts))
            return lines, concat(groups)

        batches.append(_Batch("card.transaction", sp_s, render_txn))

        # 6. Luckin vouchers for points: at most 3 a month, only with enough points.
        rd_c = np.unique(self._draw(rng, self.cum_redeem, self.mult["redeem"][d]))
        rd_c = rd_c[
            (self.issue1[rd_c] < d)
            & (self.month_redeems[rd_c] < MAX_REDEEMS_PER_MONTH)
            & (self.balance[rd_c] >= VOUCHER_POINTS)
        ]
        self.balance[rd_c] -= VOUCHER_POINTS
        self.month_redeems[rd_c] += 1
        rd_s = hour_seconds(rng, self.cdf_redeem_h, len(rd_c))
        rd_app = (rng.random(len(rd_c)) < 0.8).astype(np.int64)

        def render_redeem(eids: IntArr) -> tuple[list[bytes], IntArr]:
            lines: list[bytes] = []
            groups = group_rows(rd_app)
            for g in groups:
                channel = "app" if rd_app[g[0]] else "wechat"
                parts = [
                    *head("points.redeem", day, eids[g], rd_c[g], rd_s[g]),
                    f'","channel":"{channel}","reward":"luckin_voucher","quantity":1}}\n'.encode(),
                ]
                lines.extend(render(len(g), parts))
            return lines, concat(groups)

        batches.append(_Batch("points.redeem", rd_s, render_redeem))

        if self.extra is not None:
            batches.extend(_Batch(kind, secs, fn) for kind, secs, fn in self.extra.day(d, day))

        # Number the events in time order (stable: ties keep the order above), render, put in time order.
        secs = np.concatenate([b.secs for b in batches])
        total = len(secs)
        order = np.argsort(secs, kind="stable")
        rank = np.empty(total, dtype=np.int64)
        rank[order] = np.arange(total, dtype=np.int64)
        lines: list[bytes] = []
        where: list[IntArr] = []
        counts: dict[str, int] = {}
        pos = 0
        for b in batches:
            k = len(b.secs)
            counts[b.kind] = counts.get(b.kind, 0) + k
            if k:
                batch_rank = rank[pos : pos + k]
                batch_lines, rows = b.render(batch_rank + first_event)
                lines.extend(batch_lines)
                where.append(batch_rank[rows])
            pos += k
        if total == 0:
            return [], counts
        slot = np.concatenate(where)  # time position of each rendered line
        by_time = np.empty(total, dtype=np.int64)
        by_time[slot] = np.arange(total, dtype=np.int64)
        if total == 1:
            return lines, counts
        return operator.itemgetter(*by_time.tolist())(lines), counts
