"""A grant as one value, from the decision to the coupon ledger.

A campaign's decision (``campaigns/engine.py``) makes a :class:`Grant`; the backtest writes it as a
``grants.jsonl`` line (:meth:`Grant.to_contract`); a live run issues it with
:func:`~omnibank.benefits.batch.grant_many` (a journey's grant step does too) and stores it as a
``campaign_grants`` row. It used to change shape on that way (the engine's grant, the stored row, the
ledger's request, each with its own names and money in CNY or in fen); now every step reads this one.

It lives here, apart from the grant paths, because campaigns and journeys sit above benefits (layers point
down) and the decision function is pure: importing it costs no database, no SQLAlchemy and no ledger
(simulate's worker processes import the engine and nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from omnibank.kit.money import from_fen

if TYPE_CHECKING:
    from omnibank.benefits.ledger import BudgetKey


@dataclass(frozen=True, slots=True)
class Grant:
    """One item to issue under a deterministic ``key`` (the arguments of
    :func:`~omnibank.benefits.granting.grant`, and what a campaign's decision adds)."""

    key: str  # deterministic: a campaign's is campaign, rule, customer, period, item
    campaign: str
    rule: str
    customer_id: str
    benefit_id: str
    granted_at: datetime
    valid_from: datetime | None = None  # None: from granted_at
    valid_to: datetime | None = None  # None: from the catalogue's validity
    claim_by: datetime | None = None  # None: from the catalogue's validity
    face_value_fen: int | None = None  # None: the catalogue's
    discount_rate: Decimal | None = None  # None: the catalogue's
    stage: int | None = None  # a stage map's stage that unlocked it
    branch_id: str | None = None
    budgets: tuple[BudgetKey, ...] = ()  # the ledger's budgets (omnibank budgets set) it counts against
    points_spent: int | None = None  # a campaign's: the customer's points it took (reward points_each)
    event_id: str | None = None  # a campaign's: the event that earned it

    def to_contract(self) -> dict[str, Any]:
        """The grant as a ``grants.jsonl`` object (data contract)."""
        out: dict[str, Any] = {
            "customer_id": self.customer_id,
            "campaign": self.campaign,
            "rule": self.rule,
            "benefit": self.benefit_id,
            "granted_at": self.granted_at.isoformat(),
            "valid_from": (self.valid_from or self.granted_at).isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
        }
        if self.claim_by is not None:
            out["claim_by"] = self.claim_by.isoformat()
        if self.face_value_fen is not None:
            out["face_value"] = f"{from_fen(self.face_value_fen):.2f}"
        if self.discount_rate is not None:
            out["discount_rate"] = str(self.discount_rate)
        if self.stage is not None:
            out["stage"] = self.stage
        return out
