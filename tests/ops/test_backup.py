"""Backup and restore: given a small bank, when it is backed up and restored into a fresh home (and, on
PostgreSQL, a fresh database), then every table's rows, the event log and the personal data read back
the same; a damaged backup or a non-empty target is refused and changes nothing."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, inspect, select
from sqlalchemy.engine import make_url

from omnibank import config, db
from omnibank.db.databases import drop_databases, fresh_database
from omnibank.security import reset_ciphers
from tests.events.helpers import stored
from tests.ops.bank import NAMES, phone_of, plaintexts, small_bank

MOMENT = datetime(2026, 3, 2, 2, tzinfo=UTC)

Switch = Callable[[str], Path]


@pytest.fixture
def switch_home(env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Switch]:
    """Point the settings at a new, empty data home (and on PostgreSQL a new, empty database)."""
    created: list[str] = []

    def switch(name: str) -> Path:
        home = tmp_path / name
        monkeypatch.setenv("OMNIBANK_HOME", str(home))
        if env.database_url:
            database = f"{make_url(env.database_url).database}_{name}"
            monkeypatch.setenv("OMNIBANK_DATABASE_URL", fresh_database(env.database_url, database))
            created.append(database)
        config.reset_settings()
        reset_ciphers()
        db.dispose_engines()
        return home

    yield switch
    db.dispose_engines()
    if created:
        drop_databases(env.database_url, created)


def table_rows() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the configured store, in a stable order."""
    with db.get_engine().connect() as conn:
        meta = MetaData()
        meta.reflect(conn)
        return {
            name: sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
            for name, table in meta.tables.items()
        }


def store_is_empty() -> bool:
    settings = config.get_settings()
    if settings.db_url.startswith("sqlite"):
        return not (settings.home_dir / "omnibank.db").exists()
    with db.get_engine().connect() as conn:
        return not inspect(conn).get_table_names()


