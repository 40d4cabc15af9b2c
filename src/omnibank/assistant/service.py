"""Asking the assistant: the best passages of the knowledge base with their sources, or — for a question about
the customer's own coupons, asked for a customer the caller may see — their coupons from the ledger.
Flushes only; the caller commits.

**Confidence.** BM25 scores rank passages but do not compare across questions, so whether the best passage
answers is judged apart: the *confidence* is the share of what the question says — its terms weighted by their
idf, a word no passage holds weighing most — that the best passage holds. "瑞幸券怎么用" finds every term in
the coffee voucher's passage (1.0); "明天天气怎么样" holds no word of the knowledge base (0.0). Under
:data:`CONFIDENCE` (0.6) the question is not answered: no guess is shown, only the reason. Such a question is
handed to the service desk as an ``inquiry`` ticket (category ``faq``, channel ``assistant``, keyed by the
question, so it opens once) when it was asked for a customer; asked for nobody (an anonymous page) it is
recorded for the knowledge base's owners only.

**Every question is recorded** (``assistant_questions``), with long digit runs masked and no name; a
customer-specific answer is audited (``assistant.customer_coupons``). A coupon is shown by its benefit, status
and dates: nothing personal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from sqlalchemy.orm import Session

from omnibank.assistant import knowledge
from omnibank.assistant.models import AssistantQuestion
from omnibank.audit import service as audit
from omnibank.benefits import granting, views
from omnibank.config import Settings
from omnibank.customers import repository as customers
from omnibank.customers.repository import Scope
from omnibank.errors import AppError, CustomerErased, NotFound
from omnibank.kit.masking import mask_numbers

MAX_QUESTION = 300  # characters
MAX_TOP = 10
CONFIDENCE = Decimal("0.6")
NOT_ANSWERED = "no confident answer"
HANDED_OFF = "no confident answer: an inquiry ticket was opened ({ticket_id}); the service desk will answer"
NOT_HANDED_OFF = (
    "no confident answer (recorded for the knowledge base's owners; asked for a customer, it opens an "
    "inquiry ticket)"
)
NO_TERMS = "the question has no word the knowledge base could look up"
#: a question about the asker's own coupons ("我的券还能用吗", "我还有几张瑞幸券")
MY_COUPONS = re.compile(
    r"(我|本人).{0,10}(券|权益|立减金|E卡|会员|盲盒|礼品)|(券|权益|立减金|E卡|盲盒).{0,10}(我|本人)",
    re.IGNORECASE,
)
USABLE = ("granted", "claimed", "active")
STATUS_WORDS = {
    "granted": "待领取",
    "claimed": "已领取, 未生效",
    "active": "可使用",
    "redeemed": "已使用",
    "expired": "已过期",
    "revoked": "已撤销",
}
#: words of a benefit's name too general to say which benefit a question means
_GENERIC = frozenset({"券", "卡", "优惠", "会员", "礼品", "积分", "元", "月卡"})


@dataclass(frozen=True)
class PassageRead:
    source: str
    kind: str
    title: str
    text: str
    steps: tuple[str, ...]
    score: Decimal


@dataclass(frozen=True)
class CouponLine:
    coupon_id: int
    benefit_id: str
    benefit_name: str
    status: str
    usable: bool
    claim_by: datetime | None
    valid_to: datetime | None


@dataclass(frozen=True)
class AnswerRead:
    """The answer: ``passages`` best first (none when not answered); ``coupons`` for a question about the
    customer's own coupons asked for a customer (else None); ``note`` says why it is not answered, or what
    would answer more."""

    question_id: int
    question: str  # as recorded: digit runs masked
    answered: bool
    confidence: Decimal
    intent: str
    passages: list[PassageRead]
    coupons: list[CouponLine] | None
    customer_id: str | None
    handed_off: bool
    note: str
    ticket_id: str | None = None


def clean_question(question: str) -> str:
    """The question without surrounding blanks, or an AppError saying what is wrong with it."""
    text = " ".join(question.split())
    if not text:
        raise AppError("the question is empty: ask something, e.g. 瑞幸券怎么用", code="question_empty")
    if len(text) > MAX_QUESTION:
        raise AppError(
            f"the question is {len(text)} characters long; at most {MAX_QUESTION} are read",
            code="question_too_long",
        )
    return text


def _decimal(value: float, places: str = "0.0001") -> Decimal:
    return Decimal(repr(value)).quantize(Decimal(places), ROUND_HALF_UP)


def confidence(index: knowledge.KnowledgeIndex, terms: list[str], best: knowledge.Hit | None) -> Decimal:
    """The share of the question's idf-weighted terms the best passage holds (0..1)."""
    unique = set(terms)
    total = sum(index.weight(t) for t in unique)
    if best is None or total <= 0:
        return Decimal(0)
    return _decimal(sum(index.weight(t) for t in unique & best.matched) / total)


