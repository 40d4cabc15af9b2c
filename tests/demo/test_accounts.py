"""The demo's console accounts: one per role on real staff, new passwords on every run."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher

from omnibank.db import unit_of_work
from omnibank.demo.accounts import ensure_accounts
from omnibank.users import service as users
from tests.api.bank import NOW, build_bank


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def test_one_account_per_role_on_the_staff_nearest_the_busiest_rm(env, tmp_path: Path) -> None:
    bank = build_bank(env.settings, tmp_path / "bank")
    with unit_of_work(bank.settings) as session:
        accounts = {a.role: a for a in ensure_accounts(session, now=NOW, actor="test")}
    assert set(accounts) == {"admin", "campaign_manager", "branch_manager", "rm", "service_agent", "auditor"}
    assert accounts["rm"].staff_id == "E00001"  # two customers, the most of any RM
    assert accounts["branch_manager"].staff_id == "E00003"  # over the RM's branch B001, not B002's E00008
    assert accounts["service_agent"].staff_id == "E00006"  # in the same branch
    first = accounts["rm"].password
    with unit_of_work(bank.settings) as session:
        assert users.authenticate(session, username="demo_rm", password=first, now=NOW).user is not None
        again = {a.role: a for a in ensure_accounts(session, now=NOW, actor="test")}
    assert again["rm"].password != first
    with unit_of_work(bank.settings) as session:
        assert users.authenticate(session, username="demo_rm", password=first, now=NOW).user is None
        assert users.authenticate(session, username="demo_rm", password=again["rm"].password, now=NOW).user
