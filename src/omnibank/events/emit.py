"""Adding events from inside the platform (delivery receipts, lead events, single API events).

They take the event log's typed append (:meth:`omnibank.events.log.EventLog.batch`), not the file loader:
each event is checked against the data contract with the same field mapping and the same reasons as the
loader (:mod:`omnibank.events.columns`), its personal data protected as the loader protects it
(:class:`omnibank.events.protect.Protector`: card numbers as tokens, personal fields as blind indexes, the
rest scanned), its customer found as the loader finds it when it names none
(:class:`omnibank.customers.identity.Resolver`), and the good ones appended in one batch: one Parquet file
per bank-local month a call touches, deduplicated by ``event_id`` against the whole log. No temporary
file, no loader run, no rejects file: ~15 ms for one event and ~0.13 s for 1,000 (mostly the protection
scan, in Python), where the round trip through a JSONL file and the loader took ~0.3 s a call whatever
its size, and wrote a file per call.

A caller that gives its events deterministic ids (``lead:<id>:contacted``) may emit them again after a
crash and they are added once. Emit after the database transaction that caused them has committed: the
event log is not part of that transaction. Identifiers that ``card.issued`` and ``identity.linked``
events bind are recorded in the store once the log has published them, as a load records them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from omnibank.config import Settings
from omnibank.errors import AppError
from omnibank.events.columns import KNOWN_TYPES, LEARNT_FROM, Checked, check, dumps, loads
from omnibank.events.log import COLUMN_NAMES, EventLog
from omnibank.events.protect import TEXT_COLUMNS, Protector, registry_of
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.private import ensure_home

_TYPED_COLUMNS = frozenset(COLUMN_NAMES)


@dataclass(frozen=True)
class Rejected:
    index: int  # 0-based position in the batch
    reason: str


@dataclass(frozen=True)
class Emitted:
    loaded: int
    duplicates: int
    rejected: int
    rejects: list[Rejected] = field(default_factory=list)
    files: int = 0  # Parquet files the call added to the log (at most one per month touched)


@dataclass
class _Good:
    index: int
    obj: dict[str, Any]
    event: Checked


def emit(
    settings: Settings,
    events: Sequence[Mapping[str, Any]],
    *,
    max_rejects: int = 100,
    cipher: FieldCipher | None = None,
) -> Emitted:
    """Append ``events`` (data-contract event objects) to the event log in one batch; what happened to
    them. Rejects carry the event's 0-based position and the reason (field names, never values)."""
    if not events:
        return Emitted(0, 0, 0)
    ensure_home(settings.home_dir)  # 0700 when this call creates it
    if cipher is None:
        from omnibank.security import get_cipher

        cipher = get_cipher(settings)
    tz = settings.tz
    rejects: list[Rejected] = []
    good: list[_Good] = []
    for index, event in enumerate(events):
        obj, why = _parsed(event)
        if obj is None:
            rejects.append(Rejected(index, why or "not valid JSON"))
            continue
        checked = check(obj, tz)
        if isinstance(checked, str):
            rejects.append(Rejected(index, checked))
        else:
            good.append(_Good(index, obj, checked))
    protector = Protector(cipher, registry_of(settings))
    bindings: list[dict[str, Any]] = []
    if good:
        good = _resolve(settings, cipher, protector, good, rejects, bindings)
    log = EventLog(settings)
    with log.batch() as batch:
        for g in good:
            batch.add(_row(g, protector))
    assert batch.result is not None
    if bindings:
        _learn(settings, cipher, bindings)
    rejects.sort(key=lambda r: r.index)
    return Emitted(
        loaded=batch.result.added,
        duplicates=batch.result.duplicates,
        rejected=len(rejects),
        rejects=rejects[:max_rejects],
        files=batch.result.files,
    )


