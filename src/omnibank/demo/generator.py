"""Deterministic, streaming generator of a demo bank: organisation, staff, customers and a year of events.

The output follows the data contract (``orgs.csv``, ``staff.csv``, ``customers.csv``, ``events.jsonl``). The
bank is modelled on a Hebei city commercial bank (衡水银行): about a third of its retail customers are 60 or
older, wealth grows with age, older customers prefer the branch and the phone and are more conservative;
young white-collar customers take up the Luckin co-branded credit card and buy coffee with it.

Design:

* Determinism: every random draw comes from ``numpy.random.Generator(PCG64(...))`` seeded from
  ``SeedSequence(seed, spawn_key=...)`` with a fixed key per stream (organisation, customers, staff, cards,
  one per day of events). Nothing reads the clock or ``hash()``; the same arguments (and numpy version)
  give byte-identical files.
* Constant memory: per-customer state lives in numpy columns (O(customers)); events are produced one day at
  a time, vectorised over customers, sorted by timestamp and written with one ``write`` per day.
* Per-customer event rates are fixed for the run; each day draws the day's total count from a Poisson law
  and spreads it over customers in proportion to their rates (a binary search in the cumulative rates),
  then drops draws that are not possible that day (a card not issued yet). That is exactly a thinned
  Poisson process per customer, at a cost proportional to the day's events rather than to the customers.
  Calendar effects (weekdays, Spring Festival, 618 / Double 11) scale a day's totals.
* Volume: coffee (1-5 a week per Luckin cardholder), monthly points and card issues keep their natural
  rates; logins, product views and everyday card spending are scaled so that the expected total is
  ``events_per_customer * days / 365`` per customer.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from omnibank.customers.values import CARD_TIERS, EVENT_CHANNELS, OCCUPATIONS
from omnibank.orgs.models import STAFF_ROLES

__all__ = ["DemoSummary", "EVENT_TYPES", "generate"]

IntArr = NDArray[np.int64]
FloatArr = NDArray[np.float64]
BoolArr = NDArray[np.bool_]
AnyArr = NDArray[Any]

EVENT_TYPES = (
    "card.issued",
    "card.transaction",
    "points.earned",
    "points.redeem",
    "app.login",
    "app.product_view",
)

# --------------------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------------------

BANK_NAME = "衡水银行"

# Branch cities (B001, B002, ...) with the districts / counties their sub-branches are named after and the
# GB/T 2260 administrative-division code used as the address code of resident ID numbers.
# fmt: off
_CITIES: tuple[tuple[str, float, tuple[tuple[str, str], ...]], ...] = (
    ("衡水", 0.30, (("桃城", "131102"), ("冀州", "131103"), ("枣强", "131121"), ("武邑", "131122"),
                    ("安平", "131125"), ("故城", "131126"), ("景县", "131127"), ("深州", "131182"))),
    ("石家庄", 0.14, (("长安", "130102"), ("桥西", "130104"), ("新华", "130105"), ("裕华", "130108"),
                      ("藁城", "130109"), ("鹿泉", "130110"), ("正定", "130123"), ("辛集", "130181"))),
    ("保定", 0.10, (("竞秀", "130602"), ("莲池", "130606"), ("满城", "130607"), ("清苑", "130608"),
                    ("徐水", "130609"), ("涿州", "130681"), ("定州", "130682"), ("高碑店", "130684"))),
    ("沧州", 0.08, (("新华", "130902"), ("运河", "130903"), ("泊头", "130981"), ("任丘", "130982"),
                    ("黄骅", "130983"), ("河间", "130984"))),
    ("邢台", 0.08, (("襄都", "130502"), ("信都", "130503"), ("任泽", "130505"), ("南宫", "130581"),
                    ("沙河", "130582"))),
    ("邯郸", 0.08, (("邯山", "130402"), ("丛台", "130403"), ("复兴", "130404"), ("峰峰", "130406"),
                    ("武安", "130481"))),
    ("廊坊", 0.06, (("安次", "131002"), ("广阳", "131003"), ("霸州", "131081"), ("三河", "131082"))),
    ("唐山", 0.07, (("路南", "130202"), ("路北", "130203"), ("古冶", "130204"), ("开平", "130205"),
                    ("丰润", "130208"), ("遵化", "130281"), ("迁安", "130283"))),
    ("秦皇岛", 0.04, (("海港", "130302"), ("山海关", "130303"), ("北戴河", "130304"), ("抚宁", "130306"))),
    ("张家口", 0.05, (("桥东", "130702"), ("桥西", "130703"), ("宣化", "130705"), ("万全", "130708"),
                      ("崇礼", "130709"))),
)
# fmt: on

# (name, share of relationship staff who are wealth managers)
_TEAM_KINDS: tuple[tuple[str, float], ...] = (
    ("财富管理团队", 0.75),
    ("个人金融团队", 0.15),
    ("银发客户服务团队", 0.25),
    ("社区金融团队", 0.10),
    ("零售信贷团队", 0.05),
)

# Surnames with relative frequencies (northern China: 张/王/李/刘/赵 lead), a few two-character ones.
# fmt: off
_SURNAMES: tuple[tuple[str, float], ...] = (
    ("张", 7.6), ("王", 7.5), ("李", 7.4), ("刘", 6.2), ("赵", 3.6), ("杨", 3.2), ("陈", 3.0), ("高", 2.2),
    ("孙", 2.0), ("郭", 1.8), ("马", 1.8), ("周", 1.3), ("韩", 1.2), ("徐", 1.2), ("吴", 1.1), ("朱", 1.1),
    ("宋", 1.1), ("黄", 1.0), ("胡", 1.0), ("董", 1.0), ("贾", 0.9), ("田", 0.9), ("冯", 0.8), ("于", 0.8),
    ("魏", 0.8), ("杜", 0.8), ("崔", 0.8), ("梁", 0.8), ("郑", 0.7), ("曹", 0.7), ("石", 0.7), ("孟", 0.7),
    ("任", 0.7), ("何", 0.6), ("许", 0.6), ("吕", 0.6), ("苏", 0.6), ("范", 0.6), ("郝", 0.6), ("白", 0.6),
    ("武", 0.6), ("唐", 0.5), ("程", 0.5), ("袁", 0.5), ("卢", 0.5), ("丁", 0.5), ("薛", 0.5), ("姜", 0.5),
    ("姚", 0.5), ("史", 0.5), ("侯", 0.5), ("常", 0.5), ("罗", 0.4), ("林", 0.4), ("谢", 0.4), ("邓", 0.4),
    ("彭", 0.4), ("蒋", 0.4), ("蔡", 0.4), ("阎", 0.4), ("潘", 0.4), ("康", 0.4), ("秦", 0.4), ("段", 0.4),
    ("尹", 0.4), ("乔", 0.4), ("沈", 0.3), ("叶", 0.3), ("戴", 0.3), ("夏", 0.3), ("方", 0.3), ("金", 0.3),
    ("孔", 0.3), ("毛", 0.3), ("邵", 0.3), ("贺", 0.3), ("傅", 0.2), ("曾", 0.2), ("余", 0.2), ("钟", 0.2),
    ("汪", 0.2), ("谭", 0.2), ("邹", 0.2), ("熊", 0.2), ("陆", 0.2), ("邱", 0.2), ("江", 0.2), ("顾", 0.2),
    ("万", 0.2), ("雷", 0.2), ("钱", 0.2), ("汤", 0.2), ("廖", 0.1), ("萧", 0.1), ("龙", 0.1), ("黎", 0.1),
    ("易", 0.1), ("龚", 0.1), ("文", 0.1), ("赖", 0.05),
    ("欧阳", 0.05), ("司马", 0.02), ("上官", 0.01), ("诸葛", 0.01), ("东方", 0.01),
)
# fmt: on

# Given-name characters by gender and generation (born before 1966 / 1966-1989 / 1990 and later).
_GIVEN_FIRST = {
    ("M", 0): "建国志德振永文福金春玉长树保庆",
    ("M", 1): "伟海晓立建志宏俊永红卫利新小",
    ("M", 2): "子浩宇梓俊一博思泽皓明嘉天家",
    ("F", 0): "秀桂玉淑凤金兰春丽素美翠彩月",
    ("F", 1): "丽晓艳红海春静雪晶秀金小亚彩",
    ("F", 2): "欣雨梓思语紫诗可佳若一馨子晓",
}
_GIVEN_SECOND = {
    ("M", 0): "国华军民平生林明强成山忠祥海福",
    ("M", 1): "东波涛峰强军辉刚杰斌鹏亮勇明",
    ("M", 2): "轩然涵睿航宇豪杰辰阳博泽铭凯",
    ("F", 0): "英兰珍芳华荣梅琴云霞香芬敏花",
    ("F", 1): "娟燕霞丽静敏梅红玲萍芳娜华英",
    ("F", 2): "怡涵彤萱琪妍悦然诺琳瑶雯婷璐",
}
_GIVEN_SINGLE = {
    "M": "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩健帅龙峰",
    "F": "芳娜敏静丽艳娟霞燕玲婷雪琳颖洁晶倩萍红梅丹慧洋蕾",
}
_SINGLE_SHARE_BY_ERA = (0.20, 0.30, 0.15)

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

# Age groups used by the behaviour tables below: 18-21, 22-24, 25-34, 35-44, 45-54, 55-59, 60-69, 70-79, 80+.
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
_AUM_LOG_SIGMA = 1.55
_AUM_MEDIAN_FEN = 3_000_000  # 30,000.00 CNY
_AUM_ZERO_SHARE = 0.015
PRIVATE_BANKING_FEN = 600_000_000  # 6,000,000.00 CNY

RISK_LEVELS = ("C1", "C2", "C3", "C4", "C5")
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
CHANNEL_PREFS = ("app", "wechat", "sms", "phone", "branch")
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

# Behaviour by age group.
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
VOUCHER_POINTS = 1_000
MAX_REDEEMS_PER_MONTH = 3

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
_HOURS_ISSUE = (0, 0, 0, 0, 0, 0, 0, 0, 1, 6, 8, 8, 5, 6, 8, 8, 7, 5, 3, 3, 3, 2, 1, 0)
_HOURS_REDEEM = (0.5, 0.2, 0, 0, 0, 0, 0.5, 2, 5, 6, 5, 4, 6, 5, 4, 4, 4, 4, 5, 6, 7, 6, 4, 2)
_POINTS_BATCH_SECONDS = (1_800, 7_200)  # nightly points batch, 00:30-02:00

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

# fmt: off
_PHONE_PREFIXES = (
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159,
    170, 173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 193, 195, 198, 199,
)
# fmt: on

_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK_CHARS = "10X98765432"

# Stream keys of the SeedSequence.
_S_ORGS, _S_CUSTOMERS, _S_STAFF, _S_CARDS, _S_DAY = 1, 2, 3, 4, 100

# --------------------------------------------------------------------------------------------------------
# Public result
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate` wrote."""

    out_dir: Path
    orgs_csv: Path
    staff_csv: Path
    customers_csv: Path
    events_jsonl: Path
    orgs: int
    staff: int
    customers: int
    events: int
    events_by_type: dict[str, int] = field(default_factory=dict)
    orgs_by_level: dict[str, int] = field(default_factory=dict)
    staff_by_role: dict[str, int] = field(default_factory=dict)

    @property
    def paths(self) -> tuple[Path, Path, Path, Path]:
        return (self.orgs_csv, self.staff_csv, self.customers_csv, self.events_jsonl)


