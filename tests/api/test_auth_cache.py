"""A server reuses a checked token for ``api_auth_cache_seconds``: a revocation or lock made in this process
takes effect at once, one made behind its back (another process: here raw SQL) within the cache time, and
a token is never accepted past its own expiry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from omnibank.api import auth
from omnibank.db import get_engine, unit_of_work
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank


def _bank(env, tmp_path: Path, seconds: float) -> Iterator[Bank]:
    settings = env.settings.model_copy(
        update={"api_login_per_minute": 1000, "api_auth_cache_seconds": seconds}
    )
    built = build_bank(settings, tmp_path / "bank")
    with built.client:
        yield built


@pytest.fixture
def cached(env, tmp_path: Path) -> Iterator[Bank]:
    yield from _bank(env, tmp_path, 60)


@pytest.fixture
def uncached(env, tmp_path: Path) -> Iterator[Bank]:
    yield from _bank(env, tmp_path, 0)


def _token(bank: Bank, name: str = "bi", lifetime: timedelta = timedelta(days=1)) -> dict[str, str]:
    with unit_of_work(bank.settings) as session:
        _, plaintext = users.create_api_token(session, name=name, scopes=["benefits:read"], lifetime=lifetime,
                                              now=bank.clock.now, actor="test", bank_wide=True)  # fmt: skip
    return {"Authorization": f"Bearer {plaintext}"}


def _status(bank: Bank, headers: dict[str, str]) -> int:
    return int(bank.client.get("/api/v1/benefits", headers=headers).status_code)


def _revoke_behind_its_back(bank: Bank, name: str) -> None:
    with get_engine(bank.settings).begin() as conn:
        conn.execute(text("UPDATE api_tokens SET revoked_at = expires_at WHERE name = :n"), {"n": name})


def test_a_revocation_in_this_process_takes_effect_at_once(cached: Bank) -> None:
    headers = _token(cached)
    assert _status(cached, headers) == 200
    with unit_of_work(cached.settings) as session:
        users.revoke_api_token(session, "bi", now=cached.clock.now, actor="test")
    assert _status(cached, headers) == 401


def test_a_lock_in_this_process_takes_effect_at_once(cached: Bank) -> None:
    assert cached.get("rm_a", "/api/v1/benefits").status_code == 200
    with unit_of_work(cached.settings) as session:
        users.set_locked(session, "rm_a", locked=True, now=cached.clock.now, actor="test")
    assert cached.get("rm_a", "/api/v1/benefits").status_code == 401


def test_a_revocation_elsewhere_takes_effect_within_the_cache_time(
    cached: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = _token(cached)
    assert _status(cached, headers) == 200
    _revoke_behind_its_back(cached, "bi")
    assert _status(cached, headers) == 200  # the bounded staleness the setting allows
    later = auth.time.monotonic() + 60.5
    monkeypatch.setattr(auth.time, "monotonic", lambda: later)
    assert _status(cached, headers) == 401


def test_without_the_cache_a_revocation_elsewhere_takes_effect_at_once(uncached: Bank) -> None:
    headers = _token(uncached)
    assert _status(uncached, headers) == 200
    _revoke_behind_its_back(uncached, "bi")
    assert _status(uncached, headers) == 401


def test_a_cached_token_is_never_accepted_past_its_expiry(cached: Bank) -> None:
    headers = _token(cached, lifetime=timedelta(minutes=30))
    assert _status(cached, headers) == 200
    cached.clock.advance(minutes=29)
    assert _status(cached, headers) == 200
    cached.clock.advance(minutes=1)
    assert _status(cached, headers) == 401
