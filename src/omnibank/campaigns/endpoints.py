"""/campaigns: validate a definition, simulate it over a small set of events (touching nothing), start and
stop a live campaign. A definition is the JSON form of a campaign file (the schema is the same)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.api.idempotency import run_write
from omnibank.campaigns import live, views
from omnibank.campaigns.spec import CampaignSpec, compile_campaign
from omnibank.db import unit_of_work
from omnibank.events.schemas import MAX_BATCH, Event

router = APIRouter(prefix="/campaigns", tags=["campaigns"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require("campaigns:read"))]
Writer = Annotated[Principal, Depends(require("campaigns:write"))]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class CampaignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: CampaignSpec


class SimulateBody(CampaignBody):
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH, description="Events to run it over.")


class CampaignValid(BaseModel):
    id: str
    name: str
    rules: int
    start: str
    end: str


class RuleMonth(BaseModel):
    rule: str
    month: str
    grants: int
    face_value: Decimal


class Refusals(BaseModel):
    rule: str
    reason: str
    items: int


class SimulationRead(BaseModel):
    campaign: str
    events: int
    grants: int
    customers: int
    face_value: Decimal
    by_rule_month: list[RuleMonth]
    refusals: list[Refusals]
    unusable_lines: int


class CampaignStatus(BaseModel):
    id: str
    status: str


def _checked(spec: CampaignSpec) -> CampaignSpec:
    compile_campaign(spec, source=f"campaign {spec.id}")  # expressions and references: 422 naming them
    return spec


@router.post("/validate", response_model=CampaignValid)
def validate(body: CampaignBody, principal: Reader) -> CampaignValid:
    """Check a definition against the schema and the expression language."""
    spec = _checked(body.definition)
    return CampaignValid(id=spec.id, name=spec.name, rules=len(spec.rules), start=str(spec.period.start),
                         end=str(spec.period.end))  # fmt: skip


@router.post("/simulate", response_model=SimulationRead)
def simulate_campaign(body: SimulateBody, request: Request, principal: Reader) -> SimulationRead:
    """Backtest over the events given, from empty state, touching nothing; eligibility is evaluated now
    over the caller's customers."""
    settings = settings_of(request)
    spec = _checked(body.definition)
    as_of = now_of(request).astimezone(settings.tz).date()
    result = views.simulate_campaign(settings, spec, events=body.events, as_of=as_of, within=principal.within)
    return SimulationRead(
        campaign=result.campaign,
        events=result.events,
        grants=result.grants,
        customers=result.customers,
        face_value=result.face_value,
        by_rule_month=[
            RuleMonth(rule=x.rule, month=x.month, grants=x.grants, face_value=x.face_value)
            for x in result.by_rule_month
        ],
        refusals=[Refusals(rule=x.rule, reason=x.reason, items=x.items) for x in result.refusals],
        unusable_lines=result.unusable_lines,
    )


class CampaignLineOut(BaseModel):
    id: str
    name: str
    status: str
    start: date
    end: date
    events: int
    grants: int
    budget_count: int | None
    budget_face_value: Decimal | None
    used_count: int
    used_face_value: Decimal


@router.get("", response_model=list[CampaignLineOut])
def list_campaigns(request: Request, principal: Reader) -> list[CampaignLineOut]:
    """Live campaigns: status, window, events applied, grants, the campaign budget and what it used."""
    with unit_of_work(settings_of(request)) as session:
        lines = views.campaign_list(session)
    return [CampaignLineOut.model_validate(vars(x)) for x in lines]


@router.post("", response_model=CampaignStatus, status_code=201)
def start(
    body: CampaignBody, request: Request, principal: Writer, idempotency_key: IdemKey = None
) -> JSONResponse:
    """Start (or update and resume) a live campaign."""
    spec = _checked(body.definition)
    now = now_of(request)
    source: dict[str, Any] = spec.model_dump(mode="json", exclude_unset=True)

    def write(session: Session) -> tuple[int, CampaignStatus]:
        row = live.start(session, spec, source_text=yaml.safe_dump(source, allow_unicode=True), now=now)
        return 201, CampaignStatus(id=row.id, status=row.status)

    return run_write(
        settings_of(request), actor=principal.actor, key=idempotency_key, method="POST",
        path=request.url.path, payload=body, now=now, write=write,
    )  # fmt: skip


@router.post("/{campaign_id}/stop", response_model=CampaignStatus)
def stop(
    campaign_id: Annotated[str, Path(max_length=64)],
    request: Request,
    principal: Writer,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    """Stop a live campaign (its state is kept; starting it again resumes it)."""

    def write(session: Session) -> tuple[int, CampaignStatus]:
        live.stop(session, campaign_id)
        return 200, CampaignStatus(id=campaign_id, status="stopped")

    return run_write(
        settings_of(request), actor=principal.actor, key=idempotency_key, method="POST",
        path=request.url.path, payload=None, now=now_of(request), write=write,
    )  # fmt: skip
