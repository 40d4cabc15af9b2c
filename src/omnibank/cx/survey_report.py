"""Survey results (X2): NPS, CSAT and CES of one survey per group and period, with 95% intervals.

Over the ``survey.response`` events of the survey (grouped as the index groups: ``branch``, ``channel``,
``segment:NAME`` or the whole bank, see :mod:`omnibank.cx.index`), per group:

* **NPS** = % promoters (9–10) − % detractors (0–6), in points −100…100, with the counts of promoters,
  passives (7–8) and detractors; the interval is the normal approximation on the difference of the two
  shares, whose variance is ``(p + d − (p − d)²) / n``;
* **CSAT** = % of answers 4–5, with the Wilson score interval (good at small n and near 0 or 100%);
* **CES** = mean effort 1–7 (lower is easier), ± t(0.975, n−1) · s / √n (Student's t up to 30 answers,
  the normal beyond).

Values are rounded half up to one decimal for output (no money here: floats are fine inside). An answer
out of range (an NPS of 11) counts as a response but not for that score; a group with no answer for a score
has none (``None``), and an interval needs two answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.cx.reading import SurveyStats, grouping, survey_stats, window
from omnibank.errors import InputRefused, NotFound
from omnibank.segments.engine import duck_engine
from omnibank.segments.expr import TAG_PATTERN

Z95 = 1.959963984540054
#: t(0.975, df) for df = 1 … 30
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True)
class SurveyRow:
    group: str
    responses: int
    nps_answers: int
    promoters: int
    passives: int
    detractors: int
    nps: Decimal | None
    nps_low: Decimal | None
    nps_high: Decimal | None
    csat_answers: int
    satisfied: int
    csat: Decimal | None  # % of answers 4–5
    csat_low: Decimal | None
    csat_high: Decimal | None
    ces_answers: int
    ces: Decimal | None  # mean 1–7
    ces_low: Decimal | None
    ces_high: Decimal | None


def r1(value: float | None) -> Decimal | None:
    """Half up to one decimal (through the shortest repr, so 30.05 stays 30.05 before rounding)."""
    if value is None:
        return None
    return Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def nps_interval(promoters: int, detractors: int, n: int) -> tuple[float, float, float] | None:
    """NPS and its 95% interval in points (normal approximation)."""
    if n == 0:
        return None
    p, d = promoters / n, detractors / n
    diff = p - d
    if n < 2:
        return diff * 100, math.nan, math.nan
    half = Z95 * math.sqrt(max(p + d - diff * diff, 0.0) / n)
    return diff * 100, max(-1.0, diff - half) * 100, min(1.0, diff + half) * 100


def wilson(successes: int, n: int) -> tuple[float, float, float] | None:
    """The share in % and its Wilson 95% interval."""
    if n == 0:
        return None
    p = successes / n
    z2 = Z95 * Z95
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return p * 100, max(0.0, centre - half) * 100, min(1.0, centre + half) * 100


def mean_interval(mean: float | None, sd: float | None, n: int) -> tuple[float, float, float] | None:
    if mean is None or n == 0:
        return None
    if n < 2 or sd is None:
        return mean, math.nan, math.nan
    t = _T975[n - 2] if n - 1 <= len(_T975) else Z95
    half = t * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def _three(
    values: tuple[float, float, float] | None,
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    if values is None:
        return None, None, None
    return tuple(None if math.isnan(v) else r1(v) for v in values)  # type: ignore[return-value]


def row_of(group: str, s: SurveyStats) -> SurveyRow:
    nps = _three(nps_interval(s.promoters, s.detractors, s.nps_n))
    csat = _three(wilson(s.satisfied, s.csat_n))
    ces = _three(mean_interval(s.ces_mean, s.ces_sd, s.ces_n))
    return SurveyRow(
        group, s.responses, s.nps_n, s.promoters, s.nps_n - s.promoters - s.detractors, s.detractors,
        *nps, s.csat_n, s.satisfied, *csat, s.ces_n, *ces,
    )  # fmt: skip


def survey_report(
    session: Session, settings: Settings, survey_id: str, *, by: str | None, period: str | None
) -> list[SurveyRow]:
    """One row per group with answers to the survey in the period (all the log without one), by group."""
    if not TAG_PATTERN.match(survey_id):
        raise InputRefused(f"survey: {survey_id!r} is not a survey id (lower-case letters, digits and _)")
    with duck_engine(session, settings, private=True) as duck:
        duck.query("SELECT 1")  # binds the events view
        w = window(duck.con, period, None, None, what="survey report")
        g = grouping(session, duck, by, w.last_day)
        stats = survey_stats(duck.con, g, [survey_id], w)
    if not stats:
        raise NotFound(f"no answers to survey {survey_id} in {w.label}")
    return [row_of(group, s) for (group, _), s in sorted(stats.items())]


__all__ = ["SurveyRow", "mean_interval", "nps_interval", "survey_report", "wilson"]
