"""One customer behind many identifiers, and merging two customers into one.

* **Identifiers.** Phone and ID number are found through the blind indexes on ``customers`` (never stored
  here, never in plaintext). Card ids (from ``card.issued``), WeChat openids and app user ids (from
  ``identity.linked``) are kept in ``customer_identifiers``, learnt when events are loaded: the first
  binding of an identifier wins, a later one naming another customer is counted as a conflict. A card id
  is kept as its token (the event log's, :mod:`omnibank.events.protect`) with the number encrypted beside
  it, for the masked display.
* **Resolution.** An event without ``customer_id`` that carries a known identifier is stored under that
  identifier's customer (:class:`Resolver`, used by the event loader).
* **Merges** are read here (:func:`survivor_of`, :func:`merged_ids_of`); they are made by
  :func:`omnibank.customer_ops.merge.merge_customers`, which also moves tags and segment memberships
  (domains above this one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.config import Settings
from omnibank.customers.models import IDENTIFIER_KINDS, Customer, CustomerIdentifier, CustomerMerge
from omnibank.db.bulk import insert_new_columns
from omnibank.errors import NotFound
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.masking import mask_card_id, mask_id_number, mask_phone
from omnibank.kit.personal import normalise

# Event fields that can stand in for a missing customer_id, in the order they are tried, and how each is
# looked up: an identifier kind in customer_identifiers, or a blind-index kind on customers.
RESOLVE_FIELDS: tuple[str, ...] = (
    "card_id",
    "wechat_openid",
    "app_user_id",
    "phone",
    "mobile",
    "id_number",
    "id_no",
    "id_card",
)
_IDENTIFIER_FIELDS = {"card_id": "card_id", "wechat_openid": "wechat_openid", "app_user_id": "app_user_id"}
_BLIND_FIELDS = {
    "phone": "phone",
    "mobile": "phone",
    "id_number": "id_number",
    "id_no": "id_number",
    "id_card": "id_number",
}
_BIDX_COLUMNS = {"phone": Customer.phone_bidx, "id_number": Customer.id_number_bidx}

_IDENTIFIERS: Table = CustomerIdentifier.__table__  # type: ignore[assignment]
MAX_VALUE = 128  # customer_identifiers.value
MAX_CUSTOMER_ID = 32
MAX_REASON = 500
_IN_CHUNK = 2000  # values per IN (...) lookup


def _chunks(values: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _merges(session: Session) -> dict[str, str]:
    """Every merged customer and its survivor (merges are few: made one by one by staff)."""
    return {m: s for m, s in session.execute(select(CustomerMerge.merged_id, CustomerMerge.survivor_id))}


# -- merges ------------------------------------------------------------------------------------------------


def survivor_of(session: Session, customer_id: str) -> str:
    """The customer ``customer_id`` now counts as: its survivor if it was merged away, else itself."""
    survivor = session.scalar(select(CustomerMerge.survivor_id).where(CustomerMerge.merged_id == customer_id))
    return survivor or customer_id


def merged_ids_of(session: Session, survivor_id: str) -> list[str]:
    """The customers merged into ``survivor_id`` (directly: merges are always one hop)."""
    return list(
        session.scalars(
            select(CustomerMerge.merged_id)
            .where(CustomerMerge.survivor_id == survivor_id)
            .order_by(CustomerMerge.merged_id)
        )
    )


# -- learning identifiers from events -----------------------------------------------------------------------


# What learning takes: one row per binding an event makes, in any order (line_no is the file order).
BINDINGS_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("value", pa.string()),
        ("customer_id", pa.string()),
        ("event_id", pa.string()),
        ("line_no", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("clear", pa.string()),  # a card's number (value is its token): encrypted when it is recorded
    ]
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class LearnResult:
    learnt: Counter[str] = field(default_factory=Counter)  # new identifiers, by kind
    conflicts: Counter[str] = field(default_factory=Counter)  # bindings kept out (first wins), by kind
    skipped: int = 0  # values or customer ids too long to keep

    def as_report(self) -> dict[str, Any]:
        """For a load report: counts only, no identifier values."""
        return {"learnt": dict(self.learnt), "conflicts": dict(self.conflicts), "skipped": self.skipped}


def learn_identifiers(
    session: Session, bindings: pa.Table, *, cipher: FieldCipher | None = None
) -> LearnResult:
    """Record the identifiers that events bind to their customers (``bindings``: :data:`BINDINGS_SCHEMA`).
    An identifier keeps the customer it is bound to in the store, else the one its earliest line names;
    each binding naming another customer is counted as a conflict. Customers merged away count as their
    survivor. Idempotent. The work over the file's lines runs in DuckDB, so a large file costs little
    Python. A new card is recorded with its number (``clear``) encrypted by ``cipher``."""
    result = LearnResult()
    if not bindings.num_rows:
        return result
    merges = _merges(session)
    pairs = pa.schema([("a", pa.string()), ("b", pa.string())])
    con = duckdb.connect(":memory:")
    try:
        con.register("bindings", bindings.select(BINDINGS_SCHEMA.names).cast(BINDINGS_SCHEMA))
        con.register("merges", pa.table([list(merges), list(merges.values())], schema=pairs))
        fits = f"length(value) <= {MAX_VALUE} AND length(customer_id) <= {MAX_CUSTOMER_ID}"
        ((skipped,),) = con.sql(f"SELECT count(*) FILTER (WHERE NOT ({fits})) FROM bindings").fetchall()
        result.skipped = int(skipped)
        # what the store holds already for these identifiers
        stored: dict[str, list[str]] = {"kind": [], "value": [], "customer_id": []}
        for (kind,) in con.sql("SELECT DISTINCT kind FROM bindings ORDER BY kind").fetchall():
            if kind not in IDENTIFIER_KINDS:
                raise ValueError(f"unknown identifier kind {kind!r}")
            if not _held(session, kind):
                continue
            rel = con.sql(f"SELECT DISTINCT value FROM bindings WHERE kind = '{kind}' AND {fits}")
            values = set(rel.fetchnumpy()["value"].tolist())
            for value, customer in _bound(session, kind, values):
                stored["kind"].append(kind)
                stored["value"].append(value)
                stored["customer_id"].append(merges.get(customer, customer))
        con.register("stored", pa.table(stored, schema=pa.schema([(name, pa.string()) for name in stored])))
        con.execute(
            f"""
