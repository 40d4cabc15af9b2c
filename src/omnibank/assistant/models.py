"""The questions the assistant was asked, and whether it answered them: kept for the knowledge base's owners
(which questions go unanswered, which passages serve most).

Questions are free text typed by customers and staff, so they may carry personal data: every run of digits
long enough to be a phone, card or ID number is masked before the row is written
(:func:`omnibank.kit.masking.mask_numbers`), and no name is stored — the customer, when the caller was
authenticated for one, is referred to by number only. An unanswered question asked for a customer becomes an
``inquiry`` ticket (``handed_off`` true, the ticket named in ``reason``); one asked for nobody stays here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base
from omnibank.db.types import UTCDateTime

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


class AssistantQuestion(Base):
    """One question asked of the assistant and what became of it."""

    __tablename__ = "assistant_questions"
    __table_args__ = (Index("ix_assistant_questions_answered_asked_at", "answered", "asked_at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    question: Mapped[str] = mapped_column(String(500))  # digit runs masked
    answered: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))  # the best passage's BM25 score
    confidence: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))  # 0..1, see omnibank.assistant.service
    top_source: Mapped[str | None] = mapped_column(String(300))  # e.g. "faq:card.yaml#card-activate"
    intent: Mapped[str] = mapped_column(String(32), default="general")  # general | my_coupons
    channel: Mapped[str] = mapped_column(String(32))  # cli | api | …
    actor: Mapped[str] = mapped_column(String(128))  # who asked: "user:<name>", "token:<name>", a CLI actor
    customer_id: Mapped[str | None] = mapped_column(String(32), index=True)  # authenticated for this one
    handed_off: Mapped[bool] = mapped_column(Boolean, default=False)  # to an inquiry ticket (not built yet)
    reason: Mapped[str] = mapped_column(String(200), default="")  # why unanswered
