"""Key rotation: given a bank encrypted under k1, when keys rotate, then every ciphertext is under k2,
every value decrypts as before and lookups by phone still work; an interrupted rotation stays readable
and a re-run finishes it; old keys can be retired only once unused."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from omnibank import config
from omnibank.kit.crypto import KeyRing
from omnibank.ops import rotate as rot
from omnibank.security import get_cipher, reset_ciphers
from tests.ops.bank import ciphertexts, phone_of, plaintexts, small_bank

CUSTOMERS = 25
# three fields per customer, a name for each of the three staff, a phone for two of them
TOTAL = CUSTOMERS * 3 + 3 + 2


def _usage() -> dict[str, int]:
    from omnibank.db import unit_of_work

    settings = config.get_settings()
    with unit_of_work(settings) as s:
        return rot.key_usage(s, rot.load_ring(settings)).by_key


def _under(kid: str) -> int:
    header = rot.key_header(kid)
    return sum(1 for b in ciphertexts() if bytes(b).startswith(header))


def test_rotate_reencrypts_everything_and_lookups_keep_working(cli, env, tmp_path: Path) -> None:
    small_bank(cli, tmp_path, customers=CUSTOMERS)
    before = plaintexts()
    assert len(before) == TOTAL and _under("k1") == TOTAL

    res = cli("keys", "rotate", "--batch-size", "7")
    assert res.exit_code == 0, res.stderr
    assert "added key 'k2'" in res.stdout and "rotation complete" in res.stdout

    ring = rot.load_ring(env.settings)
    assert ring.active == "k2" and set(ring.data_keys) == {"k1", "k2"}
    assert _under("k2") == TOTAL and _under("k1") == 0
    assert _usage() == {"k1": 0, "k2": TOTAL}
    reset_ciphers()
    assert plaintexts() == before

    found = cli("customer", "find", "--phone", phone_of(7))
    assert found.exit_code == 0 and "C000007" in found.stdout and "1 match" in found.stdout

    status = cli("keys", "status")
    assert status.exit_code == 0
    assert f"all {TOTAL} ciphertexts are under the active key 'k2'" in status.stdout

    from sqlalchemy import select

    from omnibank.audit.models import AuditEntry
    from omnibank.db import unit_of_work

    with unit_of_work() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "keys.rotate")).one()
        assert entry.subject_id == "k2" and entry.actor == "test:pytest"


def test_interrupted_rotation_stays_readable_and_resume_finishes_it(cli, env, tmp_path: Path) -> None:
    small_bank(cli, tmp_path, customers=CUSTOMERS)
    before = plaintexts()

    res = cli("keys", "rotate", "--batch-size", "10", "--max-batches", "1")
    assert res.exit_code == 0, res.stderr
    assert (
        "rotation unfinished: 18 rows still hold values under older keys" in res.stdout
    )  # 15 customers and 3 staff rows left
    assert _usage() == {"k1": TOTAL - 30, "k2": 30}  # the first 10 customers, 3 fields each
    # mixed keys: everything still decrypts (the ring holds both) and both halves are found by phone
    assert plaintexts() == before
    for i in (1, 20):
        found = cli("customer", "find", "--phone", phone_of(i))
        assert found.exit_code == 0 and f"C{i:06d}" in found.stdout

    again = cli("keys", "rotate")
    assert again.exit_code == 1 and "unfinished" in again.stderr and "--resume" in again.stderr
    assert set(rot.load_ring(env.settings).data_keys) == {"k1", "k2"}  # no third key piled up

    busy = cli("keys", "retire", "k1")
    assert busy.exit_code == 1
    assert f"key 'k1' still encrypts {TOTAL - 30} values" in busy.stderr
    assert "customers.name_enc 15" in busy.stderr and "staff.phone_enc 2" in busy.stderr
    active = cli("keys", "retire", "k2")
    assert active.exit_code == 1 and "'k2' is the active key" in active.stderr
    assert set(rot.load_ring(env.settings).data_keys) == {"k1", "k2"}

    done = cli("keys", "rotate", "--resume")
    assert done.exit_code == 0 and "rotation complete" in done.stdout
    assert "re-encrypted 18 rows" in done.stdout
    assert _under("k2") == TOTAL

    idle = cli("keys", "rotate", "--resume")
    assert idle.exit_code == 0 and "re-encrypted 0 rows" in idle.stdout

    retired = cli("keys", "retire", "k1")
    assert retired.exit_code == 0, retired.stderr
    ring = rot.load_ring(env.settings)
    assert set(ring.data_keys) == {"k2"} and ring.active == "k2"
    assert os.stat(env.settings.key_file).st_mode & 0o777 == 0o600
    reset_ciphers()
    assert plaintexts() == before
    assert cli("keys", "retire", "k1").exit_code == 1  # no such key any more

    # the next rotation goes on numbering
    assert cli("keys", "rotate").exit_code == 0
    assert rot.load_ring(env.settings).active == "k3" and _under("k3") == TOTAL


def test_a_running_process_learns_a_new_key_from_the_key_file(env) -> None:
    first = get_cipher()
    blob = first.encrypt("13800001111", context="customers.phone:C1")
    rot.add_key(env.settings)  # as another process would: no cache reset here
    second = get_cipher()
    assert second is not first and second.ring.active == "k2"
    assert second.decrypt(blob, context="customers.phone:C1") == "13800001111"
    assert get_cipher() is second  # unchanged file: cached


def test_rotation_refuses_a_key_ring_from_the_environment_and_to_file_moves_it(
    cli, env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("OMNIBANK_MASTER_KEY", secret)
    config.reset_settings()
    reset_ciphers()
    small_bank(cli, tmp_path, customers=3)
    before = plaintexts()

    res = cli("keys", "rotate")
    assert res.exit_code == 1
    assert "OMNIBANK_MASTER_KEY" in res.stderr and "omnibank keys to-file" in res.stderr
    assert not env.settings.key_file.exists() and _under("m0") == 3 * 3 + 5

    moved = cli("keys", "to-file")
    assert moved.exit_code == 0
    assert KeyRing.from_json(env.settings.key_file.read_text(), source="t").active == "m0"
    monkeypatch.delenv("OMNIBANK_MASTER_KEY")
    config.reset_settings()
    reset_ciphers()
    assert plaintexts() == before  # the file holds the same keys the variable derived

    assert cli("keys", "rotate").exit_code == 0
    assert _under("k1") == 3 * 3 + 5
    reset_ciphers()
    assert plaintexts() == before
    assert cli("keys", "retire", "m0").exit_code == 0


def test_erased_customers_tombstones_neither_block_nor_count(cli, env, tmp_path: Path) -> None:
    from sqlalchemy import update

    from omnibank.customers.models import Customer
    from omnibank.db import unit_of_work

    small_bank(cli, tmp_path, customers=4)
    with unit_of_work() as s:  # what erasure leaves: empty tombstones instead of ciphertexts
        s.execute(
            update(Customer)
            .where(Customer.customer_id == "C000002")
            .values(name_enc=b"", phone_enc=b"", id_number_enc=b"")
        )
    live = 3 * 3 + 5
    assert _usage() == {"k1": live}
    res = cli("keys", "rotate", "--batch-size", "2")
    assert res.exit_code == 0, res.stderr
    assert _usage() == {"k1": 0, "k2": live} and _under("k2") == live
    assert cli("keys", "retire", "k1").exit_code == 0
    with unit_of_work() as s:
        erased = s.get(Customer, "C000002")
        assert erased is not None and erased.name_enc == b"" and erased.phone_enc == b""


@pytest.mark.postgres_only
def test_a_value_changed_during_a_batch_is_not_overwritten(
    cli, env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loader updates C000002's name after the batch read it and before the batch writes: the batch
    leaves that row alone (compare-and-set on the old ciphertext) and a re-run re-encrypts the new value."""
    from sqlalchemy import create_engine, update

    from omnibank.customers.models import Customer
    from omnibank.kit.crypto import FieldCipher

    small_bank(cli, tmp_path, customers=3)
    old = FieldCipher(rot.load_ring(env.settings))
    real_decrypt = FieldCipher.decrypt
    changed: list[bool] = []

    def decrypt_while_a_loader_writes(self: FieldCipher, blob: bytes, *, context: str) -> str:
        if context == "customers.name:C000002" and not changed:
            other = create_engine(env.database_url)
            with other.begin() as conn:
                conn.execute(
                    update(Customer)
                    .where(Customer.customer_id == "C000002")
                    .values(name_enc=old.encrypt("欧阳新", context=context))
                )
            other.dispose()
            changed.append(True)
        return real_decrypt(self, blob, context=context)

    monkeypatch.setattr(FieldCipher, "decrypt", decrypt_while_a_loader_writes)
    report = rot.rotate(env.settings, batch_size=10)
    monkeypatch.setattr(FieldCipher, "decrypt", real_decrypt)
    assert changed and not report.finished and report.left == 1
    reset_ciphers()
    assert plaintexts()["customers.name:C000002"] == "欧阳新"

    assert rot.rotate(env.settings, resume=True).finished
    assert _under("k2") == 3 * 3 + 5
    reset_ciphers()
    assert plaintexts()["customers.name:C000002"] == "欧阳新"
