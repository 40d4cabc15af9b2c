"""The coupon lifecycle granted → claimed → active → redeemed / expired / revoked: each move a compare-and-set
on the current status with a history row; every illegal move refused and leaving nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from omnibank.audit.models import AuditEntry
from omnibank.benefits import ledger
from omnibank.benefits.ledger import ACTIONS, CouponRefused
from omnibank.benefits.models import CouponEvent
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from tests.benefits.helpers import NOW, grant_one, load, small_catalogue

LATER = NOW + timedelta(days=2)
STATUSES = ["granted", "claimed", "active", "redeemed", "expired", "revoked"]
WHEN = {
    "claim": NOW,
    "activate": LATER,
    "redeem": LATER,
    "expire": datetime(2027, 1, 1, tzinfo=UTC),
    "revoke": LATER,
}


@pytest.fixture
def catalogue(env, tmp_path) -> None:
    load(small_catalogue(tmp_path, stock=100))


def coupon_in(status: str, key: str) -> int:
    """A voucher granted now, taking effect tomorrow, moved to ``status`` by legal moves."""
    r = grant_one(key, valid_from=NOW + timedelta(days=1))
    assert r.coupon is not None
    cid = r.coupon.id
    path = {
        "granted": [],
        "claimed": [("claim", NOW)],
        "active": [("claim", NOW), ("activate", LATER)],
        "redeemed": [("claim", NOW), ("activate", LATER), ("redeem", LATER)],
        "expired": [("expire", datetime(2027, 1, 1, tzinfo=UTC))],
        "revoked": [("revoke", NOW)],
    }[status]
    with unit_of_work() as session:
        for action, at in path:
            ledger.transition(session, cid, action, now=at, actor="test")
        assert ledger.get_coupon(session, cid).status == status
    return cid


@pytest.mark.parametrize("start", STATUSES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_move_from_every_status_is_legal_or_refused(catalogue, start: str, action: str) -> None:
    cid = coupon_in(start, f"k-{start}-{action}")
    allowed, target = ACTIONS[action]
    with unit_of_work() as session:
        before = session.scalar(select(func.count()).select_from(CouponEvent))
    if start in allowed:
        with unit_of_work() as session:
            c = ledger.transition(session, cid, action, now=WHEN[action], actor="test")
        assert c.status == target
        with unit_of_work() as session:
            history = ledger.coupon_history(session, cid)
            assert (history[-1].from_status, history[-1].to_status, history[-1].action) == (
                start,
                target,
                action,
            )
            assert session.scalar(select(func.count()).select_from(CouponEvent)) == (before or 0) + 1
    else:
        with (
            pytest.raises(CouponRefused, match=f"coupon {cid} is {start}: {action} needs"),
            unit_of_work() as s,
        ):
            ledger.transition(s, cid, action, now=WHEN[action], actor="test")
        with unit_of_work() as session:
            assert ledger.get_coupon(session, cid).status == start
            assert session.scalar(select(func.count()).select_from(CouponEvent)) == before


def test_claim_windows_and_validity_are_kept(catalogue) -> None:
    r = grant_one("k1", benefit="voucher")  # claim by 2026-04-01 23:59:59, valid to the same
    assert r.coupon is not None
    cid = r.coupon.id
    late = datetime(2026, 4, 2, 0, 0, 1, tzinfo=NOW.tzinfo)
    with unit_of_work() as session, pytest.raises(CouponRefused, match="claim window closed"):
        ledger.claim(session, cid, now=late, actor="t")
    with unit_of_work() as session:
        c = ledger.claim(session, cid, now=NOW, actor="t")
        assert c.status == "active"  # in effect already: claimed and activated at once
    with unit_of_work() as session, pytest.raises(CouponRefused, match="valid until"):
        ledger.redeem(session, cid, now=late, actor="t")
    with unit_of_work() as session, pytest.raises(CouponRefused, match="not due to expire"):
        ledger.transition(session, cid, "expire", now=NOW, actor="t")

    future = grant_one("k2", benefit="voucher", valid_from=NOW + timedelta(days=31)).coupon
    assert future is not None
    with unit_of_work() as session:
        assert ledger.claim(session, future.id, now=NOW, actor="t").status == "claimed"  # not in effect yet
        with pytest.raises(CouponRefused, match="takes effect"):
            ledger.transition(session, future.id, "activate", now=NOW, actor="t")


def test_sweep_activates_what_took_effect_and_expires_what_is_past(catalogue) -> None:
    unclaimed = grant_one("a", benefit="voucher").coupon
    waiting = grant_one("b", benefit="voucher", valid_from=NOW + timedelta(days=3)).coupon
    active = grant_one("c", benefit="voucher").coupon
    assert unclaimed and waiting and active
    with unit_of_work() as session:
        ledger.claim(session, waiting.id, now=NOW, actor="t")
        ledger.claim(session, active.id, now=NOW, actor="t")
        assert ledger.sweep(session, now=NOW + timedelta(days=1)) == ledger.SweepResult(0, 0)
        assert ledger.sweep(session, now=NOW + timedelta(days=3)) == ledger.SweepResult(1, 0)
        # 2026-04-01 end: the claim window and the first validity end; the waiting one runs to 2026-04-04
        assert ledger.sweep(session, now=datetime(2026, 4, 2, tzinfo=NOW.tzinfo)) == ledger.SweepResult(0, 2)
        statuses = [ledger.get_coupon(session, c.id).status for c in (unclaimed, waiting, active)]
    assert statuses == ["expired", "active", "expired"]


def test_the_history_never_holds_a_status_twice(catalogue) -> None:
    cid = coupon_in("redeemed", "k")

    def write_a_second_redemption() -> None:
        with unit_of_work() as session:
            event = {"action": "redeem", "from_status": "active", "to_status": "redeemed", "actor": "x"}
            session.add(CouponEvent(coupon_id=cid, at=NOW, detail="{}", **event))

    with pytest.raises(Exception, match="(?i)unique"):
        write_a_second_redemption()


def test_the_cli_lists_claims_redeems_and_revokes_with_an_audit_trail(pinned_clock, cli, catalogue) -> None:
    now = datetime.now(UTC) - timedelta(minutes=1)
    first = grant_one("cli:1", benefit="gift", customer="C000123", at=now).coupon
    second = grant_one("cli:2", benefit="gift", customer="C000123", at=now).coupon
    assert first and second
    listed = cli("coupons", "list", "--customer", "C000123")
    assert listed.exit_code == 0 and "2 coupons" in listed.stdout and "gift" in listed.stdout
    assert cli("coupons", "claim", str(first.id)).stdout.strip() == f"coupon {first.id} is active"
    assert cli("coupons", "redeem", str(first.id)).stdout.strip() == f"coupon {first.id} is redeemed"
    again = cli("coupons", "redeem", str(first.id))
    assert again.exit_code == 1 and "is redeemed: redeem needs an active coupon" in again.stderr
    assert "Traceback" not in again.stderr
    assert cli("coupons", "revoke", str(second.id)).exit_code == 2  # --reason is required
    assert cli("coupons", "revoke", str(second.id), "--reason", "客户投诉重复发放").exit_code == 0
    assert cli("coupons", "redeem", "999").stderr.strip() == "error: no coupon 999"
    shown = cli("coupons", "show", str(second.id))
    assert "revoked" in shown.stdout and "客户投诉重复发放" in shown.stdout
    with unit_of_work() as session:
        trail = [
            (a.action, a.subject_id, a.actor)
            for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert trail == [
        ("coupon.claim", str(first.id), "test:pytest"),
        ("coupon.redeem", str(first.id), "test:pytest"),
        ("coupon.revoke", str(second.id), "test:pytest"),
    ]
    assert "give --customer or --campaign" in cli("coupons", "list").stderr


def test_a_revocation_needs_a_reason(catalogue) -> None:
    cid = coupon_in("granted", "k")
    with unit_of_work() as session, pytest.raises(AppError, match="needs a reason"):
        ledger.revoke(session, cid, now=NOW, actor="t", reason=" ")
