"""Pydantic I/O of sign-in and accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "campaign_manager", "branch_manager", "rm", "service_agent", "supplier", "auditor"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(_In):
    refresh_token: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class LogoutResponse(BaseModel):
    revoked: bool


class UserCreate(_In):
    role: Role
    staff_id: str | None = Field(default=None, min_length=1, max_length=32)
    supplier_id: str | None = Field(default=None, min_length=1, max_length=32)
    username: str | None = Field(default=None, min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserRead(BaseModel):
    username: str
    role: str
    staff_id: str | None
    supplier_id: str | None
    created_at: datetime
