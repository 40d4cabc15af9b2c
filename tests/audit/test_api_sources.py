"""Issue 13: every write by a person or token is audited with its real source. A coupon issued over the API
(on PostgreSQL by the fast path and by the general path alike) writes a `coupon.grant` entry from
`api:<ip>`, and a lock-out after wrong passwords over the API says `api:<ip>`, not `cli`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from omnibank.audit import service as audit
from omnibank.audit.models import AuditEntry
from omnibank.db import get_engine, unit_of_work
from omnibank.users import service as users
from tests.api.bank import PASSWORD, Bank, build_bank
from tests.conftest import ON_POSTGRES


@pytest.fixture
def bank(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000})
    built = build_bank(settings, tmp_path / "bank")
    with built.client:
        yield built


def _entries(bank: Bank, action: str) -> list[AuditEntry]:
    with unit_of_work(bank.settings) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                    .order_by(AuditEntry.id)))  # fmt: skip


def _issue(bank: Bank, **body: Any) -> Any:
    return bank.post("bm_a", "/api/v1/coupons", json={"customer_id": "CA1", "benefit_id": "voucher", **body})


def test_a_coupon_issued_over_the_api_is_audited_from_its_source(bank: Bank) -> None:
    paths = ["fast", "general"] if ON_POSTGRES else ["general"]
    issued = []
    for path in paths:
        fast = bank.client.app.state.fast_path  # type: ignore[attr-defined]
        if path == "general":
            bank.client.app.state.fast_path = None  # type: ignore[attr-defined]
        try:
            r = _issue(bank, grant_key=f"k-{path}")
        finally:
            bank.client.app.state.fast_path = fast  # type: ignore[attr-defined]
        assert r.status_code == 201, r.text
        issued.append(r.json()["id"])
    again = _issue(bank, grant_key="k-general")  # the same grant again: nothing is issued, nothing written
    assert again.status_code == 200 and again.json()["duplicate"] is True
    if ON_POSTGRES:
        assert bank.client.app.state.fast_path.served["issue"] == 1  # type: ignore[attr-defined]
    entries = _entries(bank, "coupon.grant")
    assert [(e.subject_id, e.actor, e.source) for e in entries] == [
        (str(cid), "user:bm_a", "api:testclient") for cid in issued
    ]
    assert json.loads(entries[0].detail) == {
        "benefit": "voucher", "campaign": "api", "customer_id": "CA1", "rule": "manual", "status": "granted",
    }  # fmt: skip
    assert len({e.detail for e in entries}) == 1  # both paths write the same
    with get_engine(bank.settings).connect() as conn:
        verdict = audit.verify_all(conn, bank.settings)
    assert verdict.intact, verdict.problems


def test_a_lock_out_over_the_api_is_audited_from_its_source(bank: Bank) -> None:
    for _ in range(5):
        r = bank.client.post("/api/v1/auth/login", json={"username": "rm_b", "password": "Wrong-Horse-1"})
        assert r.status_code in (401, 423)  # refused (how a lock-out answers is the API's business)
    (entry,) = _entries(bank, "user.locked_out")
    assert (entry.actor, entry.subject_id, entry.source) == ("user:rm_b", "rm_b", "api:testclient")
    assert entry.at == bank.clock.now  # the request's clock
    ok = bank.client.post("/api/v1/auth/login", json={"username": "rm_a", "password": PASSWORD})
    assert ok.status_code == 200
