"""The coupon fast path (PostgreSQL): issue, claim and redeem in one function call each when nothing is out
of the ordinary, and the general path otherwise. What a caller sees (status, body, replays, refusals) and
what is stored (coupon, history, stock, budgets, audit trail) must not depend on which path served it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text, update

from omnibank.api.models import IdempotencyKey
from omnibank.audit import service as audit
from omnibank.audit.models import AuditEntry
from omnibank.benefits import ledger, suppliers
from omnibank.benefits.fastpath import FastPath
from omnibank.benefits.models import Benefit, BenefitStock, Budget, CouponEvent
from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from tests.api.bank import Bank

pg = pytest.mark.postgres_only


def _fast(bank: Bank) -> FastPath:
    fast = bank.client.app.state.fast_path  # type: ignore[attr-defined]
    assert isinstance(fast, FastPath)
    return fast


def _issue(bank: Bank, who: str = "rm_a", key: str | None = None, **body: Any) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return bank.post(who, "/api/v1/coupons", json={"customer_id": "CA1", "benefit_id": "voucher", **body},
                     headers=headers)  # fmt: skip


def _general(bank: Bank) -> Any:
    """Run the next requests on the general path (the app as if it had no fast path); a context manager."""

    class _Off:
        def __enter__(self) -> None:
            self.fast = bank.client.app.state.fast_path  # type: ignore[attr-defined]
            bank.client.app.state.fast_path = None  # type: ignore[attr-defined]

        def __exit__(self, *exc: object) -> None:
            bank.client.app.state.fast_path = self.fast  # type: ignore[attr-defined]

    return _Off()


def _stock(bank: Bank, benefit: str = "voucher") -> tuple[int, int]:
    with unit_of_work(bank.settings) as session:
        s = session.get(BenefitStock, benefit)
        assert s is not None
        return s.available, s.granted


def _history(bank: Bank, coupon_id: int) -> list[tuple[str, str | None, str, str, str]]:
    with unit_of_work(bank.settings) as session:
        rows = session.scalars(select(CouponEvent).where(CouponEvent.coupon_id == coupon_id)
                               .order_by(CouponEvent.id))  # fmt: skip
        return [(e.action, e.from_status, e.to_status, e.actor, e.detail) for e in rows]


def _trail(bank: Bank, coupon_id: int) -> list[tuple[str, str, str, str]]:
    with unit_of_work(bank.settings) as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.subject_type == "coupon",
                                                        AuditEntry.subject_id == str(coupon_id))
                               .order_by(AuditEntry.id))  # fmt: skip
        return [(a.actor, a.action, a.detail, a.source) for a in rows]


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "id"}


@pg
def test_each_path_gives_the_same_answers_and_stores_the_same(bank: Bank) -> None:
    fast = _fast(bank)
    paths: dict[str, list[dict[str, Any]]] = {}
    stored: dict[str, Any] = {}
    for name in ("fast", "general"):
        before = _stock(bank)
        if name == "fast":
            issued = _issue(bank, grant_key=f"same-{name}")
            claimed = bank.post("rm_a", f"/api/v1/coupons/{issued.json()['id']}/claim")
            redeemed = bank.post("acme_user", f"/api/v1/coupons/{issued.json()['id']}/redeem")
        else:
            with _general(bank):
                issued = _issue(bank, grant_key=f"same-{name}")
                claimed = bank.post("rm_a", f"/api/v1/coupons/{issued.json()['id']}/claim")
                redeemed = bank.post("acme_user", f"/api/v1/coupons/{issued.json()['id']}/redeem")
        assert [issued.status_code, claimed.status_code, redeemed.status_code] == [201, 200, 200]
        after = _stock(bank)
        assert (before[0] - after[0], after[1] - before[1]) == (1, 1)
        cid = issued.json()["id"]
        paths[name] = [_without_ids(r.json()) for r in (issued, claimed, redeemed)]
        stored[name] = (_history(bank, cid), _trail(bank, cid))
    assert fast.served == {"issue": 1, "claim": 1, "redeem": 1} and not fast.declined
    for f, g in zip(paths["fast"], paths["general"], strict=True):
        assert {**f, "grant_key": "k"} == {**g, "grant_key": "k"}
    (f_history, f_trail), (g_history, g_trail) = stored["fast"], stored["general"]
    assert [h[:4] for h in f_history] == [h[:4] for h in g_history] == [
        ("grant", None, "granted", "user:rm_a"), ("claim", "granted", "claimed", "user:rm_a"),
        ("activate", "claimed", "active", "user:rm_a"), ("redeem", "active", "redeemed", "user:acme_user"),
    ]  # fmt: skip
    assert f_history[0][4] == '{"key": "same-fast"}' and g_history[0][4] == '{"key": "same-general"}'
    assert f_trail == g_trail  # who, what, the detail (as the same JSON text) and from where
    assert [t[1] for t in f_trail] == ["coupon.grant", "coupon.claim", "coupon.redeem"]
    assert all(t[3] == "api:testclient" for t in f_trail)
    with unit_of_work(bank.settings) as session:  # the fast path's entries join the hash chain
        audit.chain(session)
    with unit_of_work(bank.settings) as session:
        verdict = audit.verify(session)
    assert verdict.intact and verdict.unchained == 0 and verdict.entries >= 4


@pg
def test_an_idempotency_key_replays_the_fast_answer(bank: Bank) -> None:
    fast = _fast(bank)
    first = _issue(bank, key="k-1")
    again = _issue(bank, key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert _stock(bank)[1] == 1
    other = _issue(bank, key="k-1", customer_id="CA2")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert fast.served["issue"] == 1 and fast.declined["idempotency_key_used"] == 2
    cid = first.json()["id"]
    claim = bank.post("rm_a", f"/api/v1/coupons/{cid}/claim", headers={"Idempotency-Key": "c-1"})
    replay = bank.post("rm_a", f"/api/v1/coupons/{cid}/claim", headers={"Idempotency-Key": "c-1"})
    assert claim.status_code == replay.status_code == 200 and claim.json() == replay.json()
    assert replay.headers["idempotent-replayed"] == "true" and fast.served["claim"] == 1
    with unit_of_work(bank.settings) as session:
        stored = session.get(IdempotencyKey, ("user:rm_a", "c-1"))
        assert stored is not None and stored.response_status == 200


@pg
def test_out_of_the_ordinary_goes_the_general_way(bank: Bank) -> None:
    fast = _fast(bank)
    assert _issue(bank, grant_key="dup").status_code == 201
    dup = _issue(bank, grant_key="dup")
    assert dup.status_code == 200 and dup.json()["duplicate"] is True
    assert fast.declined["duplicate_grant_key"] == 1
    with unit_of_work(bank.settings) as session:  # the last items of stock
        session.execute(update(BenefitStock).where(BenefitStock.benefit_id == "voucher").values(available=1))
    assert _issue(bank).status_code == 201
    refused = _issue(bank)
    assert refused.status_code == 409 and refused.json()["details"]["reason"] == "out_of_stock"
    assert fast.declined["out_of_stock"] == 1 and _stock(bank)[0] == 0
    stock = {s["benefit_id"]: s for s in bank.get("admin", "/api/v1/benefits/stock").json()}
    assert stock["voucher"]["stock_out_days"] == 1  # counted, though the refusal rolled back
    points = _issue(bank, benefit_id="bonus")  # points are credited on grant: the general path
    assert points.status_code == 201 and points.json()["status"] == "redeemed"
    assert fast.served["issue"] == 2


@pg
def test_budgets_hold_on_the_fast_path(bank: Bank) -> None:
    fast = _fast(bank)
    with unit_of_work(bank.settings) as session:
        ledger.set_budget(session, ledger.BudgetKey("api"), count=2, money_fen=None, now=bank.clock.now)
        ledger.set_budget(session, ledger.BudgetKey("api", rule="manual"), count=None, money_fen=5200,
                          now=bank.clock.now)  # fmt: skip
    assert [_issue(bank).status_code for _ in range(3)] == [201, 201, 409]
    assert fast.served["issue"] == 2 and fast.declined["budget_exhausted"] == 1
    with unit_of_work(bank.settings) as session:
        used = {b.id: (b.count_used, b.money_used_fen) for b in session.scalars(select(Budget))}
    assert used == {"api": (2, 0 + 5200), "api/rule:manual": (2, 5200)}
    assert _stock(bank)[1] == 2  # the refused third took no stock


@pg
def test_a_changed_benefit_is_priced_afresh(bank: Bank) -> None:
    fast = _fast(bank)
    assert _issue(bank).json()["face_value_fen"] == 2600
    with unit_of_work(bank.settings) as session:
        session.execute(update(Benefit).where(Benefit.id == "voucher").values(face_value_fen=2800))
    changed = _issue(bank)  # the cached terms are stale: declined, issued by the general path
    assert changed.status_code == 201 and changed.json()["face_value_fen"] == 2800
    assert fast.declined["benefit_changed"] == 1
    assert _issue(bank).json()["face_value_fen"] == 2800 and fast.served["issue"] == 2
    with unit_of_work(bank.settings) as session:
        suppliers.set_status(session, "acme", "suspended", reason="对账异常", actor="t", now=bank.clock.now)
    refused = _issue(bank)
    assert refused.status_code == 409 and refused.json()["details"]["reason"] == "supplier_suspended"


@pg
def test_scope_and_suppliers_on_the_fast_path(bank: Bank) -> None:
    fast = _fast(bank)
    assert _issue(bank, "rm_a", customer_id="CB1").status_code == 404  # another branch's customer
    # 管户: another RM's customer in the unit a team RM serves is not theirs; an unassigned one is
    assert _issue(bank, "rm_team", customer_id="CA1").status_code == 404
    assert fast.declined["customer_not_visible"] == 2
    with unit_of_work(bank.settings) as session:
        session.execute(update(Customer).where(Customer.customer_id == "CA2").values(rm_id=None))
    assert _issue(bank, "rm_team", customer_id="CA2").status_code == 201
    theirs = _issue(bank, "rm_b", customer_id="CB1").json()["id"]
    ours = _issue(bank, "rm_a", customer_id="CA1").json()["id"]
    assert fast.served["issue"] == 3
    assert bank.post("rm_a", f"/api/v1/coupons/{theirs}/claim").status_code == 404
    assert fast.declined["coupon_not_visible"] == 1
    with unit_of_work(bank.settings) as session:
        assert ledger.get_coupon(session, theirs).status == "granted"  # the move was undone
    assert bank.post("rm_a", f"/api/v1/coupons/{ours}/claim").status_code == 200
    assert bank.post("acme_user", f"/api/v1/coupons/{ours}/redeem").status_code == 200
    again = bank.post("acme_user", f"/api/v1/coupons/{ours}/redeem")
    assert again.status_code == 409 and fast.declined["not_moved"] == 1


def test_sqlite_has_no_fast_path(bank: Bank) -> None:
    if bank.settings.db_url.startswith("postgresql"):
        assert isinstance(bank.client.app.state.fast_path, FastPath)  # type: ignore[attr-defined]
        return
    assert bank.client.app.state.fast_path is None  # type: ignore[attr-defined]
    assert _issue(bank).status_code == 201


def test_a_refusal_for_want_of_stock_is_counted_on_either_path(bank: Bank) -> None:
    with unit_of_work(bank.settings) as session:
        session.execute(update(BenefitStock).where(BenefitStock.benefit_id == "voucher").values(available=0))
    for _ in range(2):
        refused = _issue(bank)
        assert refused.status_code == 409 and refused.json()["details"]["reason"] == "out_of_stock"
    stock = {s["benefit_id"]: s for s in bank.get("admin", "/api/v1/benefits/stock").json()}
    assert stock["voucher"]["stock_out_days"] == 1 and stock["voucher"]["granted"] == 0


@pg
def test_coupon_moves_can_be_written_beside_the_old_row(bank: Bank) -> None:
    """No index holds a coupon's status and its pages keep room, so a claim or a redemption is an update
    PostgreSQL can make without touching the indexes (migration 0013)."""
    with unit_of_work(bank.settings) as session:
        options = session.scalar(text("SELECT reloptions FROM pg_class WHERE relname = 'coupons'"))
        indexed = session.scalars(text(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = 'coupons'::regclass"
        )).all()  # fmt: skip
    assert options == ["fillfactor=80"]
    assert not {"status", "status_at"} & set(indexed)
