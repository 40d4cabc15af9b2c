"""Survey answers: checked against the survey's questions, appended to the log as ``survey.response``.

An answer names its survey and customer and gives a score for some of the questions the survey asks
(``nps`` 0–10, ``csat`` 1–5, ``ces`` 1–7) and/or a ``comment`` (free text, at most 1,000 characters). It may
say where the experience happened (``branch_id``), and what it was about (``ticket_id``, ``journey``,
``touchpoint``). The API (``POST /api/v1/surveys/{id}/responses``) checks all of that and refuses what does
not fit, naming the field; a file of events loaded with ``omnibank load events`` keeps what it is given, and
the reports count only scores in range (:func:`valid_score`), so one bad line costs one answer, not the file.

The event's id is ``survey:<survey>:<answer key>``: the same answer sent twice is stored once. The comment is
scanned like any free text before it reaches the log (phones, ID and card numbers replaced); it is what the
feedback analytics read (:mod:`omnibank.cx.text`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from omnibank.config import Settings
from omnibank.errors import InputRefused
from omnibank.events.emit import Emitted, emit
from omnibank.surveys.spec import SCALES, SurveySpec

MAX_COMMENT = 1000
_REF = r"^[A-Za-z0-9_.:-]{1,64}$"


class SurveyAnswer(BaseModel):
    """One customer's answer to a survey."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    key: str = Field(
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$", description="The answer's own id: sent twice, kept once."
    )
    answered_at: datetime | None = Field(None, description="When it was answered (default: now).")
    channel: str = Field("app", pattern=r"^(app|wechat|sms|phone|branch|wecom|web|partner)$")
    nps: int | None = Field(None, ge=0, le=10)
    csat: int | None = Field(None, ge=1, le=5)
    ces: int | None = Field(None, ge=1, le=7)
    comment: str | None = Field(None, max_length=MAX_COMMENT)
    branch_id: str | None = Field(None, pattern=_REF)
    ticket_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,40}$")
    journey: str | None = Field(None, pattern=_REF)
    touchpoint: str | None = Field(None, pattern=_REF)


def valid_score(question: str, value: Any) -> bool:
    """A score the reports count: an integer in the question's range."""
    low, high = SCALES[question]
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def response_event(survey: SurveySpec, answer: SurveyAnswer, *, now: datetime) -> dict[str, Any]:
    """The ``survey.response`` event of an answer; refused when it answers what the survey does not ask
    or answers nothing."""
    given = {q: getattr(answer, q) for q in ("nps", "csat", "ces") if getattr(answer, q) is not None}
    comment = (answer.comment or "").strip()
    if comment:
        given["comment"] = comment
    if not given:
        raise InputRefused(f"answer: give at least one of {', '.join(survey.asks)}")
    not_asked = sorted(set(given) - set(survey.asks))
    if not_asked:
        raise InputRefused(
            f"{', '.join(not_asked)}: survey {survey.id} does not ask this (it asks {', '.join(survey.asks)})"
        )
    at = answer.answered_at or now
    if at.tzinfo is None:
        raise InputRefused("answered_at: give a time zone (e.g. 2026-11-03T10:15:00+08:00)")
    event: dict[str, Any] = {
        "event_id": f"survey:{survey.id}:{answer.key}",
        "type": "survey.response",
        "customer_id": answer.customer_id,
        "ts": at.isoformat(),
        "channel": answer.channel,
        "survey": survey.id,
        **given,
    }
    for name in ("branch_id", "ticket_id", "journey", "touchpoint"):
        value = getattr(answer, name)
        if value is not None:
            event[name] = value
    return event


def record(settings: Settings, survey: SurveySpec, answers: list[SurveyAnswer], *, now: datetime) -> Emitted:
    """Append the answers to the log (one batch); refused as a whole when one does not fit the survey."""
    events = []
    for i, answer in enumerate(answers):
        try:
            events.append(response_event(survey, answer, now=now))
        except InputRefused as exc:
            raise InputRefused(f"answers.{i}: {exc.message}") from None
    return emit(settings, events)


__all__ = ["MAX_COMMENT", "SurveyAnswer", "record", "response_event", "valid_score"]
