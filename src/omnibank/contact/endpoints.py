"""/contact: delivery receipts from real gateways.

``POST /contact/receipts`` lets a gateway report what became of messages it was handed (delivered, failed,
clicked). It needs the permission ``events:write`` (a receipt becomes an event in the log): give the gateway
an API token with that scope. Receipts are idempotent by nature (a receipt recorded before changes
nothing); the receipt events are emitted after the commit, with deterministic ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.api.idempotency import run_write
from omnibank.contact import receipts

router = APIRouter(prefix="/contact", tags=["contact"], responses=ERROR_RESPONSES)
#: the permission a gateway's API token needs to report receipts
RECEIPTS_PERMISSION = "events:write"
ReceiptWriter = Annotated[Principal, Depends(require(RECEIPTS_PERMISSION))]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: int = Field(ge=1, le=2**62, description="The outbox id sent to the gateway.")
    status: Literal["delivered", "failed", "clicked"]
    at: AwareDatetime = Field(description="When it happened, ISO 8601 with an offset.")
    reason: str | None = Field(default=None, max_length=200, description="Why it failed (failed only).")
    provider_ref: str | None = Field(default=None, max_length=128, description="The gateway's own id.")


class ReceiptsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipts: list[ReceiptIn] = Field(min_length=1, max_length=1000)


class ReceiptOut(BaseModel):
    message_id: int
    outcome: Literal["recorded", "unchanged", "refused"]
    status: str | None
    detail: str = ""


class ReceiptsOut(BaseModel):
    recorded: int
    unchanged: int
    refused: int
    results: list[ReceiptOut]


@router.post("/receipts", response_model=ReceiptsOut)
def post_receipts(
    body: ReceiptsIn, request: Request, principal: ReceiptWriter, idempotency_key: IdemKey = None
) -> JSONResponse:
    """Record delivery receipts (up to 1,000); each is answered on its own (a receipt for an unknown or
    never-sent message is refused, the others still recorded)."""
    settings = settings_of(request)
    now: datetime = now_of(request)

    def write(session: Session) -> tuple[int, ReceiptsOut]:
        results = receipts.record_receipts(
            session,
            [receipts.Receipt(r.message_id, r.status, r.at, r.reason, r.provider_ref) for r in body.receipts],
            now=now,
        )
        outs = [ReceiptOut(message_id=r.message_id, outcome=r.outcome, status=r.status, detail=r.detail)
                for r in results]  # fmt: skip
        return 200, ReceiptsOut(
            recorded=sum(r.outcome == "recorded" for r in results),
            unchanged=sum(r.outcome == "unchanged" for r in results),
            refused=sum(r.outcome == "refused" for r in results),
            results=outs,
        )

    response = run_write(
        settings, actor=principal.actor, key=idempotency_key, method="POST", path=request.url.path,
        payload=body, now=now, write=write,
    )  # fmt: skip
    receipts.emit_pending(settings)  # after the commit
    return response
