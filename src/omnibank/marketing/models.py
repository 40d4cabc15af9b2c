"""Per-product propensity models: trained on a time split, calibrated, signed, scored as of any day.

:func:`train` fits a model of "who will do X in the next N days" from a feature set
(:mod:`omnibank.marketing.features`) and a label condition, on a time split:

* **training** — features as of ``as_of − N``, labels over ``(as_of − N, as_of]``;
* **held out, out of time** — features as of ``as_of``, labels over ``(as_of, as_of + N]``. That window
  must have ended (its last day before ``today``), or the held-out labels would be partial.

The estimator is scikit-learn's ``HistGradientBoostingClassifier`` (missing values handled natively, a fixed
``random_state``), calibrated by ``CalibratedClassifierCV`` on 3-fold out-of-fold predictions of the training
period, the booster then refit on all of it (one booster to score with): sigmoid (Platt) below 1,000 training
positives, where isotonic overfits, isotonic from there on. The held-out
period reports AUC, lift and precision at the top 5/10/20 %, the expected calibration error (10 equal bins)
and the base rate, for the model and for a naive baseline that ranks by one feature as it is (the YAML's
``baseline: FEATURE_ID``, else the first feature whose id starts with ``spend`` or ``amount``; its ECE is
not given: a raw spend is not a probability).

A model lives in ``<home>/models/<name>/<version>/`` (version: the UTC time of training,
``20260405T101500Z``): ``model.pkl`` (the pickled estimator) and ``card.json`` (feature set, label,
cut-off, window, library versions, metrics, row counts). Neither holds a customer id; the estimator does
hold bin thresholds, midpoints between feature values of the training population, as every tree model does.
The estimator is read only by the scikit-learn release (major.minor) that wrote it.

**Signed.** Unpickling runs code, and whoever can write the data home need not hold the key ring. The card
carries an HMAC-SHA256 over the SHA-256 of ``model.pkl`` and the rest of the card, under a key derived
(HKDF, its own label) from the key ring's index key; :func:`load` checks it before unpickling, and a model
whose files changed, or that was signed under another key ring, is refused and never loaded.
A retired version keeps its files and gains a ``RETIRED`` marker: nothing is deleted.

**Kinds.** A card's ``kind`` is ``propensity`` (or absent, before kinds) or ``uplift``
(:mod:`omnibank.marketing.uplift`: two models, treated and control, from a journey's control group);
:func:`score` returns the probability for the first and the uplift (treated minus control probability) for
the second, so every caller ranks by uplift just by naming an uplift model.

**Drift.** The card keeps reference bins of the training features (:mod:`omnibank.marketing.drift`);
:func:`drift` bins the features as of any day the same way and gives each feature's population stability
index, flagging those over the threshold (0.2). Cards written before bins were kept have none.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import pickle
import platform
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.errors import AppError, Conflict, InputRefused, NotFound
from omnibank.kit.dates import check_date
from omnibank.kit.loading import read_text_file
from omnibank.marketing import drift as dr
from omnibank.marketing import features as ft

LABEL = b"omnibank/models/v1"
ESTIMATOR = "model.pkl"
CARD = "card.json"
RETIRED = "RETIRED"
TOP = (5, 10, 20)
BINS = 10
CARD_FORMAT = "omnibank-model/1"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
_ISOTONIC_FROM = 1000  # training positives from which isotonic calibration is used
MIN_PER_CLASS = 3  # the calibration's 3 folds need each class in each
ONE_THREAD_BELOW = 20_000  # training rows


class ModelRefused(AppError):
    """A model whose files do not carry a valid signature: never unpickled."""

    code = "model_refused"
    status = 409


Matrix = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


# ------------------------------------------------------------------------------------------ feature set


@dataclass(frozen=True)
class ModelSpec:
    """A feature set and the feature a naive baseline ranks by (None when there is none)."""

    features: ft.FeatureSet
    baseline: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.features.id,
            "features": [{"id": f.id, "expr": f.expression.text} for f in self.features.features],
            "baseline": self.baseline,
        }


def _default_baseline(spec: ft.FeatureSet) -> str | None:
    return next((c for c in spec.columns if c.startswith(("spend", "amount"))), None)


def parse_model_spec(text: str, *, source: str = "<text>") -> ModelSpec:
    """A feature set (:func:`omnibank.marketing.features.parse_feature_set`) with an optional top-level
    ``baseline: FEATURE_ID``. The key's lines are blanked before the feature set is read, so every other
    problem is still named by its own line."""
    baseline: str | None = None
    line: int | None = None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        root = None  # the feature set's parser names the problem
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if getattr(key, "value", None) != "baseline":
                continue
            line = key.start_mark.line + 1
            if not isinstance(value, yaml.ScalarNode) or not isinstance(value.value, str) or not value.value:
                raise InputRefused(f"{source}: baseline (line {line}): give one feature id, e.g. spend_90d")
            baseline = value.value
            lines = text.splitlines(keepends=True)
            for i in range(key.start_mark.line, value.end_mark.line + 1):
                lines[i] = "\n"
            text = "".join(lines)
    spec = ft.parse_feature_set(text, source=source)
    if baseline is not None and baseline not in spec.columns:
        raise InputRefused(
            f"{source}: baseline (line {line}): {baseline!r} is not a feature of this set; "
            f"use one of {', '.join(spec.columns)}"
        )
    return ModelSpec(spec, baseline if baseline is not None else _default_baseline(spec))


def load_model_spec(path: Path) -> ModelSpec:
    return parse_model_spec(read_text_file(path), source=str(path))


def _spec_of_card(card: dict[str, Any], where: str) -> ModelSpec:
    stored = card["features"]
    text = yaml.safe_dump({"id": stored["id"], "features": stored["features"]}, allow_unicode=True)
    return ModelSpec(ft.parse_feature_set(text, source=where), stored.get("baseline"))


# --------------------------------------------------------------------------------------------- metrics


def _ranked(score: Matrix) -> Matrix:
    """Scores with NaN ranked last (a baseline feature may be NULL)."""
    if not np.isnan(score).any():
        return score
    finite = score[~np.isnan(score)]
    floor = float(finite.min()) - 1.0 if finite.size else 0.0
    return np.where(np.isnan(score), floor, score)


def calibration_error(y: Labels, p: Matrix, bins: int = BINS) -> float:
    """Expected calibration error: the row-weighted mean of |mean score − positive rate| over equal-width
    bins of [0, 1]."""
    edges = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = edges == b
        if mask.any():
            total += float(mask.sum()) * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return total / len(y)


def evaluate(y: Labels, score: Matrix, *, probability: bool) -> dict[str, Any]:
    """AUC, precision and lift at the top 5/10/20 %, ECE (for probabilities) and base rate."""
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

    n = len(y)
    base_rate = float(y.mean())
    s = _ranked(score)
    order = np.argsort(-s, kind="stable")
    out: dict[str, Any] = {"auc": round(float(roc_auc_score(y, s)), 6), "base_rate": round(base_rate, 6)}
    for pct in TOP:
        k = max(1, math.ceil(n * pct / 100))
        precision = float(y[order[:k]].mean())
        out[f"precision_{pct}"] = round(precision, 6)
        out[f"lift_{pct}"] = round(precision / base_rate, 6)
    out["ece"] = round(calibration_error(y, score), 6) if probability else None
    return out


# ------------------------------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class Dataset:
    """The time split: training rows (features as of ``as_of − window``), held-out rows (``as_of``)."""

    columns: tuple[str, ...]
    train_x: Matrix
    train_y: Labels
    test_x: Matrix
    test_y: Labels


@dataclass(frozen=True)
class Fitted:
    estimator: Any
    calibration: str
    metrics: dict[str, Any]  # {"model": {...}, "baseline": {...} | None}


def check_classes(y: Labels, period: str) -> None:
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        only = "positive" if negatives == 0 else "negative"
        raise InputRefused(
            f"the {period} has one class only: all {len(y)} customers are {only} for the label; "
            "no model can be trained or judged on it (choose another cut-off, window or label)"
        )
    if min(positives, negatives) < MIN_PER_CLASS:
        raise InputRefused(
            f"the {period} has {positives} positive and {negatives} negative customers; at least "
            f"{MIN_PER_CLASS} of each are needed"
        )


def fit(data: Dataset, *, baseline: str | None, seed: int = 0) -> Fitted:
    """Fit and calibrate on the training rows; judge on the held-out rows, against the baseline."""
    from sklearn.calibration import CalibratedClassifierCV  # type: ignore[import-untyped]
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]

    check_classes(data.test_y, "held-out period")
    check_classes(data.train_y, "training period")
    method = "isotonic" if int(data.train_y.sum()) >= _ISOTONIC_FROM else "sigmoid"
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    booster = HistGradientBoostingClassifier(random_state=seed)
    # ensemble=False: the calibrator learns from 3-fold out-of-fold predictions and one booster is refit on
    # the whole training period, so scoring runs one booster, not three (a third of the time at 1M customers)
    estimator = CalibratedClassifierCV(booster, method=method, cv=3, ensemble=False)
    # OpenMP threads cost more than they save on small data: 200 rows fit in 0.22 s on 1 thread, 0.46 s on 2
    with threadpool_limits(1 if len(data.train_y) < ONE_THREAD_BELOW else None):
        estimator.fit(data.train_x, data.train_y)
    p = estimator.predict_proba(data.test_x)[:, 1].astype(np.float64)
    metrics: dict[str, Any] = {"model": evaluate(data.test_y, p, probability=True), "baseline": None}
    if baseline is not None:
        raw = data.test_x[:, data.columns.index(baseline)]
        metrics["baseline"] = evaluate(data.test_y, raw, probability=False)
    return Fitted(estimator, f"{method}, 3-fold out-of-fold CalibratedClassifierCV, one booster", metrics)


def dataset(
    session: Session,
    settings: Settings,
    spec: ft.FeatureSet,
    label_expr: str,
    *,
    as_of: date,
    window_days: int,
) -> Dataset:
    """Features and labels of both periods of the time split."""
    start = check_date("as_of − window", as_of - timedelta(days=window_days))
    train = ft.build(session, settings, spec, as_of=start)
    train_y = train.aligned(ft.label(session, settings, label_expr, as_of=start, window_days=window_days))
    test = ft.build(session, settings, spec, as_of=as_of)
    test_y = test.aligned(ft.label(session, settings, label_expr, as_of=as_of, window_days=window_days))
    return Dataset(spec.columns, train.values, train_y, test.values, test_y)


# ----------------------------------------------------------------------------------------------- store


def _key(settings: Settings) -> bytes:
    from omnibank.security import get_cipher

    ring = get_cipher(settings).ring
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LABEL).derive(ring.index_key)


def _canonical(card: dict[str, Any]) -> bytes:
    body = {k: v for k, v in card.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _signature(key: bytes, estimator: bytes, card: dict[str, Any]) -> str:
    mac = hmac.new(key, hashlib.sha256(estimator).digest(), hashlib.sha256)
    mac.update(_canonical(card))
    return "hmac-sha256:" + mac.hexdigest()


def models_dir(settings: Settings) -> Path:
    return settings.home_dir / "models"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InputRefused(
            f"model name {name!r}: use 1-64 lower-case letters, digits, '_' or '-', starting with a letter"
        )
    return name


def _version_dir(settings: Settings, name: str, version: str) -> Path:
    check_name(name)
    if not _VERSION.fullmatch(version):
        raise InputRefused(f"model {name}: version {version!r} is not a version (e.g. 20260405T101500Z)")
    path = models_dir(settings) / name / version
    if not (path / CARD).is_file():
        raise NotFound(f"model {name} has no version {version} (under {models_dir(settings) / name})")
    return path


@dataclass(frozen=True)
class ModelCard:
    """What ``card.json`` says of one version, with whether it is retired."""

    name: str
    version: str
    path: Path
    card: dict[str, Any]
    retired: bool

    @property
    def metrics(self) -> dict[str, Any]:
        result: dict[str, Any] = self.card["metrics"]
        return result


def _read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads((path / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelRefused(f"{path / CARD}: not a readable model card ({exc.__class__.__name__})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ModelRefused(f"{path / CARD}: not a model card of format {CARD_FORMAT}")
    return card


def _card_of(path: Path) -> ModelCard:
    card = _read_card(path)
    return ModelCard(path.parent.name, path.name, path, card, (path / RETIRED).exists())


def verify(settings: Settings, path: Path) -> tuple[dict[str, Any], bytes]:
    """The card and estimator bytes of a version, after checking their signature: :class:`ModelRefused`
    when either file changed or the key ring is another."""
    card = _read_card(path)
    try:
        blob = (path / ESTIMATOR).read_bytes()
    except OSError:
        raise ModelRefused(f"{path / ESTIMATOR}: missing or unreadable; the model is refused") from None
    expected = _signature(_key(settings), blob, card)
    if not hmac.compare_digest(expected, str(card.get("signature", ""))):
        raise ModelRefused(
            f"model {path.parent.name} version {path.name}: the signature of {ESTIMATOR} and {CARD} does "
            "not match; the files were changed outside omnibank, or signed under another key ring. "
            "Refused and not loaded (train it again)"
        )
    return card, blob


def save(settings: Settings, *, name: str, now: datetime, card: dict[str, Any], estimator: Any) -> ModelCard:
    """Write a new version (atomically: a folder renamed into place) and sign it."""
    check_name(name)
    version = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = models_dir(settings) / name
    target = folder / version
    if target.exists():
        raise Conflict(f"model {name} already has a version {version}; train again in a second")
    blob = pickle.dumps(estimator, protocol=5)
    full = {"format": CARD_FORMAT, "name": name, "version": version, **card,
            "estimator_sha256": hashlib.sha256(blob).hexdigest()}  # fmt: skip
    full["signature"] = _signature(_key(settings), blob, full)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{version}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    (tmp / ESTIMATOR).write_bytes(blob)
    (tmp / CARD).write_text(json.dumps(full, ensure_ascii=False, indent=2, sort_keys=True) + "\n", "utf-8")
    os.replace(tmp, target)
    return ModelCard(name, version, target, full, False)


def versions(settings: Settings, name: str) -> list[ModelCard]:
    """Every version of a model, oldest first."""
    folder = models_dir(settings) / check_name(name)
    if not folder.is_dir():
        raise NotFound(f"no model named {name} (under {models_dir(settings)})")
    found = [p for p in sorted(folder.iterdir()) if _VERSION.fullmatch(p.name) and (p / CARD).is_file()]
    if not found:
        raise NotFound(f"model {name} has no version (under {folder})")
    return [_card_of(p) for p in found]


def list_models(settings: Settings) -> list[ModelCard]:
    root = models_dir(settings)
    if not root.is_dir():
        return []
    names = [p.name for p in sorted(root.iterdir()) if p.is_dir() and _NAME.fullmatch(p.name)]
    return [card for n in names for card in _versions_or_none(settings, n)]


def _versions_or_none(settings: Settings, name: str) -> list[ModelCard]:
    try:
        return versions(settings, name)
    except NotFound:
        return []


def show(settings: Settings, name: str, version: str | None = None) -> tuple[ModelCard, str | None]:
    """A version's card (default the latest) and why its signature fails, or None when it holds."""
    card = _version(settings, name, version, live_only=False)
    try:
        verify(settings, card.path)
    except ModelRefused as exc:
        return card, exc.message
    return card, None


