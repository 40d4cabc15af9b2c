"""``Idempotency-Key`` for API writes: the same key with the same request replays the stored response;
with another request it is refused (409). The key is reserved in the same transaction as the write, so
a write and its stored response commit together or not at all, and two requests with one key at once
end with one write (the second waits on the key's unique row, then replays).

A stored response is replayed for ``api_idempotency_ttl_hours`` (default 24 h); after that the key counts
as unused again, and expired keys are pruned, at most once a minute per process, after a write."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import CursorResult, Table, delete, select, tuple_, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from omnibank.api.errors import InvalidRequest
from omnibank.api.models import IdempotencyKey
from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.db.upsert import insert_for
from omnibank.errors import Conflict

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")
REPLAYED_HEADER = "Idempotent-Replayed"
#: how often (by the request clock) a process prunes expired keys, and how many at most at a time
PRUNE_EVERY = timedelta(minutes=1)
PRUNE_BATCH = 10_000


_TABLE = cast(Table, IdempotencyKey.__table__)


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


def request_hash(method: str, path: str, payload: BaseModel | None) -> str:
    body = payload.model_dump(mode="json") if payload is not None else None
    text = json.dumps([method.upper(), path, body], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _reserve(session: Session, *, actor: str, key: str, digest: str, now: datetime, cutoff: datetime) -> bool:
    """Reserve (actor, key) in one statement: insert it, or take over a row older than ``cutoff`` (expired);
    False when a live row holds it. A concurrent request that reserved it first is waited for (the unique
    row), so after it commits this sees its row, and after it rolls back this reserves."""
    table = _TABLE
    values: dict[str, Any] = {
        "request_hash": digest,
        "response_status": 0,
        "response_body": "",
        "created_at": now,
    }
    stmt = (
        insert_for(session, table)
        .values(actor=actor, key=key, **values)
        .on_conflict_do_update(
            index_elements=[table.c.actor, table.c.key], set_=values, where=table.c.created_at < cutoff
        )
        .returning(table.c.actor)
    )
    return session.execute(stmt).first() is not None


def _stored(session: Session, actor: str, key: str) -> Any:
    table = _TABLE
    return session.execute(
        select(table.c.key, table.c.request_hash, table.c.response_status, table.c.response_body).where(
            table.c.actor == actor, table.c.key == key
        )
    ).first()


def _replay(row: Any, digest: str) -> JSONResponse:
    if row.request_hash != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; use a new key for a new request",
            details={"key": row.key},
        )
    return JSONResponse(json.loads(row.response_body), status_code=row.response_status,
                        headers={REPLAYED_HEADER: "true"})  # fmt: skip


def prune(session: Session, *, now: datetime, ttl: timedelta, limit: int = PRUNE_BATCH) -> int:
    """Delete up to ``limit`` keys stored before ``now - ttl``; how many."""
    table = _TABLE
    old = (
        select(table.c.actor, table.c.key)
        .where(table.c.created_at < now - ttl)
        .order_by(table.c.created_at)
        .limit(limit)
    )
    result = session.execute(delete(table).where(tuple_(table.c.actor, table.c.key).in_(old)))
    return int(cast(CursorResult[Any], result).rowcount)


_last_prune: dict[str, datetime] = {}
_prune_lock = threading.Lock()


def _prune_due(settings: Settings, now: datetime) -> bool:
    """Whether this process prunes now (at most once a ``PRUNE_EVERY``); if so, the time is taken."""
    with _prune_lock:
        last = _last_prune.get(settings.db_url)
        if last is not None and abs(now - last) < PRUNE_EVERY:
            return False
        _last_prune[settings.db_url] = now
        return True


def _prune(settings: Settings, now: datetime) -> None:
    with unit_of_work(settings) as session:
        prune(session, now=now, ttl=timedelta(hours=settings.api_idempotency_ttl_hours))


def _maybe_prune(settings: Settings, now: datetime) -> None:
    if _prune_due(settings, now):
        _prune(settings, now)


async def after_write(settings: Settings, now: datetime) -> None:
    """After a write made outside ``run_write`` with a key (the coupon fast path): prune as it would."""
    if _prune_due(settings, now):
        await run_in_threadpool(_prune, settings, now)


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
    """Run ``write`` in one unit of work; with a key, exactly once per (actor, key) while it is live.
    Round trips beside the write's own: the reservation (one statement) and the stored response."""
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
    cutoff = now - timedelta(hours=settings.api_idempotency_ttl_hours)
    with unit_of_work(settings) as session:
        if not _reserve(session, actor=actor, key=key, digest=digest, now=now, cutoff=cutoff):
            return _replay(_stored(session, actor, key), digest)
        status, model = write(session)
        body = model.model_dump(mode="json")
        table = _TABLE
        session.execute(
            update(table)
            .where(table.c.actor == actor, table.c.key == key)
            .values(response_status=status, response_body=json.dumps(body, ensure_ascii=False))
        )
    _maybe_prune(settings, now)
    return JSONResponse(body, status_code=status)