def ask(
    session: Session,
    question: str,
    *,
    now: datetime,
    settings: Settings,
    actor: str,
    channel: str,
    source: str,
    customer_id: str | None = None,
    scope: Scope | None = None,
    top: int = 3,
    folder: Path | None = None,
) -> AnswerRead:
    """Answer ``question`` from the knowledge base of ``folder`` (default the configured FAQ folder) and the
    active benefits, and record it. ``customer_id``: the customer the caller asks for, who must be in
    ``scope`` (else NotFound: not found and not visible look alike); a question about their own coupons is
    then answered from the ledger."""
    text = clean_question(question)
    if not 1 <= top <= MAX_TOP:
        raise AppError(f"top must be between 1 and {MAX_TOP}, not {top}", code="bad_top")
    if customer_id is not None:
        found = customers.get(session, scope or Scope.nothing(), customer_id)
        if found is None:
            raise NotFound(f"no customer {customer_id}")
        if found.erased_at is not None:
            raise CustomerErased(f"customer {customer_id} was erased: there is nothing to answer about them")
    folder = folder if folder is not None else settings.faq_folder
    index = knowledge.knowledge_index(
        session, folder, store=settings.db_url, cache_dir=settings.home_dir / "assistant"
    )
    terms = knowledge.tokens(text)
    hits = index.search(terms, top=top)
    best = hits[0] if hits else None
    sure = confidence(index, terms, best)
    intent = "my_coupons" if MY_COUPONS.search(text) else "general"
    known = best is not None and sure >= CONFIDENCE  # the knowledge base answers it
    coupons = None
    top_source = best.passage.source if best else None
    if intent == "my_coupons" and customer_id is not None:
        coupons = _coupons(session, customer_id, terms, now=now)
        audit.record(
            session,
            actor=actor,
            action="assistant.customer_coupons",
            subject_type="customer",
            subject_id=customer_id,
            detail={"coupons": len(coupons)},
            source=source,
            at=now,
        )
        answered, sure, note, top_source = (
            True,
            Decimal(1),
            _coupon_summary(coupons, settings),
            "ledger:coupons",
        )
    elif known:
        answered, note = True, ""
        if intent == "my_coupons":
            note = "this asks about a customer's own coupons: ask for the customer to see theirs"
    else:
        answered, note = (
            False,
            (NOT_HANDED_OFF if customer_id is None else NOT_ANSWERED) if terms else NO_TERMS,
        )
    row = AssistantQuestion(
        asked_at=now,
        question=mask_numbers(text)[:500],
        answered=answered,
        score=_decimal(best.score) if best else None,
        confidence=sure,
        top_source=top_source,
        intent=intent,
        channel=channel,
        actor=actor,
        customer_id=customer_id,
        handed_off=False,
        reason="" if answered else note,
    )
    session.add(row)
    session.flush()
    ticket_id = None
    if not answered and terms and customer_id is not None:
        ticket_id = _hand_off(session, settings, row, customer_id, now=now)
        note = HANDED_OFF.format(ticket_id=ticket_id)
        row.handed_off, row.reason = True, note[:200]
        session.flush()
    passages = (
        [
            PassageRead(
                h.passage.source,
                h.passage.kind,
                h.passage.title,
                h.passage.text,
                h.passage.steps,
                _decimal(h.score),
            )
            for h in hits
        ]
        if known
        else []
    )
    return AnswerRead(
        question_id=row.id,
        question=row.question,
        answered=answered,
        confidence=sure,
        intent=intent,
        passages=passages,
        coupons=coupons,
        customer_id=customer_id,
        handed_off=ticket_id is not None,
        note=note,
        ticket_id=ticket_id,
    )


def _hand_off(
    session: Session, settings: Settings, row: AssistantQuestion, customer_id: str, *, now: datetime
) -> str:
    """An inquiry ticket for a question the assistant could not answer (once per question)."""
    from omnibank.security import get_cipher
    from omnibank.service import tickets

    desk = tickets.desk_of(session, settings)
    request = tickets.TicketRequest(
        kind="inquiry",
        category="faq",
        customer_id=customer_id,
        channel="assistant",
        subject=f"助手未能回答: {row.question}"[: tickets.MAX_SUBJECT],
        key=f"assistant:{row.id}",
        source="assistant",
    )
    opened = tickets.open_ticket(session, desk, get_cipher(settings), request, by="system:assistant", now=now)
    return opened.ticket.ticket_id


def _coupons(session: Session, customer_id: str, terms: list[str], *, now: datetime) -> list[CouponLine]:
    """The customer's coupons through the ledger, usable ones first; only those of a benefit the question
    names, when it names one the customer holds."""
    names = {b.id: b.name for b in views.catalogue_view(session)}
    lines = [
        CouponLine(
            coupon_id=c.id,
            benefit_id=c.benefit_id,
            benefit_name=names.get(c.benefit_id, c.benefit_id),
            status=c.status,
            usable=c.status in USABLE and (c.valid_to is None or c.valid_to >= now),
            claim_by=c.claim_by,
            valid_to=c.valid_to,
        )
        for c in granting.list_coupons(session, customer_id=customer_id, limit=500)
    ]
    asked = set(terms) - _GENERIC
    named = {ln.benefit_id for ln in lines if asked & (set(knowledge.tokens(ln.benefit_name)) - _GENERIC)}
    if named:
        lines = [ln for ln in lines if ln.benefit_id in named]
    return sorted(
        lines, key=lambda ln: (not ln.usable, ln.valid_to is None, ln.valid_to or now, ln.coupon_id)
    )


def _coupon_summary(coupons: list[CouponLine], settings: Settings) -> str:
    """The answer in words, for the customer (bank-local dates)."""
    if not coupons:
        return "您目前没有券。"
    usable = [c for c in coupons if c.usable]
    if not usable:
        return f"您的{len(coupons)}张券都已不能使用(已使用、已过期或已撤销)。"
    parts = []
    for c in usable:
        until = f", 有效期至{c.valid_to.astimezone(settings.tz):%Y-%m-%d}" if c.valid_to else ""
        parts.append(f"{c.benefit_name}({STATUS_WORDS.get(c.status, c.status)}{until})")
    return f"您有{len(usable)}张券还能用: " + "; ".join(parts) + "。"
