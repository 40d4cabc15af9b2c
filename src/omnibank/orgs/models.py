from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

ORG_LEVELS = ("hq", "branch", "subbranch", "team")
STAFF_ROLES = (
    "rm",
    "wealth_manager",
    "teller",
    "branch_manager",
    "service_agent",
    "telemarketer",
    "campaign_manager",
    "admin",
)


class Org(Base):
    """A node of the bank's organisation tree (HQ → branch → sub-branch → team)."""

    __tablename__ = "orgs"
    __table_args__ = (CheckConstraint(one_of("level", ORG_LEVELS), name="level"),)

    org_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.org_id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    # Materialised path "/HQ/B001/S0101/": a subtree is one prefix match.
    path: Mapped[str] = mapped_column(String(2000), index=True)
    depth: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Staff(Base):
    """A member of staff; name and phone are personal data, stored encrypted."""

    __tablename__ = "staff"
    __table_args__ = (CheckConstraint(one_of("role", STAFF_ROLES), name="role"),)

    staff_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.org_id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_bidx: Mapped[str | None] = mapped_column(String(32), index=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # set when the member of staff left (a staff file loaded without them, or ``staff deactivate``)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
