"""/cx: the customer-experience read layer over HTTP — alerts and their owners (scoped by the customers
rule), a survey's results, the funnel, and a journey map's index (maps from ``OMNIBANK_CX_MAPS_DIR``). No
SQL here: each endpoint calls the module the CLI and the console call."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from omnibank.api.auth import Principal, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.db import unit_of_work
from omnibank.errors import NotFound

router = APIRouter(prefix="/cx", tags=["customer experience"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require("customers:read"))]
By = Annotated[str | None, Query(pattern=r"^(branch|channel|segment:[a-z][a-z0-9_]{0,63})$")]
Period = Annotated[str | None, Query(pattern=r"^\d{4}-(\d{2}|W\d{2})$")]


class AlertOut(BaseModel):
    key: str
    rule_id: str
    subject_kind: str
    subject_id: str
    owner: str
    reason: str
    context: str
    raised_at: datetime
    due_at: datetime | None
    ticket_id: str | None
    status: str
    closed_at: datetime | None
    action: str | None


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(
    request: Request,
    principal: Reader,
    state: Annotated[Literal["open", "closed", "all"], Query()] = "open",
    rule: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,47}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertOut]:
    """Alerts about the customers and branches the caller sees, each with its one owner (责任落实)."""
    from omnibank.cx.views import Viewer, alerts

    settings = settings_of(request)
    with unit_of_work(settings) as session:
        found = alerts(
            session, Viewer(scope=principal.customer_scope(session)), state=state, rule=rule, limit=limit
        )
    return [
        AlertOut(
            key=a.key,
            rule_id=a.rule_id,
            subject_kind=a.subject_kind,
            subject_id=a.subject_id,
            owner=a.owner,
            reason=a.reason,
            context=a.context,
            raised_at=a.raised_at,
            due_at=a.due_at,
            ticket_id=a.ticket_id,
            status=a.status,
            closed_at=a.closed_at,
            action=a.action,
        )  # fmt: skip
        for a in found
    ]


class SurveyRowOut(BaseModel):
    group: str
    responses: int
    nps: Decimal | None
    nps_low: Decimal | None
    nps_high: Decimal | None
    promoters: int
    passives: int
    detractors: int
    csat: Decimal | None
    csat_low: Decimal | None
    csat_high: Decimal | None
    ces: Decimal | None
    ces_low: Decimal | None
    ces_high: Decimal | None


@router.get("/surveys/{survey_id}", response_model=list[SurveyRowOut])
def survey_results(
    survey_id: str, request: Request, principal: Reader, by: By = None, period: Period = None
) -> list[SurveyRowOut]:
    """A survey's NPS, CSAT and CES per group with 95% intervals (aggregates: nothing personal)."""
    from omnibank.cx.survey_report import survey_report

    settings = settings_of(request)
    with unit_of_work(settings) as session:
        rows = survey_report(session, settings, survey_id, by=by, period=period)
    return [SurveyRowOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/funnel")
def journey_funnel(
    request: Request,
    principal: Reader,
    journey: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
    by: Annotated[Literal["channel", "branch"] | None, Query()] = None,
) -> list[dict[str, object]]:
    """Sent, delivered, clicked and converted per journey step, over the customers the caller sees."""
    from omnibank.cx.funnel import funnel
    from omnibank.cx.views import Viewer

    settings = settings_of(request)
    with unit_of_work(settings) as session:
        viewer = Viewer(scope=principal.customer_scope(session))
        rows = funnel(session, journey=journey, by=by, viewer=viewer)
    return [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.as_dict().items()} for r in rows]


@router.get("/index/{map_id}")
def experience_index(
    map_id: str, request: Request, principal: Reader, by: By = None, period: Period = None
) -> dict[str, object]:
    """A journey map's index (the map's file in OMNIBANK_CX_MAPS_DIR, by its id) per group: every node's
    weight, raw value, score and coverage."""
    from omnibank.cx.index import compute_index
    from omnibank.cx.maps import load_map
    from omnibank.cx.reading import log_types
    from omnibank.segments.engine import vocabulary

    settings = settings_of(request)
    folder = settings.cx_maps_folder()
    with unit_of_work(settings) as session:
        vocab, known = vocabulary(session), log_types(settings)
        maps = {}
        for path in sorted(folder.glob("*_map.yaml")) if folder is not None else []:
            spec = load_map(path, vocabulary=vocab, known_types=known)
            maps[spec.id] = spec
        if map_id not in maps:
            raise NotFound(f"no journey map {map_id!r} (maps: {', '.join(sorted(maps)) or 'none'})")
        result = compute_index(session, settings, maps[map_id], by=by, period=period)

    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "map": result.map_id, "name": result.map_name, "by": result.by, "period": result.period,
        "warnings": result.warnings,
        "rows": [
            {"group": r.group, "level": r.level, "path": r.path, "id": r.id, "name": r.name,
             "weight": str(r.weight), "raw": text(r.raw), "score": text(r.score), "coverage": str(r.coverage),
             "n": r.n}
            for r in result.rows
        ],
    }  # fmt: skip
