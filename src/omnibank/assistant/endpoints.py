"""/assistant/ask: the answering assistant over the API. Any caller who may read the benefit catalogue may
ask (rate-limited like every endpoint); asking for a customer (``customer_id``, e.g. "我的券还能用吗" in a
service agent's chat) needs ``customers:read`` (else 403) and a customer of the caller's scope (else 404)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from omnibank.api.auth import Principal, audit_source, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES, Forbidden
from omnibank.assistant import service
from omnibank.db import unit_of_work

router = APIRouter(prefix="/assistant", tags=["assistant"], responses=ERROR_RESPONSES)
Asker = Annotated[Principal, Depends(require("benefits:read"))]


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    question: str = Field(min_length=1, max_length=service.MAX_QUESTION, examples=["瑞幸券怎么用"])
    customer_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="Ask for this customer (needs customers:read and the customer in your scope): a question "
        "about their own coupons is answered from the ledger.",
    )
    top: int = Field(default=3, ge=1, le=service.MAX_TOP, description="Passages to return at most.")


class PassageOut(BaseModel):
    source: str = Field(description="faq:<file>#<id> or benefit:<id>")
    kind: str
    title: str
    text: str
    steps: list[str]
    score: Decimal = Field(description="BM25 score (ranks passages of one question only).")


class CouponOut(BaseModel):
    coupon_id: int
    benefit_id: str
    benefit_name: str
    status: str
    usable: bool
    claim_by: datetime | None
    valid_to: datetime | None


class AnswerOut(BaseModel):
    question_id: int
    question: str = Field(description="As recorded: long digit runs masked.")
    answered: bool
    confidence: Decimal = Field(description="Share of the question the best passage covers (0..1).")
    intent: str = Field(description="general, or my_coupons (a question about the customer's own coupons).")
    passages: list[PassageOut]
    coupons: list[CouponOut] | None
    customer_id: str | None
    handed_off: bool = Field(description="Not answered, asked for a customer: an inquiry ticket was opened.")
    ticket_id: str | None = Field(description="The inquiry ticket opened for it.")
    note: str


@router.post("/ask", response_model=AnswerOut)
def ask(body: AskIn, request: Request, principal: Asker) -> AnswerOut:
    """Answer a question from the FAQ and the active benefits' terms, with the passages' sources; a question
    it cannot answer with confidence is recorded unanswered instead of guessed."""
    if body.customer_id is not None and not principal.sees_customers:
        raise Forbidden("asking for a customer needs the permission customers:read",
                        details={"needs": "customers:read"})  # fmt: skip
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        answer = service.ask(
            session, body.question, now=now_of(request), settings=settings_of(request), actor=principal.actor,
            channel="api", source=audit_source(request), customer_id=body.customer_id,
            scope=principal.customer_scope(session) if body.customer_id is not None else None, top=body.top,
        )  # fmt: skip
    if answer.ticket_id is not None:
        from omnibank.service.tickets import emit_pending

        emit_pending(settings, now=now_of(request))
    return AnswerOut(
        question_id=answer.question_id, question=answer.question, answered=answer.answered,
        confidence=answer.confidence, intent=answer.intent,
        passages=[PassageOut(source=p.source, kind=p.kind, title=p.title, text=p.text, steps=list(p.steps),
                             score=p.score) for p in answer.passages],
        coupons=None if answer.coupons is None
        else [CouponOut.model_validate(vars(c)) for c in answer.coupons],
        customer_id=answer.customer_id, handed_off=answer.handed_off, note=answer.note,
        ticket_id=answer.ticket_id,
    )  # fmt: skip
