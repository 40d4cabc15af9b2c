"""A small bank for the share-link tests: tests/api's bank (orgs, staff, a catalogue, a user per role) with
invite codes issued to every member of staff."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.invites import codes
from omnibank.invites.models import InviteBinding, InviteCode
from omnibank.orgs.models import Staff
from tests.benefits.helpers import NOW

RM_A, RM_B, BM_A = "E00001", "E00002", "E00003"


def issue_codes(settings: Settings) -> dict[str, str]:
    with unit_of_work(settings) as session:
        codes.issue(session, now=NOW, actor="test")
        return {c.staff_id: c.code for c in session.scalars(select(InviteCode))}


def bind(settings: Settings, customer_id: str, staff_id: str, token: str | None, at: datetime) -> None:
    """A binding as the binding pass records it (through the link ``token``)."""
    with unit_of_work(settings) as session:
        code = codes.live_code(session, staff_id)
        staff = session.get(Staff, staff_id)
        assert code is not None and staff is not None
        row = InviteBinding(customer_id=customer_id, code=code.code, staff_id=staff_id, org_id=staff.org_id,
                            org_path=staff.org_id, event_id=f"ev-{customer_id}", channel="wechat",
                            share_token=token, bound_at=at, recorded_at=at)  # fmt: skip
        session.add(row)
