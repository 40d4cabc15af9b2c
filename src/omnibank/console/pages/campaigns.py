"""Campaigns: the live campaigns with their windows and budgets used, one campaign's details and budgets, and
the backtest (as the API's ``POST /campaigns/simulate``): a stored campaign, or a definition pasted as
YAML, over events pasted as JSON lines (or, with none, the data home's event log), grants and face value by
month as charts and a table. Eligibility counts only the caller's customers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse

from omnibank.api.auth import Principal, now_of, settings_of
from omnibank.campaigns import views
from omnibank.campaigns.spec import CampaignSpec
from omnibank.console.i18n import N_, Speaker
from omnibank.console.labels import RUN_STATUSES as STATUSES
from omnibank.console.web import CONSOLE, needs, render, speaker
from omnibank.db import unit_of_work
from omnibank.errors import AppError

router = APIRouter(prefix=CONSOLE)
Reader = Annotated[Principal, Depends(needs("campaigns:read"))]
CampaignId = Annotated[str, Path(max_length=64)]
MAX_TEXT = 2_000_000  # characters of a pasted definition or events

SCOPES = {"campaign": N_("Campaign"), "rule": N_("Rule"), "branch": N_("Branch")}


def _labels() -> dict[str, Any]:
    return {"statuses": STATUSES, "scopes": SCOPES}


@router.get("/campaigns")
def campaigns_page(request: Request, principal: Reader) -> HTMLResponse:
    with unit_of_work(settings_of(request)) as session:
        lines = views.campaign_list(session)
    return render(
        request, "campaigns/page.html", {"lines": lines, "definition": "", "events": "", **_labels()}
    )


@router.get("/campaigns/{campaign_id}")
def campaign_page(campaign_id: CampaignId, request: Request, principal: Reader) -> HTMLResponse:
    with unit_of_work(settings_of(request)) as session:
        detail = views.campaign_detail(session, campaign_id)
    return render(request, "campaigns/detail.html", {"detail": detail, "events": "", **_labels()})


def _charts(say: Speaker, result: views.Simulation) -> dict[str, Any]:
    months = [m.month for m in result.by_month]
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [say.gettext("Grants"), say.gettext("Face value (CNY)")]},
        "grid": {"left": 50, "right": 60, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "category", "data": months},
        "yAxis": [
            {"type": "value", "name": say.gettext("Grants")},
            {"type": "value", "name": say.gettext("Face value (CNY)")},
        ],
        "series": [
            {"name": say.gettext("Grants"), "type": "bar", "color": "#0b4f8a",
             "data": [m.grants for m in result.by_month]},
            {"name": say.gettext("Face value (CNY)"), "type": "line", "yAxisIndex": 1, "color": "#8a4b00",
             "data": [str(m.face_value) for m in result.by_month]},
        ],
    }  # fmt: skip


def _simulate(
    request: Request, principal: Principal, spec: CampaignSpec, events_text: str
) -> views.Simulation:
    settings = settings_of(request)
    as_of = now_of(request).astimezone(settings.tz).date()
    events = views.parse_events(events_text)
    return views.simulate_campaign(settings, spec, events=events, as_of=as_of, within=principal.within)


def _answer(request: Request, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    return render(request, "campaigns/simulation.html", {**_labels(), **context}, status=status)


@router.post("/campaigns/simulate")
def simulate_definition(
    request: Request,
    principal: Reader,
    definition: Annotated[str, Form(max_length=MAX_TEXT)] = "",
    events: Annotated[str, Form(max_length=MAX_TEXT)] = "",
) -> HTMLResponse:
    """Backtest a definition pasted as YAML."""
    context: dict[str, Any] = {"campaign_id": None, "definition": definition, "events": events}
    try:
        spec = views.parse_definition(definition)
        context["name"] = spec.name
        result = _simulate(request, principal, spec, events)
    except AppError as exc:
        return _answer(request, {**context, "error": exc.message, "result": None}, status=exc.status)
    return _answer(request, {**context, "result": result, "charts": _charts(speaker(request), result)})


@router.post("/campaigns/{campaign_id}/simulate")
def simulate_stored(
    campaign_id: CampaignId,
    request: Request,
    principal: Reader,
    events: Annotated[str, Form(max_length=MAX_TEXT)] = "",
) -> HTMLResponse:
    """Backtest a live campaign's definition (its live state is not touched)."""
    with unit_of_work(settings_of(request)) as session:
        row, spec = views.find_campaign(session, campaign_id)
        name = row.name
    context: dict[str, Any] = {"campaign_id": campaign_id, "name": name, "definition": "", "events": events}
    try:
        result = _simulate(request, principal, spec, events)
    except AppError as exc:
        return _answer(request, {**context, "error": exc.message, "result": None}, status=exc.status)
    return _answer(request, {**context, "result": result, "charts": _charts(speaker(request), result)})
