"""Channel adapters: how a queued message leaves the platform.

One interface, :class:`Adapter`, with two implementations:

* :class:`SandboxAdapter` — the default for every channel: nothing leaves; the message counts as delivered
  at once (a delivered receipt), and, for demos, a deterministic share of them as clicked
  (``OMNIBANK_CONTACT_SANDBOX_CLICK_RATE``; the same message always gives the same answer).
* :class:`WebhookAdapter` — a real gateway (SMS, WeChat template messages, an outbound-call platform …):
  one JSON ``POST`` a message to the URL configured for its channel (``OMNIBANK_CONTACT_WEBHOOKS``), signed
  with HMAC-SHA256 over the exact body bytes (header ``X-Omnibank-Signature: sha256=<hex>``, secret
  ``OMNIBANK_CONTACT_WEBHOOK_SECRET``). A 2xx answer means the gateway took it (``sent``; the gateway
  reports delivery later through ``POST /api/v1/contact/receipts``); any other answer, a timeout or a
  connection error means ``failed`` with the reason.

The body carries the customer number, never contact details: the bank's gateway resolves the phone number
or openid itself, inside the bank. ``Idempotency-Key`` is the message key, so a gateway can drop a message
sent again after a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from omnibank.config import Settings

SIGNATURE_HEADER = "X-Omnibank-Signature"
_MAX_REF = 128


@dataclass(frozen=True)
class Outgoing:
    """A message handed to an adapter."""

    message_id: int
    key: str
    customer_id: str
    channel: str
    purpose: str
    journey: str | None
    step: str | None
    template: str | None
    payload: Mapping[str, str]


@dataclass(frozen=True)
class Outcome:
    """What an adapter did with a message: ``sent`` (a gateway took it), ``delivered`` (and, with
    ``clicked``, opened), or ``failed`` with the reason."""

    message_id: int
    status: Literal["sent", "delivered", "failed"]
    reason: str | None = None
    provider_ref: str | None = None
    clicked: bool = False


class Adapter(Protocol):
    name: str

    def deliver(self, messages: Sequence[Outgoing], *, now: datetime) -> list[Outcome]:
        """Hand these messages over; one outcome per message, in any order. Never raises for one
        message's failure (that is a ``failed`` outcome)."""
        ...


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex of HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time compare); for gateways and tests."""
    return hmac.compare_digest(sign(secret, body), header.strip())


class SandboxAdapter:
    """Delivers nothing anywhere: every message is delivered at once; ``click_rate`` of them (chosen by a
    hash of the message key, so the same message always decides the same way) also clicked."""

    name = "sandbox"

    def __init__(self, click_rate: Decimal = Decimal(0)):
        if not Decimal(0) <= click_rate <= Decimal(1):
            raise ValueError("click_rate: between 0 and 1")
        self._threshold = int(click_rate * 10_000)

    def clicks(self, key: str) -> bool:
        digest = hashlib.sha256(key.encode()).digest()
        return int.from_bytes(digest[:4], "big") % 10_000 < self._threshold

    def deliver(self, messages: Sequence[Outgoing], *, now: datetime) -> list[Outcome]:
        return [
            Outcome(
                m.message_id, "delivered", provider_ref=f"sandbox:{m.message_id}", clicked=self.clicks(m.key)
            )
            for m in messages
        ]


class WebhookAdapter:
    """JSON POST of each message to ``url``, signed; 2xx → sent, otherwise failed with the reason."""

    name = "webhook"

    def __init__(self, url: str, *, secret: bytes, timeout: float = 5.0):
        if not secret:
            raise ValueError("a webhook needs a secret to sign its bodies")
        self.url = url
        self.secret = secret
        self.timeout = timeout

    def body(self, m: Outgoing, now: datetime) -> bytes:
        doc = {
            "message_id": m.message_id,
            "key": m.key,
            "customer_id": m.customer_id,
            "channel": m.channel,
            "purpose": m.purpose,
            "journey": m.journey,
            "step": m.step,
            "template": m.template,
            "payload": dict(m.payload),
            "sent_at": now.isoformat(),
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    def deliver(self, messages: Sequence[Outgoing], *, now: datetime) -> list[Outcome]:
        return [self._one(m, now) for m in messages]

    def _one(self, m: Outgoing, now: datetime) -> Outcome:
        body = self.body(m, now)
        request = urllib.request.Request(  # noqa: S310 - the URL is from settings, checked http(s)
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                SIGNATURE_HEADER: sign(self.secret, body),
                "Idempotency-Key": m.key,
                "User-Agent": "omnibank-contact",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read(65_536)
                return Outcome(m.message_id, "sent", provider_ref=_provider_ref(raw))
        except urllib.error.HTTPError as exc:
            exc.close()
            return Outcome(m.message_id, "failed", reason=f"gateway_http_{exc.code}")
        except TimeoutError:
            return Outcome(m.message_id, "failed", reason="gateway_timeout")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError | socket.timeout):
                return Outcome(m.message_id, "failed", reason="gateway_timeout")
            return Outcome(m.message_id, "failed", reason=f"gateway_unreachable: {str(exc.reason)[:120]}")
        except OSError as exc:
            return Outcome(m.message_id, "failed", reason=f"gateway_error: {str(exc)[:120]}")


def _provider_ref(raw: bytes) -> str | None:
    """The gateway's id for the message, from a JSON answer ``{"id": …}`` (or ``ref``), if any."""
    try:
        doc = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(doc, dict):
        for name in ("id", "ref", "message_id"):
            value = doc.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)[:_MAX_REF]
    return None


def adapters_for(settings: Settings) -> dict[str, Adapter]:
    """The adapter of every channel: a webhook where one is configured, the sandbox elsewhere."""
    from omnibank.contact.policy import CHANNELS

    sandbox = SandboxAdapter(settings.contact_sandbox_click_rate)
    out: dict[str, Adapter] = {}
    secret = settings.contact_webhook_secret
    for channel in CHANNELS:
        url = settings.contact_webhooks.get(channel)
        if url and secret is not None:
            out[channel] = WebhookAdapter(
                url, secret=secret.get_secret_value().encode(), timeout=settings.contact_webhook_timeout
            )
        else:
            out[channel] = sandbox
    return out
