"""/events: send one event or a batch. They go through the same loader as ``omnibank load events`` (same
checks, same deduplication by ``event_id``), so sending an event twice adds it once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.api.idempotency import run_write
from omnibank.config import Settings
from omnibank.events.emit import emit
from omnibank.events.schemas import EventBatch, EventReject, EventsAccepted

router = APIRouter(prefix="/events", tags=["events"], responses=ERROR_RESPONSES)
Writer = Annotated[Principal, Depends(require("events:write"))]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
_MAX_REJECTS = 100


def _load(settings: Settings, events: list[dict[str, Any]]) -> EventsAccepted:
    done = emit(settings, events, max_rejects=_MAX_REJECTS)
    return EventsAccepted(
        loaded=done.loaded,
        duplicates=done.duplicates,
        rejected=done.rejected,
        rejects=[EventReject(index=r.index, reason=r.reason) for r in done.rejects],
    )


def _accept(request: Request, principal: Principal, key: str | None, payload: EventBatch) -> JSONResponse:
    settings = settings_of(request)

    def write(_session: Session) -> tuple[int, EventsAccepted]:
        return 200, _load(settings, payload.events)

    return run_write(
        settings, actor=principal.actor, key=key, method="POST", path=request.url.path, payload=payload,
        now=now_of(request), write=write,
    )  # fmt: skip


@router.post("", response_model=EventsAccepted)
def send_event(
    event: Annotated[dict[str, Any], Body(description="One event of the data contract.")],
    request: Request,
    principal: Writer,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    """Send one event; a rejected event is answered with the reason (and 200: nothing was written)."""
    return _accept(request, principal, idempotency_key, EventBatch(events=[event]))


@router.post("/batch", response_model=EventsAccepted)
def send_batch(
    body: EventBatch, request: Request, principal: Writer, idempotency_key: IdemKey = None
) -> JSONResponse:
    """Send up to 10,000 events (10 MiB); each is checked on its own, good ones are loaded."""
    return _accept(request, principal, idempotency_key, body)