def _version(settings: Settings, name: str, version: str | None, *, live_only: bool) -> ModelCard:
    if version is not None:
        return _card_of(_version_dir(settings, name, version))
    every = versions(settings, name)
    live = [c for c in every if not c.retired] if live_only else every
    if not live:
        raise NotFound(f"every version of model {name} is retired; train it again or name a version")
    return live[-1]


def live_version(settings: Settings, name: str, version: str | None = None) -> str:
    """The version :func:`score` would use: ``version`` if given (and not retired), else the latest live."""
    return _version(settings, name, version, live_only=True).version


def retire(settings: Settings, name: str, version: str, *, now: datetime) -> bool:
    """Mark a version retired (a marker file; nothing deleted). False when it already was."""
    path = _version_dir(settings, name, version)
    marker = path / RETIRED
    if marker.exists():
        return False
    marker.write_text(now.astimezone(UTC).isoformat() + "\n", encoding="utf-8")
    return True


def load(settings: Settings, name: str, version: str | None = None) -> tuple[ModelCard, Any]:
    """The verified card and the unpickled estimator of a version (default: the latest not retired)."""
    card = _version(settings, name, version, live_only=True)
    checked, blob = verify(settings, card.path)
    trained = str(checked.get("libraries", {}).get("scikit-learn", "?"))
    here = versions_now()["scikit-learn"]
    if trained.split(".")[:2] != here.split(".")[:2]:
        raise ModelRefused(
            f"model {name} version {card.version} was trained with scikit-learn {trained}, this is {here}: "
            "a pickled estimator is only read by the release that wrote it; train it again"
        )
    estimator = pickle.loads(blob)  # noqa: S301 - verified above: signed under the key ring
    return ModelCard(card.name, card.version, card.path, checked, card.retired), estimator


