"""Uplift models: who converts *because* they were treated, learnt from a journey's control group.

``omnibank model train NAME --features F.yaml --treatment JOURNEY --as-of D [--label EXPR] [--window 30d]``.

**Rows** — the journey's entries (``journey_entries``): *treated* are entries made not as control, *control*
the entries held out by the journey's ``control_percent`` (the entry's ``control`` flag: a control entry's
status turns from ``control`` to ``done`` when its window ends, the flag stays). One row per customer, their
first entry whose bank-local entry day is on or before ``D``; the outcome window of every row must have
ended before today (``D + window < today``). Campaigns keep no control group, so only journeys serve.

**Features, per entry day, no leakage** — each row's features are built as of the day *before* its entry day
(:func:`omnibank.marketing.features.build`, so every event and tag is strictly before the entry day, let
alone the entry): one feature build per distinct entry day. A journey entering customers daily for a year
costs 365 builds; narrow ``--as-of`` or train on a shorter journey history when that is too slow.

**Outcome** — with ``--label EXPR``: the condition over the ``window`` days that start with the entry day,
``(entry day − 1, entry day − 1 + window]`` (:func:`omnibank.marketing.features.label` as of the day before
the entry: the entry day is in the window because a journey acts on it). Without it, the journey's own
conversion: the entry's ``converted_at`` within ``window`` of ``entered_at`` (the journey counts
conversions within its ``conversion.within`` only, so a longer window changes nothing).

**Split** — out of time when the entry days allow it: the held-out part is the entries from the day whose
cut leaves closest to 30 % of the rows after it (between 20 % and 50 %), with at least
:data:`MIN_ARM_HELD_OUT` treated and as many control rows on each side. Otherwise (entries on one day, or
too few) a random stratified 30 % held out (seeded). The card says which (``split.kind``).

**Model** — two models (the "T-learner"): one ``HistGradientBoostingClassifier`` on the treated rows, one on
the control rows (shallow, shrunk: a control group is small); the uplift score is
``P(outcome | x, treated) − P(outcome | x, control)``, in [−1, 1].

**Metrics, held out** — rows ranked by predicted uplift; for the top fraction ``x``,
``Q(x) = (Yₜ(x) − Y꜀(x) · Nₜ(x) / N꜀(x)) / Nₜ``: the incremental conversions among the targeted, per
treated customer held out (``Q(1)`` is the overall uplift, the treated rate minus the control rate).
AUUC is the area under ``Q`` over [0, 1]; random targeting's is half the overall uplift. The Qini
coefficient is the area between ``Q`` and random targeting's straight line: above 0 when the ranking finds
the responders, near 0 when it does not (or when there is nothing to find). ``uplift_k`` is the treated
rate minus the control rate within the top k % (k = 10, 20, 30), against random targeting's ``uplift``
overall.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.errors import InputRefused, NotFound
from omnibank.journeys.models import Journey, JourneyEntry
from omnibank.journeys.spec import parse_journey
from omnibank.kit.dates import check_date
from omnibank.marketing import drift, models
from omnibank.marketing import features as ft

TOP_UPLIFT = (10, 20, 30)
HELD_OUT = 0.3
MIN_ARM_HELD_OUT = 50  # treated and control rows each side of a time split
APPROACH = "two-model"

Matrix = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Entry:
    customer_id: str
    day: date  # bank-local entry day
    control: bool
    converted: bool  # the journey's conversion within the window


@dataclass(frozen=True)
class UpliftData:
    columns: tuple[str, ...]
    x: Matrix
    y: Ints
    treated: Ints  # 1 treated, 0 control
    days: tuple[date, ...]
    train: npt.NDArray[np.bool_]  # the training rows; the others are held out
    split: dict[str, Any]

    def part(self, train: bool) -> tuple[Matrix, Ints, Ints]:
        mask = self.train if train else ~self.train
        return self.x[mask], self.y[mask], self.treated[mask]


# ------------------------------------------------------------------------------------------------ rows


def journey_entries(
    session: Session, settings: Settings, journey_id: str, *, as_of: date, window_days: int
) -> list[Entry]:
    """Each customer's first entry into the journey on or before ``as_of`` (bank-local)."""
    if session.get(Journey, journey_id) is None:
        raise NotFound(
            f"no journey {journey_id!r} to take treatment and control from (omnibank journey list)"
        )
    e = JourneyEntry
    rows = session.execute(
        select(e.customer_id, e.entered_at, e.control, e.converted_at)
        .where(e.journey == journey_id)
        .order_by(e.entered_at, e.entry_no, e.id)
    )
    seen: set[str] = set()
    out = []
    window = timedelta(days=window_days)
    for customer_id, entered_at, control, converted_at in rows:
        day = entered_at.astimezone(settings.tz).date()
        if customer_id in seen or day > as_of:
            continue
        seen.add(customer_id)
        converted = converted_at is not None and converted_at <= entered_at + window
        out.append(Entry(customer_id, day, bool(control), converted))
    return out