CREATE TABLE winners AS
WITH lines AS (
    SELECT b.kind, b.value, coalesce(m.b, b.customer_id) AS customer_id, b.event_id, b.line_no, b.ts, b.clear
    FROM bindings b LEFT JOIN merges m ON m.a = b.customer_id
    WHERE {fits}
), firsts AS (
    SELECT kind, value, arg_min(customer_id, line_no) AS customer_id, arg_min(event_id, line_no) AS event_id,
        arg_min(epoch_us(ts), line_no) AS ts_us, arg_min(clear, line_no) AS clear
    FROM lines GROUP BY kind, value
), decided AS (
    SELECT f.kind, f.value, coalesce(s.customer_id, f.customer_id) AS customer_id,
        s.customer_id IS NULL AS new, f.event_id, f.ts_us, f.clear
    FROM firsts f LEFT JOIN stored s USING (kind, value)
)
SELECT d.kind, d.value, d.customer_id, d.new, d.event_id, d.ts_us, d.clear,
    count(*) FILTER (WHERE l.customer_id <> d.customer_id) AS conflicts
FROM decided d JOIN lines l USING (kind, value)
GROUP BY ALL
"""
        )
        for kind, conflicts in con.sql(
            "SELECT kind, sum(conflicts) FROM winners GROUP BY kind HAVING sum(conflicts) > 0"
        ).fetchall():
            result.conflicts[kind] = int(conflicts)
        new = con.sql(
            "SELECT kind, value, customer_id, event_id, ts_us, clear FROM winners WHERE new "
            "ORDER BY kind, value"
        ).to_arrow_table()
    finally:
        con.close()
    kinds = new.column("kind").to_pylist()
    values = new.column("value").to_pylist()
    result.learnt.update(kinds)
    insert_new_columns(
        session,
        _IDENTIFIERS,
        {
            "kind": kinds,
            "value": values,
            "value_enc": [
                _encrypt_card(cipher, v, c) if k == "card_id" else None
                for k, v, c in zip(kinds, values, new.column("clear").to_pylist(), strict=True)
            ],
            "customer_id": new.column("customer_id").to_pylist(),
            "source": [f"event:{e}"[:64] for e in new.column("event_id").to_pylist()],
            "first_seen_at": [_EPOCH + timedelta(microseconds=us) for us in new.column("ts_us").to_pylist()],
        },
    )
    return result


_BOUND = select(CustomerIdentifier.value, CustomerIdentifier.customer_id)


def card_context(token: str) -> str:
    """The associated data of a card number's ciphertext: its row."""
    return f"customer_identifiers.value:{token}"