# --------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------


def _rng(seed: int, *key: int) -> Generator:
    return Generator(PCG64(SeedSequence(seed, spawn_key=key)))


def _cdf(weights: Sequence[float]) -> FloatArr:
    w = np.asarray(weights, dtype=np.float64)
    c = np.cumsum(w)
    out: FloatArr = c / c[-1]
    out[-1] = 1.0
    return out


def _cdf_table(rows: Sequence[Sequence[float]]) -> FloatArr:
    return np.stack([_cdf(r) for r in rows])


def _pick(rng: Generator, cdf: FloatArr, n: int) -> IntArr:
    """Draw ``n`` category indices from one cumulative distribution."""
    idx = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(idx, len(cdf) - 1).astype(np.int64)


def _pick_rows(rng: Generator, table: FloatArr, rows: AnyArr) -> IntArr:
    """Draw one category per element, each from the cumulative distribution ``table[rows[i]]``."""
    u = rng.random(len(rows))
    idx: IntArr = (u[:, None] >= table[rows]).sum(axis=1, dtype=np.int64)
    out: IntArr = np.minimum(idx, table.shape[1] - 1)
    return out


def _age_group(ages: AnyArr) -> IntArr:
    return np.searchsorted(_GROUP_EDGES, ages, side="right").astype(np.int64)


def _minus_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February in a common year
        return d.replace(year=d.year - years, day=28)