def _conversion_of(session: Session, journey_id: str) -> str:
    row = session.get(Journey, journey_id)
    assert row is not None
    spec = parse_journey(row.definition, source=f"journey {journey_id}")
    if spec.conversion is None:
        raise InputRefused(
            f"journey {journey_id} has no conversion: give the outcome with --label, e.g. "
            "\"events('installment.accepted', 30) >= 1\""
        )
    within = spec.conversion.within
    days = f"{within.days}d" if within % timedelta(days=1) == timedelta(0) else str(within)
    return f"journey {journey_id} conversion ({spec.conversion.event} within {days})"


def split_rows(
    days: Sequence[date], treated: Ints, *, seed: int
) -> tuple[npt.NDArray[np.bool_], dict[str, Any]]:
    """The training mask and what the split was: out of time when the entry days allow, else random."""
    n = len(days)
    ordinal = np.array([d.toordinal() for d in days], dtype=np.int64)
    best: tuple[float, int] | None = None
    for cut in sorted(set(ordinal.tolist()))[1:]:
        held = ordinal >= cut
        share = float(held.mean())
        if not 0.2 <= share <= 0.5:
            continue
        arms = [int((part & (treated == t)).sum()) for part in (held, ~held) for t in (0, 1)]
        if min(arms) < MIN_ARM_HELD_OUT:
            continue
        if best is None or abs(share - HELD_OUT) < best[0]:
            best = (abs(share - HELD_OUT), cut)
    if best is not None:
        cut = best[1]
        first = date.fromordinal(cut)
        return ordinal < cut, {"kind": "time", "held_out_from": first.isoformat(),
                               "held_out_share": round(float((ordinal >= cut).mean()), 6)}  # fmt: skip
    rng = np.random.default_rng(seed)
    train = np.ones(n, dtype=bool)
    for t in (0, 1):
        idx = np.flatnonzero(treated == t)
        held = rng.permutation(idx)[: round(len(idx) * HELD_OUT)]
        train[held] = False
    why = "entries on one day" if len(set(days)) < 2 else f"too few entries for a time split with " \
          f"{MIN_ARM_HELD_OUT} treated and control on each side"  # fmt: skip
    return train, {"kind": "random", "held_out_share": round(float((~train).mean()), 6), "seed": seed,
                   "why": why}  # fmt: skip


