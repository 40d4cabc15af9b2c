"""/api/v1/tickets: scoped by the customers rule, masked and audited; opening with an Idempotency-Key opens
once; changes move the ticket or are refused (409), bad input 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr
from sqlalchemy import func, select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from omnibank.events.reader import read_events
from omnibank.service.models import Ticket
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank
from tests.leads.helpers import PLAINTEXT

URL = "/api/v1/tickets"


@pytest.fixture
def bank(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000})
    built = build_bank(settings, tmp_path / "api-bank")
    with built.client:
        yield built


def _open(bank: Bank, user: str, customer: str, **kw) -> dict:
    body = {"customer_id": customer, "category": "benefit", "subject": "瑞幸券核销失败", **kw}
    r = bank.client.post(URL, json=body, headers=bank.auth(user))
    assert r.status_code == 201, r.text
    return r.json()


def test_open_list_and_read_scoped_and_masked(bank: Bank) -> None:
    a = _open(bank, "agent", "CA3", description="王五岳投诉券过期", channel="phone_hotline")
    b = _open(bank, "admin", "CB1")
    assert (a["status"], a["queue"], a["name"], a["phone"]) == ("assigned", "desk", "王**", "138****0003")
    assert [c["target"] for c in a["clocks"]] == ["resolution"] and a["clocks"][0][
        "spec"
    ] == "15 calendar days"
    assert {x["ticket_id"] for x in bank.get("bm_a", URL).json()["items"]} == {a["ticket_id"]}
    assert {x["ticket_id"] for x in bank.get("admin", URL).json()["items"]} == {
        a["ticket_id"],
        b["ticket_id"],
    }
    assert bank.get("bm_a", f"{URL}/{b['ticket_id']}").status_code == 404  # branch B002's customer
    assert bank.get("auditor", URL).status_code == 403
    # an RM cannot open a ticket for a customer they do not see
    r = bank.client.post(
        URL, json={"customer_id": "CB1", "category": "card", "subject": "x"}, headers=bank.auth("rm_a")
    )
    assert r.status_code == 404
    text = bank.get("admin", f"{URL}/{a['ticket_id']}").text + bank.get("admin", URL).text
    assert not [p for p in PLAINTEXT if p in text] and "投诉券过期" not in text
    with unit_of_work(bank.settings) as session:
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "user:admin")))
    assert {"ticket.open", "ticket.list", "ticket.view"} <= set(actions)
    types = {e.type for e in read_events(bank.settings, platform=True)}
    assert {"ticket.opened", "ticket.assigned"} <= types


def test_an_idempotency_key_opens_once(bank: Bank) -> None:
    headers = {**bank.auth("agent"), "Idempotency-Key": "call-778"}
    body = {"customer_id": "CA3", "category": "card", "kind": "inquiry", "subject": "年费怎么收"}
    first = bank.client.post(URL, json=body, headers=headers)
    again = bank.client.post(URL, json=body, headers=headers)
    assert first.status_code == 201 and again.json() == first.json()
    with unit_of_work(bank.settings) as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_changes_move_the_ticket_or_are_refused(bank: Bank) -> None:
    t = _open(bank, "agent", "CA3")
    path = f"{URL}/{t['ticket_id']}"
    headers = bank.auth("agent")
    r = bank.client.patch(path, json={"answer": "responded", "note": "已回电 13912345678"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["history"][-1]["note"] == "已回电 139****5678" and r.json()["first_response_at"]
    r = bank.client.patch(path, json={"status": "resolved"}, headers=headers)
    assert r.json()["status"] == "resolved"
    refused = bank.client.patch(path, json={"status": "waiting_customer"}, headers=headers)
    assert refused.status_code == 409 and "may move to closed, reopened" in refused.json()["message"]
    for body in (
        {},
        {"status": "done"},
        {"status": "closed", "answer": "updated"},
        {"status": "closed", "x": 1},
    ):
        assert bank.client.patch(path, json=body, headers=headers).status_code == 422, body
    assert bank.client.patch(path, json={"assign_staff": "E99999"}, headers=headers).status_code == 404
    assert bank.client.patch(f"{URL}/NOPE", json={"status": "closed"}, headers=headers).status_code == 404
    assert bank.client.patch(path, json={"status": "closed"}, headers=bank.auth("auditor")).status_code == 403


def test_a_benefit_ticket_goes_to_its_supplier_whose_signed_answer_is_recorded(
    env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnibank.contact.channels import sign
    from omnibank.service import jobs

    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = env.settings.model_copy(update={
        "api_login_per_minute": 1000, "supplier_webhooks": {"acme": "https://acme.example/tickets"},
        "supplier_webhook_secret": SecretStr("s3cret-acme"),
    })  # fmt: skip
    posted: list[bytes] = []

    def post(url: str, body: bytes, headers) -> int:
        posted.append(body)
        return 200

    monkeypatch.setattr("omnibank.service.suppliers.http_post", post)
    bank = build_bank(settings, tmp_path / "api-bank")
    with bank.client:
        t = _open(bank, "agent", "CA3", benefit_id="voucher")
        assert t["supplier_id"] == "acme"
        counts = jobs.desk_pass(settings, bank.clock())
        assert counts["suppliers_notified"] == 1 and len(posted) == 1
        assert b"voucher" in posted[0] and "王五岳".encode() not in posted[0]
        body = json.dumps({"ticket_id": t["ticket_id"], "note": "已补发券"}, ensure_ascii=False).encode()
        url = f"{URL}/supplier-answer"
        bad = bank.client.post(url, content=body, headers={"X-Omnibank-Signature": "sha256=00"})
        assert bad.status_code == 401
        good = bank.client.post(
            url, content=body, headers={"X-Omnibank-Signature": sign(b"s3cret-acme", body)}
        )
        assert good.status_code == 200, good.text
        assert good.json()["supplier_answered_at"] is not None
        shown = bank.get("agent", f"{URL}/{t['ticket_id']}").json()
        assert [h["action"] for h in shown["history"]][-2:] == ["supplier_notified", "supplier_answered"]