def _parsed(event: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The event as the contract reads it (JSON text parsed back, numbers exact), or why it cannot be."""
    try:
        text = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
    except (ValueError, RecursionError):
        return None, _not_text(event) or "not valid JSON"
    if _SURROGATE.search(text):  # the walk only for the rare event that has one, to say where
        return None, _not_text(event) or "not valid JSON"
    obj = loads(text)
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    return obj, None


def _row(g: _Good, protector: Protector) -> dict[str, Any]:
    """The log row of a good event: typed columns, personal data protected in them and in the payload."""
    e = g.event
    protected = protector.protect(g.obj, dumps)
    row: dict[str, Any] = {
        "event_id": e.event_id,
        "type": e.type,
        "customer_id": e.customer_id,
        "ts": e.ts,
        "channel": e.channel,
        "payload": dumps(protected),
        "line_no": g.index + 1,  # the event's place in the call, as a loaded line's number in its file
    }
    row.update({k: v for k, v in e.columns.items() if k in _TYPED_COLUMNS})
    if e.type in KNOWN_TYPES:
        if "card_id" in row:
            row["card_id"] = protected.get("card_id")
        for name in TEXT_COLUMNS:
            if name in row and isinstance(g.obj.get(name), str):
                row[name] = protected.get(name)
    return row


def _binding(g: _Good, customer_id: str, protector: Protector) -> list[dict[str, Any]]:
    """The identifiers a good event binds to its customer (rows of ``BINDINGS_SCHEMA``)."""
    out = []
    for column, kind in LEARNT_FROM.get(g.event.type, ()):
        name = column.removeprefix("x_")
        value = g.event.columns.get(name) if kind == "card_id" else g.obj.get(name)
        if not isinstance(value, str) or not value.strip(" "):
            continue
        clear = value if kind == "card_id" else None
        out.append(
            {
                "kind": kind,
                "value": protector.card_token(value) if kind == "card_id" else value,
                "customer_id": customer_id,
                "event_id": g.event.event_id,
                "line_no": g.index + 1,
                "ts": g.event.ts,
                "clear": clear,
            }
        )
    return out


def _resolve(
    settings: Settings,
    cipher: FieldCipher,
    protector: Protector,
    good: list[_Good],
    rejects: list[Rejected],
    bindings: list[dict[str, Any]],
) -> list[_Good]:
    """Find the customer of the events that name none, as the loader does (identifiers bound in the store
    first, then those bound by earlier events of the batch); those not found are rejected. Fills
    ``bindings`` with what the kept events bind (repeats of an event id in the batch left out)."""
    from omnibank.customers.identity import BINDINGS_SCHEMA, Resolver

    seen: set[str] = set()
    explicit: list[dict[str, Any]] = []
    for g in good:
        if g.event.customer_id is not None and g.event.event_id not in seen:
            explicit.extend(_binding(g, g.event.customer_id, protector))
        seen.add(g.event.event_id)
    pending = [g for g in good if g.event.customer_id is None]
    if pending:
        resolver = Resolver(settings, cipher)
        if explicit:
            resolver.note(pa.Table.from_pylist(explicit, schema=BINDINGS_SCHEMA))
        names = sorted({k for g in pending for k in g.event.identifiers})
        fields: dict[str, list[str | None]] = {}
        for name in names:
            values = [g.event.identifiers.get(name) for g in pending]
            if name == "card_id":  # cards are bound by their token
                values = [None if v is None else protector.card_token(v) for v in values]
            fields[name] = values
        found, _via, reasons = resolver.resolve([g.index + 1 for g in pending], dict(fields))
        for g, customer, why in zip(pending, found, reasons, strict=True):
            if customer is None:
                rejects.append(Rejected(g.index, why or "customer_id: missing"))
            else:
                g.event.customer_id = customer
        good = [g for g in good if g.event.customer_id is not None]
    seen.clear()
    for g in good:
        if g.event.event_id not in seen and g.event.type in LEARNT_FROM:
            assert g.event.customer_id is not None
            bindings.extend(_binding(g, g.event.customer_id, protector))
        seen.add(g.event.event_id)
    return good


def _learn(settings: Settings, cipher: FieldCipher, bindings: list[dict[str, Any]]) -> None:
    """Record the identifiers the events bind, once the log has them (first binding wins; idempotent)."""
    from sqlalchemy.exc import SQLAlchemyError

    from omnibank.customers.identity import BINDINGS_SCHEMA, learn_identifiers
    from omnibank.db import unit_of_work

    table = pa.Table.from_pylist(bindings, schema=BINDINGS_SCHEMA)
    try:
        with unit_of_work(settings) as session:
            learn_identifiers(session, table, cipher=cipher)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise AppError(
            f"the events were added, but the identifiers they bind could not be recorded ({reason}); "
            "sending the same events again records them"
        ) from exc


_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_text(event: Any) -> str | None:
    """Why an event cannot be stored as text (a key or string holding a lone surrogate), or None. Walks
    the event without recursing (a request may nest as deep as its JSON parser allows)."""
    pending: list[tuple[str, Any]] = [("", event)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            bad = _SURROGATE.search(value)
            if bad is not None:
                field = _SURROGATE.sub("\ufffd", where) or "the event"  # a key may be the culprit
                code = f"U+{ord(bad.group()):04X}"
                return f"not valid JSON: {field} holds a lone surrogate ({code}), which is not a character"
        elif isinstance(value, Mapping):
            for key, item in reversed(list(value.items())):
                path = f"{where}.{key}" if where else str(key)
                pending += [(path, item), (path, str(key))]
        elif isinstance(value, list | tuple):
            pending += reversed([(f"{where}[{n}]", item) for n, item in enumerate(value)])
    return None
