"""An access token stops working the moment its session ends (sign-out, a refresh token used twice, a lock),
in this server process and in every other one; and signing in as a locked user answers exactly as signing in
as a user who does not exist."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from omnibank.db import unit_of_work
from omnibank.users import service as users
from tests.api.bank import PASSWORD, Bank
from tests.api.process import omnibank_serve

LOGIN = "/api/v1/auth/login"
COUNT = "/api/v1/customers/count"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def other(bank: Bank, tmp_path: Path) -> Iterator[httpx.Client]:
    """A second server process over the same store (``omnibank serve``), beside the test's own app."""
    with omnibank_serve(tmp_path / "other.log") as base, httpx.Client(base_url=base, timeout=30) as http:
        yield http


def _works(bank: Bank, other: httpx.Client, access: str) -> tuple[int, int]:
    """What the test's own app and the other process answer with ``access`` (a token the other process
    issued: it runs on the wall clock, the test's app on a fixed moment before it)."""
    here = bank.client.get(COUNT, headers=_bearer(access)).status_code
    there = other.get(COUNT, headers=_bearer(access)).status_code
    return here, there


def test_after_sign_out_the_access_token_is_refused_at_once_in_every_process(
    bank: Bank, other: httpx.Client
) -> None:
    tokens = other.post(LOGIN, json={"username": "rm_a", "password": PASSWORD}).json()
    assert _works(bank, other, tokens["access_token"]) == (200, 200)  # both processes have checked it
    out = bank.client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.json() == {"revoked": True}
    assert _works(bank, other, tokens["access_token"]) == (401, 401)
    # a session of the same user on another device is not touched
    again = other.post(LOGIN, json={"username": "rm_a", "password": PASSWORD}).json()
    assert _works(bank, other, again["access_token"]) == (200, 200)


def test_a_reused_refresh_token_revokes_the_access_tokens_of_its_session_at_once(
    bank: Bank, other: httpx.Client
) -> None:
    first = other.post(LOGIN, json={"username": "rm_a", "password": PASSWORD}).json()
    second = other.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert _works(bank, other, first["access_token"]) == (200, 200)
    assert _works(bank, other, second["access_token"]) == (200, 200)
    # the used refresh token presented again (it was stolen): the whole session ends, in both processes
    reused = bank.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["code"] == "refresh_token_reused"
    assert _works(bank, other, second["access_token"]) == (401, 401)
    assert _works(bank, other, first["access_token"]) == (401, 401)


def _answer(bank: Bank, username: str, password: str) -> tuple[int, dict[str, str], str]:
    r = bank.client.post(LOGIN, json={"username": username, "password": password})
    headers = {k: v for k, v in r.headers.items() if k not in {"date"}}
    return r.status_code, headers, r.text


def test_a_locked_user_and_an_unknown_user_get_the_same_answer(bank: Bank) -> None:
    wrong = "wrong-Password-1"
    unknown = _answer(bank, "nobody", wrong)
    for _ in range(5):  # the fifth failure in a row locks rm_a for 15 minutes
        assert _answer(bank, "rm_a", wrong) == unknown
    assert _answer(bank, "rm_a", wrong) == unknown
    assert _answer(bank, "rm_a", PASSWORD) == unknown  # the right password while locked: the same too
    assert _answer(bank, "nobody", PASSWORD) == unknown
    assert unknown[0] == 401 and "retry-after" not in unknown[1]
    with unit_of_work(bank.settings) as session:  # an administrator's lock answers alike
        users.set_locked(session, "rm_b", locked=True, now=bank.clock.now, actor="test")
    assert _answer(bank, "rm_b", PASSWORD) == unknown


def test_a_locked_user_and_an_unknown_user_take_the_same_time(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a password hash that costs some milliseconds, as a real one does (the tests' own cost nearly nothing)
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=2, memory_cost=16384, parallelism=1))
    users._dummy_hash.cache_clear()
    try:
        with unit_of_work(bank.settings) as session:
            users.create_user(session, role="rm", password=PASSWORD, now=bank.clock.now, actor="test",
                              staff_id="E00002", username="timed")  # fmt: skip
        for _ in range(5):
            bank.client.post(LOGIN, json={"username": "timed", "password": "wrong-Password-1"})

        def timed(username: str) -> float:
            start = time.perf_counter()
            r = bank.client.post(LOGIN, json={"username": username, "password": PASSWORD})
            assert r.status_code == 401
            return time.perf_counter() - start

        timed("nobody"), timed("timed")  # warm
        # interleaved, and the fastest of each: a busy machine (CI's other workers) slows single requests,
        # not the cost of the work itself, which is what must be the same
        pairs = [(timed("timed"), timed("nobody")) for _ in range(9)]
        locked, unknown = min(p[0] for p in pairs), min(p[1] for p in pairs)
        assert 0.5 < locked / unknown < 2, (locked, unknown)
    finally:
        users._dummy_hash.cache_clear()