def test_backup_and_restore_round_trip(cli, env, tmp_path: Path, switch_home: Switch) -> None:
    small_bank(cli, tmp_path)
    original = table_rows()
    events = stored(env.settings)
    secrets_before = plaintexts()
    assert len(events) == 3 and len(original["customers"]) == 25 and len(original["staff"]) == 3

    backup_dir, keys_dir = tmp_path / "backup", tmp_path / "vault"
    res = cli("backup", str(backup_dir), "--keys-out", str(keys_dir))
    assert res.exit_code == 0, res.stderr
    assert "backup written to" in res.stdout and "warning" not in res.stderr

    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["tables"] == {name: len(rows) for name, rows in original.items()}
    assert manifest["revision"] == db.head_revision()
    assert manifest["ciphertexts_by_key"] == {"k1": len(secrets_before)}
    listed = {e["path"] for e in manifest["files"]}
    on_disk = {p.relative_to(backup_dir).as_posix() for p in backup_dir.rglob("*") if p.is_file()}
    assert on_disk == listed | {"manifest.json"}
    assert sum(p.startswith("events/month=") for p in listed) == manifest["event_files"] >= 1
    # the keys went apart, and nothing personal or secret is in the backup folder in plaintext
    assert (keys_dir / "master.key").read_bytes() == env.settings.key_file.read_bytes()
    assert os.stat(keys_dir / "master.key").st_mode & 0o777 == 0o600
    key_material = json.loads(env.settings.key_file.read_text())["data_keys"]["k1"]
    for path in backup_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert key_material.encode() not in data and base64.b64decode(key_material) not in data
            assert phone_of(1).encode() not in data and NAMES[1].encode() not in data, path

    # a backup refuses a folder that is not empty, and keys inside the backup
    assert cli("backup", str(backup_dir)).exit_code == 1
    inside = cli("backup", str(tmp_path / "b2"), "--keys-out", str(tmp_path / "b2" / "keys"))
    assert inside.exit_code == 1 and "must be apart from the backup folder" in inside.stderr
    assert not (tmp_path / "b2").exists()

    # restore into a fresh home (and database)
    home = switch_home("restored")
    res = cli("restore", str(backup_dir), "--keys-in", str(keys_dir))
    assert res.exit_code == 0, res.stderr
    assert config.get_settings().home_dir == home.resolve()
    assert table_rows() == original
    assert stored(config.get_settings()) == events
    assert plaintexts() == secrets_before  # decrypted with the restored key file
    found = cli("customer", "find", "--phone", phone_of(9))
    assert found.exit_code == 0 and "C000009" in found.stdout

    # restoring over a store that is not empty is refused without --force, replaced with it
    again = cli("restore", str(backup_dir), "--keys-in", str(keys_dir))
    assert again.exit_code == 1 and "not empty" in again.stderr and "--force" in again.stderr
    forced = cli("restore", str(backup_dir), "--keys-in", str(keys_dir), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert "moved aside" in forced.stderr and "events.replaced-" in forced.stderr
    assert table_rows() == original  # the audit row of the search above is gone with the rest
    assert stored(config.get_settings()) == events


def test_a_damaged_backup_is_refused_and_nothing_changes(
    cli, env, tmp_path: Path, switch_home: Switch
) -> None:
    small_bank(cli, tmp_path, customers=5)
    backup_dir, keys_dir = tmp_path / "backup", tmp_path / "vault"
    assert cli("backup", str(backup_dir), "--keys-out", str(keys_dir)).exit_code == 0
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    event_file = backup_dir / next(e["path"] for e in manifest["files"] if e["path"].startswith("events/"))
    store_file = backup_dir / manifest["files"][0]["path"]

    home = switch_home("target")
    for victim in (event_file, store_file):
        original = victim.read_bytes()
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x01
        victim.write_bytes(bytes(damaged))
        res = cli("restore", str(backup_dir), "--keys-in", str(keys_dir))
        assert res.exit_code == 1
        assert str(victim) in res.stderr and "does not match its checksum" in res.stderr
        assert "nothing was restored" in res.stderr
        assert not (home / "events").exists() and not (home / "keys").exists()
        assert store_is_empty()
        victim.write_bytes(original)

    # an extra file, a missing file, keys that are not the backup's: refused too
    (backup_dir / "events" / "stray.parquet").write_bytes(b"x")
    res = cli("restore", str(backup_dir), "--keys-in", str(keys_dir))
    assert res.exit_code == 1 and "does not list: events/stray.parquet" in res.stderr
    (backup_dir / "events" / "stray.parquet").unlink()
    other_keys = tmp_path / "other"
    other_keys.mkdir()
    (other_keys / "master.key").write_text("{}")
    res = cli("restore", str(backup_dir), "--keys-in", str(other_keys))
    assert res.exit_code == 1 and "not the one written with this backup" in res.stderr
    res = cli("restore", str(backup_dir))
    assert res.exit_code == 1 and "no keys" in res.stderr and "--keys-in" in res.stderr
    assert store_is_empty() and not (home / "events").exists()

    # the intact backup then restores
    assert cli("restore", str(backup_dir), "--keys-in", str(keys_dir)).exit_code == 0
    assert len(plaintexts()) == 5 * 3 + 5


def test_backup_without_keys_out_warns_and_leaves_keys_out(cli, env, tmp_path: Path) -> None:
    small_bank(cli, tmp_path, customers=2)
    res = cli("backup", str(tmp_path / "backup"))
    assert res.exit_code == 0
    assert "keys not copied" in res.stderr and "--keys-out" in res.stderr
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["keys"] == {"source": "file", "included": False}
    assert not any(p.name == "master.key" for p in (tmp_path / "backup").rglob("*"))


def test_the_event_files_are_listed_under_the_log_lock(cli, env, tmp_path: Path) -> None:
    """A load publishing while the backup starts: the backup waits for the log's lock, then takes the
    set of files published at that moment (here: including the one published under the lock)."""
    import shutil
    import threading

    from omnibank.events.log import EventLog
    from omnibank.ops import backup as ops

    small_bank(cli, tmp_path, customers=2)
    log = EventLog(env.settings)
    before = log.files()
    published = before[0]
    late = published.parent.parent / "month=2026-05" / "late-0.parquet"
    done: list[ops.BackupReport] = []
    with log.locked():
        worker = threading.Thread(target=lambda: done.append(ops.backup(env.settings, tmp_path / "bk")))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and not done  # waiting for the lock
        late.parent.mkdir()
        shutil.copyfile(published, late)  # published while the lock is held
    worker.join(timeout=60)
    assert done, "the backup did not finish"
    paths = {e["path"] for e in done[0].manifest["files"]}
    assert "events/month=2026-05/late-0.parquet" in paths
    assert len(paths) == 1 + len(before) + 1  # the store, the files before, the late one


def test_a_write_during_the_backup_is_not_in_it(cli, env, tmp_path: Path) -> None:
    """The store is copied as of the snapshot taken with the file list: an org added while the copy
    starts is neither in the manifest's counts nor in the copied store."""
    import sqlite3

    from omnibank.db import unit_of_work
    from omnibank.ops import backup as ops
    from omnibank.orgs.models import Org

    small_bank(cli, tmp_path, customers=2)

    class WriteMeanwhile(ops.Progress):
        def phase(self, description: str, total: int) -> None:
            if "store" in description:
                with unit_of_work(env.settings) as s:
                    s.add(Org(org_id="B999", parent_id="HQ", name="新分行", level="branch",
                              path="/HQ/B999/", depth=1, updated_at=MOMENT))  # fmt: skip

    report = ops.backup(env.settings, tmp_path / "bk", progress=WriteMeanwhile())
    with unit_of_work(env.settings) as s:
        assert s.get(Org, "B999") is not None  # the write went through, the backup did not wait for it
    assert report.manifest["tables"]["orgs"] == 7
    if not env.database_url:
        copy = sqlite3.connect(tmp_path / "bk" / "store" / "omnibank.sqlite")
        assert copy.execute("SELECT count(*) FROM orgs").fetchone() == (7,)
        copy.close()


def test_pg_tools_must_match_the_servers_major_version(tmp_path: Path) -> None:
    from omnibank.errors import ConfigError
    from omnibank.ops.backup import find_pg_tool

    fake = tmp_path / "bin"
    fake.mkdir()
    tool = fake / "pg_dump"
    tool.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 97.2'\n")
    tool.chmod(0o755)
    assert find_pg_tool("pg_dump", 97, fake) == tool
    with pytest.raises(ConfigError) as refused:
        find_pg_tool("pg_dump", 96, fake)
    assert "no pg_dump for PostgreSQL 96" in refused.value.message
    assert (
        f"{tool} (pg_dump (PostgreSQL) 97.2)" in refused.value.message and "--pg-bin" in refused.value.message
    )
