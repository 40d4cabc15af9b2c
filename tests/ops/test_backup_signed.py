"""Issue 13, backups: a backup altered by someone without the keys does not restore, even with its manifest's
checksums and sizes re-computed, because the manifest is signed with a key from the key ring (kept apart
from the backup, in the vault). An unsigned manifest is refused; a backup made before backups were signed is
restored only once someone who trusts it signs it (`omnibank backup-sign`)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from omnibank import config
from omnibank.kit.crypto import KeyRing
from omnibank.ops import backup as ops
from tests.ops.bank import small_bank
from tests.ops.test_backup import Switch, store_is_empty, table_rows
from tests.ops.test_backup import switch_home as switch_home  # the fixture

MILLION_CNY_IN_FEN = 1_000_000 * 100


def _manifest(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return data


def _rehash(folder: Path, manifest: dict[str, Any]) -> None:
    """Re-compute every file's SHA-256 and size in the manifest, as an attacker who changed a file would."""
    for entry in manifest["files"]:
        data = (folder / entry["path"]).read_bytes()
        entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _tamper_store(folder: Path, manifest: dict[str, Any]) -> None:
    """Raise C000001's AUM by 1,000,000 CNY in the backup's copy of the store (SQLite), or change the dump
    (PostgreSQL), then re-hash the manifest."""
    store = folder / manifest["files"][0]["path"]
    if store.name.endswith(".sqlite"):
        con = sqlite3.connect(store)
        con.execute("UPDATE customers SET aum_fen = aum_fen + ? WHERE customer_id = 'C000001'",
                    (MILLION_CNY_IN_FEN,))  # fmt: skip
        con.commit()
        con.close()
    else:
        store.write_bytes(store.read_bytes() + b"\0")
    _rehash(folder, manifest)


def test_a_tampered_backup_with_its_manifest_re_hashed_does_not_restore(
    cli, env, tmp_path: Path, switch_home: Switch
) -> None:
    small_bank(cli, tmp_path, customers=3)
    backup_dir, keys_dir = tmp_path / "backup", tmp_path / "vault"
    assert cli("backup", str(backup_dir), "--keys-out", str(keys_dir)).exit_code == 0
    manifest = _manifest(backup_dir)
    assert manifest["format"] == 2 and manifest["signature"]["alg"] == "HMAC-SHA256"
    _tamper_store(backup_dir, manifest)

    home = switch_home("target")
    res = cli("restore", str(backup_dir), "--keys-in", str(keys_dir))
    assert res.exit_code == 1, res.stdout
    assert "signature" in res.stderr and "does not verify" in res.stderr
    assert "nothing was restored" in res.stderr
    assert store_is_empty() and not (home / "events").exists() and not (home / "keys").exists()

    # without the signature it is refused as unsigned
    del manifest["signature"]
    (backup_dir / "manifest.json").write_text(json.dumps(manifest))
    res = cli("restore", str(backup_dir), "--keys-in", str(keys_dir))
    assert res.exit_code == 1 and "is not signed" in res.stderr and "backup-sign" in res.stderr
    assert store_is_empty()


def test_a_manifest_signed_with_other_keys_is_refused(cli, env, tmp_path: Path, switch_home: Switch) -> None:
    small_bank(cli, tmp_path, customers=2)
    backup_dir, keys_dir = tmp_path / "backup", tmp_path / "vault"
    assert cli("backup", str(backup_dir), "--keys-out", str(keys_dir)).exit_code == 0
    manifest = _manifest(backup_dir)
    _tamper_store(backup_dir, manifest)
    other = KeyRing.generate()  # an attacker's own keys
    (backup_dir / "manifest.json").write_text(json.dumps(ops._signed(manifest, other)))
    switch_home("target")
    res = cli("restore", str(backup_dir), "--keys-in", str(keys_dir))
    assert res.exit_code == 1 and "does not verify with the keys of" in res.stderr
    assert store_is_empty()


def test_the_target_s_own_keys_verify_the_signature(cli, env, tmp_path: Path) -> None:
    small_bank(cli, tmp_path, customers=2)
    backup_dir = tmp_path / "backup"
    assert cli("backup", str(backup_dir)).exit_code == 0
    before = table_rows()
    res = cli("restore", str(backup_dir), "--force")  # into the same home: its key file verifies
    assert res.exit_code == 0, res.stderr
    assert table_rows() == before


def test_a_backup_made_before_signing_restores_once_signed(
    cli, env, tmp_path: Path, switch_home: Switch
) -> None:
    small_bank(cli, tmp_path, customers=2)
    backup_dir, keys_dir = tmp_path / "backup", tmp_path / "vault"
    assert cli("backup", str(backup_dir), "--keys-out", str(keys_dir)).exit_code == 0
    original = table_rows()
    old = {k: v for k, v in _manifest(backup_dir).items() if k != "signature"}
    old["format"] = 1  # as the release before wrote it
    (backup_dir / "manifest.json").write_text(json.dumps(old, indent=2, sort_keys=True))

    switch_home("target")
    res = cli("restore", str(backup_dir), "--keys-in", str(keys_dir))
    assert res.exit_code == 1 and "is not signed" in res.stderr

    # signing checks every file first: an altered old backup is not signed
    store = backup_dir / old["files"][0]["path"]
    good = store.read_bytes()
    store.write_bytes(good + b"\0")
    res = cli("backup-sign", str(backup_dir), "--keys-in", str(keys_dir))
    assert res.exit_code == 1 and "does not match its checksum" in res.stderr
    assert "signature" not in _manifest(backup_dir)
    store.write_bytes(good)

    res = cli("backup-sign", str(backup_dir), "--keys-in", str(keys_dir))
    assert res.exit_code == 0, res.stderr
    assert _manifest(backup_dir)["format"] == 2
    again = cli("backup-sign", str(backup_dir), "--keys-in", str(keys_dir))
    assert again.exit_code == 1 and "signed already" in again.stderr
    res = cli("restore", str(backup_dir), "--keys-in", str(keys_dir))
    assert res.exit_code == 0, res.stderr
    assert table_rows() == original
    assert config.get_settings().key_file.exists()
