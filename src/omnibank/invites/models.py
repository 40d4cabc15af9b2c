"""Tables of the staff marketing tool (员工邀请码, M1–M4, E1): invite codes, the customers bound through
them, refused bindings, share links and their clicks, and the staff reward ledger.

Nothing personal is stored here: customers and staff are referred to by number; a click keeps a keyed hash
of the browser and the address (never the address itself).

* ``invite_codes``: a code is its own key and is never deleted, so a code once issued never comes back; a
  member of staff holds at most one live code (a partial unique index), a revoked one keeps its reason.
* ``invite_bindings``: at most one per customer, with the staff member's org path *at the time*, so a
  later transfer does not move past results.
* ``invite_refusals``: every event whose code did not bind, with the reason; ``invite_waiting``: events
  whose customer is not known yet (the customer file may arrive later), looked at again on every pass.
* ``invite_offsets``: the event-log files the binding pass has read.
* ``share_links`` / ``share_clicks``: a short link per staff member, target and channel; clicks once per
  device a minute.
* ``staff_reward_entries``: an append-only ledger; a correction is a reversal entry, never an edit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

#: why a code did not bind a customer
REFUSAL_REASONS = ("unknown_code", "revoked_code", "self_referral", "already_bound", "outside_window")
#: what a share link points at (E1: partner scenes such as a car-purchase installment page)
TARGET_KINDS = ("product", "campaign", "benefit", "scene", "home")
REWARD_DIRECTIONS = ("credit", "debit")


class InviteCode(Base):
    """A staff member's invite code. ``revoked_at`` set: it binds no new customer (those bound stay)."""

    __tablename__ = "invite_codes"
    __table_args__ = (
        Index(
            "uq_invite_codes_live_staff",
            "staff_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))


class InviteBinding(Base):
    """A customer bound to the member of staff whose code their earliest coded event carried."""

    __tablename__ = "invite_bindings"
    __table_args__ = (Index("ix_invite_bindings_staff_bound", "staff_id", "bound_at"),)

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code: Mapped[str] = mapped_column(ForeignKey("invite_codes.code"), index=True)
    staff_id: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[str] = mapped_column(String(32))  # the staff member's org when bound
    org_path: Mapped[str] = mapped_column(String(2000), index=True)  # its materialised path then
    event_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(16))
    share_token: Mapped[str | None] = mapped_column(String(16), index=True)  # the /s/ link it came through
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)  # the event's time
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # kept up to date by the binding pass, file by file, so that the figures need no scan of the log:
    # card spend within 30 days of the binding (fen) and the customer's first card issued (any time)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    first_card_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class InviteRefusal(Base):
    """An event whose invite code did not bind its customer, and why."""

    __tablename__ = "invite_refusals"
    __table_args__ = (CheckConstraint(one_of("reason", REFUSAL_REASONS), name="reason"),)

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), index=True)
    code: Mapped[str] = mapped_column(String(64))
    staff_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the code's holder, if known
    reason: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)  # the event's time
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InviteWaiting(Base):
    """A coded event of a customer not loaded yet; the binding pass looks again each time it runs."""

    __tablename__ = "invite_waiting"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), index=True)
    code: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class InviteOffset(Base):
    """An event-log file the binding pass has read."""

    __tablename__ = "invite_offsets"

    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ShareLink(Base):
    """``/s/{token}``: a staff member's link to a target, for one channel. Made once per (staff, target,
    channel); ``shares`` counts each time it was handed out (a link or a poster made)."""

    __tablename__ = "share_links"
    __table_args__ = (
        CheckConstraint(one_of("target_kind", TARGET_KINDS), name="target_kind"),
        CheckConstraint("shares >= 0", name="shares_not_negative"),
        Index("uq_share_links_staff_target", "staff_id", "target_kind", "target_id", "channel", unique=True),
    )

    token: Mapped[str] = mapped_column(String(16), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    shares: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(128))


class ShareClick(Base):
    """A counted click of a share link: the same device within a minute counts once (``device``: a keyed
    hash of the user agent and the address)."""

    __tablename__ = "share_clicks"
    __table_args__ = (Index("ix_share_clicks_token_device_at", "token", "device", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token: Mapped[str] = mapped_column(ForeignKey("share_links.token"))
    staff_id: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    device: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class StaffRewardEntry(Base):
    """A posting of the staff reward ledger: a positive amount in fen with a direction. ``key`` makes each
    computed reward (rule, staff member, period) posted once; a changed figure is corrected by a reversal
    (``reverses``) and a new entry."""

    __tablename__ = "staff_reward_entries"
    __table_args__ = (
        CheckConstraint(one_of("direction", REWARD_DIRECTIONS), name="direction"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7), index=True)  # bank-local month, YYYY-MM
    direction: Mapped[str] = mapped_column(String(8))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    basis: Mapped[str] = mapped_column(String(500))  # why: "3 cards issued × 50.00", "0.3% of 12,000.00"
    reverses: Mapped[int | None] = mapped_column(ForeignKey("staff_reward_entries.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(128))
