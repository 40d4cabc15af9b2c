"""/api/v1/leads: scoped by the customers rule (an RM sees the leads of their own customers and of the
unassigned ones of their unit, a manager those of the subtree; an RM of another branch sees nothing of a
lead), masked,
status changes with Idempotency-Key, refused moves 409, bad input 4xx."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from omnibank.leads import service
from omnibank.leads.service import LeadRead
from tests.api.bank import NOW, Bank
from tests.leads.helpers import PLAINTEXT, logged, request

URL = "/api/v1/leads"


def _leads(bank: Bank) -> dict[str, LeadRead]:
    """CA1 (RM E00001, S0101), CA3 (queue S0102, overdue), CB1 (RM E00002, B002's S0201)."""
    with unit_of_work(bank.settings) as session:
        made = service.create_leads(
            session,
            [
                request("CA1", product_id="fund_a", source="journey:fund_view"),
                request("CA3", due_at=NOW - timedelta(hours=1)),
                request("CB1"),
            ],
            now=NOW - timedelta(days=1),
        )
    return {x.customer_id: x for x in made}


def _ids(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["customer_id"] for item in response.json()["items"]}


def test_staff_see_the_leads_of_the_customers_they_see_only(bank: Bank) -> None:
    leads = _leads(bank)
    assert _ids(bank.get("rm_a", URL)) == {"CA1"}  # their own customer
    assert _ids(bank.get("rm_team", URL)) == set()  # CA1 is RM E00001's, beside them in sub-branch S0101
    assert _ids(bank.get("bm_a", URL)) == {"CA1", "CA3"}  # branch B001
    assert _ids(bank.get("rm_b", URL)) == {"CB1"}
    assert _ids(bank.get("admin", URL)) == {"CA1", "CA3", "CB1"}
    # one lead: visible in scope, out of scope it does not exist
    mine = bank.get("rm_a", f"{URL}/{leads['CA1'].lead_id}")
    assert mine.status_code == 200 and mine.json()["history"][0]["action"] == "created"
    other = bank.get("rm_b", f"{URL}/{leads['CA1'].lead_id}")
    assert other.status_code == 404 and other.json()["code"] == "not_found"
    # a caller without customer access sees none
    assert bank.get("auditor", URL).status_code == 403


def test_responses_are_masked_and_the_view_is_audited(bank: Bank) -> None:
    leads = _leads(bank)
    body = bank.get("bm_a", URL).json()
    item = next(x for x in body["items"] if x["customer_id"] == "CA1")
    assert (item["customer_name"], item["customer_phone"]) == ("张**", "138****0001")
    assert (item["owner_staff_id"], item["org_id"], item["product_id"]) == ("E00001", "S0101", "fund_a")
    text = bank.get("bm_a", f"{URL}/{leads['CA1'].lead_id}").text + str(body)
    assert not [p for p in PLAINTEXT if p in text]
    with unit_of_work(bank.settings) as session:
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "user:bm_a")))
    assert actions.count("lead.list") == 1 and actions.count("lead.view") == 1


def test_filters_status_overdue_and_owner(bank: Bank) -> None:
    _leads(bank)
    overdue = bank.get("bm_a", URL, params={"overdue": "true"}).json()["items"]
    assert [x["customer_id"] for x in overdue] == ["CA3"] and overdue[0]["overdue"] is True
    assert _ids(bank.get("bm_a", URL, params={"owner": "none"})) == {"CA3"}
    assert _ids(bank.get("bm_a", URL, params={"owner": "E00001"})) == {"CA1"}
    assert _ids(bank.get("bm_a", URL, params={"status": "won"})) == set()
    page = bank.get("bm_a", URL, params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_after"] == page["items"][0]["lead_id"]
    rest = bank.get("bm_a", URL, params={"limit": 1, "after": page["next_after"]}).json()
    assert {page["items"][0]["customer_id"], rest["items"][0]["customer_id"]} == {"CA1", "CA3"}


def test_bad_input_is_refused_with_4xx(bank: Bank) -> None:
    leads = _leads(bank)
    assert bank.get("rm_a", URL, params={"status": "closed"}).status_code == 422
    assert bank.get("rm_a", URL, params={"limit": 0}).status_code == 422
    assert bank.get("rm_a", URL, params={"owner": "x y"}).status_code == 422
    assert bank.get("rm_a", f"{URL}/not%20an%20id").status_code == 422
    path = f"{URL}/{leads['CA1'].lead_id}"
    headers = bank.auth("rm_a")
    for body in ({"status": "new"}, {"status": "done"}, {}, {"status": "won", "extra": 1},
                 {"status": "won", "note": "长" * 501}):  # fmt: skip
        response = bank.client.patch(path, json=body, headers=headers)
        assert response.status_code == 422, body
    assert bank.client.patch(f"{URL}/LNOPE", json={"status": "won"}, headers=headers).status_code == 404
    assert bank.client.patch(path, json={"status": "won"}).status_code == 401


def test_patch_moves_the_lead_once_per_key_and_refuses_illegal_moves(bank: Bank) -> None:
    leads = _leads(bank)
    path = f"{URL}/{leads['CA3'].lead_id}"
    headers = {**bank.auth("bm_a"), "Idempotency-Key": "contact-1"}
    # when the branch manager records contact with the queue lead (twice: a retry)
    first = bank.client.patch(
        path, json={"status": "contacted", "note": "已联系 13912345678"}, headers=headers
    )
    retry = bank.client.patch(
        path, json={"status": "contacted", "note": "已联系 13912345678"}, headers=headers
    )
    # then it moved once, became theirs, and the retry replayed the answer
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["status"], body["owner_staff_id"], body["overdue"]) == ("contacted", "E00003", False)
    assert body["history"][-1]["note"] == "已联系 139****5678"
    assert retry.status_code == 200 and retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json() == body
    assert [h["action"] for h in body["history"]] == ["created", "contacted"]
    event = logged(bank.settings)[f"lead:{leads['CA3'].lead_id}:contacted"]
    assert (event["staff_id"], event["customer_id"]) == ("E00003", "CA3")
    # the same key for another request, the same move without a key, a move after close: refused
    reused = bank.client.patch(path, json={"status": "won"}, headers=headers)
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    again = bank.client.patch(path, json={"status": "contacted"}, headers=bank.auth("bm_a"))
    assert again.status_code == 409 and again.json()["code"] == "lead_transition_refused"
    assert bank.client.patch(path, json={"status": "lost"}, headers=bank.auth("bm_a")).status_code == 200
    closed = bank.client.patch(path, json={"status": "won"}, headers=bank.auth("bm_a"))
    assert closed.status_code == 409 and "a closed lead cannot change" in closed.json()["message"]


def test_an_rm_of_another_branch_cannot_change_the_lead(bank: Bank) -> None:
    leads = _leads(bank)
    path = f"{URL}/{leads['CA1'].lead_id}"
    refused = bank.client.patch(path, json={"status": "won"}, headers=bank.auth("rm_b"))
    assert refused.status_code == 404
    denied = bank.client.patch(path, json={"status": "won"}, headers=bank.auth("auditor"))
    assert denied.status_code == 403
    with unit_of_work(bank.settings) as session:
        assert [h.action for h in service.history(session, leads["CA1"].lead_id)] == ["created"]