# ------------------------------------------------------------------------------------- train and score


def versions_now() -> dict[str, str]:
    import sklearn  # type: ignore[import-untyped]

    return {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def train(
    session: Session,
    settings: Settings,
    *,
    name: str,
    features_path: Path,
    label_expr: str,
    as_of: date,
    window_days: int,
    today: date,
    now: datetime,
    seed: int = 0,
) -> ModelCard:
    """Train, judge out of time, save and sign a new version of model ``name``; see the module docstring."""
    check_name(name)
    check_date("as_of", as_of)
    end = as_of + timedelta(days=window_days)
    if end >= today:
        raise InputRefused(
            f"the held-out label window ({as_of.isoformat()}, {end.isoformat()}] has not ended (today is "
            f"{today.isoformat()}): use an --as-of no later than "
            f"{(today - timedelta(days=window_days + 1)).isoformat()} for a {window_days}-day window"
        )
    spec = load_model_spec(features_path)
    data = dataset(session, settings, spec.features, label_expr, as_of=as_of, window_days=window_days)
    fitted = fit(data, baseline=spec.baseline, seed=seed)
    start = as_of - timedelta(days=window_days)
    card = {
        "features": spec.as_dict(),
        "label": label_expr,
        "as_of": as_of.isoformat(),
        "window_days": window_days,
        "train_period": {
            "features_as_of": start.isoformat(),
            "labels": [start.isoformat(), as_of.isoformat()],
        },
        "test_period": {"features_as_of": as_of.isoformat(), "labels": [as_of.isoformat(), end.isoformat()]},
        "rows": {
            "train": len(data.train_y),
            "train_positives": int(data.train_y.sum()),
            "test": len(data.test_y),
            "test_positives": int(data.test_y.sum()),
        },  # fmt: skip
        "estimator": "HistGradientBoostingClassifier",
        "calibration": fitted.calibration,
        "seed": seed,
        "libraries": versions_now(),
        "metrics": fitted.metrics,
        "reference": dr.reference(data.columns, data.train_x, features_as_of=start.isoformat()),
        "trained_at": now.astimezone(UTC).isoformat(),
    }
    return save(settings, name=name, now=now, card=card, estimator=fitted.estimator)


def score(
    session: Session, settings: Settings, name: str, *, as_of: date, version: str | None = None
) -> list[tuple[str, float]]:
    """Every customer's score as of ``as_of``, in customer id order, from the named version or the latest
    one not retired: the probability of the label for a propensity model, the uplift (treated minus control
    probability, in [−1, 1]) for an uplift model. Refused when the model's signature does not hold."""
    card, estimator = load(settings, name, version)
    spec = _spec_of_card(card.card, f"model {name} {card.version}")
    matrix = ft.build(session, settings, spec.features, as_of=as_of)
    if not matrix.customer_ids:
        return []
    p = predict(estimator, matrix.values, kind=kind_of(card.card))
    return list(zip(matrix.customer_ids, p.astype(np.float64).tolist(), strict=True))


def build_features(session: Session, settings: Settings, spec: ModelSpec, *, as_of: date) -> ft.FeatureMatrix:
    """A model spec's features for every customer as of ``as_of`` (``omnibank model features``)."""
    return ft.build(session, settings, spec.features, as_of=as_of)


def kind_of(card: dict[str, Any]) -> str:
    """``propensity`` (also for cards written before kinds) or ``uplift``."""
    return str(card.get("kind") or "propensity")


def predict(estimator: Any, values: Matrix, *, kind: str) -> Matrix:
    """Scores of a matrix: a propensity model's probability, an uplift model's treated minus control
    probability (``{"treated": …, "control": …}``, :mod:`omnibank.marketing.uplift`)."""
    if kind == "uplift":
        treated = estimator["treated"].predict_proba(values)[:, 1]
        control = estimator["control"].predict_proba(values)[:, 1]
        result: Matrix = (treated - control).astype(np.float64)
        return result
    if kind != "propensity":
        raise ModelRefused(f"a model card of kind {kind!r} is not known to this omnibank")
    p: Matrix = estimator.predict_proba(values)[:, 1].astype(np.float64)
    return p


@dataclass(frozen=True)
class DriftReport:
    """Each feature's population stability index as of ``as_of`` against the training reference
    (``features`` empty and ``reference`` None when the card keeps no reference bins)."""

    name: str
    version: str
    as_of: date
    threshold: float
    reference: dict[str, Any] | None
    features: tuple[dr.FeatureDrift, ...]
    rows: int

    @property
    def flagged(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if f.flagged)


def drift(
    session: Session,
    settings: Settings,
    name: str,
    *,
    as_of: date,
    version: str | None = None,
    threshold: float = dr.PSI_THRESHOLD,
) -> DriftReport:
    """The features as of ``as_of`` against the reference bins of a version's card (default the latest),
    feature by feature (:mod:`omnibank.marketing.drift`). Reads the card only, never the estimator."""
    if not threshold > 0:
        raise InputRefused(f"the PSI threshold must be above 0, got {threshold}")
    card = _version(settings, name, version, live_only=False)
    ref = card.card.get("reference")
    if ref is None:
        return DriftReport(card.name, card.version, as_of, threshold, None, (), 0)
    spec = _spec_of_card(card.card, f"model {name} {card.version}")
    matrix = ft.build(session, settings, spec.features, as_of=as_of)
    found = dr.compare(ref, matrix.columns, matrix.values, threshold=threshold)
    return DriftReport(card.name, card.version, as_of, threshold, ref, tuple(found), len(matrix.customer_ids))


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, model, baseline) as text, for a table."""

    def fmt(block: dict[str, Any] | None, key: str) -> str:
        if block is None or block.get(key) is None:
            return "—"
        value = float(block[key])
        return f"{value:.1%}" if key.startswith(("precision", "base")) else f"{value:.3f}"

    keys: Sequence[str] = ("auc", *(f"lift_{p}" for p in TOP), *(f"precision_{p}" for p in TOP), "ece",
                           "base_rate")  # fmt: skip
    names = {"auc": "AUC", "ece": "calibration error (ECE)", "base_rate": "base rate"}
    for p in TOP:
        names[f"lift_{p}"] = f"lift at top {p}%"
        names[f"precision_{p}"] = f"precision at top {p}%"
    return [(names[k], fmt(metrics["model"], k), fmt(metrics.get("baseline"), k)) for k in keys]


__all__ = [
    "Dataset",
    "DriftReport",
    "ModelCard",
    "ModelRefused",
    "ModelSpec",
    "build_features",
    "calibration_error",
    "dataset",
    "drift",
    "evaluate",
    "fit",
    "kind_of",
    "list_models",
    "live_version",
    "load",
    "load_model_spec",
    "metric_rows",
    "parse_model_spec",
    "predict",
    "retire",
    "save",
    "score",
    "show",
    "train",
    "verify",
    "versions",
]
