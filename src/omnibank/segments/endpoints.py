"""/segments: count, preview and export an expression, restricted to the caller's org subtree (the
expression is combined with ``in_org(<caller's org>)`` on its checked tree); save a segment."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, audit_source, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.api.idempotency import run_write
from omnibank.db import unit_of_work
from omnibank.segments import service
from omnibank.segments.schemas import (
    PreviewQuery,
    PreviewRowRead,
    SegmentCountRead,
    SegmentCreate,
    SegmentExportRead,
    SegmentPreviewRead,
    SegmentQuery,
    SegmentRead,
)

router = APIRouter(prefix="/segments", tags=["segments"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require("segments:read"))]


def _as_of(request: Request, given: date | None) -> date:
    return given or now_of(request).astimezone(settings_of(request).tz).date()


@router.post("/count", response_model=SegmentCountRead)
def count(body: SegmentQuery, request: Request, principal: Reader) -> SegmentCountRead:
    """How many of the caller's customers match the expression."""
    settings, as_of = settings_of(request), _as_of(request, body.as_of)
    with unit_of_work(settings) as session:
        n = service.count(session, settings, body.expression, as_of=as_of, within=principal.within)
    return SegmentCountRead(count=n, as_of=as_of)


@router.post("/preview", response_model=SegmentPreviewRead)
def preview(body: PreviewQuery, request: Request, principal: Reader) -> SegmentPreviewRead:
    """The first matching customers of the caller's, names masked; audited."""
    from omnibank.security import get_cipher

    settings, as_of = settings_of(request), _as_of(request, body.as_of)
    with unit_of_work(settings) as session:
        n, rows = service.preview(
            session, settings, get_cipher(settings), body.expression, as_of=as_of, limit=body.limit,
            actor=principal.actor, within=principal.within, source=audit_source(request),
        )  # fmt: skip
    return SegmentPreviewRead(count=n, as_of=as_of, rows=[PreviewRowRead(**vars(r)) for r in rows])


@router.post("/export", response_model=SegmentExportRead)
def export(body: SegmentQuery, request: Request, principal: Reader) -> SegmentExportRead:
    """Every matching customer id of the caller's; audited."""
    settings, as_of = settings_of(request), _as_of(request, body.as_of)
    with unit_of_work(settings) as session:
        ids = service.export_ids(
            session,
            settings,
            body.expression,
            as_of=as_of,
            actor=principal.actor,
            within=principal.within,
            source=audit_source(request),
        )
    return SegmentExportRead(count=len(ids), as_of=as_of, customer_ids=ids)


@router.post("", response_model=SegmentRead, status_code=201)
def save(
    body: SegmentCreate,
    request: Request,
    principal: Annotated[Principal, Depends(require("segments:write"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """Save (or replace) a named segment."""

    def write(session: Session) -> tuple[int, SegmentRead]:
        seg = service.save(
            session,
            name=body.name,
            text=body.expression,
            description=body.description,
            actor=principal.actor,
            source=audit_source(request),
        )
        return 201, SegmentRead(name=seg.name, expression=seg.expression, description=seg.description,
                                created_by=seg.created_by, updated_at=seg.updated_at)  # fmt: skip

    return run_write(
        settings_of(request), actor=principal.actor, key=idempotency_key, method="POST",
        path=request.url.path, payload=body, now=now_of(request), write=write,
    )  # fmt: skip
