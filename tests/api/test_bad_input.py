"""Attacks on the segment endpoints and the event ingest are answered 4xx naming what is wrong, never 500:
deeply nested or overlong expressions, as-of dates outside 1900-01-01..2199-12-31 (year 1, year 9999), a
lone surrogate in an event's field (JSON's "\\ud800") — which refuses that event alone."""

from __future__ import annotations

import json
from typing import Any

from tests.api.bank import Bank
from tests.events.helpers import event

NESTED = "(" * 60 + "age > 60" + ")" * 60
NOTS = "NOT " * 500 + "age > 60"
LONG = " OR ".join(f"customer_id = 'C{i:07d}'" for i in range(500))  # 10,000+ characters
SEGMENT_PATHS = ["/api/v1/segments/count", "/api/v1/segments/preview", "/api/v1/segments/export"]


def _post_raw(bank: Bank, path: str, body: str) -> Any:
    """The body as written (json.dumps escapes a lone surrogate as \\ud800, as a client would)."""
    headers = {**bank.auth("admin"), "content-type": "application/json"}
    return bank.client.post(path, content=body.encode(), headers=headers)


def test_deep_or_long_expressions_are_422(bank: Bank) -> None:
    for path in SEGMENT_PATHS:
        for expression, message in [
            (NESTED, "nested more than 20 levels"),
            (NOTS, "nested more than 20 levels"),
            (LONG, "at most 4000"),
        ]:
            r = bank.post("admin", path, json={"expression": expression, "as_of": "2026-03-01"})
            assert r.status_code == 422, (path, r.text)
            assert message in r.json()["message"]


def test_as_of_out_of_range_is_422_naming_the_field(bank: Bank) -> None:
    for path in SEGMENT_PATHS:
        for as_of in ("0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01"):
            for expression in ("age > 1", "events('app.login', 30) = 0 AND age >= 60"):
                r = bank.post("admin", path, json={"expression": expression, "as_of": as_of})
                assert r.status_code == 422, (path, r.text)
                body = r.json()
                assert body["code"] == "invalid_request"
                assert body["details"][0]["loc"] == ["body", "as_of"]
                assert body["message"] == (
                    f"as_of: {as_of} is out of range; use a date from 1900-01-01 to 2199-12-31"
                )


def test_the_range_s_edges_are_fine(bank: Bank) -> None:
    for as_of in ("1900-01-01", "2199-12-31"):
        r = bank.post("admin", "/api/v1/segments/count", json={"expression": "age >= 0", "as_of": as_of})
        assert r.status_code == 200, r.text


def test_audit_since_out_of_range_is_422(bank: Bank) -> None:
    for since in ("0001-01-01T00:00:00", "9999-12-31T23:59:59", "0001-01-01T00:00:00+08:00"):
        r = bank.get("admin", "/api/v1/audit", params={"since": since})
        assert r.status_code == 422, r.text
        assert r.json()["details"][0]["loc"] == ["query", "since"] and "since: " in r.json()["message"]
    for since in ("2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00+08:00"):  # no offset: bank-local
        assert bank.get("admin", "/api/v1/audit", params={"since": since}).status_code == 200, since


def test_audit_filters_with_control_characters_are_422(bank: Bank) -> None:
    # PostgreSQL's text refuses a NUL byte: the filter is refused by name before the query, on both stores
    for name in ("actor", "subject"):
        for value in ("a\x00b", "line\nbreak"):
            r = bank.get("admin", "/api/v1/audit", params={name: value})
            assert r.status_code == 422, r.text
            assert r.json()["details"][0]["loc"] == ["query", name]
    assert bank.get("admin", "/api/v1/audit", params={"actor": "cli:运营 ops"}).status_code == 200


def test_a_lone_surrogate_in_an_event_rejects_that_event_alone(bank: Bank) -> None:
    good = event("s-1", customer_id="CA1")
    bad = event("s-2", "card.transaction", customer_id="CA1", card_id="6222000012345678", amount="9.90",
                merchant="\ud800")  # fmt: skip
    bad_key = {**event("s-3", customer_id="CA1"), "x\udc80": 1}
    bad_nested = event("s-4", "branch.visit", customer_id="CA1", detail={"note": ["ok", "\udfff"]})
    one = _post_raw(bank, "/api/v1/events", json.dumps(bad))
    assert one.status_code == 200, one.text
    assert one.json()["loaded"] == 0 and one.json()["rejected"] == 1
    why = "not valid JSON: merchant holds a lone surrogate (U+D800), which is not a character"
    assert one.json()["rejects"] == [{"index": 0, "reason": why}]
    batch = _post_raw(bank, "/api/v1/events/batch", json.dumps({"events": [good, bad, bad_key, bad_nested]}))
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert body["loaded"] == 1 and body["rejected"] == 3
    reasons = {r["index"]: r["reason"] for r in body["rejects"]}
    assert set(reasons) == {1, 2, 3}
    assert reasons[2].startswith("not valid JSON: x\ufffd holds a lone surrogate (U+DC80)")
    assert reasons[3].startswith("not valid JSON: detail.note[1] holds a lone surrogate (U+DFFF)")
    again = _post_raw(bank, "/api/v1/events/batch", json.dumps({"events": [good]}))
    assert again.json()["duplicates"] == 1  # the good one was stored once


def test_a_lone_surrogate_in_an_expression_is_422(bank: Bank) -> None:
    body = json.dumps({"expression": "customer_id = '\ud800'"})
    r = _post_raw(bank, "/api/v1/segments/count", body)
    assert r.status_code == 422, r.text
