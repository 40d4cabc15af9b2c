"""Segments (客群): the saved segments, an expression editor with the live count as the user types, a masked
preview, saving; one segment's snapshot history and who entered and left; the lifecycle × wealth heat map per
occupation. Every figure counts only the caller's customers (``Principal.within``, as the API does)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from omnibank.api.auth import Principal, client_ip, now_of, settings_of
from omnibank.console.i18n import N_, Speaker
from omnibank.console.labels import OCCUPATIONS
from omnibank.console.web import CONSOLE, redirect, render, speaker
from omnibank.console.web import needs as _needs
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.segments import service, views

router = APIRouter(prefix=CONSOLE)
Reader = Annotated[Principal, Depends(_needs("segments:read"))]
Writer = Annotated[Principal, Depends(_needs("segments:write"))]
PREVIEW_ROWS = 20
EXPRESSION_MAX = 4000

STAGES = {  # the example tags' names (examples/tags); others show as named
    "lifecycle_new": N_("New"),
    "lifecycle_growing": N_("Growing"),
    "lifecycle_mature": N_("Mature"),
    "lifecycle_dormant": N_("Dormant"),
    "lifecycle_churn_risk": N_("Churn risk"),
    "wealth_mass": N_("Mass"),
    "wealth_affluent": N_("Affluent"),
    "wealth_high_value": N_("High value"),
    "wealth_private": N_("Private banking"),
    "—": N_("None"),
}


def _today(request: Request) -> date:
    return now_of(request).astimezone(settings_of(request).tz).date()


def _source(request: Request) -> str:
    return f"console:{client_ip(request)}"


def _fragment_error(request: Request, exc: AppError) -> HTMLResponse:
    """An expression's error shown in place (200, so htmx swaps it in)."""
    return render(request, "segments/_error.html", {"message": exc.message})


# ------------------------------------------------------------------------------------------------ list


@router.get("/segments")
def segments_page(request: Request, principal: Reader) -> HTMLResponse:
    return _list_page(request, principal)


def _list_page(
    request: Request, principal: Principal, *, form: dict[str, str] | None = None, error: str = "",
    status: int = 200,
) -> HTMLResponse:  # fmt: skip
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        rows = views.list_segments(session, principal.reach(session))
    return render(
        request,
        "segments/list.html",
        {"rows": rows, "form": form or {}, "error": error, "n": None, "as_of": _today(request),
         "can_write": principal.can("segments:write"), "max_length": EXPRESSION_MAX},
        status=status,
    )  # fmt: skip


@router.post("/segments/count")
def count(request: Request, principal: Reader, expr: Annotated[str, Form()] = "") -> HTMLResponse:
    """The live count: the number of the caller's customers matching ``expr``, or the parser's error."""
    text = expr.strip()
    if not text:
        return render(request, "segments/_count.html", {"n": None})
    settings, as_of = settings_of(request), _today(request)
    try:
        with unit_of_work(settings) as session:
            n = service.count(session, settings, text, as_of=as_of, within=principal.within)
    except AppError as exc:
        return _fragment_error(request, exc)
    return render(request, "segments/_count.html", {"n": n, "as_of": as_of})


@router.post("/segments/preview")
def preview(request: Request, principal: Reader, expr: Annotated[str, Form()] = "") -> HTMLResponse:
    """The first matching customers of the caller's, names masked; audited as the API's preview."""
    from omnibank.security import get_cipher

    text = expr.strip()
    if not text:
        return render(request, "segments/_count.html", {"n": None})
    settings, as_of = settings_of(request), _today(request)
    try:
        with unit_of_work(settings) as session:
            n, rows = service.preview(
                session, settings, get_cipher(settings), text, as_of=as_of, limit=PREVIEW_ROWS,
                actor=principal.actor, within=principal.within, source=_source(request),
            )  # fmt: skip
    except AppError as exc:
        return _fragment_error(request, exc)
    return render(request, "segments/_preview.html",
                  {"n": n, "rows": rows, "as_of": as_of, "occupations": OCCUPATIONS})  # fmt: skip


