"""`omnibank user …` and `omnibank token …`."""

from __future__ import annotations

from typer.testing import CliRunner

from omnibank.cli import app
from tests.api.bank import PASSWORD, Bank


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_user_create_with_password_from_stdin_then_login(bank: Bank) -> None:
    code, out, _ = _run(
        "user",
        "create",
        "--staff",
        "E00008",
        "--role",
        "branch_manager",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0 and "user E00008 created" in out
    assert bank.login("E00008")["access_token"]
    code, out, _ = _run("user", "list")
    assert "E00008" in out and "branch_manager" in out


def test_user_create_prompts_for_the_password(bank: Bank) -> None:
    code, _, _ = _run(
        "user", "create", "--staff", "E00008", "--role", "rm", stdin=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert code == 0
    assert bank.login("E00008")


def test_unknown_staff_is_refused_before_the_password(bank: Bank) -> None:
    code, _, err = _run(
        "user", "create", "--staff", "E99999", "--role", "rm", "--password-stdin", stdin="x\n"
    )
    assert code == 1 and "no staff member E99999" in err


def test_weak_password_is_refused_with_the_reason(bank: Bank) -> None:
    code, _, err = _run(
        "user", "create", "--staff", "E00008", "--role", "rm", "--password-stdin", stdin="short\n"
    )
    assert code == 1 and "too weak" in err and "12 characters" in err
    code, _, err = _run(
        "user",
        "create",
        "--staff",
        "E00008",
        "--role",
        "rm",
        "--password-stdin",
        stdin="alllowercaseletters\n",
    )
    assert code == 1 and "three of" in err


def test_unknown_role_is_refused(bank: Bank) -> None:
    code, _, err = _run(
        "user", "create", "--staff", "E00008", "--role", "king", "--password-stdin", stdin="x\n"
    )
    assert code == 1 and "unknown role" in err


def test_token_create_prints_the_token_once_and_it_works_within_its_scopes(bank: Bank) -> None:
    code, out, _ = _run(
        "token", "create", "--name", "crm", "--scopes", "customers:read,events:write", "--expires", "90d",
        "--bank-wide",
    )  # fmt: skip
    assert code == 0
    token = out.split()[0]
    assert token.startswith("omb_")
    _, listing, _ = _run("token", "list")
    assert "crm" in listing and token not in listing  # never shown again
    headers = {"Authorization": f"Bearer {token}"}
    assert bank.client.get("/api/v1/customers/count", headers=headers).json() == {"count": 5}
    r = bank.client.post("/api/v1/segments/count", headers=headers, json={"expression": "age > 1"})
    assert r.status_code == 403 and r.json()["details"] == {"needs": "segments:read"}


def test_token_with_bad_scope_or_expiry_is_refused(bank: Bank) -> None:
    code, _, err = _run("token", "create", "--name", "x", "--scopes", "customers:write")
    assert code == 1 and "unknown scope" in err
    code, _, err = _run(
        "token", "create", "--name", "x", "--scopes", "customers:read", "--expires", "forever"
    )
    assert code == 1 and "90d" in err
