from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from omnibank.users import service as users
from tests.api.bank import Bank, build_bank


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id still, at a test-sized cost (the production cost is the library's recommendation)."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def bank(env, tmp_path: Path) -> Iterator[Bank]:
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000})
    built = build_bank(settings, tmp_path / "bank")
    with built.client:
        yield built
