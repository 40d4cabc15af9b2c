"""Pydantic I/O of the customers API; personal fields are masked unless revealed."""

from __future__ import annotations

from datetime import date
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


class RevealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: Literal["name", "phone", "id_number", "birth_date"]
    reason: str = Field(min_length=5, max_length=500, description="Why; kept in the audit trail.")


class RevealResponse(BaseModel):
    customer_id: str
    field: str
    value: str
