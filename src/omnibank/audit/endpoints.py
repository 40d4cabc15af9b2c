"""/audit: the trail, for auditors and administrators."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from omnibank.api.auth import Principal, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.audit import views
from omnibank.db import unit_of_work
from omnibank.kit.dates import BankDateTime

router = APIRouter(prefix="/audit", tags=["audit"], responses=ERROR_RESPONSES)


class AuditEntryRead(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str | None
    detail: dict[str, Any]
    source: str
    reason: str


# no control characters (a NUL byte is refused by PostgreSQL's text type: a 422 here, not a 500 there)
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


@router.get("", response_model=list[AuditEntryRead])
def list_audit(
    request: Request,
    principal: Annotated[Principal, Depends(require("audit:read"))],
    actor: Annotated[str | None, Query(max_length=128, pattern=_PRINTABLE)] = None,
    subject: Annotated[str | None, Query(max_length=64, pattern=_PRINTABLE)] = None,
    since: BankDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AuditEntryRead]:
    """The latest entries, newest first, by actor, subject and/or time (``since`` without an offset is
    bank-local, from 1900-01-01 to 2199-12-31)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=settings_of(request).tz)
    with unit_of_work(settings_of(request)) as session:
        rows = views.trail(session, actor=actor, subject=subject, since=since, limit=limit).entries
        return [
            AuditEntryRead(
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                subject_type=e.subject_type,
                subject_id=e.subject_id,
                detail=json.loads(e.detail or "{}"),
                source=getattr(e, "source", "") or "",
                reason=getattr(e, "reason", "") or "",
            )  # fmt: skip
            for e in rows
        ]
