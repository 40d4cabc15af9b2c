"""No personal data in the event log: card tokens, the event-type registry and the scan of every string.

What the loader stores instead of personal data (docs/security.md says what remains):

* **Card numbers** (``card_id`` of any event) are replaced by a *card token* ``⟨card:<blind index>⟩``: the
  keyed HMAC blind index (:meth:`omnibank.kit.crypto.FieldCipher.blind_index`, kind ``card``) of the number
  (spaces and hyphens between its digits left out). The same card always gives the same token, so equality
  works everywhere (identity binding, resolution, expressions); the number itself is kept only encrypted,
  in the store (``customer_identifiers.value_enc``), for the masked display ``6225********5678``.
* **Declared personal fields**: the built-in ones (``name``, ``phone``, ``mobile``, ``id_number``,
  ``id_no``, ``id_card`` at the top of an event) and those an event-type registry (YAML, see
  :class:`Registry` and ``examples/events/registry.yaml``) declares, for every type or for one type, at
  any depth (``contact.phone``). Each is kept as its blind index under ``<field>_bidx`` (``store: index``,
  the default), as a token in place (``store: token``) or dropped (``store: drop``).
* **Everything else that looks personal**: every other string of the payload, nested objects, lists and
  free text included (object keys too, and whole numbers), is scanned for mainland mobile numbers
  (``13800138000``, ``+86 138 0013 8000``), resident ID numbers with a valid GB 11643 check digit and a
  real birth date, and Luhn-valid card numbers (13–19 digits of the payment networks' ranges, starting
  22–27 or 3–6, plain or in groups of four). Each is replaced by ``⟨phone|id_number|card:<blind index>⟩``.
  A candidate must stand alone: not touching an ASCII letter or digit, and not part of a decimal number
  (``13800138000.00`` is an amount). The event's own keys (``event_id``, ``type``, ``customer_id``,
  ``ts``, ``channel``), the identifiers ``wechat_openid``/``app_user_id`` and the numeric fields of the
  known types are not scanned.

A phone's blind index is the one ``customers.phone_bidx`` holds (the number as 11 digits), an ID number's
the one ``customers.id_number_bidx`` holds: with the keys, a token can be matched to a customer; without
them it reveals nothing but equality.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omnibank.errors import ConfigError
from omnibank.kit.idcard import valid_id_number
from omnibank.kit.personal import mobile_number as mobile_number
from omnibank.kit.personal import normalise as normalise

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from omnibank.config import Settings
    from omnibank.kit.crypto import FieldCipher

Kind = Literal["name", "phone", "id_number", "card", "other"]
Store = Literal["index", "token", "drop"]
KINDS: tuple[str, ...] = ("name", "phone", "id_number", "card", "other")
TOKEN_OPEN, TOKEN_CLOSE = "⟨", "⟩"
TOKEN_RE = re.compile("⟨(?:name|phone|id_number|card|other):[0-9a-f]{32}⟩")
#: the key a Parquet file of the log carries in its metadata once its rows are protected
PROTECTED_KEY = b"omnibank.protected"
PROTECTED_VERSION = b"1"

#: top-level fields of every event that hold personal data: (kind, how they are kept)
BUILT_IN_PERSONAL: dict[str, tuple[Kind, Store]] = {
    "name": ("name", "index"),
    "phone": ("phone", "index"),
    "mobile": ("phone", "index"),
    "id_number": ("id_number", "index"),
    "id_no": ("id_number", "index"),
    "id_card": ("id_number", "index"),
    "card_id": ("card", "token"),
}
#: top-level fields never scanned: the event's own keys and the identifiers bound to customers as they are
NOT_SCANNED = frozenset({"event_id", "type", "customer_id", "ts", "channel", "wechat_openid", "app_user_id"})
#: the types the platform defines (a registry may not redefine them) and their numeric fields (not scanned)
BUILT_IN_TYPES = frozenset(
    {
        "card.issued",
        "card.transaction",
        "points.earned",
        "points.redeem",
        "app.product_view",
        "app.login",
        "installment.offered",
        "installment.accepted",
        "identity.linked",
        "lead.created",
        "lead.contacted",
        "lead.won",
        "lead.lost",
        "lead.escalated",
        "message.delivered",
        "message.failed",
        "message.clicked",
    }
)
NUMERIC_FIELDS = frozenset({"amount", "points", "quantity", "terms", "duration_s", "primary", "new_customer"})
#: the typed text columns of the log that come from a payload field of the same name
TEXT_COLUMNS = ("merchant", "mcc", "product", "product_id", "reward")

# -- the scan -------------------------------------------------------------------------------------------

# A candidate stands alone: no ASCII letter or digit right before or after it, and it is not a part of
# a decimal number (the integer part of 13800138000.00, the fraction of 0.13800138000).
_LEFT = r"(?<![0-9A-Za-z])(?<![0-9]\.)"
_RIGHT = r"(?![0-9A-Za-z])(?!\.[0-9])"
_CANDIDATE = re.compile(
    _LEFT
    + "(?:"
    + r"(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}"  # a mobile number (+86, 3-4-4 groups)
    + r"|[0-9]{17}[0-9Xx]"  # a resident ID number
    + r"|[0-9]{13,19}"  # a card number
    + r"|[0-9]{4}(?:[ -][0-9]{4}){2}[ -][0-9]{1,7}"  # a card number in groups of four
    + r"|[0-9]{4}(?:[ -][0-9]{4}){3}[ -][0-9]{3}"  # … of 19 digits
    + r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5}"  # … grouped 4-6-5 (Amex) or 4-6-4 (Diners)
    + ")"
    + _RIGHT
)

_SEPARATORS = str.maketrans("", "", " -+")

#: a superset of what the scan replaces, for DuckDB's RE2 (no look-around): lines that match nothing here
#: hold nothing to replace, and skip the Python pass
PREFILTER_PATTERN = (
    r"(^|[^0-9])((\+|00)?86[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}([^0-9]|$)"
    r"|(^|[^0-9])[0-9]{17}[0-9Xx]([^0-9]|$)"
    r"|(^|[^0-9])(2[2-7]|[3-6])[0-9]{11,18}([^0-9]|$)"
    r"|[0-9]{4}[ -][0-9]{4,6}[ -][0-9]{4}"
)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a card number."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_number(digits: str) -> bool:
    """13–19 digits in the payment networks' ranges (22–27: Mastercard's 2-series; 3: Amex, JCB, Diners;
    4: Visa; 5: Mastercard; 6: UnionPay, Discover) that pass the Luhn check."""
    if not 13 <= len(digits) <= 19 or not digits.isascii() or not digits.isdigit():
        return False
    if not (digits[0] in "3456" or "22" <= digits[:2] <= "27"):
        return False
    return luhn_valid(digits)


# -- the registry ------------------------------------------------------------------------------------------


class FieldRule(BaseModel):
    """One field of an event type: personal or not, and how a personal one is kept."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    personal: Kind | None = Field(
        None, description="name, phone, id_number, card or other: the field holds personal data of this kind."
    )
    store: Store = Field(
        "index",
        description="index: replaced by <field>_bidx, its blind index; token: replaced in place by "
        "⟨kind:blind index⟩; drop: left out of the log.",
    )


class TypeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    fields: dict[str, FieldRule] = Field(default_factory=dict)


class RegistryFile(BaseModel):
    """``registry.yaml``: ``format: 1``, ``personal_everywhere`` (fields personal in every event type) and
    ``types`` (each custom type's fields). A field is named by its path: ``contact.phone`` is ``phone``
    inside the object ``contact`` (inside each element where ``contact`` is a list)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1]
    personal_everywhere: dict[str, FieldRule] = Field(default_factory=dict)
    types: dict[str, TypeSpec] = Field(default_factory=dict)


_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_PATH_RE = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]
    kind: str
    store: str


@dataclass(frozen=True)
class Registry:
    """Which fields of which events are personal (the built-in ones and those a bank's registry adds)."""

    everywhere: tuple[Rule, ...] = ()
    by_type: Mapping[str, tuple[Rule, ...]] = dataclass_field(default_factory=dict)
    source: str = "built in"

    def rules_for(self, event_type: str) -> tuple[Rule, ...]:
        return _BUILT_IN_RULES + self.everywhere + tuple(self.by_type.get(event_type, ()))

    @property
    def personal_types(self) -> tuple[str, ...]:
        """Types with personal fields of their own."""
        return tuple(sorted(t for t, rules in self.by_type.items() if rules))

    @property
    def everywhere_keys(self) -> tuple[str, ...]:
        """The last key of each path personal in every type (a line holding none needs no Python pass)."""
        return tuple(sorted({r.path[-1] for r in self.everywhere}))

    @classmethod
    def parse(cls, text: str, *, source: str) -> Registry:
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"event registry {source}: not valid YAML: {exc}") from None
        try:
            spec = RegistryFile.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"event registry {source}: {problems}") from None
        for name in spec.types:
            if not _TYPE_RE.match(name):
                raise ConfigError(
                    f"event registry {source}: '{name}' is not an event type such as shop.visit"
                )
            if name in BUILT_IN_TYPES:
                raise ConfigError(
                    f"event registry {source}: {name} is built in; its fields cannot be redefined"
                )

        def rules(fields: Mapping[str, FieldRule], where: str) -> tuple[Rule, ...]:
            out = []
            for path, rule in fields.items():
                if not _PATH_RE.match(path):
                    raise ConfigError(f"event registry {source}: {where}: '{path}' is not a field path")
                if rule.personal is None:
                    continue
                parts = tuple(path.split("."))
                if len(parts) == 1 and parts[0] in NOT_SCANNED:
                    raise ConfigError(f"event registry {source}: {where}: {path} cannot be personal")
                if len(parts) == 1 and parts[0] in BUILT_IN_PERSONAL:
                    raise ConfigError(f"event registry {source}: {where}: {path} is personal already")
                out.append(Rule(parts, rule.personal, rule.store))
            return tuple(out)

        return cls(
            everywhere=rules(spec.personal_everywhere, "personal_everywhere"),
            by_type={name: rules(t.fields, name) for name, t in spec.types.items()},
            source=source,
        )

    @classmethod
    def load(cls, path: Path | None) -> Registry:
        if path is None:
            return cls()
        try:
            text = path.expanduser().read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ConfigError(f"event registry {path} (OMNIBANK_EVENT_REGISTRY): {exc.strerror}") from None
        return cls.parse(text, source=str(path))


