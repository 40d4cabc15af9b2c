"""Chinese personal names and mobile numbers, for the demo's customers and staff alike.

Apart because both the customers and the staff draw them (names are drawn again, chunk by chunk, when the
customers' file is written), and the vocabularies are long reference tables that say nothing about the
bank itself.
"""

from __future__ import annotations

import numpy as np
from numpy.random import Generator

from omnibank.demo.sampling import BoolArr, IntArr, cdf, pick, repeats

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

# fmt: off
_PHONE_PREFIXES = (
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159,
    170, 173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 193, 195, 198, 199,
)
# fmt: on


def unique_phones(rng: Generator, n: int, taken: IntArr | None = None) -> IntArr:
    """``n`` distinct 11-digit mobile numbers, none of them in ``taken``."""
    prefixes = np.array(_PHONE_PREFIXES, dtype=np.int64)
    taken_sorted = np.sort(taken) if taken is not None else np.zeros(0, dtype=np.int64)

    def draw(k: int) -> IntArr:
        head = prefixes[rng.integers(0, len(prefixes), k)]
        out: IntArr = head * 100_000_000 + rng.integers(0, 100_000_000, k)
        return out

    phones = draw(n)
    while True:
        bad = repeats(phones)
        if len(taken_sorted):
            pos = np.minimum(np.searchsorted(taken_sorted, phones), len(taken_sorted) - 1)
            bad |= taken_sorted[pos] == phones
        k = int(bad.sum())
        if k == 0:
            return phones
        phones[bad] = draw(k)


def chinese_names(rng: Generator, male: BoolArr, birth_years: IntArr) -> list[str]:
    """Chinese names: surname by frequency, one or two given-name characters by gender and generation."""
    n = len(male)
    surnames = [s for s, _ in _SURNAMES]
    sur = pick(rng, cdf([w for _, w in _SURNAMES]), n)
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
