"""API tokens: scopes checked per endpoint, expiry and revocation enforced; events through the loader,
idempotent by event_id."""

from __future__ import annotations

from datetime import timedelta

from omnibank.db import unit_of_work
from omnibank.users import service as users
from tests.api.bank import Bank


def _token(
    bank: Bank, scopes: list[str], *, name: str = "crm", days: int = 90, org: str | None = None
) -> str:
    with unit_of_work(bank.settings) as session:
        _, plaintext = users.create_api_token(
            session,
            name=name,
            scopes=scopes,
            lifetime=timedelta(days=days),
            now=bank.clock.now,
            actor="test",
            org_id=org,
            bank_wide=org is None,
        )
    return plaintext


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_scopes_are_checked_per_endpoint(bank: Bank) -> None:
    token = _token(bank, ["customers:read"])
    assert bank.client.get("/api/v1/customers/count", headers=_h(token)).status_code == 200
    for method, path, body in [
        ("post", "/api/v1/events", {"event_id": "x"}),
        ("post", "/api/v1/segments/count", {"expression": "age > 1"}),
        ("post", "/api/v1/coupons", {"customer_id": "CA1", "benefit_id": "voucher"}),
        ("post", "/api/v1/customers/CA1/reveal", {"field": "name", "reason": "because"}),
        ("get", "/api/v1/audit", None),
    ]:
        r = bank.client.request(method, path, headers=_h(token), json=body)
        assert r.status_code == 403, path


def test_a_token_limited_to_an_org_sees_that_subtree(bank: Bank) -> None:
    token = _token(bank, ["customers:read"], org="B002")
    r = bank.client.get("/api/v1/customers", headers=_h(token))
    assert {c["customer_id"] for c in r.json()["items"]} == {"CB1", "CB2"}


def test_expired_and_revoked_tokens_are_refused(bank: Bank) -> None:
    token = _token(bank, ["customers:read"], days=1)
    bank.clock.advance(hours=23)
    assert bank.client.get("/api/v1/customers/count", headers=_h(token)).status_code == 200
    bank.clock.advance(hours=1, seconds=1)
    r = bank.client.get("/api/v1/customers/count", headers=_h(token))
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    other = _token(bank, ["customers:read"], name="bi")
    with unit_of_work(bank.settings) as session:
        users.revoke_api_token(session, "bi", now=bank.clock.now, actor="test")
    assert bank.client.get("/api/v1/customers/count", headers=_h(other)).status_code == 401


def test_unknown_token_is_refused(bank: Bank) -> None:
    assert bank.client.get("/api/v1/customers", headers=_h("omb_deadbeef_nope")).status_code == 401


def _event(event_id: str, **fields: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "type": "app.login",
        "ts": "2026-03-01T08:00:00+08:00",
        "customer_id": "CA1",
        "channel": "app",
        **fields,
    }


def test_events_are_loaded_once_by_event_id(bank: Bank) -> None:
    token = _token(bank, ["events:write", "segments:read"])
    batch = {"events": [_event("ev-1"), _event("ev-2")]}
    first = bank.client.post("/api/v1/events/batch", headers=_h(token), json=batch)
    assert first.json() == {"loaded": 2, "duplicates": 0, "rejected": 0, "rejects": []}
    again = bank.client.post("/api/v1/events/batch", headers=_h(token), json=batch)
    assert again.json()["loaded"] == 0 and again.json()["duplicates"] == 2
    one = bank.client.post("/api/v1/events", headers=_h(token), json=_event("ev-3"))
    assert one.json()["loaded"] == 1
    count = bank.client.post(
        "/api/v1/segments/count",
        headers=_h(token),
        json={"expression": "events('app.login', 30) = 3", "as_of": "2026-03-02"},
    )
    assert count.json()["count"] == 1


def test_a_bad_event_is_rejected_with_the_field_and_the_good_ones_load(bank: Bank) -> None:
    token = _token(bank, ["events:write"])
    batch = {"events": [_event("ev-1"), _event("ev-2", ts="yesterday"), {"type": "app.login"}]}
    r = bank.client.post("/api/v1/events/batch", headers=_h(token), json=batch)
    body = r.json()
    assert body["loaded"] == 1 and body["rejected"] == 2
    reasons = {rej["index"]: rej["reason"] for rej in body["rejects"]}
    assert set(reasons) == {1, 2} and "ts" in reasons[1] and "event_id" in reasons[2]


def test_empty_batch_is_a_422(bank: Bank) -> None:
    token = _token(bank, ["events:write"])
    r = bank.client.post("/api/v1/events/batch", headers=_h(token), json={"events": []})
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["body", "events"]