def _encrypt_card(cipher: FieldCipher | None, token: str, number: str | None) -> bytes | None:
    if number is None:
        return None
    if cipher is None:
        raise ValueError("a card number is learnt: a cipher is needed to keep it encrypted")
    return cipher.encrypt(normalise("card", number), context=card_context(token))


def card_display(cipher: FieldCipher, row: CustomerIdentifier) -> str:
    """A card as people see it: its number masked (``6225********5678``), or (number unknown) its token
    shortened."""
    if row.value_enc:
        return mask_card_id(cipher.decrypt(row.value_enc, context=card_context(row.value)))
    return short_token(row.value)


def short_token(token: str) -> str:
    """``⟨card:1a2b3c4d…⟩``: a token as a listing shows it."""
    return token[: token.index(":") + 9] + "…⟩" if token.startswith("⟨") and ":" in token else token


def _held(session: Session, kind: str) -> int:
    return session.scalar(select(func.count()).where(CustomerIdentifier.kind == kind)) or 0


def _bound(session: Session, kind: str, values: Collection[str]) -> Iterable[tuple[str, str]]:
    """(value, customer) of those ``values`` of ``kind`` already bound in the store. Asked for many
    values at once (a large file), one scan of the kind is cheaper than that many lookups."""
    held = _held(session, kind)
    if not held:
        return []
    stmt = _BOUND.where(CustomerIdentifier.kind == kind)
    if len(values) * 4 >= held:
        wanted = values if isinstance(values, set | dict) else set(values)
        return [(v, c) for v, c in session.connection().execute(stmt) if v in wanted]
    ordered = sorted(values)
    return [
        (v, c)
        for chunk in _chunks(ordered)
        for v, c in session.connection().execute(stmt.where(CustomerIdentifier.value.in_(chunk)))
    ]


# -- resolving events without a customer_id ------------------------------------------------------------------


