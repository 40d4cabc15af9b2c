"""Only the data home's owner can read it: after a small bank is loaded (with rejected rows), counted,
tagged and backed up, every file under the data home and the backup is 0600 and every folder 0700 — the
store and SQLite's WAL and SHM files, the event log, snapshots, load reports, rejects, keys. A data home
that others can read is used with a warning saying how to close it."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from omnibank.kit import private
from tests.conftest import write
from tests.factories import customer_row, customers_csv
from tests.ops.bank import small_bank

EXAMPLE_TAGS = Path(__file__).resolve().parents[2] / "examples" / "tags"


def _modes(root: Path) -> dict[str, str]:
    """``relative path → mode`` of everything under ``root`` that is not its owner's only."""
    wrong = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            wrong[str(path.relative_to(root)) or "."] = f"{mode:o}"
    return wrong


@pytest.fixture
def shared_umask() -> object:
    """The test starts from the usual umask (022: files 0644), as a shell would start a command."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_everything_the_platform_writes_is_its_owners_only(cli, env, tmp_path: Path, shared_umask) -> None:
    small_bank(cli, tmp_path)
    bad = customers_csv(tmp_path / "in" / "bad.csv", [customer_row("C999999", phone="12345")])
    assert cli("load", "customers", str(bad)).exit_code == 3  # a rejects file
    assert cli("tags", "load", str(EXAMPLE_TAGS)).exit_code == 0
    assert cli("tags", "compute", "--as-of", "2026-04-30").exit_code == 0
    assert cli("segment", "count", "events('app.login', 90) >= 0", "--as-of", "2026-04-30").exit_code == 0
    exported = tmp_path / "out" / "ids.csv"
    assert cli("segment", "export", "age > 1", "--out", str(exported), "--as-of", "2026-04-30").exit_code == 0
    backup, vault = tmp_path / "backup", tmp_path / "vault"
    r = cli("backup", str(backup), "--keys-out", str(vault))
    assert r.exit_code == 0, r.stderr

    home = env.home
    assert (home / "loads").is_dir() and list(home.rglob("rejects.csv"))
    assert list((home / "events").rglob("*.parquet")) and list(home.rglob("snapshots/*"))
    if env.database_url is None:
        assert (home / "omnibank.db").exists() and (home / "omnibank.db-wal").exists()
    for root in (home, backup, vault):
        assert _modes(root) == {}, root
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600  # what a command writes elsewhere, too


def test_an_existing_data_home_others_can_read_is_used_with_a_warning(
    cli, env, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.home.mkdir(exist_ok=True)  # (on PostgreSQL the harness has made it, migrating the store)
    os.chmod(env.home, 0o755)
    monkeypatch.setattr(private, "_checked", set())  # a new process: the home not looked at yet
    orgs = write(tmp_path / "in" / "orgs.csv", "org_id,parent_id,name,level\nHQ,,总行,hq\n")
    with caplog.at_level(logging.WARNING, logger="omnibank.home"):
        r = cli("load", "orgs", str(orgs))
    assert r.exit_code == 0, r.stderr
    (warning,) = [rec.getMessage() for rec in caplog.records if rec.name == "omnibank.home"]
    assert f"the data home {env.home} can be read by others (mode 755)" in warning
    assert f"chmod -R go-rwx {env.home}" in warning
