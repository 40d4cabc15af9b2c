"""Sign-in, refresh rotation, sign-out, lock-out after five failures, token expiry and rate limits."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from omnibank.users.models import RefreshToken, User
from tests.api.bank import PASSWORD, Bank, build_bank

LOGIN = "/api/v1/auth/login"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_login_gives_a_working_access_token_and_a_hashed_refresh_token(bank: Bank) -> None:
    tokens = bank.login("rm_a")
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    r = bank.client.get("/api/v1/customers/count", headers=_bearer(tokens["access_token"]))
    assert r.json() == {"count": 2}
    with unit_of_work(bank.settings) as session:
        stored = session.scalars(select(RefreshToken.token_hash)).all()
        user = session.scalars(select(User).where(User.username == "rm_a")).one()
    assert tokens["refresh_token"] not in stored and len(stored) == 1  # only its SHA-256 is kept
    assert user.password_hash.startswith("$argon2id$")


def test_no_token_or_a_forged_token_is_refused(bank: Bank) -> None:
    r = bank.client.get("/api/v1/customers")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["code"] == "unauthorized"
    access = bank.login("admin")["access_token"]
    head, payload, sig = access.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    assert bank.client.get("/api/v1/customers", headers=_bearer(forged)).status_code == 401


def test_access_token_expires_after_15_minutes(bank: Bank) -> None:
    access = bank.login("rm_a")["access_token"]
    bank.clock.advance(minutes=14)
    assert bank.client.get("/api/v1/customers/count", headers=_bearer(access)).status_code == 200
    bank.clock.advance(minutes=1, seconds=1)
    r = bank.client.get("/api/v1/customers/count", headers=_bearer(access))
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(bank: Bank) -> None:
    first = bank.login("rm_a")
    second = bank.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (
        bank.client.get("/api/v1/customers/count", headers=_bearer(second["access_token"])).status_code == 200
    )
    # the used token presented again: refused, and the whole family (the newer token too) is revoked
    again = bank.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401 and again.json()["code"] == "refresh_token_reused"
    later = bank.client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert later.status_code == 401


def test_logout_revokes_the_refresh_token(bank: Bank) -> None:
    tokens = bank.login("rm_a")
    out = bank.client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.json() == {"revoked": True}
    r = bank.client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


def test_five_wrong_passwords_lock_the_account_for_15_minutes(bank: Bank) -> None:
    for _ in range(4):
        r = bank.client.post(LOGIN, json={"username": "rm_a", "password": "wrong-Password-1"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    fifth = bank.client.post(LOGIN, json={"username": "rm_a", "password": "wrong-Password-1"})
    assert fifth.status_code == 401 and fifth.json()["code"] == "invalid_credentials"
    # now even the right password is refused, as a wrong one is (the answer does not say the user exists)
    right = bank.client.post(LOGIN, json={"username": "rm_a", "password": PASSWORD})
    assert right.status_code == 401 and right.json() == fifth.json()
    bank.clock.advance(minutes=14, seconds=59)
    assert bank.client.post(LOGIN, json={"username": "rm_a", "password": PASSWORD}).status_code == 401
    bank.clock.advance(seconds=2)
    assert bank.client.post(LOGIN, json={"username": "rm_a", "password": PASSWORD}).status_code == 200
    with unit_of_work(bank.settings) as session:
        user = session.scalars(select(User).where(User.username == "rm_a")).one()
        locked = session.scalars(select(AuditEntry).where(AuditEntry.action == "user.locked_out")).all()
    assert user.failed_logins == 0 and len(locked) == 1


def test_a_good_login_resets_the_failure_count(bank: Bank) -> None:
    for _ in range(4):
        bank.client.post(LOGIN, json={"username": "rm_a", "password": "wrong-Password-1"})
    bank.login("rm_a")
    for _ in range(4):
        r = bank.client.post(LOGIN, json={"username": "rm_a", "password": "wrong-Password-1"})
        assert r.status_code == 401


def test_unknown_user_and_wrong_password_look_alike(bank: Bank) -> None:
    a = bank.client.post(LOGIN, json={"username": "nobody", "password": "x"})
    b = bank.client.post(LOGIN, json={"username": "rm_a", "password": "x"})
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


def test_locked_user_cannot_use_a_live_access_token(bank: Bank, cli) -> None:
    access = bank.login("rm_a")["access_token"]
    assert cli("user", "lock", "rm_a").exit_code == 0
    assert bank.client.get("/api/v1/customers/count", headers=_bearer(access)).status_code == 401
    assert bank.client.post(LOGIN, json={"username": "rm_a", "password": PASSWORD}).status_code == 401
    assert cli("user", "unlock", "rm_a").exit_code == 0
    assert bank.client.post(LOGIN, json={"username": "rm_a", "password": PASSWORD}).status_code == 200


def test_login_attempts_are_rate_limited(env, tmp_path: Path) -> None:
    limited = build_bank(env.settings.model_copy(update={"api_login_per_minute": 3}), tmp_path / "b")
    codes = [
        limited.client.post(LOGIN, json={"username": "rm_b", "password": "wrong"}).status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    r = limited.client.post(LOGIN, json={"username": "rm_b", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_requests_are_rate_limited_per_caller(env, tmp_path: Path) -> None:
    limited = build_bank(
        env.settings.model_copy(update={"api_rate_per_minute": 3, "api_login_per_minute": 100}),
        tmp_path / "b",
    )
    codes = [limited.get("rm_a", "/api/v1/customers/count").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert limited.get("rm_b", "/api/v1/customers/count").status_code == 200  # another caller's own bucket