def dataset(
    session: Session,
    settings: Settings,
    spec: ft.FeatureSet,
    journey_id: str,
    *,
    as_of: date,
    window_days: int,
    label_expr: str | None,
    seed: int = 0,
) -> UpliftData:
    """Features as of the day before each entry day, outcomes over the window from it, and the split."""
    entries = journey_entries(session, settings, journey_id, as_of=as_of, window_days=window_days)
    if label_expr is None:
        _conversion_of(session, journey_id)
    if not entries:
        raise InputRefused(f"journey {journey_id} has no entries on or before {as_of.isoformat()}")
    by_day: dict[date, list[Entry]] = {}
    for entry in entries:
        by_day.setdefault(entry.day, []).append(entry)
    xs: list[Matrix] = []
    ys: list[int] = []
    ts: list[int] = []
    days: list[date] = []
    for day in sorted(by_day):
        cut = check_date("entry day − 1", day - timedelta(days=1))
        matrix = ft.build(session, settings, spec, as_of=cut)
        index = {c: i for i, c in enumerate(matrix.customer_ids)}
        labels = (
            ft.label(session, settings, label_expr, as_of=cut, window_days=window_days)
            if label_expr is not None
            else None
        )
        rows = [e for e in by_day[day] if e.customer_id in index]  # merged-away or erased: left out
        if not rows:
            continue
        xs.append(matrix.values[[index[e.customer_id] for e in rows]])
        ys.extend(labels.get(e.customer_id, 0) if labels is not None else int(e.converted) for e in rows)
        ts.extend(0 if e.control else 1 for e in rows)
        days.extend(day for _ in rows)
    if not xs:
        raise InputRefused(f"journey {journey_id}: none of its entrants is a customer of the store any more")
    treated = np.array(ts, dtype=np.int64)
    train, split = split_rows(days, treated, seed=seed)
    return UpliftData(spec.columns, np.vstack(xs), np.array(ys, dtype=np.int64), treated, tuple(days),
                      train, split)  # fmt: skip


# --------------------------------------------------------------------------------------------- metrics


