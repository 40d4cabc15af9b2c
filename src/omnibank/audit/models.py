from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base
from omnibank.db.types import UTCDateTime


class AuditEntry(Base):
    """Append-only, hash-chained record of who read or changed what, from where and why (personal data
    reads included). Each entry's ``hash`` covers its content and ``prev_hash``, the hash of the entry
    before it, so editing, deleting or re-ordering entries breaks the chain (``omnibank audit verify``).
    An entry is appended unchained and chained (``seq``, ``prev_hash``, ``hash``) once its transaction
    committed. Database triggers refuse DELETE and every UPDATE but that one; ``prev_hash`` is unique, so
    the chain cannot fork. ``mac`` binds the content to the audit key, and seals (``AuditSeal``) bind the
    chain."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index(
            "ix_audit_entries_unchained",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    source: Mapped[str] = mapped_column(String(80), default="", server_default="")  # cli, api:<ip>, …
    reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    # the chain (set once, by ``service.chain`` after the entry's transaction committed; NULL until then)
    seq: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # the application's MAC of the content, with the audit key (``omnibank.audit.keyed``): an entry written
    # with SQL by anyone without the key has none that verifies; unique (a random nonce), so no entry can be
    # copied. NULL only for entries made before keyed entries (release 0014), covered by the first seal.
    mac: Mapped[str | None] = mapped_column(String(112), unique=True)


class AuditSeal(Base):
    """The chain's head as the platform saw it, with the audit key's MAC: written in the transaction that
    chains entries, so a chain recomputed by anyone without the key no longer matches its seals. Each seal
    names the MAC of the one before (``prev``, unique: the seals cannot fork). Append-only (triggers)."""

    __tablename__ = "audit_seals"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    head: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    prev: Mapped[str] = mapped_column(String(64), unique=True)
    mac: Mapped[str] = mapped_column(String(64), unique=True)
