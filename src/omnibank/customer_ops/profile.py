"""The customer's profile as every output shows it, masked, with the consent in force: the view reads the
customers domain and the consent records (above customers), so it lives here, above both (layers point
down: ``docs/architecture.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.consent.service import allowed as consent_allowed
from omnibank.customers import repository as customers_repo
from omnibank.customers.repository import Scope
from omnibank.customers.service import PERSONAL, refuse_erased
from omnibank.customers.values import age_on
from omnibank.errors import NotFound
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.masking import mask_id_number, mask_name, mask_phone
from omnibank.kit.money import from_fen
from omnibank.orgs.models import Org


@dataclass(frozen=True)
class MaskedProfile:
    """A customer as every output shows them: personal fields masked, and the age instead of the birth
    date (with the masked ID number, the birth date and the check digit would leave about nine candidates
    for the full number); the birth date is revealed like a personal field, with a reason, audited."""

    customer_id: str
    name: str
    gender: str
    age: int
    phone: str
    id_number: str
    branch_id: str
    branch_name: str
    rm_id: str | None
    aum: str
    occupation: str
    risk_tolerance: str
    channel_pref: str
    marketing_consent: bool
    registered_at: date


def masked_profile(
    session: Session,
    cipher: FieldCipher,
    customer_id: str,
    *,
    actor: str,
    today: date,
    scope: Scope | None = None,
    source: str = "cli",
) -> MaskedProfile:
    """The masked profile of a customer ``scope`` sees (default: the whole bank); the view is audited."""
    customer = customers_repo.get(session, scope or Scope.whole_bank(), customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id}")
    refuse_erased(customer)
    branch = session.get(Org, customer.branch_id)
    dec = cipher.decrypt
    profile = MaskedProfile(
        customer_id=customer.customer_id,
        name=mask_name(dec(customer.name_enc, context=f"customers.name:{customer_id}")),
        gender=customer.gender,
        age=age_on(customer.birth_date, today),
        phone=mask_phone(dec(customer.phone_enc, context=f"customers.phone:{customer_id}")),
        id_number=mask_id_number(dec(customer.id_number_enc, context=f"customers.id_number:{customer_id}")),
        branch_id=customer.branch_id,
        branch_name=branch.name if branch else "",
        rm_id=customer.rm_id,
        aum=f"{from_fen(customer.aum_fen):,.2f}",
        occupation=customer.occupation,
        risk_tolerance=customer.risk_tolerance,
        channel_pref=customer.channel_pref,
        marketing_consent=consent_allowed(session, customer_id, "marketing"),
        registered_at=customer.registered_at,
    )
    audit.record(
        session,
        actor=actor,
        action="customer.view",
        subject_type="customer",
        subject_id=customer_id,
        detail={"fields": list(PERSONAL), "revealed": []},
        source=source,
    )
    return profile
