"""Personal data is masked unless revealed; revealing needs the permission and a reason, and is audited;
every read of personal data is audited; the auditor reads the trail."""

from __future__ import annotations

import json

from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from tests.api.bank import CUSTOMERS, Bank

CA1 = next(r for r in CUSTOMERS if r["customer_id"] == "CA1")


def _entries(bank: Bank, action: str) -> list[AuditEntry]:
    with unit_of_work(bank.settings) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_360_view_is_masked_and_audited(bank: Bank) -> None:
    r = bank.get("rm_a", "/api/v1/customers/CA1")
    body = r.json()
    assert body["name"] == "张**" and body["phone"] == "138****0001"
    assert body["id_number"].startswith("1311") and "*" in body["id_number"]
    assert CA1["id_number"] not in r.text and CA1["phone"] not in r.text and CA1["name"] not in r.text
    assert r.headers["cache-control"] == "no-store"
    views = _entries(bank, "customer.view")
    assert [(e.actor, e.subject_id) for e in views] == [("user:rm_a", "CA1")]
    assert views[0].source.startswith("api:")  # the audit says the read came through the API


def test_list_and_search_are_masked_and_audited(bank: Bank) -> None:
    listed = bank.get("rm_a", "/api/v1/customers")
    assert CA1["phone"] not in listed.text and "138****0001" in listed.text
    found = bank.post("rm_a", "/api/v1/customers/search", json={"phone": CA1["phone"]})
    assert [c["customer_id"] for c in found.json()["items"]] == ["CA1"]
    assert CA1["phone"] not in found.text
    by_id = bank.post("rm_a", "/api/v1/customers/search", json={"id_number": CA1["id_number"].lower()})
    assert [c["customer_id"] for c in by_id.json()["items"]] == ["CA1"]
    assert _entries(bank, "customer.list")[0].actor == "user:rm_a"
    finds = _entries(bank, "customer.find")
    assert len(finds) == 2 and not [f for f in finds if CA1["phone"] in f.detail]
    assert finds[0].source.startswith("api:")


def test_a_search_takes_one_number_in_the_body_never_in_the_url(bank: Bank) -> None:
    for body in ({}, {"phone": CA1["phone"], "id_number": CA1["id_number"]}, {"phone": "abc"},
                 {"id_number": "123"}, {"phone": CA1["phone"], "extra": 1}):  # fmt: skip
        r = bank.post("rm_a", "/api/v1/customers/search", json=body)
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", body
    for query in ({"phone": CA1["phone"]}, {"id_number": CA1["id_number"]}):
        r = bank.get("rm_a", "/api/v1/customers", params=query)
        assert r.status_code == 422 and r.json()["details"][0]["type"] == "search_by_post"
        assert CA1["phone"] not in r.text and CA1["id_number"] not in r.text
    assert _entries(bank, "customer.find") == []


def test_the_360_view_shows_the_age_never_the_birth_date(bank: Bank) -> None:
    # CA1 was born on 1960-01-01; the bank's clock says 2026-03-02
    for who in ("rm_a", "bm_a", "admin"):  # with the reveal permission too: a view is not a reveal
        r = bank.get(who, "/api/v1/customers/CA1")
        body = r.json()
        assert body["age"] == 66 and "birth_date" not in body
        assert "1960-01-01" not in r.text and "19600101" not in r.text
        # the masked ID number keeps its first and last four characters only
        assert body["id_number"] == CA1["id_number"][:4] + "*" * 10 + CA1["id_number"][-4:]
    for path in ("/api/v1/customers", "/api/v1/leads"):
        assert "1960-01-01" not in bank.get("rm_a", path).text
    preview = bank.post("rm_a", "/api/v1/segments/preview", json={"expression": "age > 60"}).json()
    assert preview["rows"][0]["age"] == 66 and "birth_date" not in preview["rows"][0]


def test_the_birth_date_is_revealed_with_the_permission_and_a_reason_audited(bank: Bank) -> None:
    body = {"field": "birth_date", "reason": "pension product suitability check"}
    assert bank.post("rm_a", "/api/v1/customers/CA1/reveal", json=body).status_code == 403
    r = bank.post("bm_a", "/api/v1/customers/CA1/reveal", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"customer_id": "CA1", "field": "birth_date", "value": "1960-01-01"}
    (entry,) = _entries(bank, "customer.reveal")
    assert (entry.actor, entry.subject_id) == ("user:bm_a", "CA1")
    assert json.loads(entry.detail)["revealed"] == ["birth_date"] and "pension" in entry.reason
    assert "1960" not in entry.detail


def test_reveal_needs_the_permission(bank: Bank) -> None:
    for who in ("rm_a", "agent", "cm", "auditor"):
        r = bank.post(
            who, "/api/v1/customers/CA1/reveal", json={"field": "phone", "reason": "customer called"}
        )
        assert r.status_code == 403, who
    assert _entries(bank, "customer.reveal") == []


def test_reveal_needs_a_reason(bank: Bank) -> None:
    r = bank.post("bm_a", "/api/v1/customers/CA1/reveal", json={"field": "phone"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert r.json()["details"][0]["loc"] == ["body", "reason"]
    r = bank.post("bm_a", "/api/v1/customers/CA1/reveal", json={"field": "phone", "reason": "  "})
    assert r.status_code == 422
    assert _entries(bank, "customer.reveal") == []


def test_reveal_returns_one_field_and_is_audited_with_the_reason(bank: Bank) -> None:
    r = bank.post(
        "bm_a",
        "/api/v1/customers/CA1/reveal",
        json={"field": "id_number", "reason": "account opening check #42"},
    )
    assert r.status_code == 200
    assert r.json() == {"customer_id": "CA1", "field": "id_number", "value": CA1["id_number"]}
    assert r.headers["cache-control"] == "no-store"
    (entry,) = _entries(bank, "customer.reveal")
    assert entry.actor == "user:bm_a" and entry.subject_id == "CA1"
    assert json.loads(entry.detail)["revealed"] == ["id_number"]
    assert "account opening check" in entry.reason and entry.source.startswith("api")
    assert CA1["id_number"] not in entry.detail


def test_reveal_outside_the_subtree_is_not_found(bank: Bank) -> None:
    r = bank.post("bm_a", "/api/v1/customers/CB1/reveal", json={"field": "name", "reason": "just curious"})
    assert r.status_code == 404
    admin = bank.post(
        "admin", "/api/v1/customers/CB1/reveal", json={"field": "name", "reason": "complaint 7"}
    )
    assert admin.json()["value"] == "赵六合"


def test_audit_trail_is_for_auditors_and_admins(bank: Bank) -> None:
    bank.get("rm_a", "/api/v1/customers/CA1")
    trail = bank.get("auditor", "/api/v1/audit", params={"actor": "user:rm_a"})
    assert trail.status_code == 200
    assert [e["action"] for e in trail.json()] == ["customer.view"]
    assert bank.get("admin", "/api/v1/audit").status_code == 200
    assert bank.get("rm_a", "/api/v1/audit").status_code == 403
