from __future__ import annotations

from tests.api.bank import Bank


def test_health_and_openapi(bank: Bank) -> None:
    r = bank.client.get("/healthz")
    assert r.status_code == 200 and r.json()["database"] == "ok"
    spec = bank.client.get("/openapi.json").json()
    assert "/api/v1/customers/{customer_id}/reveal" in spec["paths"]
