"""Event writes are scoped as reads are: a token limited to an org sends events for the customers of that
org's subtree only, and an org-less token (the whole bank) is made so on purpose (``--bank-wide``)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from omnibank.customers.models import CustomerIdentifier
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.events.log import EventLog
from omnibank.users import service as users
from tests.api.bank import Bank

OUT_OF_REACH = "customer_id: not a customer this caller may send events for"


def _token(bank: Bank, name: str, *, org: str | None = None, bank_wide: bool = False) -> dict[str, str]:
    reach: dict[str, Any] = {"bank_wide": True} if bank_wide else {"org_id": org}
    with unit_of_work(bank.settings) as session:
        _, plaintext = users.create_api_token(
            session, name=name, scopes=["customers:read", "events:write"], lifetime=timedelta(days=1),
            now=bank.clock.now, actor="test", **reach,
        )  # fmt: skip
    return {"Authorization": f"Bearer {plaintext}"}


def _linked(event_id: str, customer_id: str | None, openid: str) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": event_id, "type": "identity.linked",
                             "ts": "2026-03-01T08:00:00+08:00", "channel": "wechat",
                             "wechat_openid": openid}  # fmt: skip
    if customer_id is not None:
        event["customer_id"] = customer_id
    return event


def _spend(event_id: str, **where: str) -> dict[str, Any]:
    return {"event_id": event_id, "type": "card.transaction", "ts": "2026-03-01T09:00:00+08:00",
            "channel": "partner", "card_id": "6222000011112222", "amount": "8800.00", **where}  # fmt: skip


def _logged(bank: Bank) -> set[str]:
    log = EventLog(bank.settings)
    return {e["event_id"] for e in log.recent(["CA1", "CA2", "CA3", "CB1", "CB2"], limit=100)}


def _bound(bank: Bank) -> set[tuple[str, str]]:
    with unit_of_work(bank.settings) as session:
        rows = session.execute(select(CustomerIdentifier.value, CustomerIdentifier.customer_id)).all()
    return {(value, cid) for value, cid in rows}


def test_a_token_of_one_branch_cannot_send_events_for_another_branchs_customer(bank: Bank) -> None:
    b002 = _token(bank, "crm-b002", org="B002")
    # when the B002 integration links a WeChat account to CA1, a customer of B001
    r = bank.client.post("/api/v1/events", headers=b002, json=_linked("link-1", "CA1", "wx-attacker"))
    # then it is refused, with the same reason as for a customer that does not exist, and nothing is written
    assert r.status_code == 200, r.text
    assert r.json() == {"loaded": 0, "duplicates": 0, "rejected": 1,
                        "rejects": [{"index": 0, "reason": OUT_OF_REACH}]}  # fmt: skip
    unknown = bank.client.post("/api/v1/events", headers=b002, json=_linked("link-2", "C404", "wx-2"))
    assert unknown.json()["rejects"] == [{"index": 0, "reason": OUT_OF_REACH}]
    assert _logged(bank) == set() and _bound(bank) == set()
    # a batch: its own customers' events load, the others' (and events naming no customer) are refused
    batch = [_spend("t-1", customer_id="CB1"), _spend("t-2", customer_id="CA1"), _spend("t-3"),
             _linked("link-3", "CB2", "wx-b2"), {"type": "app.login"}]  # fmt: skip
    body = bank.client.post("/api/v1/events/batch", headers=b002, json={"events": batch}).json()
    assert (body["loaded"], body["rejected"]) == (2, 3)
    reasons = {x["index"]: x["reason"] for x in body["rejects"]}
    assert reasons[1] == OUT_OF_REACH and set(reasons) == {1, 2, 4}
    assert "customer_id: required" in reasons[2] and "customer_id: required" in reasons[4]
    assert _logged(bank) == {"t-1", "link-3"} and _bound(bank) == {("wx-b2", "CB2")}


def test_an_rm_scoped_by_the_org_tree_sends_no_events_and_a_bank_wide_token_sends_any(bank: Bank) -> None:
    whole = _token(bank, "ingest", bank_wide=True)
    both = {"events": [_spend("t-1", customer_id="CA1"), _spend("t-2", customer_id="CB1")]}
    r = bank.client.post("/api/v1/events/batch", headers=whole, json=both)
    assert r.json()["loaded"] == 2
    assert bank.post("rm_a", "/api/v1/events", json=_spend("t-3", customer_id="CA1")).status_code == 403


def test_a_token_is_made_bank_wide_only_on_purpose(bank: Bank, cli) -> None:
    for org, bank_wide in ((None, False), ("B002", True)):
        with unit_of_work(bank.settings) as session, pytest.raises(AppError, match="--org .*--bank-wide"):
            users.create_api_token(
                session, name="x", scopes=["events:write"], lifetime=timedelta(days=1),
                now=bank.clock.now, actor="test", org_id=org, bank_wide=bank_wide,
            )  # fmt: skip
    made = cli("token", "create", "--name", "ingest", "--scopes", "events:write")
    assert made.exit_code == 1 and "--bank-wide" in made.stderr
    wide = cli("token", "create", "--name", "ingest", "--scopes", "events:write", "--bank-wide")
    assert wide.exit_code == 0 and "the whole bank" in wide.stdout
    (listed,) = [json.loads(line) for line in cli("token", "list", "--format", "json").stdout.splitlines()]
    assert (listed["name"], listed["org_id"]) == ("ingest", None)
