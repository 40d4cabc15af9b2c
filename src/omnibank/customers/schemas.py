"""Pydantic I/O of the customers API; personal fields are masked unless revealed."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CustomerSummary(BaseModel):
    customer_id: str
    name: str = Field(description="Masked.")
    phone: str = Field(description="Masked.")
    branch_id: str
    rm_id: str | None


class CustomerSearch(BaseModel):
    """An exact search by one personal number, in the body: it never travels in a URL (which servers,
    proxies and browsers log)."""

    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 -]{5,20}$", description="A mobile number.")
    id_number: str | None = Field(
        default=None, pattern=r"^[0-9]{17}[0-9Xx]$", description="An 18-character resident ID number."
    )
    limit: int = Field(default=50, ge=1, le=100)

    @model_validator(mode="after")
    def _one_number(self) -> CustomerSearch:
        if (self.phone is None) == (self.id_number is None):
            raise ValueError("give phone or id_number (one of them)")
        return self


class CustomerList(BaseModel):
    items: list[CustomerSummary]
    total: int = Field(description="Customers the caller sees (a search: the matches).")
    next_after: str | None = Field(description="Pass as `after` for the next page; null at the end.")


class CustomerCount(BaseModel):
    count: int


class TagRead(BaseModel):
    tag: str
    category: str
    since: date


class CouponLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    campaign: str
    benefit_id: str
    benefit_name: str
    status: str
    face_value: str | None = Field(description="Yuan, e.g. 26.00.")
    granted_at: datetime
    valid_to: datetime | None


class JourneyLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    journey: str
    name: str
    status: str
    step: str | None
    entered_at: datetime
    converted_at: datetime | None


class LeadLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    lead_id: str
    source: str
    product_id: str | None
    status: str
    owner_staff_id: str | None
    due_at: datetime
    created_at: datetime


class ContactLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: str
    purpose: str
    journey: str | None
    status: str
    reason: str | None
    asked_at: datetime


class RecommendedRead(BaseModel):
    """A benefit to offer the customer (B2), best first: the ranking score and why."""

    model_config = ConfigDict(from_attributes=True)

    benefit_id: str
    name: str
    score: Decimal = Field(description="0..1, the blend of similar customers' redemptions and segment rates.")
    source: Literal["similar", "again", "age", "spending", "popular"]
    reason: str = Field(description="Why, in words (Chinese), e.g. 与您相似的客户常兑换.")


class CustomerView(BaseModel):
    """The customer 360, masked: the age, never the birth date (beside the masked ID number it would leave
    a handful of candidates); ``POST …/reveal`` gives the birth date to whom may reveal, audited."""

    customer_id: str
    name: str
    gender: str
    age: int = Field(description="Full years today; the birth date is revealed, not shown.")
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
    tags: list[TagRead]
    segments: list[str]
    points: int
    coupons: list[CouponLineRead] = Field(default_factory=list, description="Newest first (at most 50).")
    journeys: list[JourneyLineRead] = Field(default_factory=list, description="Latest first (at most 20).")
    leads: list[LeadLineRead] = Field(default_factory=list, description="Latest first (at most 20).")
    contacts: list[ContactLineRead] = Field(
        default_factory=list, description="The outbox, newest first (20)."
    )
    recommended: list[RecommendedRead] = Field(
        default_factory=list, description="Benefits to offer now, best first (at most 5), with the reason."
    )


class RevealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: Literal["name", "phone", "id_number", "birth_date"]
    reason: str = Field(min_length=5, max_length=500, description="Why; kept in the audit trail.")


class RevealResponse(BaseModel):
    customer_id: str
    field: str
    value: str
