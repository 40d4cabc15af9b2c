"""Cards and behaviour: who holds which card when, and each customer's fixed daily rate of each kind of
event, scaled to the volume asked for; and the calendar effects that scale a day's totals.

Apart because this is where the requested volume is met (logins, product views and everyday card spending
are scaled so that the expected total is ``events_per_customer * days / 365`` per customer), before a single
event is drawn; :mod:`omnibank.demo.events` then draws the days from these rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from omnibank.customers.values import EVENT_CHANNELS
from omnibank.demo.people import Customers
from omnibank.demo.sampling import S_CARDS, BoolArr, FloatArr, IntArr, cdf, hour_seconds, pick, stream

CARD_PRODUCTS = ("luckin_cobrand", "standard_credit", "platinum_credit", "youth_credit")
_LUCKIN_ISSUE_CHANNELS = {"partner": 0.30, "app": 0.35, "wechat": 0.15, "branch": 0.20}
_OTHER_ISSUE_CHANNELS = {"app": 0.30, "branch": 0.50, "wechat": 0.10, "phone": 0.10}
_NEVER = 1 << 30
_YEAR = 365

# Behaviour by age group (the groups of omnibank.demo.people).
_APP_USER_BY_GROUP = (0.92, 0.93, 0.92, 0.88, 0.75, 0.60, 0.38, 0.16, 0.05)
_LOGINS_PER_DAY_BY_GROUP = (0.30, 0.28, 0.24, 0.20, 0.15, 0.12, 0.09, 0.07, 0.05)
_VIEWS_PER_LOGIN_BY_GROUP = (0.20, 0.28, 0.35, 0.38, 0.40, 0.40, 0.42, 0.40, 0.35)
_PRE_CARD_PROPENSITY_BY_GROUP = (0.35, 0.50, 0.55, 0.50, 0.45, 0.35, 0.25, 0.15, 0.08)
_LUCKIN_PROPENSITY_BY_GROUP = (0.14, 0.20, 0.22, 0.14, 0.07, 0.03, 0.012, 0.004, 0.001)
_OTHER_CARD_PROPENSITY_BY_GROUP = (0.04, 0.05, 0.05, 0.04, 0.03, 0.02, 0.015, 0.01, 0.005)
_LUCKIN_OCCUPATION_FACTOR = (1.3, 1.3, 1.0, 1.0, 0.3, 1.1, 0.3, 0.8)
_TXN_PER_DAY_BY_GROUP = (0.10, 0.13, 0.15, 0.15, 0.14, 0.12, 0.10, 0.07, 0.04)

PRE_EXISTING_CARD_SHARE = 0.40
LUCKIN_SHARE = 0.10
OTHER_CARD_SHARE = 0.03
LUCKIN_SUPPLEMENTARY_SHARE = 0.06
REDEEMER_SHARE = 0.45

# Hour of the day of in-year card issues (the other hours of the day are the events').
_HOURS_ISSUE = (0, 0, 0, 0, 0, 0, 0, 0, 1, 6, 8, 8, 5, 6, 8, 8, 7, 5, 3, 3, 3, 2, 1, 0)

# Spring Festival dates (the bank's seasonality around it).
_SPRING_FESTIVAL = {
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
}


@dataclass
class Behaviour:
    group: IntArr
    card0: IntArr  # card number of a card held before `start`, or -1
    card1: IntArr  # card number of the card issued during the year, or -1
    issue1: IntArr  # day index (from `start`) of that issue, or _NEVER
    issue_sec: IntArr
    product1: IntArr
    tier1: IntArr
    primary1: BoolArr
    new_customer1: BoolArr
    issue_channel: IntArr
    stmt_day: IntArr
    login_w: FloatArr
    view_mean: FloatArr  # by age group
    txn_w: FloatArr
    coffee_w: FloatArr
    redeem_w: FloatArr
    balance: IntArr


def _normalised(p: FloatArr, share: float) -> FloatArr:
    mean = float(p.mean()) if len(p) else 0.0
    if mean <= 0:
        return np.zeros_like(p)
    out: FloatArr = np.minimum(p * (share / mean), 0.95)
    return out


def _issue_day_cdf(start: date) -> FloatArr:
    w = np.ones(_YEAR)
    for d in range(_YEAR):
        day = start + timedelta(days=d)
        w[d] = (0.8 if day.weekday() >= 5 else 1.0) * (1.5 if day.month in (3, 9) else 1.0)
        sf = _SPRING_FESTIVAL.get(day.year)
        if sf is not None and 0 <= (day - sf).days < 7:
            w[d] *= 0.4
    return cdf(w.tolist())


def build_behaviour(
    seed: int,
    start: date,
    cust: Customers,
    events_per_customer: float,
    n_days: int,
    mult: dict[str, FloatArr],
) -> Behaviour:
    rng = stream(seed, S_CARDS)
    n = cust.n
    g = cust.group
    young = cust.age < 30
    app_user = rng.random(n) < np.asarray(_APP_USER_BY_GROUP)[g]

    # Cards held before the year (no issue event), the Luckin co-branded card and other products issued in
    # the year (at most one in-year card per customer).
    has0 = rng.random(n) < _normalised(np.asarray(_PRE_CARD_PROPENSITY_BY_GROUP)[g], PRE_EXISTING_CARD_SHARE)
    lp = (
        np.asarray(_LUCKIN_PROPENSITY_BY_GROUP)[g]
        * np.asarray(_LUCKIN_OCCUPATION_FACTOR)[cust.occupation]
        * np.where(app_user, 1.5, 0.5)
    )
    luckin = rng.random(n) < _normalised(lp, LUCKIN_SHARE)
    op = np.asarray(_OTHER_CARD_PROPENSITY_BY_GROUP)[g]
    other = ~luckin & (rng.random(n) < _normalised(op, OTHER_CARD_SHARE / max(1e-9, 1 - LUCKIN_SHARE)))
    has1 = luckin | other
    issue1 = np.where(has1, pick(rng, _issue_day_cdf(start), n), _NEVER).astype(np.int64)
    issue_sec = hour_seconds(rng, cdf(_HOURS_ISSUE), n)

    # Product and tier of the in-year card.
    u = rng.random(n)
    wealthy = cust.aum_fen >= 50_000_000
    product1 = np.where(
        luckin,
        0,
        np.where(u < np.where(wealthy, 0.25, 0.04), 2, np.where(young & (rng.random(n) < 0.4), 3, 1)),
    ).astype(np.int64)
    platinum = rng.random(n) < np.where(wealthy, 0.5, 0.06)
    luckin_tier = np.where(platinum, 2, np.where(rng.random(n) < 0.55, 1, 0))
    tier1 = np.select(
        [product1 == 0, product1 == 2, product1 == 3],
        [luckin_tier, np.full(n, 2), np.zeros(n, dtype=np.int64)],
        default=np.where(rng.random(n) < 0.4, 1, 0),
    ).astype(np.int64)
    primary1 = ~(luckin & (rng.random(n) < LUCKIN_SUPPLEMENTARY_SHARE))
    new_customer1 = ~has0
    ch_names = list(EVENT_CHANNELS)
    luckin_ch = np.array([ch_names.index(c) for c in _LUCKIN_ISSUE_CHANNELS], dtype=np.int64)
    other_ch = np.array([ch_names.index(c) for c in _OTHER_ISSUE_CHANNELS], dtype=np.int64)
    issue_channel = np.where(
        luckin,
        luckin_ch[pick(rng, cdf(list(_LUCKIN_ISSUE_CHANNELS.values())), n)],
        other_ch[pick(rng, cdf(list(_OTHER_ISSUE_CHANNELS.values())), n)],
    ).astype(np.int64)

    n0 = int(has0.sum())
    card0 = np.where(has0, np.cumsum(has0) - 1, -1).astype(np.int64)
    card1 = np.where(has1, n0 + np.cumsum(has1) - 1, -1).astype(np.int64)

    # Rates per day (before scaling to the requested volume).
    login_w = np.where(app_user, np.asarray(_LOGINS_PER_DAY_BY_GROUP)[g] * rng.gamma(1.5, 1 / 1.5, n), 0.0)
    view_mean = np.asarray(_VIEWS_PER_LOGIN_BY_GROUP, dtype=np.float64)
    txn_w = np.where(has0 | has1, np.asarray(_TXN_PER_DAY_BY_GROUP)[g] * rng.gamma(2.0, 0.5, n), 0.0)
    coffee_w = np.where(luckin, rng.uniform(1.0, 5.0, n) / 7.0, 0.0)  # 1-5 coffees a week
    redeemer = luckin & primary1 & (rng.random(n) < REDEEMER_SHARE)
    redeem_w = np.where(redeemer, 2.0 / 30.0, 0.0)
    stmt_day = rng.integers(1, 29, n).astype(np.int64)
    balance = np.where(has0, np.floor(rng.exponential(2_000.0, n)), 0).astype(np.int64)

    # Scale the flexible streams (logins, product views, everyday card spending) so that the expected
    # number of events in the generated window is `events_per_customer * days / 365` per customer; coffee,
    # monthly points, redemptions and card issues keep their natural rates unless that alone is too much.
    w = n_days

    def window(key: str, first_day: IntArr | None = None) -> FloatArr:
        """Sum of the day multipliers over the window, from `first_day` on (each customer)."""
        cum = np.concatenate([[0.0], np.cumsum(mult[key][:w])])
        if first_day is None:
            return np.full(n, cum[w])
        out: FloatArr = cum[w] - cum[np.clip(first_day, 0, w)]
        return out

    from1 = np.where(has1, np.minimum(issue1 + 1, w), w)  # first day the in-year card can be used
    txn_days = np.where(has0, window("txn"), window("txn", from1))
    coffee_days = window("coffee", from1)
    card_days = np.where(has0, float(w), (w - from1).astype(np.float64))
    e_login = float((login_w * window("login")).sum())
    e_view = float((login_w * view_mean[g] * window("login")).sum())
    e_txn = float((txn_w * txn_days).sum())
    e_coffee = float((coffee_w * coffee_days).sum())
    e_redeem = float((redeem_w * (w - from1)).sum()) * 0.8  # not every redeemer has the points every time
    e_issued = float((issue1 < w).sum())
    cycle = _YEAR / 12

    def e_points(f_flex: float, f_fixed: float) -> float:
        # one statement a month for each cardholder who spent anything in that cycle
        spend_rate = (txn_w * f_flex + coffee_w * f_fixed) * cycle
        return float((card_days / cycle * -np.expm1(-spend_rate)).sum())

    target = events_per_customer * n * w / _YEAR
    flex = e_login + e_view + e_txn
    f_flex, f_fixed = 1.0, 1.0
    for _ in range(30):  # fixed point: the points volume depends on how much customers spend
        rest = target - e_issued - e_points(f_flex, f_fixed)
        if flex > 0 and rest - e_coffee - e_redeem >= 0.05 * flex:
            f_flex, f_fixed = (rest - e_coffee - e_redeem) / flex, 1.0
        else:  # a very small volume was asked for: scale coffee and redemptions down as well
            f_flex = f_fixed = max(rest, 0.0) / max(1e-9, flex + e_coffee + e_redeem)
    login_w *= f_flex
    txn_w *= f_flex
    coffee_w *= f_fixed
    redeem_w *= f_fixed
    return Behaviour(
        group=g,
        card0=card0,
        card1=card1,
        issue1=issue1,
        issue_sec=issue_sec,
        product1=product1,
        tier1=tier1,
        primary1=primary1,
        new_customer1=new_customer1,
        issue_channel=issue_channel,
        stmt_day=stmt_day,
        login_w=login_w,
        view_mean=view_mean,
        txn_w=txn_w,
        coffee_w=coffee_w,
        redeem_w=redeem_w,
        balance=balance,
    )


def day_multipliers(start: date, n_days: int) -> dict[str, FloatArr]:
    """Calendar effects per day, each normalised to a mean of 1 over the first 365 days."""
    total = max(n_days, _YEAR)
    login = np.ones(total)
    txn = np.ones(total)
    coffee = np.ones(total)
    txn_dow = (0.95, 0.95, 0.97, 1.0, 1.1, 1.15, 0.9)
    for d in range(total):
        day = start + timedelta(days=d)
        wd = day.weekday()
        login[d] = 1.05 if wd < 5 else 0.88
        txn[d] = txn_dow[wd]
        coffee[d] = 1.15 if wd < 5 else 0.625
        sf = _SPRING_FESTIVAL.get(day.year)
        if sf is not None:
            delta = (day - sf).days
            if -10 <= delta < 0:
                txn[d] *= 1.4
            elif 0 <= delta < 7:
                txn[d] *= 1.15
                login[d] *= 0.85
                coffee[d] *= 0.5
        if (day.month, day.day) in ((6, 17), (6, 18), (11, 10), (11, 11)):
            txn[d] *= 1.3
    out = {}
    for key, arr in (("login", login), ("txn", txn), ("coffee", coffee)):
        out[key] = arr / arr[:_YEAR].mean()
    out["redeem"] = np.ones(total)
    return out
