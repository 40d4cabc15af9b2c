"""The data contract's event fields and the log columns they fill: one mapping, read two ways.

The file loader compiles it (:mod:`omnibank.events.sqlgen`) into one vectorised DuckDB statement, because a
file may hold ten million lines; the typed append of the platform's own events and of single API events
(:mod:`omnibank.events.emit`) reads it in Python, because a few events do not pay for a DuckDB statement
(~0.3 s a call when they went through the loader). Both give the same typed columns and the same first
failing check with the same reason (``tests/events/test_internal_append.py`` runs both over the same bad
events), so a change to a type's fields is made here once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from omnibank.customers.identity import MAX_VALUE, RESOLVE_FIELDS
from omnibank.customers.values import CARD_TIERS, EVENT_CHANNELS

CHANNELS = EVENT_CHANNELS
TIERS = CARD_TIERS
TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"
# YYYY-MM-DD[T ]HH:MM[:SS[.fff]] with an optional Z, ±HH:MM or ±HHMM; the cast then checks the calendar.
TS_PATTERN = (
    r"^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])-"
    r"(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?$"
)
# An amount's text: digits, optionally a point and one or two decimals (trailing zeros beyond are fine).
AMOUNT_PATTERN = r"^[0-9]+(\.[0-9]{1,2}0*)?$"
INTEGER_PATTERN = r"^-?[0-9]+$"
NUMBER_PATTERN = r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$"

# Top-level fields holding personal data, and the blind-index kind each is stored under.
PII_KINDS: dict[str, str] = {
    "name": "name",
    "phone": "phone",
    "mobile": "phone",
    "id_number": "id_number",
    "id_no": "id_number",
    "id_card": "id_number",
}


@dataclass(frozen=True)
class Field:
    name: str  # the JSON key
    kind: str  # str | opt_str | opt_id | tier | bool | amount | pos_int | nonneg_number
    column: str  # the log column


# Known types and their fields, in the order they are checked.
KNOWN_TYPES: dict[str, tuple[Field, ...]] = {
    "card.issued": (
        Field("card_id", "str", "card_id"),
        Field("product", "str", "product"),
        Field("tier", "tier", "tier"),
        Field("primary", "bool", "is_primary"),
        Field("new_customer", "bool", "new_customer"),
    ),
    "card.transaction": (
        Field("card_id", "str", "card_id"),
        Field("amount", "amount", "amount"),
        Field("merchant", "opt_str", "merchant"),
        Field("mcc", "opt_str", "mcc"),
    ),
    "points.earned": (Field("points", "pos_int", "points"),),
    "points.redeem": (
        Field("reward", "str", "reward"),
        Field("quantity", "pos_int", "quantity"),
    ),
    "app.product_view": (
        Field("product_id", "str", "product_id"),
        Field("duration_s", "nonneg_number", "duration_s"),
    ),
    "app.login": (),
    # bill installments (issue 19): an offer shown or sent on a card's bill, and the holder taking it;
    # ``terms`` (the number of monthly instalments) is kept in the log's integer column ``quantity``
    "installment.offered": (
        Field("card_id", "str", "card_id"),
        Field("amount", "amount", "amount"),
    ),
    "installment.accepted": (
        Field("card_id", "str", "card_id"),
        Field("amount", "amount", "amount"),
        Field("terms", "pos_int", "quantity"),
    ),
    "identity.linked": (
        Field("wechat_openid", "opt_id", "wechat_openid"),
        Field("app_user_id", "opt_id", "app_user_id"),
    ),
}
# Known types that need at least one of some optional fields.
ONE_OF_REQUIRED: dict[str, tuple[str, ...]] = {"identity.linked": ("wechat_openid", "app_user_id")}
# Known types whose customer_id may not be left out (the event binds identifiers to that customer).
CUSTOMER_ID_REQUIRED = ("identity.linked",)
# Identifiers learnt from known types: (the result column holding the value, identifier kind).
LEARNT_FROM: dict[str, tuple[tuple[str, str], ...]] = {
    "card.issued": (("card_id", "card_id"),),
    "identity.linked": (("x_wechat_openid", "wechat_openid"), ("x_app_user_id", "app_user_id")),
}

BAD_MESSAGES = {
    "str": "must be a non-empty string",
    "opt_str": "must be a string",
    "opt_id": f"must be a non-empty string of at most {MAX_VALUE} characters",
    "tier": "must be one of " + ", ".join(TIERS),
    "bool": "must be true or false (a JSON boolean)",
    "amount": "must be a decimal > 0 with at most 2 decimals",
    "pos_int": "must be an integer > 0",
    "nonneg_number": "must be a number >= 0",
}


# -- exact JSON ------------------------------------------------------------------------------------------


def loads(text: str) -> Any:
    """Parse JSON keeping numbers exact (decimals as Decimal)."""
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any) -> str:
    """Compact JSON for what :func:`loads` returns; numbers written as they were read."""
    try:  # most events hold no decimal: the C encoder writes them ~10x faster, and alike
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError:
        return _dumps_exact(value)


def _dumps_exact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dumps_exact(str(k))}:{_dumps_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dumps_exact(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


# -- the Python reading of the mapping ---------------------------------------------------------------------

_TYPE_RE = re.compile(TYPE_PATTERN)
_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_TS_CHECK = re.compile(TS_PATTERN)
_AMOUNT_RE = re.compile(AMOUNT_PATTERN)
_INTEGER_RE = re.compile(INTEGER_PATTERN)
_NUMBER_RE = re.compile(NUMBER_PATTERN)
_BIGINT = 2**63 - 1
_CENT = Decimal("0.01")
_MAX_AMOUNT = Decimal("1e16")  # DECIMAL(18,2)
_TYPED: dict[str, Field] = {f.name: f for fields in KNOWN_TYPES.values() for f in fields}


def _absent(obj: Mapping[str, Any], key: str) -> bool:
    return obj.get(key) is None  # absent or JSON null


def _trimmed(value: str) -> str:
    return value.strip(" ")  # DuckDB's trim(): spaces only


def _fragment(value: Any) -> str:
    """A value's JSON text, as the loader's statement sees it."""
    return dumps(value)


def parse_ts(text: str, tz: tzinfo) -> datetime | None:
    """An ISO 8601 date-time of the contract as an aware instant (no offset: the bank's zone), or None when
    it is not a real date and time."""
    m = _TS_RE.match(text)
    if m is None:
        return None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    micro = int((m.group(7) or "").ljust(6, "0")[:6] or 0)
    offset = m.group(8)
    try:
        if offset is None:
            return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        if offset == "Z":
            zone: tzinfo = UTC
        else:
            digits = offset[1:].replace(":", "")
            delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            zone = timezone(-delta if offset[0] == "-" else delta)
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    except ValueError:
        return None


def _typed(field: Field, value: Any) -> Any:
    """The typed value of a present field, or None when it breaks its kind (as the loader's statement)."""
    kind = field.kind
    if kind == "str":
        return value if isinstance(value, str) and _trimmed(value) else None
    if kind == "opt_str":
        return value if isinstance(value, str) else None
    if kind == "opt_id":
        return value if isinstance(value, str) and _trimmed(value) and len(value) <= MAX_VALUE else None
    if kind == "tier":
        return value if isinstance(value, str) and value in TIERS else None
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind == "pos_int":
        if isinstance(value, int) and 0 < value <= _BIGINT:
            return value
        return None
    if kind == "nonneg_number":
        if not isinstance(value, int | Decimal) or not _NUMBER_RE.match(text := _fragment(value)):
            return None
        number = float(text)
        return number if math.isfinite(number) and number >= 0 else None
    if kind == "amount":
        number = isinstance(value, int | Decimal)
        text = value if isinstance(value, str) else _fragment(value) if number else ""
        if not _AMOUNT_RE.match(text):
            return None
        try:
            amount = Decimal(text).quantize(_CENT)
        except InvalidOperation:
            return None
        return amount if _CENT <= amount < _MAX_AMOUNT else None
    raise ValueError(kind)


def identifier(obj: Mapping[str, Any], key: str) -> str | None:
    """The text of an identifier field that may stand in for a missing customer_id (a phone or ID number
    may come as a JSON number), or None."""
    value = obj.get(key)
    if key in PII_KINDS and isinstance(value, int | Decimal) and not isinstance(value, bool):
        text = _fragment(value)
        value = text if _NUMBER_RE.match(text) else None
    return value if isinstance(value, str) and _trimmed(value) else None


@dataclass
class Checked:
    """A good event, read: its common fields, the typed columns of its type, the identifiers it carries."""

    event_id: str
    type: str
    customer_id: str | None  # None: to be found by one of ``identifiers``
    ts: datetime
    channel: str | None
    columns: dict[str, Any]  # typed columns of a known type (only those set)
    identifiers: dict[str, str]  # RESOLVE_FIELDS present, when customer_id is missing


def check(obj: Any, tz: tzinfo) -> Checked | str:
    """Read one event (parsed as :func:`loads` parses) by the contract: the event, or the reason of the first
    failing check, worded as the loader words it."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    raw_id = obj.get("event_id")
    if raw_id is None:
        return "event_id: missing"
    if isinstance(raw_id, str) and _trimmed(raw_id):
        event_id = raw_id
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        event_id = str(raw_id)
    else:
        return "event_id: must be a non-empty string or an integer"
    type_ = obj.get("type")
    if type_ is None:
        return "type: missing"
    if not isinstance(type_, str) or not _TYPE_RE.match(type_):
        return "type: must be lowercase dotted words such as card.transaction"
    customer = obj.get("customer_id")
    identifiers: dict[str, str] = {}
    if customer is None:
        if type_ not in CUSTOMER_ID_REQUIRED:
            identifiers = {k: v for k in RESOLVE_FIELDS if (v := identifier(obj, k)) is not None}
        if not identifiers:
            return "customer_id: missing"
    elif not isinstance(customer, str) or not _trimmed(customer):
        return "customer_id: must be a non-empty string"
    ts_text = obj.get("ts")
    if ts_text is None:
        return "ts: missing"
    if not isinstance(ts_text, str) or not _TS_CHECK.match(ts_text):
        return "ts: not an ISO 8601 date-time"
    ts = parse_ts(ts_text, tz)
    if ts is None:
        return "ts: not a real date and time"
    channel = obj.get("channel")
    if channel is not None and channel not in CHANNELS:
        return "channel: must be one of " + ", ".join(CHANNELS)
    columns: dict[str, Any] = {}
    fields = KNOWN_TYPES.get(type_, ())
    if type_ in ONE_OF_REQUIRED:
        names = ONE_OF_REQUIRED[type_]
        if all(_absent(obj, n) for n in names):
            return f"{names[0]}: missing ({type_} needs {' or '.join(names)})"
    for f in fields:
        if _absent(obj, f.name):
            if f.kind in ("opt_str", "opt_id"):
                continue
            return f"{f.name}: missing"
        value = _typed(f, obj[f.name])
        if value is None:
            return f"{f.name}: {BAD_MESSAGES[f.kind]}"
        columns[f.column] = value
    return Checked(event_id, type_, customer, ts, channel, columns, identifiers)