def _largest_remainder(total: int, weights: FloatArr, minimum: int = 0) -> IntArr:
    """Split ``total`` into integers proportional to ``weights``, each at least ``minimum``."""
    n = len(weights)
    base = np.full(n, minimum, dtype=np.int64)
    rest = total - minimum * n
    if rest <= 0 or n == 0:
        return base
    share = weights / weights.sum() * rest
    whole = np.floor(share).astype(np.int64)
    left = rest - int(whole.sum())
    order = np.argsort(-(share - whole), kind="stable")
    whole[order[:left]] += 1
    out: IntArr = base + whole
    return out


def _repeats(values: IntArr) -> BoolArr:
    """True for every element equal to an earlier element."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    out = np.zeros(len(values), dtype=np.bool_)
    out[order[1:][ordered[1:] == ordered[:-1]]] = True
    return out


def _unique_phones(rng: Generator, n: int, taken: IntArr | None = None) -> IntArr:
    """``n`` distinct 11-digit mobile numbers, none of them in ``taken``."""
    prefixes = np.array(_PHONE_PREFIXES, dtype=np.int64)
    taken_sorted = np.sort(taken) if taken is not None else np.zeros(0, dtype=np.int64)

    def draw(k: int) -> IntArr:
        head = prefixes[rng.integers(0, len(prefixes), k)]
        out: IntArr = head * 100_000_000 + rng.integers(0, 100_000_000, k)
        return out

    phones = draw(n)
    while True:
        bad = _repeats(phones)
        if len(taken_sorted):
            pos = np.minimum(np.searchsorted(taken_sorted, phones), len(taken_sorted) - 1)
            bad |= taken_sorted[pos] == phones
        k = int(bad.sum())
        if k == 0:
            return phones
        phones[bad] = draw(k)


def _names(rng: Generator, male: BoolArr, birth_years: IntArr) -> list[str]:
    """Chinese names: surname by frequency, one or two given-name characters by gender and generation."""
    n = len(male)
    surnames = [s for s, _ in _SURNAMES]
    sur = _pick(rng, _cdf([w for _, w in _SURNAMES]), n)
    era = np.where(birth_years < 1966, 0, np.where(birth_years < 1990, 1, 2)).astype(np.int64)
    # One flat character table: per (gender, era) a first and a second pool, per gender a single pool, "".
    chars: list[str] = [""]
    first_off = np.zeros((2, 3), dtype=np.int64)
    first_len = np.zeros((2, 3), dtype=np.int64)
    second_off = np.zeros((2, 3), dtype=np.int64)
    second_len = np.zeros((2, 3), dtype=np.int64)
    single_off = np.zeros(2, dtype=np.int64)
    single_len = np.zeros(2, dtype=np.int64)
    for gi, g in enumerate(("M", "F")):
        for e in range(3):
            first_off[gi, e], first_len[gi, e] = len(chars), len(_GIVEN_FIRST[(g, e)])
            chars.extend(_GIVEN_FIRST[(g, e)])
            second_off[gi, e], second_len[gi, e] = len(chars), len(_GIVEN_SECOND[(g, e)])
            chars.extend(_GIVEN_SECOND[(g, e)])
        single_off[gi], single_len[gi] = len(chars), len(_GIVEN_SINGLE[g])
        chars.extend(_GIVEN_SINGLE[g])
    gi_arr = np.where(male, 0, 1)
    single = rng.random(n) < np.asarray(_SINGLE_SHARE_BY_ERA)[era]
    u1, u2 = rng.random(n), rng.random(n)
    c1 = np.where(
        single,
        single_off[gi_arr] + (u1 * single_len[gi_arr]).astype(np.int64),
        first_off[gi_arr, era] + (u1 * first_len[gi_arr, era]).astype(np.int64),
    )
    c2 = np.where(single, 0, second_off[gi_arr, era] + (u2 * second_len[gi_arr, era]).astype(np.int64))
    # A doubled character (海海) is dropped to a one-character given name.
    return [
        surnames[s] + chars[a] + (chars[b] if chars[b] != chars[a] else "")
        for s, a, b in zip(sur.tolist(), c1.tolist(), c2.tolist(), strict=True)
    ]


# --------------------------------------------------------------------------------------------------------
# Organisation
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Org:
    org_id: str
    parent_id: str
    name: str
    level: str
    city: int  # index into _CITIES, -1 for HQ
    parent: int  # index of the parent org, -1 for HQ
    region: str = ""  # GB/T 2260 code of the district a sub-branch serves
    team_kind: int = -1


@dataclass
class _OrgTree:
    orgs: list[_Org]
    branches: list[int]  # org indices of branches, by city
    subbranches: list[list[int]]  # per city, org indices of its sub-branches
    teams: dict[int, list[int]]  # sub-branch index -> team indices


def _build_orgs(seed: int) -> _OrgTree:
    rng = _rng(seed, _S_ORGS)
    orgs = [_Org("HQ", "", f"{BANK_NAME}总行", "hq", -1, -1)]
    branches: list[int] = []
    subbranches: list[list[int]] = []
    teams: dict[int, list[int]] = {}
    for ci, (city, _, districts) in enumerate(_CITIES):
        b = len(orgs)
        branches.append(b)
        orgs.append(_Org(f"B{ci + 1:03d}", "HQ", f"{city}分行", "branch", ci, 0))
        n_sub = int(rng.integers(2, 5))
        chosen = np.sort(rng.choice(len(districts), size=min(n_sub, len(districts)), replace=False))
        subs: list[int] = []
        for si, di in enumerate(chosen.tolist(), start=1):
            district, code = districts[di]
            s = len(orgs)
            subs.append(s)
            sub_id = f"S{ci + 1:02d}{si:02d}"
            orgs.append(_Org(sub_id, orgs[b].org_id, f"{district}支行", "subbranch", ci, b, region=code))
            n_team = int(rng.integers(1, 4))
            kinds = [0, *sorted((rng.permutation(len(_TEAM_KINDS) - 1) + 1)[: n_team - 1].tolist())]
            team_ids: list[int] = []
            for ti, kind in enumerate(kinds, start=1):
                team_ids.append(len(orgs))
                orgs.append(
                    _Org(
                        f"T{ci + 1:02d}{si:02d}{ti:02d}",
                        sub_id,
                        _TEAM_KINDS[kind][0],
                        "team",
                        ci,
                        s,
                        region=code,
                        team_kind=kind,
                    )
                )
            teams[s] = team_ids
        subbranches.append(subs)
    return _OrgTree(orgs, branches, subbranches, teams)


# --------------------------------------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Customers:
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


def _build_customers(seed: int, n: int, start: date, tree: _OrgTree) -> _Customers:
    rng = _rng(seed, _S_CUSTOMERS)
    # Age at `start`, then a birth date that gives exactly that age.
    ages_all = np.arange(MIN_AGE, MAX_AGE + 1)
    w = np.zeros(len(ages_all))
    for lo, hi, weight in _AGE_BANDS:
        w[(ages_all >= lo) & (ages_all <= hi)] = weight / (hi - lo + 1)
    age = (MIN_AGE + _pick(rng, _cdf(w.tolist()), n)).astype(np.int64)
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
    city = _pick(rng, _cdf([c[1] for c in _CITIES]), n)
    home = np.empty(n, dtype=np.int64)
    sub_weights = [rng.gamma(3.0, 1.0, len(subs)) for subs in tree.subbranches]
    at_branch = rng.random(n) < 0.08
    u = rng.random(n)
    for ci, subs in enumerate(tree.subbranches):
        mask = city == ci
        choice = np.searchsorted(_cdf(sub_weights[ci].tolist()), u[mask], side="right")
        choice = np.minimum(choice, len(subs) - 1)
        home[mask] = np.where(at_branch[mask], tree.branches[ci], np.asarray(subs, dtype=np.int64)[choice])

    # Resident ID: address code (mostly the home district), birth date, sequence with gender parity, check.
    city_codes = [np.array([int(code) for _, code in c[2]], dtype=np.int64) for c in _CITIES]
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
        pending = _repeats(id17)
        if not pending.any():
            break
    else:
        raise RuntimeError("could not draw unique resident ID numbers")
    id_check = _id_check_index(id17)

    phone = _unique_phones(rng, n)

    occupation = _pick_rows(rng, _cdf_table(_OCCUPATION_BY_GROUP), group)
    log_aum = (
        np.asarray(_AUM_LOG_EFFECT_BY_GROUP)[group]
        + np.asarray(_AUM_LOG_EFFECT_BY_OCCUPATION)[occupation]
        + _AUM_LOG_SIGMA * rng.standard_normal(n)
    )
    log_aum += math.log(_AUM_MEDIAN_FEN) - float(np.median(log_aum))
    aum_fen = np.minimum(np.rint(np.exp(log_aum)), 80_000_000_000).astype(np.int64)
    aum_fen[rng.random(n) < _AUM_ZERO_SHARE] = 0

    # Risk tolerance: by age, one notch up for some of the wealthy (they hold more than deposits).
    risk = _pick_rows(rng, _cdf_table(_RISK_BY_GROUP), group)
    bump = (aum_fen >= 100_000_000) & (rng.random(n) < 0.3) & (group < 7)
    risk = np.minimum(risk + bump, 4).astype(np.int64)
    channel = _pick_rows(rng, _cdf_table(_CHANNEL_BY_GROUP), group)
    consent = rng.random(n) < _MARKETING_CONSENT_SHARE
    return _Customers(
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
    """Index into ``_ID_CHECK_CHARS`` of the ISO 7064 MOD 11-2 check character, vectorised."""
    total = np.zeros(len(id17), dtype=np.int64)
    rest = id17.copy()
    for pos in range(16, -1, -1):
        total += (rest % 10) * _ID_WEIGHTS[pos]
        rest //= 10
    out: IntArr = total % 11
    return out


# --------------------------------------------------------------------------------------------------------
# Staff
# --------------------------------------------------------------------------------------------------------

ROLES = STAFF_ROLES
_R = {role: i for i, role in enumerate(ROLES)}


@dataclass
class _Staff:
    org: IntArr
    role: IntArr
    names: list[str]
    phone: IntArr

    @property
    def n(self) -> int:
        return len(self.org)


def _build_staff(seed: int, start: date, tree: _OrgTree, cust: _Customers) -> _Staff:
    rng = _rng(seed, _S_STAFF)
    n_cust = cust.n
    per_org = np.bincount(cust.home, minlength=len(tree.orgs)).astype(np.float64)
    per_city = np.bincount(cust.city, minlength=len(_CITIES)).astype(np.float64)
    org: list[int] = []
    role: list[int] = []

    def add(o: int, r: str, k: int = 1) -> None:
        org.extend([o] * k)
        role.extend([_R[r]] * k)

    # HQ: campaign managers, admins and the central contact centre (half of service and telemarketing).
    service_total = int(np.clip(math.ceil(n_cust / 3_000), 4, 300))
    tele_total = int(np.clip(math.ceil(n_cust / 4_000), 3, 200))
    add(0, "admin", int(np.clip(2 + n_cust // 250_000, 2, 6)))
    add(0, "campaign_manager", int(np.clip(n_cust // 10_000, 2, 8)))
    add(0, "service_agent", service_total - service_total // 2)
    add(0, "telemarketer", tele_total - tele_total // 2)
    weights_city = per_city + 1.0
    service_city = _largest_remainder(service_total // 2, weights_city)
    tele_city = _largest_remainder(tele_total // 2, weights_city)

    # Relationship staff: at least one per team, about one per 140 customers, at most 3,000.
    team_list = [t for subs in tree.subbranches for s in subs for t in tree.teams[s]]
    team_weight = np.zeros(len(team_list))
    for k, t in enumerate(team_list):
        s = tree.orgs[t].parent
        b = tree.orgs[s].parent
        n_branch_teams = sum(len(tree.teams[x]) for x in tree.subbranches[tree.orgs[b].city])
        team_weight[k] = per_org[s] / len(tree.teams[s]) + per_org[b] / n_branch_teams + 1.0
    n_rel = int(np.clip(math.ceil(n_cust / 140), len(team_list), 3_000))
    rel_per_team = dict(zip(team_list, _largest_remainder(n_rel, team_weight, 1).tolist(), strict=True))

    for ci, b in enumerate(tree.branches):
        add(b, "branch_manager")
        add(b, "teller", int(np.clip(round(per_org[b] / 1_500), 1, 6)))  # the branch's own counter
        add(b, "service_agent", int(service_city[ci]))
        add(b, "telemarketer", int(tele_city[ci]))
        for s in tree.subbranches[ci]:
            add(s, "branch_manager")
            add(s, "teller", int(np.clip(round(per_org[s] / 1_500), 1, 12)))
            for t in tree.teams[s]:
                k = rel_per_team[t]
                wm_share = _TEAM_KINDS[tree.orgs[t].team_kind][1]
                n_wm = int(round(k * wm_share))
                add(t, "rm", k - n_wm)
                add(t, "wealth_manager", n_wm)
    n = len(org)
    age = rng.integers(23, 58, n)
    male = rng.random(n) < 0.45
    names = _names(rng, male, start.year - age)
    phone = _unique_phones(rng, n, taken=cust.phone)
    return _Staff(np.asarray(org, dtype=np.int64), np.asarray(role, dtype=np.int64), names, phone)


def _assign_rms(seed: int, tree: _OrgTree, cust: _Customers, staff: _Staff) -> IntArr:
    """~70% of customers get an RM from their home branch's subtree; wealthier ones more often, and the
    wealthy mostly a wealth manager."""
    rng = _rng(seed, _S_STAFF, 1)
    n_orgs = len(tree.orgs)
    is_rel = (staff.role == _R["rm"]) | (staff.role == _R["wealth_manager"])
    is_wm = staff.role == _R["wealth_manager"]
    # Subtree pools for every org a customer can belong to (branches and sub-branches).
    pools_all: list[IntArr] = [np.zeros(0, dtype=np.int64)] * n_orgs
    pools_wm: list[IntArr] = [np.zeros(0, dtype=np.int64)] * n_orgs
    team_of_sub: dict[int, list[int]] = tree.teams
    for ci, b in enumerate(tree.branches):
        branch_all: list[IntArr] = []
        branch_wm: list[IntArr] = []
        for s in tree.subbranches[ci]:
            in_sub = np.isin(staff.org, np.asarray(team_of_sub[s], dtype=np.int64))
            pools_all[s] = np.flatnonzero(in_sub & is_rel).astype(np.int64)
            pools_wm[s] = np.flatnonzero(in_sub & is_wm).astype(np.int64)
            branch_all.append(pools_all[s])
            branch_wm.append(pools_wm[s])
        pools_all[b] = np.concatenate(branch_all)
        pools_wm[b] = np.concatenate(branch_wm)

    def flat(pools: list[IntArr]) -> tuple[IntArr, IntArr, IntArr]:
        counts = np.array([len(p) for p in pools], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return np.concatenate(pools).astype(np.int64), offsets, counts

    all_flat, all_off, all_cnt = flat(pools_all)
    wm_flat, wm_off, wm_cnt = flat(pools_wm)
    n = cust.n
    z = (np.log(np.maximum(cust.aum_fen, 100)) - math.log(_AUM_MEDIAN_FEN)) / _AUM_LOG_SIGMA
    p_rm = 1.0 / (1.0 + np.exp(-(1.15 + 1.3 * z)))
    has_rm = (rng.random(n) < p_rm) | (cust.aum_fen >= PRIVATE_BANKING_FEN)
    want_wm = (cust.aum_fen >= 50_000_000) & (rng.random(n) < 0.85) & (wm_cnt[cust.home] > 0)
    u = rng.random(n)
    pick_all = all_flat[
        np.minimum(all_off[cust.home] + (u * all_cnt[cust.home]).astype(np.int64), len(all_flat) - 1)
    ]
    if len(wm_flat):
        pick_wm = wm_flat[
            np.minimum(wm_off[cust.home] + (u * wm_cnt[cust.home]).astype(np.int64), len(wm_flat) - 1)
        ]
    else:
        pick_wm = pick_all
    rm = np.where(want_wm, pick_wm, pick_all)
    out: IntArr = np.where(has_rm & (all_cnt[cust.home] > 0), rm, -1).astype(np.int64)
    return out


# --------------------------------------------------------------------------------------------------------
# Cards and behaviour (per-customer rates for the event simulation)
# --------------------------------------------------------------------------------------------------------

CARD_PRODUCTS = ("luckin_cobrand", "standard_credit", "platinum_credit", "youth_credit")
_LUCKIN_ISSUE_CHANNELS = {"partner": 0.30, "app": 0.35, "wechat": 0.15, "branch": 0.20}
_OTHER_ISSUE_CHANNELS = {"app": 0.30, "branch": 0.50, "wechat": 0.10, "phone": 0.10}
_NEVER = 1 << 30
_YEAR = 365
_CARD_BASE = 1_000_000_000  # card ids are "CD" + str(_CARD_BASE + n)


@dataclass
class _Behaviour:
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
    return _cdf(w.tolist())


def _build_behaviour(
    seed: int,
    start: date,
    cust: _Customers,
    events_per_customer: float,
    n_days: int,
    mult: dict[str, FloatArr],
) -> _Behaviour:
    rng = _rng(seed, _S_CARDS)
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
    issue1 = np.where(has1, _pick(rng, _issue_day_cdf(start), n), _NEVER).astype(np.int64)
    issue_sec = _hour_seconds(rng, _cdf(_HOURS_ISSUE), n)

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
        luckin_ch[_pick(rng, _cdf(list(_LUCKIN_ISSUE_CHANNELS.values())), n)],
        other_ch[_pick(rng, _cdf(list(_OTHER_ISSUE_CHANNELS.values())), n)],
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
    return _Behaviour(
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


def _hour_seconds(rng: Generator, hour_cdf: FloatArr, n: int) -> IntArr:
    out: IntArr = _pick(rng, hour_cdf, n) * 3600 + rng.integers(0, 3600, n)
    return out


def _day_multipliers(start: date, n_days: int) -> dict[str, FloatArr]:
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


# --------------------------------------------------------------------------------------------------------
# Event simulation, one day at a time
# --------------------------------------------------------------------------------------------------------

# Vectorised rendering of JSON lines. A day's events of one kind are split into groups whose lines all have
# the same shape (same byte length of each text field, same number of digits in each number); a group is
# rendered as one (rows x width) byte matrix: constants are broadcast, numbers written digit by digit,
# texts copied from lookup tables. Each row then becomes one ``bytes`` line.


@dataclass(frozen=True)
class _Digits:
    """A non-negative integer column written with exactly ``width`` digits (zero-padded)."""

    values: IntArr
    width: int


@dataclass(frozen=True)
class _Lookup:
    """One fixed-width byte string per row, picked from ``table`` (a rows x width uint8 matrix)."""

    table: NDArray[np.uint8]
    index: IntArr


_Part = bytes | _Digits | _Lookup
_JSON_BOOL = ("false", "true")
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)


def _n_digits(values: IntArr) -> IntArr:
    """Number of decimal digits of each (non-negative) value; 0 has one digit."""
    out: IntArr = np.searchsorted(_POW10, values, side="right").astype(np.int64) + 1
    return out


def _render(n: int, parts: Sequence[_Part]) -> list[bytes]:
    """``n`` lines, each the concatenation of ``parts`` for that row."""
    width = 0
    for p in parts:
        width += len(p) if isinstance(p, bytes) else p.width if isinstance(p, _Digits) else p.table.shape[1]
    buf = np.empty((n, width), dtype=np.uint8)
    off = 0
    for p in parts:
        if isinstance(p, bytes):
            buf[:, off : off + len(p)] = np.frombuffer(p, dtype=np.uint8)
            off += len(p)
        elif isinstance(p, _Digits):
            digits = np.empty((n, p.width), dtype=np.uint8)
            q = p.values
            for j in range(p.width - 1, -1, -1):
                q, r = np.divmod(q, 10)
                digits[:, j] = r
            digits += 48
            buf[:, off : off + p.width] = digits
            off += p.width
        else:
            w = p.table.shape[1]
            buf[:, off : off + w] = p.table[p.index]
            off += w
    lines: list[bytes] = buf.view(f"S{width}").ravel().tolist()
    return lines


class _Choices:
    """Byte strings of different lengths, as one lookup table per length (rows of a group must share one
    length, so a caller groups by :attr:`length_class`)."""

    def __init__(self, texts: Sequence[str]) -> None:
        raw = [t.encode() for t in texts]
        lengths = sorted({len(r) for r in raw})
        self.length_class = np.array([lengths.index(len(r)) for r in raw], dtype=np.int64)
        self.position = np.array(
            [sum(1 for q in raw[:i] if len(q) == len(r)) for i, r in enumerate(raw)], dtype=np.int64
        )
        self.tables = [
            np.frombuffer(b"".join(r for r in raw if len(r) == n), dtype=np.uint8).reshape(-1, n)
            for n in lengths
        ]

    def part(self, choice: IntArr) -> _Lookup:
        """The chosen strings; all of them must have the same length."""
        return _Lookup(self.tables[int(self.length_class[choice[0]])], self.position[choice])


def _groups(keys: IntArr) -> list[IntArr]:
    """Row indices grouped by equal key (groups in key order, rows in their original order)."""
    if len(keys) == 0:
        return []
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    return list(np.split(order, bounds))


def _text_table(texts: Sequence[str]) -> NDArray[np.uint8]:
    """Equal-length ASCII strings as a (len(texts) x width) uint8 matrix."""
    raw = [t.encode() for t in texts]
    if len({len(r) for r in raw}) != 1:
        raise ValueError("texts of different lengths")
    return np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(len(raw), len(raw[0]))


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


class _EventDays:
    """Holds the O(customers) state and produces each day's events as time-sorted JSON lines (bytes)."""

    def __init__(
        self, seed: int, start: date, ages: IntArr, beh: _Behaviour, mult: dict[str, FloatArr]
    ) -> None:
        n = len(ages)
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
        self.cdf_login_h = _cdf(_HOURS_LOGIN)
        self.cdf_txn_h = _cdf(_HOURS_TXN)
        self.cdf_coffee_h = _cdf(_HOURS_COFFEE)
        self.cdf_redeem_h = _cdf(_HOURS_REDEEM)
        self.hms = _text_table([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)])
        cats = [c for _, c in _PRODUCTS]
        zipf = [1.0 / (1 + cats[:i].count(cat)) for i, cat in enumerate(cats)]
        zipf_sum = {cat: sum(z for z, c in zip(zipf, cats, strict=True) if c == cat) for cat in set(cats)}
        self.product_cdf = _cdf_table(
            [
                [
                    _PRODUCT_CATEGORY_MIX[cat][col] * z / zipf_sum[cat]
                    for z, cat in zip(zipf, cats, strict=True)
                ]
                for col in range(3)
            ]
        )
        self.view_log_median = np.log(np.array([_VIEW_MEDIAN_S[c] for c in cats]))
        self.merchant_cdf = _cdf_table([_MERCHANT_MIX_YOUNG, _MERCHANT_MIX_MIDDLE, _MERCHANT_MIX_OLD])
        self.merchant_log_median = np.log(np.array([m[2] * 100 for m in _MERCHANTS]))
        self.merchant_sigma = np.array([m[3] for m in _MERCHANTS])
        self.merchant_round = np.array([m[4] for m in _MERCHANTS])
        self.product_text = _Choices(
            [f'","channel":"app","product_id":"{p}","duration_s":' for p, _ in _PRODUCTS]
        )
        self.merchant_text = _Choices([f'","merchant":"{m[0]}","mcc":"{m[1]}"}}\n' for m in _MERCHANTS])
        self.coffee_cdf = _cdf(_COFFEE_PRICE_WEIGHTS)
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

    def _head(self, kind: str, day: date, eids: IntArr, cust: IntArr, secs: IntArr) -> list[_Part]:
        """``{"event_id":"EV…","type":…,"customer_id":"C…","ts":"…+08:00`` (the ts string is left open)."""
        eid_width = max(10, int(_n_digits(eids).max()) if len(eids) else 10)
        return [
            b'{"event_id":"EV',
            _Digits(eids, eid_width),
            f'","type":"{kind}","customer_id":"C'.encode(),
            _Digits(cust + 1, self.cid_width),
            f'","ts":"{day.isoformat()}T'.encode(),
            _Lookup(self.hms, secs),
            b"+08:00",
        ]

    def day(self, d: int, first_event: int) -> tuple[Sequence[bytes], dict[str, int]]:
        """The events of day ``d`` (0-based from ``start``), numbered from ``first_event`` in time order."""
        rng = _rng(self.seed, _S_DAY, d)
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
            groups = _groups(_n_digits(points))
            for g in groups:
                width = int(_n_digits(points[g[:1]])[0])
                parts = [
                    *head("points.earned", day, eids[g], pts_c[g], pts_s[g]),
                    b'","points":',
                    _Digits(points[g], width),
                    b"}\n",
                ]
                lines.extend(_render(len(g), parts))
            return lines, _concat(groups)

        batches.append(_Batch("points.earned", pts_s, render_points))

        # 2. Cards issued today.
        lo, hi = np.searchsorted(self.issue_days_sorted, [d, d + 1])
        iss_c = self.by_issue[lo:hi]
        iss_s = self.issue_sec[iss_c].astype(np.int64)
        iss_code = self.issued_code[iss_c].astype(np.int64)
        iss_card = self.card1[iss_c].astype(np.int64) + _CARD_BASE

        def render_issued(eids: IntArr) -> tuple[list[bytes], IntArr]:
            lines: list[bytes] = []
            groups = _groups(iss_code)
            for g in groups:
                code = int(iss_code[g[0]])
                new, primary = code % 2, code // 2 % 2
                rest = code // 4
                tier, product, channel = rest % 3, rest // 3 % 4, rest // 12
                parts = [
                    *head("card.issued", day, eids[g], iss_c[g], iss_s[g]),
                    f'","channel":"{EVENT_CHANNELS[channel]}","card_id":"CD'.encode(),
                    _Digits(iss_card[g], 10),
                    f'","product":"{CARD_PRODUCTS[product]}","tier":"{CARD_TIERS[tier]}",'
                    f'"primary":{_JSON_BOOL[primary]},"new_customer":{_JSON_BOOL[new]}}}\n'.encode(),
                ]
                lines.extend(_render(len(g), parts))
            return lines, _concat(groups)

        batches.append(_Batch("card.issued", iss_s, render_issued))

        # 3. App logins, and product views following some of them.
        lg_c = self._draw(rng, self.cum_login, self.mult["login"][d])
        lg_s = _hour_seconds(rng, self.cdf_login_h, len(lg_c))

        def render_login(eids: IntArr) -> tuple[list[bytes], IntArr]:
            parts = [*head("app.login", day, eids, lg_c, lg_s), b'","channel":"app"}\n']
            return _render(len(lg_c), parts), np.arange(len(lg_c), dtype=np.int64)

        batches.append(_Batch("app.login", lg_s, render_login))

        n_views = rng.poisson(self.view_mean[self.group[lg_c]])
        vw_c = np.repeat(lg_c, n_views)
        vw_s = np.minimum(np.repeat(lg_s, n_views) + rng.integers(8, 900, len(vw_c)), 86_399)
        vw_p = _pick_rows(rng, self.product_cdf, self.life[vw_c])
        vw_dur = np.clip(
            np.rint(np.exp(self.view_log_median[vw_p] + _VIEW_LOG_SIGMA * rng.standard_normal(len(vw_c)))),
            1,
            _VIEW_MAX_S,
        ).astype(np.int64)

        def render_view(eids: IntArr) -> tuple[list[bytes], IntArr]:
            lines: list[bytes] = []
            dur_digits = _n_digits(vw_dur)
            groups = _groups(self.product_text.length_class[vw_p] * 8 + dur_digits)
            for g in groups:
                parts = [
                    *head("app.product_view", day, eids[g], vw_c[g], vw_s[g]),
                    self.product_text.part(vw_p[g]),
                    _Digits(vw_dur[g], int(dur_digits[g[0]])),
                    b"}\n",
                ]
                lines.extend(_render(len(g), parts))
            return lines, _concat(groups)

        batches.append(_Batch("app.product_view", vw_s, render_view))

        # 4. Coffee at Luckin with the co-branded card, from the day after it was issued.
        cf_c = self._draw(rng, self.cum_coffee, self.mult["coffee"][d])
        cf_c = cf_c[self.issue1[cf_c] < d]
        cf_s = _hour_seconds(rng, self.cdf_coffee_h, len(cf_c))
        cf_fen = self.coffee_prices[_pick(rng, self.coffee_cdf, len(cf_c))]
        double = rng.random(len(cf_c)) < _COFFEE_DOUBLE_SHARE
        cf_fen = cf_fen + np.where(double, self.coffee_prices[_pick(rng, self.coffee_cdf, len(cf_c))], 0)

        # 5. Everyday spending on a card the customer holds that day.
        tx_c = self._draw(rng, self.cum_txn, self.mult["txn"][d])
        tx_c = tx_c[(self.card0[tx_c] >= 0) | (self.issue1[tx_c] < d)]
        active1 = self.issue1[tx_c] < d
        use1 = active1 & ((self.card0[tx_c] < 0) | (rng.random(len(tx_c)) < 0.5))
        tx_card = np.where(use1, self.card1[tx_c], self.card0[tx_c])
        tx_s = _hour_seconds(rng, self.cdf_txn_h, len(tx_c))
        tx_m = _pick_rows(rng, self.merchant_cdf, self.life[tx_c])
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
            yuan_digits = _n_digits(yuan)
            groups = _groups(self.merchant_text.length_class[sp_m] * 32 + yuan_digits)
            for g in groups:
                parts = [
                    *head("card.transaction", day, eids[g], sp_c[g], sp_s[g]),
                    b'","card_id":"CD',
                    _Digits(sp_card[g], 10),
                    b'","amount":"',
                    _Digits(yuan[g], int(yuan_digits[g[0]])),
                    b".",
                    _Digits(sp_fen[g] % 100, 2),
                    self.merchant_text.part(sp_m[g]),
                ]
                lines.extend(_render(len(g), parts))
            return lines, _concat(groups)

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
        rd_s = _hour_seconds(rng, self.cdf_redeem_h, len(rd_c))
        rd_app = (rng.random(len(rd_c)) < 0.8).astype(np.int64)

        def render_redeem(eids: IntArr) -> tuple[list[bytes], IntArr]:
            lines: list[bytes] = []
            groups = _groups(rd_app)
            for g in groups:
                channel = "app" if rd_app[g[0]] else "wechat"
                parts = [
                    *head("points.redeem", day, eids[g], rd_c[g], rd_s[g]),
                    f'","channel":"{channel}","reward":"luckin_voucher","quantity":1}}\n'.encode(),
                ]
                lines.extend(_render(len(g), parts))
            return lines, _concat(groups)

        batches.append(_Batch("points.redeem", rd_s, render_redeem))

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


