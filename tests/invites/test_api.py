"""/api/v1/invites: codes, stats and leaderboards scoped to the caller (bank, subtree, an RM's own code);
bound customers masked and audited; issuing and revoking need invites:write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.invites import codes
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank
from tests.factories import customers_csv
from tests.invites.helpers import NEW, NOW, bind, event, load_events


@pytest.fixture
def bank(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    built = build_bank(env.settings.model_copy(update={"api_login_per_minute": 1000}), tmp_path / "bank")
    customers_csv(tmp_path / "new.csv", NEW)
    load_file("customers", tmp_path / "new.csv", settings=built.settings, progress=False)
    with unit_of_work(built.settings) as session:
        codes.issue(session, now=NOW, actor="test")
        code = {s: c.code for s, c in codes.live_codes(session).items()}
    load_events(built.settings, tmp_path / "e.jsonl", [
        event("N1", "2026-11-02T09:00:00+08:00", code["E00001"]),  # RM A (S0101)
        event("N2", "2026-11-03T09:00:00+08:00", code["E00009"]),  # RM in team T010101 (S0101)
        event("N4", "2026-11-20T09:00:00+08:00", code["E00002"]),  # RM B (S0201)
        event("N3", "2026-11-20T09:00:00+08:00", "NOPE234"),
    ])  # fmt: skip
    bind(built.settings)
    with built.client:
        yield built


def _staff(rows: list[dict]) -> set[str]:
    return {r["unit"] for r in rows}


def test_each_caller_sees_their_reach(bank: Bank) -> None:
    admin = bank.get("admin", "/api/v1/invites/stats?by=staff")
    assert admin.status_code == 200, admin.text
    assert _staff(admin.json()["rows"]) == {"E00001", "E00002", "E00009"}
    assert admin.json()["total"]["invited"] == 3
    manager = bank.get("bm_a", "/api/v1/invites/stats?by=staff").json()
    assert _staff(manager["rows"]) == {"E00001", "E00009"}  # branch B001's subtree
    rm = bank.get("rm_a", "/api/v1/invites/stats?by=staff").json()
    assert _staff(rm["rows"]) == {"E00001"}  # an RM: their own code's figures only
    assert bank.get("bm_a", "/api/v1/invites/stats?org=B002").status_code == 404  # outside the subtree
    codes_seen = {r["staff_id"] for r in bank.get("rm_a", "/api/v1/invites/codes").json()}
    assert codes_seen == {"E00001"}
    board = bank.get("admin", "/api/v1/invites/leaderboard?by=branch&top=1").json()
    assert [(r["rank"], r["unit"]) for r in board] == [(1, "B001")]


def test_bound_customers_are_masked_and_the_read_audited(bank: Bank) -> None:
    r = bank.get("bm_a", "/api/v1/invites/customers")
    assert r.status_code == 200, r.text
    rows = r.json()
    assert {x["customer_id"] for x in rows} == {"N1", "N2"}
    body = json.dumps(rows, ensure_ascii=False)
    assert "陈一" not in body and "13700000001" not in body
    assert {x["name"] for x in rows} == {"陈*"}
    with unit_of_work(bank.settings) as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "user:bm_a")).all()
    assert "invites.bound_customers" in actions


def test_refusals_and_writes_need_their_permission(bank: Bank) -> None:
    refusals = bank.get("admin", "/api/v1/invites/refusals").json()
    assert refusals["counts"] == {"unknown_code": 1}
    assert bank.get("rm_a", "/api/v1/invites/refusals").json()["counts"] == {}  # not their code
    assert bank.post("rm_a", "/api/v1/invites/codes/E00001/rotate").status_code == 403
    rotated = bank.post("cm", "/api/v1/invites/codes/E00001/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["revoked"] != rotated.json()["code"]
    no_reason = bank.post("cm", "/api/v1/invites/codes/E00002/revoke", json={"reason": ""})
    assert no_reason.status_code == 422
    revoked = bank.post("cm", "/api/v1/invites/codes/E00002/revoke", json={"reason": "调岗"})
    assert revoked.status_code == 200
    assert bank.post("cm", "/api/v1/invites/codes/E99999/rotate").status_code == 404
    assert bank.post("cm", "/api/v1/invites/codes/issue").json() == {"issued": 1, "kept": 8}
