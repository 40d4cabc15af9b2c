"""/surveys: survey answers in (``POST /surveys/{id}/responses``), checked against the survey's questions
and appended to the event log as ``survey.response`` events (:mod:`omnibank.surveys.responses`). Scoped like
event writes: a caller limited to an org answers only for the customers it serves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.api.idempotency import run_write
from omnibank.customers import repository as customers
from omnibank.errors import NotFound
from omnibank.surveys import responses
from omnibank.surveys.spec import survey_of

router = APIRouter(prefix="/surveys", tags=["surveys"], responses=ERROR_RESPONSES)
Writer = Annotated[Principal, Depends(require("events:write"))]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class AnswersIn(BaseModel):
    answers: list[responses.SurveyAnswer] = Field(min_length=1, max_length=1000)


class AnswersAccepted(BaseModel):
    survey: str
    recorded: int
    duplicates: int


@router.post("/{survey_id}/responses", response_model=AnswersAccepted)
def answer_survey(
    survey_id: str, body: AnswersIn, request: Request, principal: Writer, idempotency_key: IdemKey = None
) -> JSONResponse:
    """Record customers' answers to a survey (each once, by its ``key``)."""
    settings = settings_of(request)
    now = now_of(request)
    survey = survey_of(settings, survey_id)

    def write(session: Session) -> tuple[int, AnswersAccepted]:
        scope = principal.reach(session)
        for i, a in enumerate(body.answers):
            if customers.get(session, scope, a.customer_id) is None:
                raise NotFound(f"answers.{i}.customer_id: not a customer this caller may answer for")
        done = responses.record(settings, survey, body.answers, now=now)
        return 200, AnswersAccepted(survey=survey.id, recorded=done.loaded, duplicates=done.duplicates)

    return run_write(
        settings, actor=principal.actor, key=idempotency_key, method="POST", path=request.url.path,
        payload=body, now=now, write=write,
    )  # fmt: skip
