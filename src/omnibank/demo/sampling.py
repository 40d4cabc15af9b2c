"""The demo's random draws: one seeded stream per job, and vectorised draws from discrete distributions.

Apart because every part of the demo bank draws through these, and the byte-identical output for a seed rests
on them: each stream is ``numpy.random.Generator(PCG64(...))`` seeded from ``SeedSequence(seed,
spawn_key=...)`` with a fixed key (:data:`S_ORGS` ... :data:`S_DAY`), so one part's draws never shift
another's. Nothing here reads the clock or ``hash()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence
from numpy.typing import NDArray

IntArr = NDArray[np.int64]
FloatArr = NDArray[np.float64]
BoolArr = NDArray[np.bool_]
AnyArr = NDArray[Any]

# Stream keys of the SeedSequence.
S_ORGS, S_CUSTOMERS, S_STAFF, S_CARDS, S_DAY = 1, 2, 3, 4, 100


def stream(seed: int, *key: int) -> Generator:
    return Generator(PCG64(SeedSequence(seed, spawn_key=key)))


def cdf(weights: Sequence[float]) -> FloatArr:
    w = np.asarray(weights, dtype=np.float64)
    c = np.cumsum(w)
    out: FloatArr = c / c[-1]
    out[-1] = 1.0
    return out


def cdf_table(rows: Sequence[Sequence[float]]) -> FloatArr:
    return np.stack([cdf(r) for r in rows])


def pick(rng: Generator, cdf: FloatArr, n: int) -> IntArr:
    """Draw ``n`` category indices from one cumulative distribution."""
    idx = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(idx, len(cdf) - 1).astype(np.int64)


def pick_rows(rng: Generator, table: FloatArr, rows: AnyArr) -> IntArr:
    """Draw one category per element, each from the cumulative distribution ``table[rows[i]]``."""
    u = rng.random(len(rows))
    idx: IntArr = (u[:, None] >= table[rows]).sum(axis=1, dtype=np.int64)
    out: IntArr = np.minimum(idx, table.shape[1] - 1)
    return out


def repeats(values: IntArr) -> BoolArr:
    """True for every element equal to an earlier element."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    out = np.zeros(len(values), dtype=np.bool_)
    out[order[1:][ordered[1:] == ordered[:-1]]] = True
    return out


def hour_seconds(rng: Generator, hour_cdf: FloatArr, n: int) -> IntArr:
    out: IntArr = pick(rng, hour_cdf, n) * 3600 + rng.integers(0, 3600, n)
    return out
