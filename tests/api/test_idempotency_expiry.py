"""Idempotency keys live for ``api_idempotency_ttl_hours``: within it the stored answer is replayed, after it
the key is free again, and expired keys are pruned (after a write, at most once a minute per process)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from omnibank.api import idempotency
from omnibank.api.models import IdempotencyKey
from omnibank.benefits.models import Coupon
from omnibank.db import unit_of_work
from tests.api.bank import Bank


def _keys(bank: Bank) -> dict[str, str]:
    with unit_of_work(bank.settings) as session:
        return {k.key: k.response_body for k in session.scalars(select(IdempotencyKey))}


def _key(key: str, created_at: datetime) -> IdempotencyKey:
    return IdempotencyKey(
        actor="user:rm_a", key=key, request_hash="0" * 64, response_status=201, response_body="{}",
        created_at=created_at,
    )  # fmt: skip


def _later(bank: Bank, **kw: float) -> None:
    """Move the clock (and sign in again: access tokens live for minutes)."""
    bank.clock.advance(**kw)
    bank.tokens.clear()


def _issue(bank: Bank, key: str, customer: str = "CA1"):
    return bank.post("rm_a", "/api/v1/coupons", json={"customer_id": customer, "benefit_id": "voucher"},
                     headers={"Idempotency-Key": key})  # fmt: skip


def test_a_key_replays_within_its_lifetime_and_is_free_again_after_it(bank: Bank) -> None:
    assert bank.settings.api_idempotency_ttl_hours == 24
    a, b = (_issue(bank, f"issue-{i}").json()["id"] for i in range(2))
    first = bank.post("rm_a", f"/api/v1/coupons/{a}/claim", headers={"Idempotency-Key": "c-1"})
    assert first.status_code == 200
    _later(bank, hours=23, minutes=59)
    again = bank.post("rm_a", f"/api/v1/coupons/{a}/claim", headers={"Idempotency-Key": "c-1"})
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    other = bank.post("rm_a", f"/api/v1/coupons/{b}/claim", headers={"Idempotency-Key": "c-1"})
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"

    _later(bank, minutes=2)  # 24 h 1 min after the first use: the key is free for a new request
    fresh = bank.post("rm_a", f"/api/v1/coupons/{b}/claim", headers={"Idempotency-Key": "c-1"})
    assert fresh.status_code == 200 and "idempotent-replayed" not in fresh.headers
    assert fresh.json()["id"] == b and fresh.json()["status"] == "active"
    with unit_of_work(bank.settings) as session:
        row = session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == "c-1")).one()
        assert row.created_at == bank.clock.now  # the key now answers for the new request
    replay = bank.post("rm_a", f"/api/v1/coupons/{b}/claim", headers={"Idempotency-Key": "c-1"})
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == fresh.json()


def test_an_expired_issue_key_still_issues_nothing_twice(bank: Bank) -> None:
    """The coupon's grant key is derived from the Idempotency-Key and never expires: after the key's
    lifetime the same request finds the coupon issued before (200, duplicate) instead of a replay."""
    first = _issue(bank, "k-1")
    _later(bank, hours=25)
    again = _issue(bank, "k-1")
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    with unit_of_work(bank.settings) as session:
        assert len(session.scalars(select(Coupon)).all()) == 1


def test_expired_keys_are_pruned_after_a_write(bank: Bank) -> None:
    idempotency._last_prune.clear()
    _issue(bank, "old-1")
    _issue(bank, "old-2")
    _later(bank, hours=12)
    _issue(bank, "mid")
    assert set(_keys(bank)) == {"old-1", "old-2", "mid"}
    _later(bank, hours=12, minutes=30)  # the old ones are 24.5 h old, "mid" 12.5 h
    _issue(bank, "new")
    assert set(_keys(bank)) == {"mid", "new"}
    _later(bank, seconds=30)  # within the minute: no second pruning round
    with unit_of_work(bank.settings) as session:
        session.add(_key("ancient", bank.clock.now - timedelta(days=3)))
    _issue(bank, "newer")
    assert "ancient" in _keys(bank)
    _later(bank, minutes=1)
    _issue(bank, "newest")
    assert set(_keys(bank)) == {"mid", "new", "newer", "newest"}


def test_prune_deletes_at_most_a_batch_oldest_first(env, bank: Bank) -> None:
    now = bank.clock.now
    with unit_of_work(bank.settings) as session:
        for i in range(5):
            session.add(_key(f"k{i}", now - timedelta(hours=30 + i)))
    with unit_of_work(bank.settings) as session:
        assert idempotency.prune(session, now=now, ttl=timedelta(hours=24), limit=2) == 2
    assert set(_keys(bank)) == {"k0", "k1", "k2"}
    with unit_of_work(bank.settings) as session:
        assert idempotency.prune(session, now=now, ttl=timedelta(hours=31), limit=100) == 1  # k2 only
    assert set(_keys(bank)) == {"k0", "k1"}
