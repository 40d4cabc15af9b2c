"""The audit trail's key: the MAC of each entry, the seals of the chain's head and the checkpoints.

The key is derived (HKDF-SHA-256, its own label) from the key ring's index key, the key that is never rotated
(its digests are in the immutable event log): no key file changes format, and the key is never stored in the
database, the event log, the database server or a backup. Whoever holds the data files but not the key ring
(``<home>/keys/master.key`` or ``OMNIBANK_MASTER_KEY``) cannot compute a MAC or a seal.

An entry's MAC is computed by the application when it appends the entry, over everything it writes (not the
id, which the database gives: a random nonce makes each MAC unique instead, and the column is unique, so a
copied entry is refused). Two kinds:

- ``m1``: the whole entry.
- ``m1d``: everything but ``detail``, which the database fills in from the row it changes (the coupon claim
  and redemption of the PostgreSQL fast path, whose detail is the coupon's benefit, customer and new
  status: computing it in the application would cost a round trip per request). That detail is bound by
  the chain and its seal once the entry is chained, not before. Only the actions in
  :data:`DETAIL_FROM_DATABASE` may carry such a MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from omnibank.config import Settings
from omnibank.kit.crypto import KeyRing

LABEL = b"omnibank/audit/v1"
FULL = "m1"
DETAIL_BY_DB = "m1d"
#: the actions whose detail the database fills in (``m1d`` MACs)
DETAIL_FROM_DATABASE = frozenset({"coupon.claim", "coupon.redeem"})
#: what a checkpoint line says it is
CHECKPOINT = "omnibank-audit-checkpoint/1"


def canonical_at(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _compact(payload: list[Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class AuditKey:
    """MACs with the audit key (the HMAC key schedule is done once; each MAC copies it)."""

    def __init__(self, key: bytes):
        self._hmac = hmac.new(key, digestmod=hashlib.sha256)

    def _tag(self, payload: list[Any]) -> str:
        mac = self._hmac.copy()
        mac.update(_compact(payload))
        return mac.hexdigest()

    # -------------------------------------------------------------------------------------------- entries

    def entry_mac(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str | None,
        detail: str | None,
        source: str,
        reason: str,
        nonce: str | None = None,
    ) -> str:
        """The ``mac`` column of a new entry: ``m1:<nonce>:<tag>``, or with ``detail`` None (the database
        fills it in) ``m1d:<nonce>:<tag>``."""
        nonce = nonce or secrets.token_hex(16)
        kind = FULL if detail is not None else DETAIL_BY_DB
        fields: list[Any] = [kind, nonce, canonical_at(at), actor, action, subject_type, subject_id]
        if detail is not None:
            fields.append(detail)
        fields += [source, reason]
        return f"{kind}:{nonce}:{self._tag(fields)}"

    def entry_ok(self, entry: Any) -> bool:
        """Whether an entry (a row or an ``AuditEntry``) carries the MAC of its content."""
        parts = str(entry.mac or "").split(":")
        if len(parts) != 3 or parts[0] not in (FULL, DETAIL_BY_DB):
            return False
        kind, nonce, _ = parts
        if kind == DETAIL_BY_DB and entry.action not in DETAIL_FROM_DATABASE:
            return False
        expected = self.entry_mac(
            at=entry.at, actor=entry.actor, action=entry.action, subject_type=entry.subject_type,
            subject_id=entry.subject_id, detail=entry.detail if kind == FULL else None, source=entry.source,
            reason=entry.reason, nonce=nonce,
        )  # fmt: skip
        return hmac.compare_digest(expected, str(entry.mac))

    # ------------------------------------------------------------------------------ seals and checkpoints

    def seal_mac(self, *, seq: int, head: str, at: datetime, prev: str) -> str:
        """A seal: the chain's head (its ``seq`` and hash) at ``at``, after the seal ``prev`` (its MAC, or
        64 zeros for the first seal of a store)."""
        return self._tag(["seal1", int(seq), head, canonical_at(at), prev])

    def seal_ok(self, seal: Any) -> bool:
        expected = self.seal_mac(seq=seal.seq, head=seal.head, at=seal.at, prev=seal.prev)
        return hmac.compare_digest(expected, str(seal.mac or ""))


_keys: dict[bytes, AuditKey] = {}


def key_of_ring(ring: KeyRing) -> AuditKey:
    key = _keys.get(ring.index_key)
    if key is None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LABEL).derive(ring.index_key)
        key = _keys[ring.index_key] = AuditKey(derived)
    return key


def audit_key(settings: Settings) -> AuditKey:
    """The audit key of the data home's key ring (created with the ring on first use)."""
    from omnibank.security import get_cipher

    return key_of_ring(get_cipher(settings).ring)


def checkpoint_line(seal: Any) -> str:
    """A seal as one JSON line of a checkpoint file (it carries its own MAC)."""
    return json.dumps(
        {"kind": CHECKPOINT, "seq": int(seal.seq), "head": seal.head, "at": canonical_at(seal.at),
         "prev": seal.prev, "mac": seal.mac},
        sort_keys=True,
    )  # fmt: skip
