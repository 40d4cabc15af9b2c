"""``Idempotency-Key`` for API writes: the same key with the same request replays the stored response;
with another request it is refused (409). The key is reserved in the same transaction as the write, so
a write and its stored response commit together or not at all, and two requests with one key at once
end with one write (the second waits on the key's unique row, then replays)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnibank.api.errors import InvalidRequest
from omnibank.api.models import IdempotencyKey
from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.errors import Conflict

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")
REPLAYED_HEADER = "Idempotent-Replayed"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


def request_hash(method: str, path: str, payload: BaseModel | None) -> str:
    body = payload.model_dump(mode="json") if payload is not None else None
    text = json.dumps([method.upper(), path, body], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _find(session: Session, actor: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey)
        .where(IdempotencyKey.actor == actor, IdempotencyKey.key == key)
        .execution_options(populate_existing=True)
    )


def _replay(row: IdempotencyKey, digest: str) -> JSONResponse:
    if row.request_hash != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; use a new key for a new request",
            details={"key": row.key},
        )
    return JSONResponse(json.loads(row.response_body), status_code=row.response_status,
                        headers={REPLAYED_HEADER: "true"})  # fmt: skip


Write = Callable[[Session], tuple[int, BaseModel]]


def run_write(
    settings: Settings,
    *,
    actor: str,
    key: str | None,
    method: str,
    path: str,
    payload: BaseModel | None,
    now: datetime,
    write: Write,
) -> JSONResponse:
    """Run ``write`` in one unit of work; with a key, exactly once per (actor, key)."""
    if key is None:
        with unit_of_work(settings) as session:
            status, model = write(session)
        return JSONResponse(model.model_dump(mode="json"), status_code=status)
    if not KEY_PATTERN.match(key):
        raise InvalidRequest(
            "Idempotency-Key: 1 to 200 visible ASCII characters",
            details={"loc": ["header", "Idempotency-Key"]},
        )  # fmt: skip
    digest = request_hash(method, path, payload)
    for attempt in range(2):
        try:
            with unit_of_work(settings) as session:
                found = _find(session, actor, key)
                if found is not None:
                    return _replay(found, digest)
                row = IdempotencyKey(actor=actor, key=key, request_hash=digest, response_status=0,
                                     response_body="", created_at=now)  # fmt: skip
                session.add(row)
                session.flush()  # reserves the key: a concurrent request with it waits here
                status, model = write(session)
                body = model.model_dump(mode="json")
                row.response_status = status
                row.response_body = json.dumps(body, ensure_ascii=False)
                session.flush()
            return JSONResponse(body, status_code=status)
        except IntegrityError:
            if attempt:
                raise
            # another request with this key committed first: replay it (or refuse a different request)
    raise AssertionError("unreachable")  # pragma: no cover
