"""HTTP endpoints of this domain (filled in as the domain is built)."""

from __future__ import annotations

from fastapi import APIRouter

from omnibank.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/leads", tags=["leads"], responses=ERROR_RESPONSES)
