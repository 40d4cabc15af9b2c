"""`omnibank user …` and `omnibank token …`: staff accounts and API tokens for integrations."""

from __future__ import annotations

import sys

import typer

from omnibank.audit.service import cli_actor
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.kit.clock import system_clock
from omnibank.kit.console import out
from omnibank.listing import Col, FormatOpt, OutputFormat, print_rows
from omnibank.users import service
from omnibank.users.models import USER_ROLES
from omnibank.users.permissions import SCOPES

user_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS
token_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise AppError("--password-stdin: no password on standard input")
        return password
    first: str = typer.prompt("Password", hide_input=True)
    second: str = typer.prompt("Repeat the password", hide_input=True)
    if first != second:
        raise AppError("the two passwords differ")
    return first


@user_app.command("create")
def user_create(
    role: str = typer.Option(..., "--role", help=f"One of: {', '.join(USER_ROLES)}."),
    staff: str = typer.Option(None, "--staff", help="The staff member (staff_id) the account belongs to."),
    supplier: str = typer.Option(None, "--supplier", help="For --role supplier: the supplier id."),
    username: str = typer.Option(None, "--username", help="Sign-in name; default the staff or supplier id."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of standard input."
    ),
) -> None:
    """Create an account (the password is prompted for unless --password-stdin)."""
    if role not in USER_ROLES:
        raise AppError(f"unknown role {role!r}; roles: {', '.join(USER_ROLES)}")
    with unit_of_work() as session:  # check the staff member before asking for a password
        if staff is not None:
            from omnibank.orgs.models import Staff

            if session.get(Staff, staff) is None:
                raise AppError(f"no staff member {staff} (load staff.csv first)")
    password = _read_password(password_stdin)
    with unit_of_work() as session:
        user = service.create_user(
            session,
            role=role,
            password=password,
            now=system_clock(),
            actor=cli_actor(),
            staff_id=staff,
            supplier_id=supplier,
            username=username,
        )
        name = user.username
    out.print(f"user {name} created ({role})")


@user_app.command("list")
def user_list(fmt: OutputFormat = FormatOpt) -> None:
    """Every account with its role, staff member and state."""
    now = system_clock()
    rows = []
    with unit_of_work() as session:
        for u in service.list_users(session):
            locked_out = not u.disabled and u.locked_until is not None and u.locked_until > now
            if u.disabled:
                state, text = "locked", "locked"
            elif locked_out and u.locked_until is not None:
                state, text = "locked_out", f"locked out until {u.locked_until.isoformat(timespec='minutes')}"
            else:
                state, text = "active", "active"
            last = u.last_login_at.isoformat(timespec="minutes") if u.last_login_at else ""
            rows.append((u.username, u.role, u.staff_id, u.supplier_id, text, state,
                         u.locked_until if locked_out else None, last, u.last_login_at))  # fmt: skip
    columns = (
        Col("username"), Col("role"), Col("staff_id", "staff"), Col("supplier_id", "supplier"),
        Col("state_text", "state", data=False), Col("state", table=False), Col("locked_until", table=False),
        Col("last_login", "last login", data=False), Col("last_login_at", table=False),
    )  # fmt: skip
    print_rows(columns, rows, fmt)


@user_app.command("lock")
def user_lock(username: str = typer.Argument(...)) -> None:
    """Lock an account: it cannot sign in and its sessions are revoked."""
    with unit_of_work() as session:
        service.set_locked(session, username, locked=True, now=system_clock(), actor=cli_actor())
    out.print(f"user {username} locked")


@user_app.command("unlock")
def user_unlock(username: str = typer.Argument(...)) -> None:
    """Unlock an account (also clears a lock-out after failed sign-ins)."""
    with unit_of_work() as session:
        service.set_locked(session, username, locked=False, now=system_clock(), actor=cli_actor())
    out.print(f"user {username} unlocked")


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., "--name", help="A name for the integration, e.g. crm."),
    scopes: str = typer.Option(..., "--scopes", help=f"Comma-separated: {', '.join(SCOPES)}."),
    expires: str = typer.Option("90d", "--expires", help="Lifetime: 90d, 12h, 30m, 2w (at most 400d)."),
    org: str = typer.Option(None, "--org", help="It serves the customers of this org's subtree."),
    bank_wide: bool = typer.Option(
        False, "--bank-wide", help="It serves every customer of the bank (instead of --org): on purpose."
    ),
) -> None:
    """Create a token and print it once: it is stored hashed and cannot be shown again. Say whose customers
    it serves: --org ORG or --bank-wide."""
    parsed = service.parse_scopes(scopes)
    lifetime = service.parse_duration(expires)
    with unit_of_work() as session:
        token, plaintext = service.create_api_token(
            session, name=name, scopes=parsed, lifetime=lifetime, now=system_clock(), actor=cli_actor(),
            org_id=org, bank_wide=bank_wide,
        )  # fmt: skip
        until = token.expires_at.isoformat(timespec="minutes")
    out.print(plaintext)
    reach = "the whole bank" if bank_wide else f"the customers of {org}'s subtree"
    out.print(
        f"token {name}: scopes {', '.join(parsed)}; serves {reach}; expires {until}. Store it now: it is "
        "not shown again."
    )


@token_app.command("list")
def token_list(fmt: OutputFormat = FormatOpt) -> None:
    """Every token: name, scopes, expiry, state (never the token)."""
    now = system_clock()
    rows = []
    with unit_of_work() as session:
        for t in service.list_api_tokens(session):
            state = "revoked" if t.revoked_at else "expired" if t.expires_at <= now else "active"
            rows.append((
                t.name, f"omb_{t.prefix}_…", t.prefix, t.scopes, t.org_id,
                t.expires_at.isoformat(timespec="minutes"), t.expires_at, state,
                t.last_used_at.isoformat(timespec="minutes") if t.last_used_at else "", t.last_used_at,
            ))  # fmt: skip
    columns = (
        Col("name"), Col("shown_prefix", "prefix", data=False), Col("prefix", table=False), Col("scopes"),
        Col("org_id", "org", empty="whole bank"), Col("expires", data=False), Col("expires_at", table=False),
        Col("state"), Col("last_used", "last used", data=False), Col("last_used_at", table=False),
    )  # fmt: skip
    print_rows(columns, rows, fmt)


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(...)) -> None:
    """Revoke a token at once."""
    with unit_of_work() as session:
        service.revoke_api_token(session, name, now=system_clock(), actor=cli_actor())
    out.print(f"token {name} revoked")
