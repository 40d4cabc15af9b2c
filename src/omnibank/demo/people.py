"""The demo bank's retail customers: age, gender, birth and registration dates, home branch, resident ID,
phone, wealth, occupation, risk tolerance, preferred channel and consent, as numpy columns.

Apart because this is the bank's customer base as a portrait (about a third 60 or older, wealth growing with
age); how those customers behave over the year is :mod:`omnibank.demo.rates` and :mod:`omnibank.demo.events`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from omnibank.demo.names import unique_phones
from omnibank.demo.orgs import CITIES, OrgTree
from omnibank.demo.sampling import (
    S_CUSTOMERS,
    AnyArr,
    BoolArr,
    IntArr,
    cdf,
    cdf_table,
    pick,
    pick_rows,
    repeats,
    stream,
)

# Age pyramid of the bank's retail customers: (first age, last age, relative weight of the band). About a
# third are 60 or older (衡水银行: 33.6% at the end of Q1 2024).
# fmt: off
_AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (18, 24, 7.0), (25, 29, 6.5), (30, 34, 8.5), (35, 39, 7.5), (40, 44, 7.0), (45, 49, 8.0),
    (50, 54, 8.5), (55, 59, 8.0), (60, 64, 9.0), (65, 69, 8.0), (70, 74, 6.0), (75, 79, 3.6),
    (80, 84, 2.0), (85, 89, 1.0), (90, 95, 0.4),
)
# fmt: on
MIN_AGE, MAX_AGE = 18, 95

# Age groups used by the tables below and by those of omnibank.demo.rates: 18-21, 22-24, 25-34, 35-44, 45-54,
# 55-59, 60-69, 70-79, 80+.
_GROUP_EDGES = np.array([22, 25, 35, 45, 55, 60, 70, 80], dtype=np.int64)

_P_MALE = (0.51, 0.51, 0.51, 0.50, 0.50, 0.49, 0.48, 0.46, 0.42)

# The probability tables below follow the order of OCCUPATIONS (from the customers model).
_OCCUPATION_BY_GROUP = (
    (0.12, 0.00, 0.00, 0.04, 0.00, 0.74, 0.03, 0.07),
    (0.52, 0.05, 0.01, 0.08, 0.00, 0.20, 0.05, 0.09),
    (0.54, 0.09, 0.06, 0.13, 0.00, 0.00, 0.08, 0.10),
    (0.48, 0.09, 0.10, 0.15, 0.00, 0.00, 0.10, 0.08),
    (0.42, 0.08, 0.11, 0.15, 0.03, 0.00, 0.13, 0.08),
    (0.30, 0.06, 0.09, 0.12, 0.22, 0.00, 0.13, 0.08),
    (0.05, 0.01, 0.05, 0.05, 0.65, 0.00, 0.12, 0.07),
    (0.00, 0.00, 0.02, 0.02, 0.80, 0.00, 0.10, 0.06),
    (0.00, 0.00, 0.01, 0.01, 0.85, 0.00, 0.08, 0.05),
)
_AUM_LOG_EFFECT_BY_GROUP = (-1.2, -0.8, -0.45, -0.1, 0.15, 0.3, 0.45, 0.4, 0.2)
_AUM_LOG_EFFECT_BY_OCCUPATION = (0.0, 0.3, 0.9, 0.3, 0.1, -0.6, -0.5, -0.2)
AUM_LOG_SIGMA = 1.55
AUM_MEDIAN_FEN = 3_000_000  # 30,000.00 CNY
_AUM_ZERO_SHARE = 0.015
PRIVATE_BANKING_FEN = 600_000_000  # 6,000,000.00 CNY

_RISK_BY_GROUP = (
    (0.10, 0.30, 0.35, 0.18, 0.07),
    (0.10, 0.28, 0.36, 0.18, 0.08),
    (0.08, 0.25, 0.37, 0.20, 0.10),
    (0.08, 0.27, 0.37, 0.19, 0.09),
    (0.12, 0.33, 0.35, 0.14, 0.06),
    (0.18, 0.40, 0.30, 0.09, 0.03),
    (0.30, 0.45, 0.20, 0.04, 0.01),
    (0.42, 0.42, 0.14, 0.02, 0.00),
    (0.55, 0.37, 0.08, 0.00, 0.00),
)
_CHANNEL_BY_GROUP = (
    (0.55, 0.33, 0.04, 0.03, 0.05),
    (0.55, 0.32, 0.04, 0.03, 0.06),
    (0.55, 0.30, 0.05, 0.04, 0.06),
    (0.48, 0.28, 0.08, 0.06, 0.10),
    (0.35, 0.28, 0.12, 0.10, 0.15),
    (0.25, 0.25, 0.15, 0.13, 0.22),
    (0.12, 0.20, 0.15, 0.20, 0.33),
    (0.05, 0.12, 0.13, 0.25, 0.45),
    (0.02, 0.06, 0.10, 0.30, 0.52),
)
_MARKETING_CONSENT_SHARE = 0.75
_REGISTRATION_FLOOR = date(2005, 1, 1)

_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
ID_CHECK_CHARS = "10X98765432"


def _age_group(ages: AnyArr) -> IntArr:
    return np.searchsorted(_GROUP_EDGES, ages, side="right").astype(np.int64)


def _minus_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February in a common year
        return d.replace(year=d.year - years, day=28)


@dataclass
class Customers:
    n: int
    age: IntArr
    group: IntArr
    male: BoolArr
    birth: AnyArr  # datetime64[D]
    registered: AnyArr  # datetime64[D]
    home: IntArr  # org index (branch or sub-branch)
    city: IntArr
    id17: IntArr
    id_check: IntArr
    phone: IntArr
    aum_fen: IntArr
    occupation: IntArr
    risk: IntArr
    channel: IntArr
    consent: BoolArr
    rm: IntArr = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # staff index or -1


def build_customers(seed: int, n: int, start: date, tree: OrgTree) -> Customers:
    rng = stream(seed, S_CUSTOMERS)
    # Age at `start`, then a birth date that gives exactly that age.
    ages_all = np.arange(MIN_AGE, MAX_AGE + 1)
    w = np.zeros(len(ages_all))
    for lo, hi, weight in _AGE_BANDS:
        w[(ages_all >= lo) & (ages_all <= hi)] = weight / (hi - lo + 1)
    age = (MIN_AGE + pick(rng, cdf(w.tolist()), n)).astype(np.int64)
    group = _age_group(age)
    anniversaries = np.array(
        [np.datetime64(_minus_years(start, a), "D") for a in range(MAX_AGE + 2)], dtype="datetime64[D]"
    )
    latest = anniversaries[age]  # born on this day: turns `age` exactly at `start`
    span = (latest - anniversaries[age + 1]).astype(np.int64)  # 365 or 366 days of possible birthdays
    birth = latest - (rng.random(n) * span).astype(np.int64).astype("timedelta64[D]")
    male = rng.random(n) < np.asarray(_P_MALE)[group]

    # Registration: 2005-01-01 (or the 16th birthday if later) .. start - 1 day, skewed to recent years.
    month = birth.astype("datetime64[M]")
    dom = (birth - month.astype("datetime64[D]")).astype(np.int64)
    turned16 = (month + np.timedelta64(16 * 12, "M")).astype("datetime64[D]") + dom.astype("timedelta64[D]")
    upper = np.datetime64(start, "D") - np.timedelta64(1, "D")
    floor = np.datetime64(_REGISTRATION_FLOOR, "D")
    lower = np.maximum(turned16, floor if floor <= upper else turned16)
    lower = np.minimum(lower, upper)
    reg_span = (upper - lower).astype(np.int64) + 1
    registered = lower + (rng.random(n) ** 0.75 * reg_span).astype(np.int64).astype("timedelta64[D]")

    # Home branch: a city by the bank's footprint, then a sub-branch (8% are served by the branch itself).
    city = pick(rng, cdf([c[1] for c in CITIES]), n)
    home = np.empty(n, dtype=np.int64)
    sub_weights = [rng.gamma(3.0, 1.0, len(subs)) for subs in tree.subbranches]
    at_branch = rng.random(n) < 0.08
    u = rng.random(n)
    for ci, subs in enumerate(tree.subbranches):
        mask = city == ci
        choice = np.searchsorted(cdf(sub_weights[ci].tolist()), u[mask], side="right")
        choice = np.minimum(choice, len(subs) - 1)
        home[mask] = np.where(at_branch[mask], tree.branches[ci], np.asarray(subs, dtype=np.int64)[choice])

    # Resident ID: address code (mostly the home district), birth date, sequence with gender parity, check.
    city_codes = [np.array([int(code) for _, code in c[2]], dtype=np.int64) for c in CITIES]
    all_codes = np.concatenate(city_codes)
    home_code = np.array([int(o.region) if o.region else 0 for o in tree.orgs], dtype=np.int64)[home]
    same_city = np.empty(n, dtype=np.int64)
    for ci, codes in enumerate(city_codes):
        mask = city == ci
        same_city[mask] = codes[rng.integers(0, len(codes), int(mask.sum()))]
    r = rng.random(n)
    region = np.where(r < 0.10, all_codes[rng.integers(0, len(all_codes), n)], same_city)
    region = np.where((r >= 0.25) & (home_code > 0), home_code, region)
    ymd = _yyyymmdd(birth)
    id17 = np.empty(n, dtype=np.int64)
    pending = np.ones(n, dtype=np.bool_)
    for attempt in range(1_000):
        k = int(pending.sum())
        if attempt >= 20:  # a crowded (district, birthday, gender): move to another Hebei district
            region[pending] = all_codes[rng.integers(0, len(all_codes), k)]
        seq = rng.integers(0, 499, k) * 2 + np.where(male[pending], 1, 2)  # 001..997 odd / 002..998 even
        id17[pending] = (region[pending] * 100_000_000 + ymd[pending]) * 1000 + seq
        pending = repeats(id17)
        if not pending.any():
            break
    else:
        raise RuntimeError("could not draw unique resident ID numbers")
    id_check = _id_check_index(id17)

    phone = unique_phones(rng, n)

    occupation = pick_rows(rng, cdf_table(_OCCUPATION_BY_GROUP), group)
    log_aum = (
        np.asarray(_AUM_LOG_EFFECT_BY_GROUP)[group]
        + np.asarray(_AUM_LOG_EFFECT_BY_OCCUPATION)[occupation]
        + AUM_LOG_SIGMA * rng.standard_normal(n)
    )
    log_aum += math.log(AUM_MEDIAN_FEN) - float(np.median(log_aum))
    aum_fen = np.minimum(np.rint(np.exp(log_aum)), 80_000_000_000).astype(np.int64)
    aum_fen[rng.random(n) < _AUM_ZERO_SHARE] = 0

    # Risk tolerance: by age, one notch up for some of the wealthy (they hold more than deposits).
    risk = pick_rows(rng, cdf_table(_RISK_BY_GROUP), group)
    bump = (aum_fen >= 100_000_000) & (rng.random(n) < 0.3) & (group < 7)
    risk = np.minimum(risk + bump, 4).astype(np.int64)
    channel = pick_rows(rng, cdf_table(_CHANNEL_BY_GROUP), group)
    consent = rng.random(n) < _MARKETING_CONSENT_SHARE
    return Customers(
        n=n,
        age=age,
        group=group,
        male=male,
        birth=birth,
        registered=registered,
        home=home,
        city=city,
        id17=id17,
        id_check=id_check,
        phone=phone,
        aum_fen=aum_fen,
        occupation=occupation,
        risk=risk,
        channel=channel,
        consent=consent,
    )


def _yyyymmdd(days: AnyArr) -> IntArr:
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    months = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    out: IntArr = years * 10_000 + months * 100 + dom
    return out


def _id_check_index(id17: IntArr) -> IntArr:
    """Index into ``ID_CHECK_CHARS`` of the ISO 7064 MOD 11-2 check character, vectorised."""
    total = np.zeros(len(id17), dtype=np.int64)
    rest = id17.copy()
    for pos in range(16, -1, -1):
        total += (rest % 10) * _ID_WEIGHTS[pos]
        rest //= 10
    out: IntArr = total % 11
    return out
