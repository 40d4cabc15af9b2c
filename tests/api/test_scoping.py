"""Who sees which customers, through every customer endpoint: get, search by phone and by ID number, list,
count, segment count/preview/export, points, coupons and leads. An RM (管户) sees their own customers and the
unassigned ones of their unit (the queue); branch managers and service agents their org subtree; whole-bank
roles everyone; auditors and suppliers no customer."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnibank.ingest.service import load_file
from tests.api.bank import ALL, BRANCH_A_RM, CUSTOMERS, Bank
from tests.factories import customer_row, customers_csv

PHONE = {r["customer_id"]: r["phone"] for r in CUSTOMERS}
ID_NO = {r["customer_id"]: r["id_number"] for r in CUSTOMERS}
OTHERS = sorted(ALL - BRANCH_A_RM)


def _ids(body: dict) -> set[str]:
    return {c["customer_id"] for c in body["items"]}


@pytest.mark.parametrize("cid", OTHERS)
def test_rm_cannot_get_a_customer_outside_the_subtree(bank: Bank, cid: str) -> None:
    r = bank.get("rm_a", f"/api/v1/customers/{cid}")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert bank.get("admin", f"/api/v1/customers/{cid}").status_code == 200


def test_rm_gets_own_customers(bank: Bank) -> None:
    for cid in BRANCH_A_RM:
        assert bank.get("rm_a", f"/api/v1/customers/{cid}").json()["customer_id"] == cid


@pytest.mark.parametrize("cid", OTHERS)
def test_rm_search_by_phone_and_id_number_finds_nothing_outside(bank: Bank, cid: str) -> None:
    by_phone = bank.post("rm_a", "/api/v1/customers/search", json={"phone": PHONE[cid]}).json()
    by_id = bank.post("rm_a", "/api/v1/customers/search", json={"id_number": ID_NO[cid]}).json()
    assert by_phone["items"] == [] and by_phone["total"] == 0
    assert by_id["items"] == [] and by_id["total"] == 0
    # the same searches by an admin do find the customer: the scope, not the search, hid it
    assert _ids(bank.post("admin", "/api/v1/customers/search", json={"phone": PHONE[cid]}).json()) == {cid}


def test_list_and_count_are_scoped(bank: Bank) -> None:
    assert _ids(bank.get("rm_a", "/api/v1/customers").json()) == BRANCH_A_RM
    assert bank.get("rm_a", "/api/v1/customers/count").json() == {"count": 2}
    assert _ids(bank.get("rm_b", "/api/v1/customers").json()) == {"CB1"}
    assert _ids(bank.get("bm_a", "/api/v1/customers").json()) == {"CA1", "CA2", "CA3"}
    assert _ids(bank.get("agent", "/api/v1/customers").json()) == {"CA3"}
    assert _ids(bank.get("admin", "/api/v1/customers").json()) == ALL
    assert _ids(bank.get("cm", "/api/v1/customers").json()) == ALL
    assert bank.get("admin", "/api/v1/customers/count").json() == {"count": 5}


def test_list_pages_stay_in_scope(bank: Bank) -> None:
    first = bank.get("bm_a", "/api/v1/customers", params={"limit": 2}).json()
    assert [c["customer_id"] for c in first["items"]] == ["CA1", "CA2"] and first["next_after"] == "CA2"
    second = bank.get("bm_a", "/api/v1/customers", params={"limit": 2, "after": "CA2"}).json()
    assert [c["customer_id"] for c in second["items"]] == ["CA3"] and second["next_after"] is None


@pytest.mark.parametrize(
    "expression",
    ["age >= 0", "age >= 0 OR age < 0", "in_org('B002') OR age >= 0", "NOT in_org('B001') OR age >= 0"],
)
def test_segments_count_preview_export_are_restricted_to_the_subtree(bank: Bank, expression: str) -> None:
    body = {"expression": expression}
    assert bank.post("rm_a", "/api/v1/segments/count", json=body).json()["count"] == 2
    preview = bank.post("rm_a", "/api/v1/segments/preview", json=body).json()
    assert {row["customer_id"] for row in preview["rows"]} == BRANCH_A_RM
    exported = bank.post("rm_a", "/api/v1/segments/export", json=body).json()
    assert set(exported["customer_ids"]) == BRANCH_A_RM
    assert bank.post("admin", "/api/v1/segments/count", json=body).json()["count"] == 5


def test_segment_of_other_branch_counts_zero_for_the_rm(bank: Bank) -> None:
    body = {"expression": "in_org('B002')"}
    assert bank.post("rm_a", "/api/v1/segments/count", json=body).json()["count"] == 0
    assert (
        bank.post("rm_b", "/api/v1/segments/count", json=body).json()["count"] == 1
    )  # CB2 is at B002 itself
    assert bank.post("admin", "/api/v1/segments/count", json=body).json()["count"] == 2


def test_points_and_coupons_of_other_branch_are_not_found(bank: Bank) -> None:
    assert bank.get("rm_a", "/api/v1/points/CB1").status_code == 404
    issue = bank.post("rm_a", "/api/v1/coupons", json={"customer_id": "CB1", "benefit_id": "voucher"})
    assert issue.status_code == 404
    coupon = bank.post("rm_b", "/api/v1/coupons", json={"customer_id": "CB1", "benefit_id": "voucher"}).json()
    assert bank.post("rm_a", f"/api/v1/coupons/{coupon['id']}/claim").status_code == 404
    assert bank.post("rm_a", f"/api/v1/coupons/{coupon['id']}/redeem").status_code == 404
    assert bank.post("rm_b", f"/api/v1/coupons/{coupon['id']}/claim").json()["status"] == "active"


@pytest.mark.parametrize("who", ["auditor", "acme_user"])
def test_auditors_and_suppliers_read_no_customer(bank: Bank, who: str) -> None:
    for path in (
        "/api/v1/customers",
        "/api/v1/customers/CA1",
        "/api/v1/customers/count",
        "/api/v1/points/CA1",
    ):
        r = bank.get(who, path)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", path
    assert bank.post(who, "/api/v1/segments/count", json={"expression": "age > 0"}).status_code == 403


# 管户: CA4 waits in the queue of sub-branch S0101, CA5 is the team RM's (E00009), CA6 waits in the queue of
# the other sub-branch S0102; CA1 and CA2 (S0101 and its team) are RM E00001's
ASSIGNED = [
    customer_row("CA4", name="孙悟空", branch_id="S0101", rm_id="", phone="13800000006"),
    customer_row("CA5", name="猪八戒", branch_id="T010101", rm_id="E00009", phone="13800000007"),
    customer_row("CA6", name="沙和尚", branch_id="S0102", rm_id="", phone="13800000008"),
]
SEES = {
    "rm_team": {"CA4", "CA5"},  # own and the unit's queue: not RM E00001's customers beside them
    "rm_a": {"CA1", "CA2", "CA4"},
    "rm_b": {"CB1"},  # CB2 waits at branch B002, above the RM's sub-branch
    "bm_a": {"CA1", "CA2", "CA3", "CA4", "CA5", "CA6"},  # a manager sees the subtree
    "agent": {"CA3", "CA6"},  # a service agent serves the whole of their sub-branch
    "admin": ALL | {"CA4", "CA5", "CA6"},
}


def _assign(bank: Bank, tmp_path: Path) -> None:
    path = customers_csv(tmp_path / "assigned.csv", [*CUSTOMERS, *ASSIGNED])
    assert load_file("customers", path, settings=bank.settings, progress=False).rejected == 0


@pytest.mark.parametrize("who", sorted(SEES))
def test_an_rm_sees_own_customers_and_the_queue_of_their_unit_a_manager_the_subtree(
    bank: Bank, tmp_path: Path, who: str
) -> None:
    _assign(bank, tmp_path)
    sees = SEES[who]
    assert _ids(bank.get(who, "/api/v1/customers").json()) == sees
    assert bank.get(who, "/api/v1/customers/count").json() == {"count": len(sees)}
    everyone = ALL | {"CA4", "CA5", "CA6"}
    for cid in sorted(everyone):
        assert bank.get(who, f"/api/v1/customers/{cid}").status_code == (200 if cid in sees else 404), cid
    phone = PHONE.get("CA1")
    found = bank.post(who, "/api/v1/customers/search", json={"phone": phone}).json()
    assert _ids(found) == ({"CA1"} & sees)
    if who != "agent":  # service agents have no segments
        body = {"expression": "age >= 0 OR in_org('B002') OR rm_id IS NULL"}
        assert bank.post(who, "/api/v1/segments/count", json=body).json()["count"] == len(sees)
        assert set(bank.post(who, "/api/v1/segments/export", json=body).json()["customer_ids"]) == sees
        preview = bank.post(who, "/api/v1/segments/preview", json={**body, "limit": 20}).json()
        assert {row["customer_id"] for row in preview["rows"]} == sees


def test_an_rm_cannot_act_on_another_rms_customer_of_the_same_unit(bank: Bank, tmp_path: Path) -> None:
    _assign(bank, tmp_path)
    assert bank.get("rm_team", "/api/v1/points/CA1").status_code == 404
    issue = bank.post("rm_team", "/api/v1/coupons", json={"customer_id": "CA1", "benefit_id": "voucher"})
    assert issue.status_code == 404
    mine = bank.post("rm_team", "/api/v1/coupons", json={"customer_id": "CA5", "benefit_id": "voucher"})
    queued = bank.post("rm_team", "/api/v1/coupons", json={"customer_id": "CA4", "benefit_id": "voucher"})
    assert mine.status_code == queued.status_code == 201
    other = bank.post("rm_a", "/api/v1/coupons", json={"customer_id": "CA1", "benefit_id": "voucher"}).json()
    assert bank.post("rm_team", f"/api/v1/coupons/{other['id']}/claim").status_code == 404
    reveal = {"field": "name", "reason": "customer at the counter"}
    assert bank.post("bm_a", "/api/v1/customers/CA5/reveal", json=reveal).status_code == 200