@router.post("/segments", response_model=None)
def save(
    request: Request,
    principal: Writer,
    name: Annotated[str, Form()] = "",
    expr: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    """Save (or replace) a named segment, then show it."""
    form = {"name": name, "expr": expr, "description": description}
    try:
        with unit_of_work(settings_of(request)) as session:
            seg = service.save(session, name=name.strip(), text=expr.strip(), description=description.strip(),
                               actor=principal.actor, source=_source(request))  # fmt: skip
            saved = seg.name
    except AppError as exc:
        return _list_page(request, principal, form=form, error=exc.message, status=422)
    return redirect(f"{CONSOLE}/segments/{saved}")


# ---------------------------------------------------------------------------------------------- matrix


def _label(say: Speaker, name: str) -> str:
    return say.gettext(STAGES[name]) if name in STAGES else name


def _heatmap(say: Speaker, m: views.MatrixView) -> dict[str, Any]:
    """An ECharts heat map: wealth tiers across, lifecycle stages down, a visualMap for the scale."""
    data = [[x, y, m.cells[y][x]] for y in range(len(m.lifecycle)) for x in range(len(m.wealth))]
    return {
        "tooltip": {"position": "top"},
        "grid": {"left": 110, "right": 20, "top": 20, "bottom": 90},
        "xAxis": {"type": "category", "data": [_label(say, w) for w in m.wealth], "splitArea": {"show": True},
                  "name": say.gettext("Wealth tier"), "nameLocation": "middle", "nameGap": 30},
        "yAxis": {"type": "category", "data": [_label(say, lc) for lc in m.lifecycle],
                  "splitArea": {"show": True}},
        "visualMap": {"min": 0, "max": max(m.peak, 1), "calculable": True, "orient": "horizontal",
                      "left": "center", "bottom": 0, "inRange": {"color": ["#f0f5fb", "#0b5cad"]}},
        "series": [{"name": say.gettext("Customers"), "type": "heatmap", "data": data,
                    "label": {"show": True},
                    "emphasis": {"itemStyle": {"borderColor": "#333", "borderWidth": 1}}}],
    }  # fmt: skip


@router.get("/segments/matrix")
def matrix_page(
    request: Request,
    principal: Reader,
    occupation: Annotated[str, Query(max_length=40)] = "",
    where: Annotated[str, Query(max_length=EXPRESSION_MAX)] = "",
) -> HTMLResponse:
    settings, as_of, say = settings_of(request), _today(request), speaker(request)
    m: views.MatrixView | None = None
    error = ""
    try:
        with unit_of_work(settings) as session:
            m = views.matrix_view(session, settings, as_of=as_of, within=principal.within,
                                  occupation=occupation or None, where=where.strip() or None)  # fmt: skip
    except AppError as exc:
        error = exc.message
    return render(
        request,
        "segments/matrix.html",
        {"m": m, "error": error, "occupation": occupation, "where": where, "as_of": as_of,
         "occupations": OCCUPATIONS, "label": lambda n: _label(say, n),
         "option": _heatmap(say, m) if m is not None else None},
        status=200 if m is not None else 422,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ one segment


def _history_chart(say: Speaker, detail: views.SegmentDetail) -> dict[str, Any]:
    return {
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 60, "right": 20, "top": 20, "bottom": 40},
        "xAxis": {"type": "category", "data": [say.date(p.as_of) for p in detail.history]},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"name": say.gettext("Members"), "type": "line", "symbolSize": 8,
                    "data": [p.members for p in detail.history]}],
    }  # fmt: skip


@router.get("/segments/{name}")
def segment_page(request: Request, name: str, principal: Reader) -> HTMLResponse:
    with unit_of_work(settings_of(request)) as session:
        detail = views.segment_detail(session, name, principal.reach(session))
    return render(
        request,
        "segments/detail.html",
        {"d": detail, "can_write": principal.can("segments:write"), "whole_bank": principal.whole_bank,
         "option": _history_chart(speaker(request), detail) if detail.history else None},
    )  # fmt: skip


@router.post("/segments/{name}/snapshot")
def snapshot_now(request: Request, name: str, principal: Writer) -> Response:
    """Evaluate the segment now (as of the bank's today) and record who entered and who left."""
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        service.snapshot(session, settings, name, as_of=_today(request), actor=principal.actor,
                         source=_source(request))  # fmt: skip
    return redirect(f"{CONSOLE}/segments/{name}")
