"""Revealing one personal field of one customer: a permission the caller's role must hold (checked at the
edge), a reason, the caller's scope, and an audit entry that carries the reason. The birth date, which every
output shows as an age only, is revealed the same way."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.customers import repository
from omnibank.customers.repository import Scope
from omnibank.customers.service import PERSONAL, refuse_erased
from omnibank.errors import AppError, NotFound
from omnibank.kit.crypto import FieldCipher

MIN_REASON = 5
REVEALABLE = (*PERSONAL, "birth_date")


class RevealRefused(AppError):
    """The request to reveal cannot be used as given (an unknown field, no reason)."""

    code = "invalid_request"
    status = 422


def reveal_field(
    session: Session,
    cipher: FieldCipher,
    customer_id: str,
    *,
    field: str,
    reason: str,
    actor: str,
    scope: Scope,
    source: str,
) -> str:
    """The plaintext of ``field`` (name, phone, id_number or birth_date) of a customer the scope sees."""
    if field not in REVEALABLE:
        raise RevealRefused(f"field {field!r}: one of {', '.join(REVEALABLE)}")
    if len(reason.strip()) < MIN_REASON:
        raise RevealRefused(
            f"a reason of at least {MIN_REASON} characters is required to reveal personal data",
            code="reason_required",
            details={"loc": ["body", "reason"]},
        )
    customer = repository.get(session, scope, customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id}")
    refuse_erased(customer)
    if field == "birth_date":
        value = customer.birth_date.isoformat()
    else:
        blob = {"name": customer.name_enc, "phone": customer.phone_enc, "id_number": customer.id_number_enc}[
            field
        ]
        value = cipher.decrypt(blob, context=f"customers.{field}:{customer_id}")
    audit.record(
        session,
        actor=actor,
        action="customer.reveal",
        subject_type="customer",
        subject_id=customer_id,
        detail={"fields": [field], "revealed": [field]},
        source=source,
        reason=reason,
    )
    return value
