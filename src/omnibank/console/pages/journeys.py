"""Journeys: the journeys started with their entries by status, and one journey's report (as the API's
``GET /journeys/{id}/report``): a funnel from entry through each step to conversion, the sends per step and
channel, and conversion against the control group with the uplift; and a simulation of a started journey
over the event log (as ``omnibank journey simulate``: read-only, nothing sent or stored). Counts only: no
personal data. Readers need ``campaigns:read``, as the API's /journeys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse

from omnibank.api.auth import Principal, settings_of
from omnibank.config import Settings
from omnibank.console.i18n import N_, Speaker
from omnibank.console.labels import RUN_STATUSES as STATUSES
from omnibank.console.web import CONSOLE, needs, render, speaker
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.journeys import views
from omnibank.kit.dates import DateOutOfRange, check_date

router = APIRouter(prefix=CONSOLE)
Reader = Annotated[Principal, Depends(needs("campaigns:read"))]
JourneyId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

STATES = {"active": N_("In progress"), "control": N_("Control group"), "done": N_("Done"),
          "converted": N_("Converted"), "exited": N_("Exited")}  # fmt: skip
COLOURS = {"active": "#0b4f8a", "control": "#8a8a8a", "done": "#2e7d32", "converted": "#8a4b00",
           "exited": "#b3261e"}  # fmt: skip


def _entries_chart(say: Speaker, rows: list[views.JourneyRow]) -> dict[str, Any]:
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [say.gettext(STATES[s]) for s in views.STATES]},
        "grid": {"left": 50, "right": 20, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "category", "data": [r.id for r in rows]},
        "yAxis": {"type": "value"},
        "series": [
            {"name": say.gettext(STATES[s]), "type": "bar", "stack": "entries", "color": COLOURS[s],
             "data": [r.entries.get(s, 0) for r in rows]}
            for s in views.STATES
        ],
    }  # fmt: skip


@router.get("/journeys")
def journeys_page(request: Request, principal: Reader) -> HTMLResponse:
    with unit_of_work(settings_of(request)) as session:
        rows = views.list_journeys(session)
    say = speaker(request)
    return render(request, "journeys/page.html", {
        "rows": rows, "statuses": STATUSES, "chart_option": _entries_chart(say, rows) if rows else None,
    })  # fmt: skip


def funnel(say: Speaker, report: views.JourneyReport) -> list[tuple[str, int]]:
    """The stages of the funnel: the treated customers, each step's reach (sent or done), the converted."""
    f = report.figures
    stages = [(say.gettext("Entered (treated)"), f.treated)]
    for s in f.steps.values():
        stages.append((say.gettext("Step %(step)s", step=s.step), s.sent + s.done))
    stages.append((say.gettext("Converted"), f.converted))
    return stages


def _funnel_chart(stages: list[tuple[str, int]]) -> dict[str, Any]:
    top = max((n for _, n in stages), default=0) or 1
    return {
        "tooltip": {"trigger": "item"},
        "series": [{
            "type": "funnel", "sort": "none", "min": 0, "max": top, "left": "10%", "width": "80%", "gap": 2,
            "label": {"show": True, "position": "inside"},
            "color": ["#0b4f8a", "#2e6da4", "#4b8bbe", "#8a4b00"],
            "data": [{"name": name, "value": n} for name, n in stages],
        }],
    }  # fmt: skip


def _uplift_chart(say: Speaker, report: views.JourneyReport) -> dict[str, Any]:
    f = report.figures
    rates = [round((f.rate or 0) * 100, 2), round((f.control_rate or 0) * 100, 2)]
    return {
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 50, "right": 20, "bottom": 30, "containLabel": True},
        "xAxis": {"type": "category", "data": [say.gettext("Treated"), say.gettext("Control group")]},
        "yAxis": {"type": "value", "name": "%"},
        "series": [{"type": "bar", "data": rates, "color": "#0b4f8a", "label": {"show": True}}],
    }


@router.get("/journeys/{journey_id}")
def journey_page(journey_id: JourneyId, request: Request, principal: Reader) -> HTMLResponse:
    with unit_of_work(settings_of(request)) as session:
        report = views.report(session, journey_id)
    say = speaker(request)
    stages = funnel(say, report)
    return render(request, "journeys/report.html", {
        "report": report, "f": report.figures, "stages": stages, "statuses": STATUSES, "states": STATES,
        "state_order": views.STATES, "funnel_option": _funnel_chart(stages),
        "uplift_option": _uplift_chart(say, report),
    })  # fmt: skip


# ------------------------------------------------------------------------------------------- simulation

ACTIONS = {"sent": N_("Sent"), "deferred": N_("Deferred"), "suppressed": N_("Suppressed"),
           "leads": N_("Leads"), "tags": N_("Tags"), "grants": N_("Grants")}  # fmt: skip
ACTION_COLOURS = {"sent": "#0b4f8a", "deferred": "#8a8a8a", "suppressed": "#b3261e", "leads": "#8a4b00",
                  "tags": "#2e7d32", "grants": "#6a3d9a"}  # fmt: skip


def _moment(say: Speaker, field: str, value: str, settings: Settings) -> datetime | None:
    """A datetime-local input (bank time), or None when empty; a bad value: 422 with a message."""
    text = value.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
        return check_date(field, moment if moment.tzinfo else moment.replace(tzinfo=settings.tz))
    except (ValueError, DateOutOfRange):
        pass
    raise InputRefused(say.gettext("%(field)s: enter a date and time, e.g. 2026-03-01T09:00", field=field))


def _actions_chart(say: Speaker, steps: tuple[views.SimulatedStep, ...]) -> dict[str, Any]:
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [say.gettext(ACTIONS[k]) for k in ACTIONS]},
        "grid": {"left": 50, "right": 20, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "category", "data": [s.step for s in steps]},
        "yAxis": {"type": "value"},
        "series": [
            {"name": say.gettext(label), "type": "bar", "stack": "actions", "color": ACTION_COLOURS[k],
             "data": [getattr(s, k) for s in steps]}
            for k, label in ACTIONS.items()
        ],
    }  # fmt: skip


@router.post("/journeys/{journey_id}/simulate")
def simulate_page(
    journey_id: JourneyId,
    request: Request,
    principal: Reader,
    since: Annotated[str, Form(max_length=40)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
) -> HTMLResponse:
    settings = settings_of(request)
    say = speaker(request)
    start = _moment(say, say.gettext("Start"), since, settings)
    end = _moment(say, say.gettext("End"), until, settings)
    if start is not None and end is not None and end < start:
        raise InputRefused(say.gettext("The end comes before the start."))
    with unit_of_work(settings) as session:
        row = views.journey_row(session, journey_id)
        summary = views.simulate_journey(session, settings, journey_id, since=start, until=end)
        session.rollback()
    sim = summary.journey(journey_id)
    return render(request, "journeys/simulate.html", {
        "journey": row, "summary": summary, "sim": sim, "since": since.strip(), "until": until.strip(),
        "tz": str(settings.tz), "actions": ACTIONS,
        "actions_option": _actions_chart(say, sim.steps) if sim.steps else None,
    })  # fmt: skip
