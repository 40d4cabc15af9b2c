"""Pydantic I/O of the customers API; personal fields are masked unless revealed."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CustomerSummary(BaseModel):
    customer_id: str
    name: str = Field(description="Masked.")
    phone: str = Field(description="Masked.")
    branch_id: str
    rm_id: str | None


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
    """The customer 360, masked."""

    customer_id: str
    name: str
    gender: str
    birth_date: date
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
    tags: list[TagRead]
    segments: list[str]
    points: int


class RevealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: Literal["name", "phone", "id_number"]
    reason: str = Field(min_length=5, max_length=500, description="Why; kept in the audit trail.")


class RevealResponse(BaseModel):
    customer_id: str
    field: str
    value: str
