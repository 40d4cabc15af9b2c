"""/events: send one event or a batch. They take the event log's typed append
(:func:`omnibank.events.emit.emit`): the checks of ``omnibank load events`` with the same reasons (one
field mapping, :mod:`omnibank.events.columns`), the same protection of personal data, the same resolution of
a customer named by an identifier, the same deduplication by ``event_id`` (sending an event twice adds it
once), without a temporary file or a loader run: one event costs ~15 ms, not ~0.3 s, and a request adds at
most one log file per month its events fall in. A rejected event is answered with its position and the
reason (field names, never values).

Event writes are scoped as reads are: a caller that is not bank-wide (a token made with ``--org``) sends
events only for the customers it serves, each naming its ``customer_id``; an event for any other customer, or
for one that does not exist, is refused with the same reason and never reaches the log (nor binds an
identifier). Bank-wide ingest needs a token made bank-wide on purpose (``token create --bank-wide``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, now_of, require, settings_of
from omnibank.api.errors import ERROR_RESPONSES
from omnibank.api.idempotency import run_write
from omnibank.config import Settings
from omnibank.customers import repository as customers
from omnibank.customers.models import Customer
from omnibank.events.emit import Rejected, emit
from omnibank.events.schemas import EventBatch, EventReject, EventsAccepted

router = APIRouter(prefix="/events", tags=["events"], responses=ERROR_RESPONSES)
Writer = Annotated[Principal, Depends(require("events:write"))]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
_MAX_REJECTS = 100


OUT_OF_REACH = "customer_id: not a customer this caller may send events for"
NAME_THE_CUSTOMER = "customer_id: required from a caller limited to an org (it names the customer)"


def _out_of_reach(session: Session, principal: Principal, events: list[dict[str, Any]]) -> list[Rejected]:
    """The events a caller that is not bank-wide may not send: those naming no customer (a customer found
    by an identifier could be anyone's) and those of customers it does not serve — whether they exist or
    not, alike."""
    ids = sorted({cid for e in events if isinstance(cid := e.get("customer_id"), str) and cid})
    served: set[str] = set()
    scope = principal.reach(session)
    for i in range(0, len(ids), 500):
        stmt = select(Customer.customer_id).where(Customer.customer_id.in_(ids[i : i + 500]))
        served.update(session.scalars(customers.scoped(stmt, scope)))
    refused = []
    for index, event in enumerate(events):
        cid = event.get("customer_id")
        if not isinstance(cid, str) or not cid:
            refused.append(Rejected(index, NAME_THE_CUSTOMER))
        elif cid not in served:
            refused.append(Rejected(index, OUT_OF_REACH))
    return refused


def _load(
    session: Session, settings: Settings, principal: Principal, events: list[dict[str, Any]]
) -> EventsAccepted:
    refused = [] if principal.whole_bank else _out_of_reach(session, principal, events)
    if refused:  # the others go to the loader; its rejects are numbered in the request as sent
        left_out = {r.index for r in refused}
        kept = [i for i in range(len(events)) if i not in left_out]
        done = emit(settings, [events[i] for i in kept], max_rejects=_MAX_REJECTS)
        rejects = sorted([*refused, *(Rejected(kept[r.index], r.reason) for r in done.rejects)],
                         key=lambda r: r.index)[:_MAX_REJECTS]  # fmt: skip
        rejected = done.rejected + len(refused)
    else:
        done = emit(settings, events, max_rejects=_MAX_REJECTS)
        rejects, rejected = done.rejects, done.rejected
    return EventsAccepted(
        loaded=done.loaded,
        duplicates=done.duplicates,
        rejected=rejected,
        rejects=[EventReject(index=r.index, reason=r.reason) for r in rejects],
    )


def _accept(request: Request, principal: Principal, key: str | None, payload: EventBatch) -> JSONResponse:
    settings = settings_of(request)

    def write(session: Session) -> tuple[int, EventsAccepted]:
        return 200, _load(session, settings, principal, payload.events)

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
