"""A model's latest scores in the store, for ``score('NAME')`` in the expression language.

``omnibank model score NAME`` (and the worker, where configured) writes every customer's score of the named
model here, replacing that model's previous scores in the same transaction: segments, tags, journeys and
routing then read ``score('installment') >= 0.4`` like any other field. A score is kept as an integer in
millionths (``score_ppm``), so every engine compares it exactly (DuckDB, PostgreSQL, the in-memory
evaluator): a score of 0.4 is 400000, and ``score('x') >= 0.4`` means ``score_ppm >= 400000``.

The segments package reads the table through a plain construct
(:data:`omnibank.segments.tables.model_scores`): it sits below marketing and must not import it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Date, Integer, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from omnibank.db import versions
from omnibank.db.base import Base
from omnibank.db.types import UTCDateTime

PPM = 1_000_000
_BATCH = 5_000


class ModelScore(Base):
    """One customer's latest score of one model (the version and as-of day it was scored with)."""

    __tablename__ = "model_scores"

    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    score_ppm: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    as_of: Mapped[date] = mapped_column(Date)
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime())


def to_ppm(score: float) -> int:
    """A probability (or an uplift, which may be negative) in millionths, rounded half away from zero."""
    scaled = score * PPM
    return int(scaled + 0.5) if scaled >= 0 else -int(-scaled + 0.5)


def store_scores(
    session: Session,
    *,
    model: str,
    version: str,
    as_of: date,
    scores: Sequence[tuple[str, float]],
    now: datetime,
) -> int:
    """Replace ``model``'s stored scores with ``scores`` (customer_id, score); flushes, the caller commits.
    The data version ``scores`` moves, so the embedded engine's snapshot is rebuilt on its next use."""
    session.execute(delete(ModelScore).where(ModelScore.model == model))
    rows = [
        {"model": model, "customer_id": cid, "score_ppm": to_ppm(value), "version": version,
         "as_of": as_of, "scored_at": now}
        for cid, value in scores
    ]  # fmt: skip
    for i in range(0, len(rows), _BATCH):
        session.execute(insert(ModelScore), rows[i : i + _BATCH])
    versions.bump(session, "scores")
    session.flush()
    return len(rows)


def stored_models(session: Session) -> list[tuple[str, str, date, int]]:
    """(model, version, as_of, customers) of every model with stored scores."""
    rows = session.execute(
        select(ModelScore.model, ModelScore.version, ModelScore.as_of, func.count())
        .group_by(ModelScore.model, ModelScore.version, ModelScore.as_of)
        .order_by(ModelScore.model)
    )
    return [(m, v, d, int(n)) for m, v, d, n in rows]


__all__ = ["PPM", "ModelScore", "stored_models", "store_scores", "to_ppm"]
