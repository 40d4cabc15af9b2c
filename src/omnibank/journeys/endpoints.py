"""/journeys: the journeys started and their attribution (read-only; `omnibank journey start` and the
worker change them). Readers need ``campaigns:read`` (the campaign managers' permission)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from omnibank.api.auth import Principal, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.db import unit_of_work

router = APIRouter(prefix="/journeys", tags=["journeys"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require("campaigns:read"))]
JourneyId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class JourneyRead(BaseModel):
    id: str
    name: str
    status: str
    entries: dict[str, int]  # by status


class StepRead(BaseModel):
    step: str
    sent: int
    deferred: int
    suppressed: dict[str, int]
    delivered: int
    clicked: int
    failed: int
    done: int


class AttributionRead(BaseModel):
    journey: str
    entered: int
    control: int
    converted: int
    converted_control: int
    conversion_rate: float | None
    control_rate: float | None
    uplift: float | None
    steps: list[StepRead]


@router.get("", summary="Journeys started, with their entries by status")
def list_journeys(request: Request, principal: Reader) -> list[JourneyRead]:
    from omnibank.journeys import views

    with unit_of_work(settings_of(request)) as session:
        rows = views.list_journeys(session)
    return [JourneyRead(id=r.id, name=r.name, status=r.status, entries=r.entries) for r in rows]


@router.get("/{journey_id}/report", summary="Attribution per step, conversion and uplift against control")
def journey_report(journey_id: JourneyId, request: Request, principal: Reader) -> AttributionRead:
    from omnibank.journeys import views

    with unit_of_work(settings_of(request)) as session:
        found = views.report(session, journey_id)
    f = found.figures
    return AttributionRead(
        journey=f.journey, entered=f.entered, control=f.control, converted=f.converted,
        converted_control=f.converted_control, conversion_rate=f.rate, control_rate=f.control_rate,
        uplift=f.uplift,
        steps=[
            StepRead(step=s.step, sent=s.sent, deferred=s.deferred, suppressed=dict(s.suppressed),
                     delivered=s.delivered, clicked=s.clicked, failed=s.failed, done=s.done)
            for s in f.steps.values()
        ],
    )  # fmt: skip
