"""Data-subject rights (PIPL arts. 45 and 47): export everything held on one customer, and erase one.

Erasure crypto-shreds the customer row: the ciphertexts of name, phone and ID number, their blind indexes
and the row fingerprint (a keyed digest of the personal fields) are overwritten with tombstones (empty
values), the birth date with a placeholder, and the customer's learnt identifiers (card ids, openids, app
user ids, a card's number kept encrypted with its token) are removed. What remains cannot be decrypted,
found or linked back to the person. The event log holds no personal data in plaintext (card numbers, phones,
ID numbers are keyed tokens there, :mod:`omnibank.events.protect`); an erasure is refused while the log still
has files written before that protection (``omnibank events protect`` rewrites them). Ledgers
(coupons, points, campaign grants, consent records, the audit trail) keep the customer number: they are
the bank's records of what happened and stay intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.benefits.models import Coupon, PointsBalance, PointsPosting
from omnibank.campaigns.models import CampaignGrant
from omnibank.config import Settings
from omnibank.consent import service as consent
from omnibank.customers.identity import card_context, merged_ids_of
from omnibank.customers.models import Customer, CustomerIdentifier, CustomerMerge
from omnibank.customers.service import refuse_erased
from omnibank.db import versions
from omnibank.errors import AppError, Conflict, NotFound
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.money import from_fen
from omnibank.orgs.models import Org
from omnibank.tags.models import CustomerTag, CustomerTagChange

EXPORT_FORMAT = "omnibank.customer-export/1"
ERASED_BYTES = b""  # the tombstone of a ciphertext: no key decrypts it
ERASED_INDEX = ""  # the tombstone of a blind index: no lookup (32 hex digits) ever equals it
ERASED_FINGERPRINT = "erased"
ERASED_BIRTH_DATE = date(1900, 1, 1)
ERASED_FIELDS = ("name", "phone", "id_number", "birth_date")
MAX_REASON = 500
_EVENTS_LIMIT = 10_000_000


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise AppError("--reason is required: say why (e.g. the customer's request and its reference)")
    if len(reason) > MAX_REASON:
        raise AppError(f"reason: at most {MAX_REASON} characters")
    return reason


def _customer(session: Session, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id}")
    return customer


def _columns(row: Any, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in skip}


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return None
    raise TypeError(f"cannot export {type(value).__name__}")


# -------------------------------------------------------------------------------------------- export


def export_customer(
    session: Session,
    settings: Settings,
    cipher: FieldCipher,
    customer_id: str,
    *,
    actor: str,
    reason: str,
    source: str = "cli",
) -> dict[str, Any]:
    """Everything held on one customer, personal fields decrypted (it is their own data, on request):
    profile, merges, identifiers, tags and their history, consent (answers and history), coupons, points,
    campaign grants and the events of the log. The export is audited with its reason."""
    reason = _reason(reason)
    customer = _customer(session, customer_id)
    refuse_erased(customer)
    dec = cipher.decrypt
    branch = session.get(Org, customer.branch_id)
    profile = _columns(
        customer,
        skip=("name_enc", "phone_enc", "id_number_enc", "phone_bidx", "id_number_bidx", "fingerprint"),
    )
    profile.pop("erased_at", None)
    profile.pop("aum_fen", None)
    profile.update(
        name=dec(customer.name_enc, context=f"customers.name:{customer_id}"),
        phone=dec(customer.phone_enc, context=f"customers.phone:{customer_id}"),
        id_number=dec(customer.id_number_enc, context=f"customers.id_number:{customer_id}"),
        branch_name=branch.name if branch else "",
        aum=f"{from_fen(customer.aum_fen):.2f}",
    )
    merge = session.get(CustomerMerge, customer_id)
    merged_from = merged_ids_of(session, customer_id)

    def rows(model: Any, *order: Any) -> list[dict[str, Any]]:
        stmt = select(model).where(model.customer_id == customer_id).order_by(*order)
        return [_columns(r) for r in session.scalars(stmt)]

    balance = session.get(PointsBalance, customer_id)
    from omnibank.events.log import EventLog

    events = EventLog(settings).recent([customer_id, *merged_from], limit=_EVENTS_LIMIT)
    events.reverse()  # oldest first
    data: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "customer_id": customer_id,
        "exported_at": datetime.now(UTC),
        "reason": reason,
        "profile": profile,
        "merged_into": merge.survivor_id if merge else None,
        "merged_from": merged_from,
        "identifiers": [
            _identifier(cipher, r)
            for r in rows(CustomerIdentifier, CustomerIdentifier.kind, CustomerIdentifier.value)
        ],
        "tags": rows(CustomerTag, CustomerTag.tag),
        "tag_history": rows(CustomerTagChange, CustomerTagChange.id),
        "consent": {
            "now": {s.purpose: s.allowed for s in consent.current(session, customer_id)},
            "history": [_columns(r) for r in consent.history(session, customer_id)],
        },
        "coupons": rows(Coupon, Coupon.id),
        "points": {
            "balance": balance.balance if balance else 0,
            "postings": rows(PointsPosting, PointsPosting.id),
        },
        "campaign_grants": rows(CampaignGrant, CampaignGrant.granted_at, CampaignGrant.key),
        "events": events,
    }
    audit.record(
        session,
        actor=actor,
        action="customer.export",
        subject_type="customer",
        subject_id=customer_id,
        detail={
            "fields": ["name", "phone", "id_number"],
            "revealed": ["name", "phone", "id_number"],
            "events": len(events),
        },
        source=source,
        reason=reason,
    )
    return data


def _identifier(cipher: FieldCipher, row: dict[str, Any]) -> dict[str, Any]:
    """An identifier as exported: a card with its number in clear beside its token (the events hold the
    token)."""
    enc = row.pop("value_enc", None)
    if row.get("kind") == "card_id" and enc:
        row["card_number"] = cipher.decrypt(enc, context=card_context(row["value"]))
    return row


def write_export(data: dict[str, Any], path: Path) -> None:
    """Write an export as UTF-8 JSON readable by its owner only (it holds personal data in clear)."""
    text = json.dumps(data, ensure_ascii=False, indent=2, default=_json_default)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------- erase


def _refuse_unprotected_log(settings: Settings | None) -> None:
    from omnibank.config import get_settings
    from omnibank.events.log import EventLog

    legacy = EventLog(settings or get_settings()).unprotected_files()
    if legacy:
        raise Conflict(
            f"the event log still holds {len(legacy)} files written before card numbers and personal data "
            "were protected in it (plaintext); run `omnibank events protect` first, then erase: "
            "nothing of the customer must stay readable in the log"
        )


@dataclass(frozen=True)
class ErasureResult:
    customer_id: str
    erased_at: datetime
    identifiers_removed: int


def erase_customer(
    session: Session,
    customer_id: str,
    *,
    actor: str,
    reason: str,
    source: str = "cli",
    at: datetime | None = None,
    settings: Settings | None = None,
) -> ErasureResult:
    """Crypto-shred one customer (see the module's docstring); audited with its reason. Refuses an
    unknown customer, one already erased, and any while the event log still holds files written before
    its personal data was protected (``settings``: the data home's; by default the configured one)."""
    reason = _reason(reason)
    _refuse_unprotected_log(settings)
    moment = at or datetime.now(UTC)
    customer = _customer(session, customer_id)
    if customer.erased_at is not None:
        raise Conflict(
            f"customer {customer_id} was already erased on {customer.erased_at:%Y-%m-%d %H:%M} UTC"
        )
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:  # overwrite the freed space of the old values in the file too, not only unlink it
        session.execute(text("PRAGMA secure_delete = ON"))
    session.execute(
        update(Customer)
        .where(Customer.customer_id == customer_id)
        .values(
            name_enc=ERASED_BYTES,
            phone_enc=ERASED_BYTES,
            phone_bidx=ERASED_INDEX,
            id_number_enc=ERASED_BYTES,
            id_number_bidx=ERASED_INDEX,
            birth_date=ERASED_BIRTH_DATE,
            fingerprint=ERASED_FINGERPRINT,
            erased_at=moment,
            updated_at=moment,
        )
        .execution_options(synchronize_session=False)
    )
    if sqlite:
        session.execute(text("PRAGMA secure_delete = OFF"))
    session.expire(customer)
    removed = session.execute(delete(CustomerIdentifier).where(CustomerIdentifier.customer_id == customer_id))
    identifiers_removed = int(removed.rowcount or 0)  # type: ignore[attr-defined]
    versions.bump(session, "customers")
    audit.record(
        session,
        actor=actor,
        action="customer.erase",
        subject_type="customer",
        subject_id=customer_id,
        detail={"fields": list(ERASED_FIELDS), "identifiers_removed": identifiers_removed},
        source=source,
        reason=reason,
        at=moment,
    )
    return ErasureResult(customer_id, moment, identifiers_removed)
