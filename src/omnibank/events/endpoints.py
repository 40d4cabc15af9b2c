"""/events: send one event or a batch. They go through the same loader as ``omnibank load events`` (same
checks, same deduplication by ``event_id``), so sending an event twice adds it once."""

from __future__ import annotations

import csv
import json
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.api.idempotency import run_write
from omnibank.config import Settings
from omnibank.events.schemas import EventBatch, EventReject, EventsAccepted
from omnibank.ingest.service import load_file

router = APIRouter(prefix="/events", tags=["events"], responses=ERROR_RESPONSES)
Writer = Annotated[Principal, Depends(require("events:write"))]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
_MAX_REJECTS = 100


def _load(settings: Settings, events: list[dict[str, Any]]) -> EventsAccepted:
    folder = settings.home_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"api-events-{secrets.token_hex(8)}.jsonl"
    try:
        with path.open("w", encoding="utf-8") as fh:
            for event in events:
                fh.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        report = load_file("events", path, settings=settings, progress=False)
    finally:
        path.unlink(missing_ok=True)
    return EventsAccepted(
        loaded=report.loaded,
        duplicates=report.duplicates,
        rejected=report.rejected,
        rejects=_rejects(report.rejects_path),
    )


def _rejects(path: str | None) -> list[EventReject]:
    if not path:
        return []
    out = []
    with Path(path).open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            out.append(EventReject(index=int(row["line"]) - 1, reason=row["reason"]))
            if len(out) >= _MAX_REJECTS:
                break
    return out


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
