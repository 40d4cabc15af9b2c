"""Feature drift: reference bins stored with a model at training time, and the population stability index
(PSI) of today's features against them.

At training a model records, per feature, the deciles of its training values (``np.nanquantile`` at
0.1 … 0.9, equal edges merged, so a 0/1 flag keeps two bins) and the share of the training rows in each bin
``(−∞, e₁], (e₁, e₂], …, (eₖ, +∞)`` plus a NaN bin (no birth date, no event for ``days_since``). Later the
same features as of any day are binned the same way and compared:

    PSI = Σ (actual − expected) · ln(actual / expected)   over the bins, shares floored at 0.0001

The usual reading: below 0.1 stable, 0.1-0.2 a moderate shift, over :data:`PSI_THRESHOLD` (0.2) a shift
large enough that the model's ranking should not be trusted before it is trained again; such features are
flagged. Edges are deciles of a population (no customer id); on a bank of a few dozen customers a decile
is close to one customer's value, which is why the card keeps only edges and shares, never rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

PSI_THRESHOLD = 0.2
QUANTILES = tuple(q / 10 for q in range(1, 10))
FLOOR = 1e-4  # an empty bin's share: ln(0) has no value
DIGITS = 6

Values = npt.NDArray[np.float64]


def _shares(values: Values, edges: Sequence[float]) -> tuple[list[float], float]:
    """Share of the rows in each bin of ``edges`` (right-closed) and the share that is NaN."""
    n = len(values)
    if n == 0:
        return [0.0] * (len(edges) + 1), 0.0
    nan = np.isnan(values)
    finite = values[~nan]
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [float(c) / n for c in counts], float(nan.sum()) / n


def bins(values: Values) -> dict[str, Any]:
    """One feature's reference: decile edges of its finite values, each bin's share, the NaN share."""
    finite = values[~np.isnan(values)]
    edges: list[float] = []
    if finite.size:
        edges = sorted({float(v) for v in np.quantile(finite, QUANTILES)})
    shares, nan = _shares(values, edges)
    return {"edges": edges, "shares": [round(s, DIGITS) for s in shares], "nan": round(nan, DIGITS)}


def reference(columns: Sequence[str], matrix: Values, *, features_as_of: str | None = None) -> dict[str, Any]:
    """Reference bins of every column of a training matrix, for the model card."""
    return {
        "method": "deciles of the training values, right-closed, plus a NaN bin",
        "features_as_of": features_as_of,
        "rows": int(matrix.shape[0]),
        "features": {c: bins(matrix[:, j]) for j, c in enumerate(columns)},
    }


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, FLOOR), max(a, FLOOR)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    flagged: bool
    expected_nan: float
    actual_nan: float

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "psi": round(self.psi, DIGITS), "flagged": self.flagged,
                "expected_nan": self.expected_nan, "actual_nan": round(self.actual_nan, DIGITS)}  # fmt: skip


def compare(
    ref: Mapping[str, Any], columns: Sequence[str], matrix: Values, *, threshold: float = PSI_THRESHOLD
) -> list[FeatureDrift]:
    """PSI of each column of ``matrix`` against the reference bins of the same feature (a column without
    reference bins is left out)."""
    out = []
    for j, column in enumerate(columns):
        r = ref.get("features", {}).get(column)
        if r is None:
            continue
        shares, nan = _shares(matrix[:, j], r["edges"])
        value = psi([*r["shares"], r["nan"]], [*shares, nan])
        out.append(FeatureDrift(column, value, value > threshold, float(r["nan"]), nan))
    return out


__all__ = ["PSI_THRESHOLD", "FeatureDrift", "bins", "compare", "psi", "reference"]
