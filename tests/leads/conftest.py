from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from omnibank.config import Settings
from omnibank.users import service as users
from tests.api import bank as api_bank
from tests.api.bank import Bank, build_bank
from tests.leads.helpers import EXTRA, load_bank


@pytest.fixture
def settings(env, tmp_path: Path) -> Settings:
    """The store with the leads bank loaded (orgs, staff, customers)."""
    settings: Settings = env.settings
    load_bank(settings, tmp_path / "bank")
    return settings


@pytest.fixture
def bank(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    """The API tests' bank (users for every role, a fixed clock) with the two extra customers."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(api_bank, "CUSTOMERS", [*api_bank.CUSTOMERS, *EXTRA])
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000})
    built = build_bank(settings, tmp_path / "api-bank")
    with built.client:
        yield built