class Resolver:
    """Finds the customer of events that carry no ``customer_id`` but an identifier, for one load.

    Identifiers bound in the store come first (first wins); then those bound by lines of the same file
    that carry a ``customer_id`` (:meth:`note`), if such a line comes earlier in the file. Phones and ID
    numbers are looked up through the blind index; one matching customer is needed (merged customers count
    as their survivor). Lookups are cached for the load; the store is read in short transactions."""

    def __init__(self, settings: Settings, cipher: FieldCipher):
        self.settings = settings
        self.cipher = cipher
        # kind -> value -> the customer bound in the store (None: not bound)
        self._bound: dict[str, dict[str, str | None]] = {k: {} for k in IDENTIFIER_KINDS}
        # kind -> value -> (customer, line) of the first line of the file binding it
        self._in_file: dict[str, dict[str, tuple[str, int]]] = {k: {} for k in IDENTIFIER_KINDS}
        self._by_bidx: dict[tuple[str, str], tuple[str, ...]] = {}  # (kind, blind index) -> customers
        self._noted: list[pa.Table] = []
        self._merges: dict[str, str] | None = None
        self._held: dict[str, int] = {}  # identifiers of each kind in the store
        self._asked: Counter[str] = Counter()  # values of each kind looked up so far
        self._complete: set[str] = set()  # kinds read whole into _bound

    def note(self, bindings: pa.Table) -> None:
        """Bindings made by lines of the file being loaded that name their customer (:data:`BINDINGS_SCHEMA`,
        in file order); looked at only if some line needs resolving."""
        self._noted.append(bindings)

    def _fold(self) -> None:
        for table in self._noted:
            columns = [table.column(c).to_pylist() for c in ("kind", "value", "customer_id", "line_no")]
            for kind, value, customer, line in zip(*columns, strict=True):
                self._in_file[kind].setdefault(value, (customer, line))
        self._noted.clear()

    def _survivor(self, customer_id: str) -> str:
        assert self._merges is not None
        return self._merges.get(customer_id, customer_id)

    def _session(self) -> Any:
        from omnibank.db import unit_of_work

        return unit_of_work(self.settings)

    def _lookup_bound(self, kind: str, values: set[str]) -> None:
        """Fill ``_bound[kind]`` for ``values`` (None: not bound in the store)."""
        if kind in self._complete:
            return
        bound = self._bound[kind]
        missing = [v for v in values if v not in bound]
        if not missing:
            return
        with self._session() as session:
            if kind not in self._held:
                self._held[kind] = _held(session, kind)
            self._asked[kind] += len(missing)
            if self._asked[kind] * 4 >= self._held[kind]:  # most of the kind: read it all, once
                bound.update(
                    session.connection().execute(_BOUND.where(CustomerIdentifier.kind == kind)).all()
                )
                self._complete.add(kind)
                return
            bound.update(_bound(session, kind, missing))
        for value in missing:
            bound.setdefault(value, None)

    def _lookup_bidx(self, kind: str, indexes: set[str]) -> None:
        missing = sorted(b for b in indexes if (kind, b) not in self._by_bidx)
        if not missing:
            return
        column = _BIDX_COLUMNS[kind]
        found: dict[str, set[str]] = {}
        with self._session() as session:
            for chunk in _chunks(missing):
                for bidx, customer in session.connection().execute(
                    select(column, Customer.customer_id).where(column.in_(chunk))
                ):
                    found.setdefault(bidx, set()).add(self._survivor(customer))
        for bidx in missing:
            self._by_bidx[(kind, bidx)] = tuple(sorted(found.get(bidx, ())))

    def _blind_index(self, kind: str, value: str) -> str:
        text = value.strip()
        return self.cipher.blind_index(kind, text.upper() if kind == "id_number" else text)

    def resolve(
        self, lines: Sequence[int], fields: dict[str, Sequence[str | None]]
    ) -> tuple[list[str | None], list[str | None], list[str | None]]:
        """For each row (its line number and its identifier fields, None where absent): the customer, the
        field that found it, and the reason when none did."""
        if self._merges is None:
            with self._session() as session:
                self._merges = _merges(session)
        self._fold()
        n = len(lines)
        customer: list[str | None] = [None] * n
        via: list[str | None] = [None] * n
        ambiguous: dict[int, tuple[str, int]] = {}
        for name in RESOLVE_FIELDS:
            todo = [
                (i, v) for i, v in enumerate(fields.get(name) or ()) if v is not None and customer[i] is None
            ]
            if not todo:
                continue
            if name in _IDENTIFIER_FIELDS:
                kind = _IDENTIFIER_FIELDS[name]
                self._lookup_bound(kind, {v for _, v in todo})
                bound, in_file = self._bound[kind], self._in_file[kind]
                for i, v in todo:
                    found = bound.get(v)
                    earlier = in_file.get(v)
                    if found is None and earlier is not None and earlier[1] < lines[i]:
                        found = earlier[0]
                    if found is not None:
                        customer[i], via[i] = self._survivor(found), name
            else:
                kind = _BLIND_FIELDS[name]
                indexes = {i: self._blind_index(kind, v) for i, v in todo}
                self._lookup_bidx(kind, set(indexes.values()))
                for i, bidx in indexes.items():
                    matches = self._by_bidx[(kind, bidx)]
                    if len(matches) == 1:
                        customer[i], via[i] = matches[0], name
                    elif len(matches) > 1:
                        ambiguous.setdefault(i, (name, len(matches)))
        reasons: list[str | None] = [None] * n
        for i in range(n):
            if customer[i] is not None:
                continue
            if i in ambiguous:
                name, count = ambiguous[i]
                reasons[i] = f"customer_id: missing, and {count} loaded customers have this {name}"
            else:
                present = [f for f in RESOLVE_FIELDS if (fields.get(f) or [None] * n)[i] is not None]
                reasons[i] = f"customer_id: missing, and no loaded customer has this {' or '.join(present)}"
        return customer, via, reasons