def _concat(groups: list[IntArr]) -> IntArr:
    return np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------------

_CHUNK = 100_000


def _open(path: Path) -> TextIO:
    return path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20)


def _write_orgs(path: Path, tree: _OrgTree) -> None:
    with _open(path) as fh:
        fh.write("org_id,parent_id,name,level\n")
        fh.writelines(f"{o.org_id},{o.parent_id},{o.name},{o.level}\n" for o in tree.orgs)


def _staff_ids(n: int) -> list[str]:
    width = max(5, len(str(n)))
    return [f"E{i:0{width}d}" for i in range(1, n + 1)]


def _write_staff(path: Path, tree: _OrgTree, staff: _Staff) -> None:
    ids = _staff_ids(staff.n)
    with _open(path) as fh:
        fh.write("staff_id,org_id,name,role,phone\n")
        fh.writelines(
            f"{sid},{tree.orgs[o].org_id},{name},{ROLES[r]},{ph}\n"
            for sid, o, name, r, ph in zip(
                ids, staff.org.tolist(), staff.names, staff.role.tolist(), staff.phone.tolist(), strict=True
            )
        )


def _customer_ids(n: int) -> list[str]:
    """``C000001``...: zero-padded to six digits, wider when there are more customers."""
    width = max(6, len(str(n)))
    numbers = (np.arange(1, n + 1, dtype=np.int64) + 10**width).astype(f"U{width + 1}").tolist()
    return ["C" + s[1:] for s in numbers]


