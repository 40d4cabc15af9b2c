"""The read layer of precision marketing (精准营销): the trained models with their held-out metrics against
the baseline, and the recent call lists with their counts — as the console shows them (and the CLI or the API
may). Only reads; no console code here.

Nothing personal comes out of it: a model is its card (features, label, metrics: no customer ids), a call
list its counts (listed, held out, deferred, spared by reason), never its members. Call lists are made for
the whole bank, so they are not scoped by org; the caller decides who may read them (the console asks for
``campaigns:read``, the campaign managers' permission).

Metrics are stored in the cards as JSON numbers; they leave here as :class:`~decimal.Decimal` (from their
decimal text), so no page prints a float."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.errors import AppError
from omnibank.marketing import models
from omnibank.marketing.scores import stored_models
from omnibank.marketing.tables import CallList

RECENT_LISTS = 20
#: the reasons a call list spares a customer, in the order pages show them (others follow, by name)
SPARED_REASONS = ("no_consent", "dnd", "unreachable", "cap_channel_day", "cap_week", "in_journey", "audience")


def _decimal(value: Any) -> Decimal | None:
    """A card's number as a Decimal (its shortest decimal text), None when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        found = Decimal(str(value))
    except ArithmeticError:
        return None
    return found if found.is_finite() else None


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class Headline:
    """One headline metric of a model beside its baseline's (a naive feature's, or random targeting's)."""

    model: Decimal | None
    baseline: Decimal | None

    @property
    def better(self) -> bool | None:
        """Whether the model beats the baseline (None when either is missing)."""
        if self.model is None or self.baseline is None:
            return None
        return self.model > self.baseline


@dataclass(frozen=True)
class ModelLine:
    """One version of a model. A propensity model's headline is the AUC and the lift at the top 10 %
    against the baseline feature's; an uplift model's the Qini coefficient (random targeting: 0) and the
    uplift at the top 10 % against the overall uplift (what random targeting gets)."""

    name: str
    version: str
    kind: str  # propensity | uplift
    as_of: date | None
    window_days: int | None
    trained_at: datetime | None
    retired: bool
    baseline: str | None  # the baseline feature (propensity), None for an uplift model
    first: Headline  # AUC (propensity) | Qini (uplift)
    top10: Headline  # lift at the top 10 % (propensity) | uplift at the top 10 % (uplift)
    scored: int | None  # customers with stored scores of this version, None when its scores are not stored
    scored_as_of: date | None


@dataclass(frozen=True)
class ModelProblem:
    """A model whose cards cannot be read, with why (the message names the file: for the CLI and logs; a
    page may say only the model's name)."""

    name: str
    message: str


@dataclass(frozen=True)
class ModelsView:
    lines: list[ModelLine]
    problems: list[ModelProblem]


def _line(card: models.ModelCard, stored: dict[str, tuple[str, date, int]]) -> ModelLine:
    data = card.card
    kind = models.kind_of(data)
    metrics = data.get("metrics") or {}
    model = metrics.get("model") or {}
    base = metrics.get("baseline") or {}
    if kind == "uplift":
        first = Headline(_decimal(model.get("qini")), Decimal(0))
        top10 = Headline(_decimal(model.get("uplift_10")), _decimal(model.get("uplift")))
        baseline = None
    else:
        first = Headline(_decimal(model.get("auc")), _decimal(base.get("auc")))
        top10 = Headline(_decimal(model.get("lift_10")), _decimal(base.get("lift_10")))
        baseline = (data.get("features") or {}).get("baseline")
    trained_at = None
    if data.get("trained_at"):
        try:
            trained_at = datetime.fromisoformat(str(data["trained_at"]))
        except ValueError:
            trained_at = None
    window = data.get("window_days")
    hit = stored.get(card.name)
    scored = hit[2] if hit is not None and hit[0] == card.version else None
    return ModelLine(
        name=card.name, version=card.version, kind=kind, as_of=_date(data.get("as_of")),
        window_days=int(window) if isinstance(window, int) else None, trained_at=trained_at,
        retired=card.retired, baseline=str(baseline) if baseline else None, first=first, top10=top10,
        scored=scored, scored_as_of=hit[1] if scored is not None and hit is not None else None,
    )  # fmt: skip


def models_view(session: Session, settings: Settings) -> ModelsView:
    """Every model version (by name; the newest version first), with its headline metrics, whether it is
    live or retired, and how many customers' scores of it are stored for ``score('NAME')``. A model whose
    cards do not read is listed among the problems with the reason."""
    stored = {name: (version, as_of, n) for name, version, as_of, n in stored_models(session)}
    try:
        cards = models.list_models(settings)
        problems: list[ModelProblem] = []
    except AppError:  # one unreadable card: read model by model, to show the others
        cards, problems = _cards_one_by_one(settings)
    by_name: dict[str, list[models.ModelCard]] = {}
    for card in cards:
        by_name.setdefault(card.name, []).append(card)
    lines = [
        _line(card, stored)
        for name in sorted(by_name)
        for card in sorted(by_name[name], key=lambda c: c.version, reverse=True)
    ]
    return ModelsView(lines, problems)


def _cards_one_by_one(settings: Settings) -> tuple[list[models.ModelCard], list[ModelProblem]]:
    root = models.models_dir(settings)
    cards: list[models.ModelCard] = []
    problems: list[ModelProblem] = []
    for path in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            models.check_name(path.name)
        except AppError:  # not a model's folder (list_models skips it too)
            continue
        try:
            cards += models.versions(settings, path.name)
        except AppError as exc:
            problems.append(ModelProblem(path.name, exc.message))
    return cards, problems


# ------------------------------------------------------------------------------------------ call lists


@dataclass(frozen=True)
class CallListLine:
    """A recorded call list: what ranked it, its size and holdout, and its counts (no members)."""

    id: str
    model: str
    version: str
    as_of: date
    created_at: datetime
    top: int
    holdout_percent: int
    channel: str
    journey: str | None
    segment: str | None
    listed: int
    held_out: int
    deferred: int
    spared: dict[str, int]  # reason → customers, in :data:`SPARED_REASONS` order

    @property
    def spared_total(self) -> int:
        return sum(self.spared.values())


def _spared(text: str) -> dict[str, int]:
    try:
        raw = json.loads(text or "{}")
    except ValueError:
        return {}
    counts = {str(k): int(v) for k, v in raw.items() if isinstance(v, int)} if isinstance(raw, dict) else {}
    order = {reason: i for i, reason in enumerate(SPARED_REASONS)}
    return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def call_lists(
    session: Session, *, limit: int = RECENT_LISTS, model: str | None = None
) -> list[CallListLine]:
    """The most recent call lists (newest first), of one model or all; bank-wide (see the module)."""
    query = select(CallList).order_by(CallList.created_at.desc(), CallList.id.desc()).limit(limit)
    if model is not None:
        query = query.where(CallList.model == model)
    return [
        CallListLine(
            id=row.id,
            model=row.model,
            version=row.version,
            as_of=row.as_of,
            created_at=row.created_at,
            top=row.top,
            holdout_percent=row.holdout_percent,
            channel=row.channel,
            journey=row.journey,
            segment=row.segment,
            listed=row.listed,
            held_out=row.held_out,
            deferred=row.deferred,
            spared=_spared(row.spared),
        )  # fmt: skip
        for row in session.scalars(query)
    ]


__all__ = [
    "RECENT_LISTS",
    "SPARED_REASONS",
    "CallListLine",
    "Headline",
    "ModelLine",
    "ModelProblem",
    "ModelsView",
    "call_lists",
    "models_view",
]
