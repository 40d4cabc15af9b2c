"""Signed links to the customer-facing pages (``/c/...?k=<token>``): a page opened from such a link knows
which customer it is for, without a sign-in.

A token is ``<payload>.<mac>``, both base64url without padding: the payload is ``v1|<customer id>|<expiry
as Unix seconds>`` and the MAC its HMAC-SHA256 under a key derived from the access tokens' key with a label of
its own (a link token is never an access token, nor the reverse). It carries the customer id and the expiry
only — never a name or a phone number.

Low in the layers (with the signing key) so that a domain may put a link in what it sends (a survey
invitation, :mod:`omnibank.contact.outbox`); the console re-exports it (:mod:`omnibank.console.links`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import datetime, timedelta

from omnibank.config import Settings
from omnibank.users.service import signing_key

_LABEL = b"omnibank/console/customer-link/v1"
_VERSION = "v1"
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_TOKEN = 200  # characters: anything longer is not one of ours


def _key(settings: Settings) -> bytes:
    return hmac.new(signing_key(settings), _LABEL, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def customer_link_token(settings: Settings, customer_id: str, *, now: datetime, days: int = 30) -> str:
    """A link token for ``customer_id``, good for ``days`` from ``now``."""
    if not _CUSTOMER_ID.match(customer_id):
        raise ValueError("a customer id of 1 to 32 letters, digits, '_' or '-' is needed")
    expires = int((now + timedelta(days=days)).timestamp())
    payload = f"{_VERSION}|{customer_id}|{expires}".encode("ascii")
    mac = hmac.new(_key(settings), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def read_link_token(settings: Settings, token: str | None, now: datetime) -> str | None:
    """The customer id a genuine, unexpired token names; None for anything else (no token, tampered,
    expired, malformed)."""
    if not token or len(token) > MAX_TOKEN or token.count(".") != 1:
        return None
    encoded, _, presented = token.partition(".")
    try:
        payload, mac = _unb64(encoded), _unb64(presented)
    except (binascii.Error, ValueError):
        return None
    expected = hmac.new(_key(settings), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        version, customer_id, expires = payload.decode("ascii").split("|")
        expiry = int(expires)
    except (UnicodeDecodeError, ValueError):
        return None
    if version != _VERSION or not _CUSTOMER_ID.match(customer_id) or now.timestamp() >= expiry:
        return None
    return customer_id