# -- the customer 360: identifiers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentifierRow:
    kind: str  # card_id, wechat_openid, app_user_id, phone, id_number
    value: str  # masked where it is personal data or a card number
    source: str  # where it was learnt, or which customer record holds it
    since: datetime | None  # first seen (identifiers learnt from events)


@dataclass(frozen=True)
class IdentityView:
    customer_id: str
    merged_into: str | None  # the survivor, when this customer was merged away
    merged_at: datetime | None
    merged_ids: list[str]  # customers merged into this one
    identifiers: list[IdentifierRow]
    cards: dict[str, str] = field(default_factory=dict)  # a card's token (as events hold it) -> its display


def identity_view(session: Session, cipher: FieldCipher, customer_id: str, *, actor: str) -> IdentityView:
    """What ``customer show`` lists under identifiers: card ids (masked), openids and app user ids, and the
    phone and ID number on file (masked) of the customer and of every customer merged into it. Reading a
    merged customer's personal fields is audited like a view of that customer."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id}")
    merge = session.get(CustomerMerge, customer_id)
    merged_ids = merged_ids_of(session, customer_id)
    rows: list[IdentifierRow] = []
    for c in [customer, *(session.get(Customer, m) for m in merged_ids)]:
        if c is None or c.erased_at is not None:  # an erased customer's phone and ID number are gone
            continue
        cid = c.customer_id
        where = "customer record" if cid == customer_id else f"customer record of {cid} (merged)"
        phone = cipher.decrypt(c.phone_enc, context=f"customers.phone:{cid}")
        id_number = cipher.decrypt(c.id_number_enc, context=f"customers.id_number:{cid}")
        rows.append(IdentifierRow("phone", mask_phone(phone), where, None))
        rows.append(IdentifierRow("id_number", mask_id_number(id_number), where, None))
        if cid != customer_id:
            audit.record(
                session,
                actor=actor,
                action="customer.view",
                subject_type="customer",
                subject_id=cid,
                detail={"fields": ["phone", "id_number"], "revealed": [], "via": customer_id},
            )
    order = {k: i for i, k in enumerate(IDENTIFIER_KINDS)}
    bound = sorted(
        session.scalars(select(CustomerIdentifier).where(CustomerIdentifier.customer_id == customer_id)),
        key=lambda r: (order.get(r.kind, 99), r.first_seen_at, r.value),
    )
    cards: dict[str, str] = {}
    for r in bound:
        value = r.value
        if r.kind == "card_id":
            value = cards[r.value] = card_display(cipher, r)
        rows.append(IdentifierRow(r.kind, value, r.source, r.first_seen_at))
    return IdentityView(
        customer_id=customer_id,
        merged_into=merge.survivor_id if merge else None,
        merged_at=merge.merged_at if merge else None,
        merged_ids=merged_ids,
        identifiers=rows,
        cards=cards,
    )