def _trapezoid(y: Matrix, x: Matrix) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def evaluate(y: Ints, treated: Ints, uplift: Matrix) -> dict[str, Any]:
    """Qini coefficient, AUUC (and random targeting's), uplift at the top 10/20/30 % and overall; see the
    module docstring. ``None`` where a slice holds no treated or no control row."""
    order = np.argsort(-uplift, kind="stable")
    y, t = y[order].astype(np.float64), treated[order].astype(np.float64)
    n_t, n_c = float(t.sum()), float((1 - t).sum())
    cum_t, cum_c = np.cumsum(t), np.cumsum(1 - t)
    cum_yt, cum_yc = np.cumsum(y * t), np.cumsum(y * (1 - t))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(cum_c > 0, cum_yt - cum_yc * cum_t / cum_c, cum_yt) / n_t
    overall = float(cum_yt[-1] / n_t - cum_yc[-1] / n_c)
    x = np.arange(len(y) + 1, dtype=np.float64) / len(y)
    curve = np.concatenate(([0.0], q))
    auuc = _trapezoid(curve, x)
    out: dict[str, Any] = {
        "qini": round(auuc - overall / 2, 6),
        "auuc": round(auuc, 6),
        "auuc_random": round(overall / 2, 6),
        "uplift": round(overall, 6),
        "treated_rate": round(float(cum_yt[-1] / n_t), 6),
        "control_rate": round(float(cum_yc[-1] / n_c), 6),
    }
    for pct in TOP_UPLIFT:
        k = max(1, math.ceil(len(y) * pct / 100))
        kt, kc = cum_t[k - 1], cum_c[k - 1]
        out[f"uplift_{pct}"] = (
            round(float(cum_yt[k - 1] / kt - cum_yc[k - 1] / kc), 6) if kt > 0 and kc > 0 else None
        )
    return out


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, model, random targeting) as text, for a table."""
    m = metrics["model"]

    def pp(v: Any) -> str:
        return "—" if v is None else f"{float(v) * 100:+.1f} pp"

    rows = [
        ("Qini coefficient", f"{float(m['qini']):.4f}", "0.0000"),
        ("AUUC", f"{float(m['auuc']):.4f}", f"{float(m['auuc_random']):.4f}"),
    ]
    rows += [(f"uplift at top {p}%", pp(m[f"uplift_{p}"]), pp(m["uplift"])) for p in TOP_UPLIFT]
    rows.append(("conversion treated / control", f"{float(m['treated_rate']):.1%}",
                 f"{float(m['control_rate']):.1%}"))  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------- fit


def _booster(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]

    return HistGradientBoostingClassifier(
        learning_rate=0.05, max_iter=150, max_depth=3, min_samples_leaf=20, l2_regularization=1.0,
        random_state=seed,
    )  # fmt: skip


def fit(data: UpliftData, *, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two fitted models (the pickled estimator) and the held-out metrics."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    x, y, t = data.part(train=True)
    tx, ty, tt = data.part(train=False)
    for arm, name in ((1, "treated"), (0, "control")):
        models.check_classes(y[t == arm], f"training period's {name} group")
        if not (tt == arm).any():
            raise InputRefused(f"the held-out part has no {name} entry; the journey needs more entries")
    estimator: dict[str, Any] = {"approach": APPROACH}
    with threadpool_limits(1 if len(y) < models.ONE_THREAD_BELOW else None):
        for arm, name in ((1, "treated"), (0, "control")):
            estimator[name] = _booster(seed).fit(x[t == arm], y[t == arm])
    u = models.predict(estimator, tx, kind="uplift")
    return estimator, {"model": evaluate(ty, tt, u), "baseline": None}


# ------------------------------------------------------------------------------------------------ train


def train(
    session: Session,
    settings: Settings,
    *,
    name: str,
    features_path: Path,
    journey_id: str,
    label_expr: str | None,
    as_of: date,
    window_days: int,
    today: date,
    now: datetime,
    seed: int = 0,
) -> models.ModelCard:
    """Train, judge on held-out entries, save and sign an uplift model; see the module docstring."""
    models.check_name(name)
    check_date("as_of", as_of)
    end = as_of - timedelta(days=1) + timedelta(days=window_days)
    if end >= today:
        raise InputRefused(
            f"the outcome window of entries on {as_of.isoformat()} runs to {end.isoformat()}, which has not "
            f"ended (today is {today.isoformat()}): use an --as-of no later than "
            f"{(today - timedelta(days=window_days)).isoformat()} for a {window_days}-day window"
        )
    spec = models.load_model_spec(features_path)
    data = dataset(session, settings, spec.features, journey_id, as_of=as_of, window_days=window_days,
                   label_expr=label_expr, seed=seed)  # fmt: skip
    estimator, metrics = fit(data, seed=seed)
    x, y, t = data.part(train=True)
    tx, ty, tt = data.part(train=False)
    outcome = label_expr if label_expr is not None else _conversion_of(session, journey_id)
    held = [d for d, in_train in zip(data.days, data.train, strict=True) if not in_train]
    card = {
        "kind": "uplift",
        "features": spec.as_dict(),
        "label": outcome,
        "treatment": {
            "journey": journey_id,
            "approach": APPROACH,
            "features_as_of": "the day before each entry day",
            "entry_days": [min(data.days).isoformat(), max(data.days).isoformat()],
        },  # fmt: skip
        "as_of": as_of.isoformat(),
        "window_days": window_days,
        "split": data.split,
        "test_period": {"entry_days": [min(held).isoformat(), max(held).isoformat()]},
        "rows": {
            "train": len(y),
            "train_treated": int(t.sum()),
            "train_positives": int(y.sum()),
            "test": len(ty),
            "test_treated": int(tt.sum()),
            "test_positives": int(ty.sum()),
        },  # fmt: skip
        "estimator": "HistGradientBoostingClassifier × 2 (treated, control)",
        "calibration": "none (two-model difference of probabilities)",
        "seed": seed,
        "libraries": models.versions_now(),
        "metrics": metrics,
        "reference": drift.reference(
            spec.features.columns, x, features_as_of="the day before each entry day"
        ),
        "trained_at": now.astimezone(UTC).isoformat(),
    }
    return models.save(settings, name=name, now=now, card=card, estimator=estimator)


__all__ = ["Entry", "UpliftData", "dataset", "evaluate", "fit", "journey_entries", "metric_rows",
           "split_rows", "train"]  # fmt: skip
