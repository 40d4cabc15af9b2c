"""Pydantic I/O of the segments API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from omnibank.kit.dates import BankDate


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentQuery(_In):
    expression: str = Field(min_length=1, max_length=4000, examples=["age >= 60 AND aum >= 500000"])
    as_of: BankDate | None = Field(
        default=None, description="Default: today, bank-local. From 1900-01-01 to 2199-12-31."
    )


class PreviewQuery(SegmentQuery):
    limit: int = Field(default=20, ge=1, le=100)


class SegmentCountRead(BaseModel):
    count: int
    as_of: date


class PreviewRowRead(BaseModel):
    customer_id: str
    name: str = Field(description="Masked.")
    gender: str
    age: int
    branch_id: str
    aum: str
    occupation: str


class SegmentPreviewRead(BaseModel):
    count: int
    as_of: date
    rows: list[PreviewRowRead]


class SegmentExportRead(BaseModel):
    count: int
    as_of: date
    customer_ids: list[str]


class SegmentCreate(_In):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]{0,63}$")
    expression: str = Field(min_length=1, max_length=4000)
    description: str = Field(default="", max_length=1000)


class SegmentRead(BaseModel):
    name: str
    expression: str
    description: str
    created_by: str
    updated_at: datetime
