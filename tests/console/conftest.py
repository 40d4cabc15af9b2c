"""The console's tests: the API tests' small bank (two branches, a user for every role), with a test client
over HTTPS (the console's cookies are Secure) and a browser-like sign-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from omnibank.users import service as users
from tests.api.bank import PASSWORD, Bank, build_bank

BASE = "https://testserver"


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class Console:
    bank: Bank
    client: TestClient

    def signin(self, username: str, password: str = PASSWORD, *, lang: str = "en") -> Any:
        """Sign in through the form, as a browser does (English unless ``lang`` says otherwise)."""
        self.client.cookies.set("ob_lang", lang)
        page = self.client.get("/console/signin")
        token = re.search(r'name="presign" value="([^"]+)"', page.text)
        assert token, page.text
        return self.client.post(
            "/console/signin",
            data={"username": username, "password": password, "presign": token.group(1), "next": "/console"},
            follow_redirects=False,
        )

    def csrf(self, path: str = "/console") -> str:
        found = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', self.client.get(path).text)
        assert found
        return found.group(1)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, follow_redirects=False, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        """A form post with this session's CSRF token."""
        return self.client.post(path, data={"csrf_token": self.csrf(), **(data or {})},
                                follow_redirects=False, **kw)  # fmt: skip


@pytest.fixture
def console(env: Any, tmp_path: Path) -> Iterator[Console]:
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000})
    bank = build_bank(settings, tmp_path / "bank")
    with TestClient(bank.client.app, base_url=BASE) as client:
        yield Console(bank, client)


# On PostgreSQL the console's tests run for the pages whose reads differ most by store (scoping, counts,
# sessions); the others render the same read layers, which their domains' tests run on PostgreSQL.
ON_BOTH_STORES = {"test_customers.py", "test_segments.py", "test_leads.py", "test_signin.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.conftest import ON_POSTGRES

    if not ON_POSTGRES:
        return
    skip = pytest.mark.skip(
        reason="console page tested on SQLite; its read layer runs on PostgreSQL elsewhere"
    )
    for item in items:
        path = item.path
        if (
            path.parent.name == "console"
            and path.name.startswith("test_")
            and path.name not in ON_BOTH_STORES
        ):
            item.add_marker(skip)
