"""Bad input is answered 4xx naming the field (never 500); one error shape; body size limit; security
headers; CORS closed by default; an unexpected error is a 500 JSON without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from omnibank.app import create_app
from tests.api.bank import Bank, build_bank


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/customers", {"phone": "abc"}, ["query", "phone"]),
        ("/api/v1/customers", {"id_number": "123"}, ["query", "id_number"]),
        ("/api/v1/customers", {"limit": "0"}, ["query", "limit"]),
        ("/api/v1/customers", {"limit": "many"}, ["query", "limit"]),
        ("/api/v1/audit", {"since": "yesterday"}, ["query", "since"]),
    ],
)
def test_bad_query_parameters_name_the_field(bank: Bank, path: str, params: dict, field: list) -> None:
    r = bank.get("admin", path, params=params)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_request" and body["details"][0]["loc"] == field
    assert field[-1] in body["message"]
    assert set(body["details"][0]) == {"loc", "msg", "type"}


@pytest.mark.parametrize(
    ("path", "json_body", "field"),
    [
        ("/api/v1/segments/count", {}, ["body", "expression"]),
        ("/api/v1/segments/count", {"expression": "age > 1", "as_of": "not a date"}, ["body", "as_of"]),
        ("/api/v1/segments/preview", {"expression": "age > 1", "limit": 1000}, ["body", "limit"]),
        ("/api/v1/coupons", {"customer_id": "CA1"}, ["body", "benefit_id"]),
        ("/api/v1/points/CA1/redeem", {"amount": -5}, ["body", "amount"]),
        ("/api/v1/auth/login", {"username": "admin"}, ["body", "password"]),
        ("/api/v1/users", {"role": "emperor", "password": "x"}, ["body", "role"]),
        ("/api/v1/segments/count", {"expression": "age > 1", "extra": 1}, ["body", "extra"]),
    ],
)
def test_bad_bodies_name_the_field(bank: Bank, path: str, json_body: dict, field: list) -> None:
    r = bank.post("admin", path, json=json_body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_request"
    assert field in [d["loc"] for d in r.json()["details"]]


def test_malformed_json_is_a_422_not_a_500(bank: Bank) -> None:
    r = bank.post(
        "admin", "/api/v1/segments/count", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"


def test_a_bad_expression_is_refused_with_its_reason(bank: Bank) -> None:
    r = bank.post("admin", "/api/v1/segments/count", json={"expression": "salary > 1"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_expression"
    r = bank.post("admin", "/api/v1/segments/count", json={"expression": "age > 1; DROP TABLE customers"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_expression"


def test_unknown_paths_and_methods_answer_in_the_error_shape(bank: Bank) -> None:
    r = bank.client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = bank.client.delete("/api/v1/customers")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


def test_body_over_1_mib_is_refused_with_413(bank: Bank) -> None:
    big = '{"expression": "' + "a" * (1 << 20) + '"}'
    r = bank.post(
        "admin", "/api/v1/segments/count", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_streamed_body_over_the_limit_is_refused_too(bank: Bank) -> None:
    def chunks():
        for _ in range(20):
            yield b"x" * 65536

    r = bank.post(
        "admin", "/api/v1/segments/count", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_security_headers(bank: Bank) -> None:
    r = bank.get("rm_a", "/api/v1/customers/CA1")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert bank.client.get("/healthz").headers["x-frame-options"] == "DENY"


def test_the_docs_page_works_offline_from_vendored_swagger_ui(bank: Bank) -> None:
    page = bank.client.get("/docs")
    assert page.status_code == 200
    assert "/static/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "https://" not in page.text  # nothing from a CDN: banks' networks are closed
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "https:" not in csp
    script = bank.client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    assert bank.client.get("/static/swagger-ui/swagger-ui.css").status_code == 200
    assert bank.client.get("/static/../app.py").status_code == 404


def test_cors_is_closed_by_default_and_opens_only_to_listed_origins(bank: Bank) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    r = bank.client.options("/api/v1/customers", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    settings = bank.settings.model_copy(update={"api_cors_origins": ["https://crm.bank.example"]})
    opened = TestClient(create_app(settings))
    ok = opened.options("/api/v1/customers", headers={**preflight, "Origin": "https://crm.bank.example"})
    assert ok.headers["access-control-allow-origin"] == "https://crm.bank.example"
    evil = opened.options("/api/v1/customers", headers=preflight)
    assert "access-control-allow-origin" not in evil.headers


def test_unexpected_error_is_a_500_json_without_traceback(env, tmp_path: Path) -> None:
    bank = build_bank(env.settings, tmp_path / "boom", raise_server_exceptions=False)

    @bank.client.app.get("/boom")  # type: ignore[attr-defined]
    def boom() -> None:
        raise RuntimeError("secret internals at /srv/omnibank/x.py line 3")

    r = bank.client.get("/boom")
    assert r.status_code == 500
    assert r.json() == {
        "code": "internal_error",
        "message": "an unexpected error occurred; it has been logged",
        "details": {},
    }
    assert "secret internals" not in r.text and "Traceback" not in r.text