def _write_customers(
    path: Path,
    seed: int,
    tree: _OrgTree,
    cust: _Customers,
    staff: _Staff,
    cids: list[str],
    tick: Callable[[int], None],
) -> None:
    rng = _rng(seed, _S_CUSTOMERS, 1)
    org_ids = [o.org_id for o in tree.orgs]
    staff_ids = ["", *_staff_ids(staff.n)]  # index 0 is "no RM"
    genders = ("F", "M")
    cents = [f"{c:02d}" for c in range(100)]
    # occupation, risk_tolerance, channel_pref and marketing_consent as one lookup
    tails = [
        f"{occ},{risk},{ch},{consent}"
        for occ in OCCUPATIONS
        for risk in RISK_LEVELS
        for ch in CHANNEL_PREFS
        for consent in ("false", "true")
    ]
    tail_code = ((cust.occupation * len(RISK_LEVELS) + cust.risk) * len(CHANNEL_PREFS) + cust.channel) * 2 + (
        cust.consent
    )
    check_chars = np.array(list(_ID_CHECK_CHARS))
    birth_years = cust.birth.astype("datetime64[Y]").astype(np.int64) + 1970
    with _open(path) as fh:
        fh.write(
            "customer_id,name,gender,birth_date,phone,id_number,branch_id,rm_id,aum,occupation,"
            "risk_tolerance,channel_pref,marketing_consent,registered_at\n"
        )
        for lo in range(0, cust.n, _CHUNK):
            sl = slice(lo, min(lo + _CHUNK, cust.n))
            names = _names(rng, cust.male[sl], birth_years[sl])
            id_numbers = np.char.add(cust.id17[sl].astype("U17"), check_chars[cust.id_check[sl]])
            fh.write(
                "".join(
                    [
                        f"{cid},{name},{genders[m]},{b},{ph},{idn},{org_ids[h]},{staff_ids[rm + 1]},"
                        f"{y}.{cents[c]},{tails[t]},{rg}\n"
                        for cid, name, m, b, ph, idn, h, rm, y, c, t, rg in zip(
                            cids[sl],
                            names,
                            cust.male[sl].tolist(),
                            np.datetime_as_string(cust.birth[sl]).tolist(),
                            cust.phone[sl].astype("U11").tolist(),
                            id_numbers.tolist(),
                            cust.home[sl].tolist(),
                            cust.rm[sl].tolist(),
                            (cust.aum_fen[sl] // 100).astype("U").tolist(),
                            (cust.aum_fen[sl] % 100).tolist(),
                            tail_code[sl].tolist(),
                            np.datetime_as_string(cust.registered[sl]).tolist(),
                            strict=True,
                        )
                    ]
                )
            )
            tick(sl.stop - sl.start)


# --------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------


def generate(
    out_dir: Path,
    *,
    customers: int = 20_000,
    seed: int = 2026,
    start: date = date(2026, 1, 1),
    days: int = 365,
    events_per_customer: float = 50.0,
    progress: bool = True,
) -> DemoSummary:
    """Write ``orgs.csv``, ``staff.csv``, ``customers.csv`` and ``events.jsonl`` into ``out_dir``.

    ``events_per_customer`` is the yearly volume: a run of ``days`` days writes about
    ``customers * events_per_customer * days / 365`` events (``0`` writes an empty ``events.jsonl``).
    The same arguments give byte-identical files. Events start on ``start`` (bank-local, +08:00) and are
    written in time order; customers registered before ``start``.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if days < 1:
        raise ValueError("days must be at least 1")
    if events_per_customer < 0 or not math.isfinite(events_per_customer):
        raise ValueError("events_per_customer must be a finite number >= 0")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    start = date(start.year, start.month, start.day)  # a datetime is taken for its date
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("orgs.csv", "staff.csv", "customers.csv", "events.jsonl")}

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    with bar:
        tree = _build_orgs(seed)
        cust = _build_customers(seed, customers, start, tree)
        staff = _build_staff(seed, start, tree, cust)
        cust.rm = _assign_rms(seed, tree, cust, staff)
        _write_orgs(paths["orgs.csv"], tree)
        _write_staff(paths["staff.csv"], tree, staff)
        levels = [o.level for o in tree.orgs]
        roles = [ROLES[r] for r in staff.role.tolist()]
        n_orgs, n_staff = len(tree.orgs), staff.n
        cids = _customer_ids(customers)
        t_cust = bar.add_task("customers", total=customers, note="")
        _write_customers(
            paths["customers.csv"], seed, tree, cust, staff, cids, lambda k: bar.advance(t_cust, k)
        )

        mult = _day_multipliers(start, days)
        beh = _build_behaviour(seed, start, cust, events_per_customer, days, mult)
        sim = _EventDays(seed, start, cust.age, beh, mult)
        del cust, staff, beh, cids  # from here on only the event state is kept
        counts = dict.fromkeys(EVENT_TYPES, 0)
        written = 0
        t_days = bar.add_task("events", total=days, note="0 events")
        with paths["events.jsonl"].open("wb", buffering=1 << 20) as fh:
            for d in range(days if events_per_customer > 0 else 0):
                lines, day_counts = sim.day(d, written + 1)
                fh.write(b"".join(lines))
                written += len(lines)
                for kind, k in day_counts.items():
                    counts[kind] += k
                bar.update(t_days, advance=1, note=f"{written:,} events")
            bar.update(t_days, completed=days)

    return DemoSummary(
        out_dir=out_dir,
        orgs_csv=paths["orgs.csv"],
        staff_csv=paths["staff.csv"],
        customers_csv=paths["customers.csv"],
        events_jsonl=paths["events.jsonl"],
        orgs=n_orgs,
        staff=n_staff,
        customers=customers,
        events=written,
        events_by_type=counts,
        orgs_by_level={lv: levels.count(lv) for lv in ("hq", "branch", "subbranch", "team")},
        staff_by_role={r: roles.count(r) for r in ROLES},
    )