_BUILT_IN_RULES = tuple(Rule((key,), kind, store) for key, (kind, store) in BUILT_IN_PERSONAL.items())


def registry_of(settings: Settings) -> Registry:
    """The registry the settings name (``OMNIBANK_EVENT_REGISTRY``), or the built-in rules alone."""
    return Registry.load(settings.event_registry)


# -- protecting --------------------------------------------------------------------------------------------


class _Indexer:
    """The cipher's blind index, computed from the HMAC's inner and outer states (the same digest as
    :meth:`FieldCipher.blind_index`, for about 40% less: a card token is taken for every card event)."""

    def __init__(self, index_key: bytes):
        block = hashlib.sha256().block_size
        key = hashlib.sha256(index_key).digest() if len(index_key) > block else index_key
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key)).copy
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key)).copy

    def __call__(self, kind: str, value: str) -> str:
        inner = self._inner()
        inner.update(f"{kind}\x1f{value}".encode())
        outer = self._outer()
        outer.update(inner.digest())
        return outer.hexdigest()[:32]


_CACHE_LIMIT = 1 << 20


class Protector:
    """Protects events with one key ring and one registry: card tokens, declared fields, the scan."""

    def __init__(self, cipher: FieldCipher, registry: Registry | None = None):
        self.cipher = cipher
        self.registry = registry or Registry()
        self._index = _Indexer(cipher.ring.index_key)
        self._cards: dict[str, str] = {}

    # -- tokens
    def token(self, kind: str, value: str) -> str:
        """``⟨kind:blind index⟩`` of a personal value (normalised first)."""
        return f"{TOKEN_OPEN}{kind}:{self._index(kind, normalise(kind, value))}{TOKEN_CLOSE}"

    def blind_index(self, kind: str, value: str) -> str:
        return self._index(kind, normalise(kind, value))

    def card_token(self, value: str) -> str:
        """The token of a card number (a value that is a token already is kept)."""
        token = self._cards.get(value)
        if token is None:
            token = value if TOKEN_RE.fullmatch(value) else self.token("card", value)
            if len(self._cards) >= _CACHE_LIMIT:
                self._cards.clear()
            self._cards[value] = token
        return token

    def card_tokens(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """:meth:`card_token` of each value of an Arrow string array (NULL stays NULL), each distinct value
        computed once."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if values.null_count == len(values):
            return pa.nulls(len(values), pa.string())
        encoded = pc.dictionary_encode(values)
        tokens = pa.array([self.card_token(v) for v in encoded.dictionary.to_pylist()], pa.string())
        return pc.take(tokens, encoded.indices)

    def register(self, con: duckdb.DuckDBPyConnection, name: str = "omnibank_card_token") -> None:
        """Make :meth:`card_tokens` a DuckDB function of the connection."""
        from duckdb.func import PythonUDFType
        from duckdb.sqltypes import VARCHAR

        def tokens(values: Any) -> Any:  # DuckDB reads the annotations: none it cannot resolve
            return self.card_tokens(values)

        con.create_function(name, tokens, [VARCHAR], VARCHAR, type=PythonUDFType.ARROW)

    # -- the scan
    def _replace(self, match: re.Match[str]) -> str:
        text = match.group(0)
        digits = text.translate(_SEPARATORS)
        if len(digits) == 18 and valid_id_number(digits.upper()):
            return self.token("id_number", digits)
        if card_number(digits):
            return self.token("card", digits)
        phone = mobile_number(text)
        if phone is not None:
            return self.token("phone", phone)
        return text

    def scan_text(self, text: str) -> str:
        """``text`` with each mobile number, valid ID number and Luhn-valid card number in it replaced by its
        token."""
        if len(text) < 11:
            return text
        return _CANDIDATE.sub(self._replace, text)

    def _scan(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scan_text(value)
        if isinstance(value, bool) or value is None or isinstance(value, Decimal | float):
            return value
        if isinstance(value, int):
            text = str(value)
            scanned = self.scan_text(text)
            return value if scanned == text else scanned
        if isinstance(value, dict):
            return {self.scan_text(str(k)): self._scan(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scan(v) for v in value]
        return value

    # -- a whole event
    def _personal(self, kind: str, value: Any, dumps: Callable[[Any], str]) -> str:
        text = value if isinstance(value, str) else dumps(value)
        return self.blind_index(kind, text)

    def _apply(
        self, obj: dict[str, Any], path: tuple[str, ...], rule: Rule, dumps: Callable[[Any], str]
    ) -> str | None:
        """Apply ``rule`` at ``path`` under ``obj`` (in place); the key it left at the top, if any."""
        key = path[0]
        if len(path) > 1:
            inner = obj.get(key)
            for item in inner if isinstance(inner, list) else [inner]:
                if isinstance(item, dict):
                    self._apply(item, path[1:], rule, dumps)
            return None
        if key not in obj:
            return None
        value = obj[key]
        if rule.store == "drop":
            del obj[key]
            return None
        if rule.store == "token":
            if value is not None and not (isinstance(value, str) and TOKEN_RE.fullmatch(value)):
                text = value if isinstance(value, str) else dumps(value)
                obj[key] = self.card_token(text) if rule.kind == "card" else self.token(rule.kind, text)
            return key
        # index: <key>_bidx in its place
        bidx = None if value is None else self._personal(rule.kind, value, dumps)
        items = list(obj.items())
        obj.clear()
        for k, v in items:
            if k == key:
                obj[f"{key}_bidx"] = bidx
            else:
                obj[k] = v
        return f"{key}_bidx"

    def protect(self, obj: Mapping[str, Any], dumps: Callable[[Any], str]) -> dict[str, Any]:
        """A copy of an event (parsed JSON) with its personal data replaced (see the module's docstring);
        ``dumps`` writes a non-string value as JSON text (its blind index is taken of that text)."""
        event_type = obj.get("type")
        rules = self.registry.rules_for(event_type if isinstance(event_type, str) else "")
        out: dict[str, Any] = _deep_copy(dict(obj))
        kept = set(NOT_SCANNED)  # top-level keys not scanned
        for rule in rules:
            left = self._apply(out, rule.path, rule, dumps)
            if left is not None:
                kept.add(left)
        if event_type in BUILT_IN_TYPES:
            kept |= NUMERIC_FIELDS
        return {
            (key if key in kept else self.scan_text(key)): (value if key in kept else self._scan(value))
            for key, value in out.items()
        }


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def card_token_of_home(value: str) -> str:
    """The token of a card number with the configured data home's keys (expressions compare card ids)."""
    from omnibank.security import get_cipher

    return Protector(get_cipher()).card_token(value)


# -- the DuckDB side ---------------------------------------------------------------------------------------


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def needs_python_sql(registry: Registry, *, raw: str, card_text: str, card_fragment: str, type_: str) -> str:
    """A DuckDB condition: the line (``raw``) may hold something that only the Python pass replaces. Its
    card number (``card_text``, replaced by the fast path) is left out of the scan; a card written with
    escapes, or not as a string, needs the Python pass."""
    scanned = (
        f"CASE WHEN {card_text} IS NOT NULL THEN replace({raw}, '\"' || {card_text} || '\"', '\"\"') "
        f"ELSE {raw} END"
    )
    parts = [
        f"regexp_matches({scanned}, {sql_string(PREFILTER_PATTERN)})",
        f"contains({raw}, '\\u003')",  # a digit written as an escape
        f"({card_fragment} IS NOT NULL AND {card_fragment} <> 'null' "
        f"AND (NOT starts_with({card_fragment}, '\"') OR contains({card_fragment}, '\\')))",
    ]
    if registry.personal_types:
        parts.append(f"{type_} IN ({', '.join(sql_string(t) for t in registry.personal_types)})")
    parts += [f"contains({raw}, {sql_string(chr(34) + key + chr(34))})" for key in registry.everywhere_keys]
    return "(" + " OR ".join(parts) + ")"


def card_payload_sql(*, payload: str, card_text: str, card_token: str) -> str:
    """The fast path's payload: each string equal to the card number replaced by its token."""
    return (
        f"CASE WHEN {card_text} IS NOT NULL "
        f"THEN replace({payload}, '\"' || {card_text} || '\"', '\"' || {card_token} || '\"') "
        f"ELSE {payload} END"
    )


def protected_file(path: Path) -> bool:
    """Whether a Parquet file of the log carries the loader's protection mark."""
    import pyarrow.parquet as pq

    return (pq.read_schema(path).metadata or {}).get(PROTECTED_KEY) == PROTECTED_VERSION


def tokens_in(values: Iterable[str]) -> list[str]:
    """The tokens found in some texts (tests and checks)."""
    return [t for v in values for t in TOKEN_RE.findall(v)]
