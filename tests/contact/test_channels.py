"""Channel adapters over real HTTP: a local gateway (http.server in a thread) receives signed JSON; 2xx is
sent, anything else, a timeout or a closed port is failed with the reason; the sandbox delivers and clicks
deterministically."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from omnibank.config import Settings
from omnibank.contact.channels import (
    SIGNATURE_HEADER,
    Outgoing,
    SandboxAdapter,
    WebhookAdapter,
    adapters_for,
    sign,
    verify,
)
from omnibank.contact.dispatch import dispatch
from omnibank.contact.models import ContactMessage
from omnibank.contact.outbox import submit
from omnibank.db import unit_of_work
from tests.contact.helpers import MONDAY, load_bank, send

SECRET = b"s3cret-for-tests"


class Gateway:
    """A local HTTP gateway: records each request; answers with ``status`` after ``delay`` seconds."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.delay = 0.0
        self.answer = b'{"id": "gw-0001"}'
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.requests.append({"headers": dict(self.headers), "body": body, "path": self.path})
                time.sleep(gateway.delay)
                self.send_response(gateway.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(gateway.answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Gateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway() as gw:
        yield gw


def message(i: int = 1, **kw: Any) -> Outgoing:
    base: dict[str, Any] = {
        "message_id": i, "key": f"journey:birthday:C01:{i}", "customer_id": "C01", "channel": "sms",
        "purpose": "marketing", "journey": "生日关怀", "step": "s1", "template": "birthday",
        "payload": {"祝福": "生日快乐"},
    }  # fmt: skip
    base.update(kw)
    return Outgoing(**base)


def test_webhook_posts_signed_json_and_a_2xx_is_sent(gateway) -> None:
    outcome = WebhookAdapter(gateway.url, secret=SECRET).deliver([message()], now=MONDAY)
    assert [(o.status, o.provider_ref) for o in outcome] == [("sent", "gw-0001")]
    req = gateway.requests[0]
    assert verify(SECRET, req["body"], req["headers"][SIGNATURE_HEADER])
    assert not verify(b"another secret", req["body"], req["headers"][SIGNATURE_HEADER])
    assert req["headers"]["Idempotency-Key"] == "journey:birthday:C01:1"
    body = json.loads(req["body"].decode("utf-8"))
    assert body["payload"] == {"祝福": "生日快乐"} and body["journey"] == "生日关怀"
    assert body["customer_id"] == "C01" and "phone" not in body
    assert sign(SECRET, req["body"]).startswith("sha256=") and len(sign(SECRET, req["body"])) == 71


@pytest.mark.parametrize(("status", "reason"), [(500, "gateway_http_500"), (404, "gateway_http_404"),
                                                 (429, "gateway_http_429")])  # fmt: skip
def test_webhook_non_2xx_is_failed_with_the_status(gateway, status: int, reason: str) -> None:
    gateway.status = status
    [o] = WebhookAdapter(gateway.url, secret=SECRET).deliver([message()], now=MONDAY)
    assert (o.status, o.reason) == ("failed", reason)


def test_webhook_timeout_is_failed(gateway) -> None:
    gateway.delay = 1.0
    started = time.perf_counter()
    [o] = WebhookAdapter(gateway.url, secret=SECRET, timeout=0.2).deliver([message()], now=MONDAY)
    assert (o.status, o.reason) == ("failed", "gateway_timeout")
    assert time.perf_counter() - started < 0.9


def test_webhook_to_a_closed_port_is_failed_as_unreachable() -> None:
    with Gateway() as gw:
        url = gw.url
    [o] = WebhookAdapter(url, secret=SECRET, timeout=1).deliver([message()], now=MONDAY)
    assert o.status == "failed" and o.reason is not None and o.reason.startswith("gateway_unreachable")


def test_webhook_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookAdapter("http://127.0.0.1:1/x", secret=b"")


def test_sandbox_delivers_and_clicks_deterministically() -> None:
    none = SandboxAdapter().deliver([message(i) for i in range(100)], now=MONDAY)
    assert {(o.status, o.clicked) for o in none} == {("delivered", False)}
    half = SandboxAdapter(Decimal("0.5"))
    clicks = [o.clicked for o in half.deliver([message(i) for i in range(400)], now=MONDAY)]
    assert 150 < sum(clicks) < 250
    assert clicks == [o.clicked for o in half.deliver([message(i) for i in range(400)], now=MONDAY)]
    with pytest.raises(ValueError, match="between 0 and 1"):
        SandboxAdapter(Decimal(2))


def test_dispatch_through_a_configured_webhook_end_to_end(env, tmp_path, gateway) -> None:
    load_bank(env.settings, tmp_path / "bank")
    settings = Settings(home=env.home, database_url=env.database_url, contact_webhooks={"sms": gateway.url},
                        contact_webhook_secret="s3cret-for-tests")  # fmt: skip
    adapters = adapters_for(settings)
    assert isinstance(adapters["sms"], WebhookAdapter) and isinstance(adapters["app_push"], SandboxAdapter)
    with unit_of_work(settings) as session:
        ds = submit(session, settings, [send("a", "C01", "sms"), send("b", "C02", "app_push")], now=MONDAY)
    report = dispatch(settings, now=MONDAY + timedelta(minutes=1))
    assert report.outcomes == {"sent": 1, "delivered": 1}
    assert [json.loads(r["body"])["message_id"] for r in gateway.requests] == [ds[0].message_id]
    with unit_of_work(settings) as session:
        a = session.scalars(select(ContactMessage).where(ContactMessage.key == "a")).one()
    assert (a.status, a.provider_ref, a.attempts) == ("sent", "gw-0001", 1)
