from __future__ import annotations

import base64
import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnibank.errors import ConfigError
from omnibank.kit.crypto import FieldCipher, KeyRing, load_or_create_key_ring
from omnibank.kit.masking import mask_free_text, mask_id_number, mask_name, mask_phone
from omnibank.kit.money import MoneyError, from_fen, parse_cny, to_fen


def test_key_file_created_once_with_mode_0600(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "master.key"
    ring = load_or_create_key_ring(key_file, None)
    assert key_file.stat().st_mode & 0o777 == 0o600
    again = load_or_create_key_ring(key_file, None)
    assert again == ring
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_or_create_key_ring(key_file, None)


def test_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text("{not json")
    os.chmod(key_file, 0o600)
    with pytest.raises(ConfigError, match="damaged"):
        load_or_create_key_ring(key_file, None)


def test_master_key_from_environment_is_deterministic() -> None:
    secret = base64.b64encode(b"k" * 32).decode()
    a = FieldCipher(KeyRing.from_master_secret(secret))
    b = FieldCipher(KeyRing.from_master_secret(secret))
    blob = a.encrypt("13812345678", context="customers.phone:C1")
    assert b.decrypt(blob, context="customers.phone:C1") == "13812345678"
    assert a.blind_index("phone", "13812345678") == b.blind_index("phone", "13812345678")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        KeyRing.from_master_secret(base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError, match="base64"):
        KeyRing.from_master_secret("***")


def test_old_keys_still_decrypt_after_a_new_key_becomes_active() -> None:
    ring = KeyRing.generate()
    old = FieldCipher(ring)
    blob = old.encrypt("张三", context="c.name:1")
    rotated = KeyRing(
        active="k2", data_keys={**ring.data_keys, "k2": os.urandom(32)}, index_key=ring.index_key
    )
    new = FieldCipher(rotated)
    assert new.decrypt(blob, context="c.name:1") == "张三"
    assert new.encrypt("张三", context="c.name:1")[2:4] == b"k2"
    stranger = FieldCipher(KeyRing.generate())
    with pytest.raises(ConfigError):
        stranger.decrypt(blob, context="c.name:1")


def test_tampered_ciphertext_is_refused() -> None:
    cipher = FieldCipher(KeyRing.generate())
    blob = bytearray(cipher.encrypt("李四", context="x:1"))
    blob[-1] ^= 1
    with pytest.raises(ConfigError, match="does not verify"):
        cipher.decrypt(bytes(blob), context="x:1")


@given(st.text(min_size=0, max_size=50))
def test_encryption_round_trips_any_text(value: str) -> None:
    cipher = _CIPHER
    blob = cipher.encrypt(value, context="t:1")
    assert cipher.decrypt(blob, context="t:1") == value
    assert value.encode() not in blob or len(value.encode()) < 3


_CIPHER = FieldCipher(KeyRing.generate())


def test_masks() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_id_number("37010219800517123X") == "3701**********123X"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    text = "C9,王小明,M,13812345678,37010219800517123X,衡水分行"
    masked = mask_free_text(text)
    assert "王小明" not in masked and "13812345678" not in masked and "37010219800517123X" not in masked
    assert "138****5678" in masked and "3701**********123X" in masked


def test_money_is_exact_decimal() -> None:
    assert parse_cny("0.10") == Decimal("0.10")
    assert to_fen(parse_cny("523000.00")) == 52300000
    assert from_fen(1) == Decimal("0.01")
    for bad in ("1.001", "-1", "abc", "Infinity", "1e400000"):
        with pytest.raises(MoneyError):
            parse_cny(bad)
    with pytest.raises(MoneyError):
        parse_cny("0", allow_zero=False)


@given(st.integers(min_value=0, max_value=10**15))
def test_fen_round_trip(fen: int) -> None:
    assert to_fen(parse_cny(str(from_fen(fen)))) == fen


def test_threads_creating_the_key_ring_at_once_all_get_the_one_ring(tmp_path: Path) -> None:
    """Several threads of a new server (or processes) reach a data home without keys at the same moment: one
    ring is created and every one of them gets it; no error, no temporary file left behind."""
    import threading

    key_file = tmp_path / "keys" / "master.key"
    rings: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def create() -> None:
        start.wait()
        try:
            rings.append(load_or_create_key_ring(key_file, None).to_json())
        except BaseException as exc:  # reported below
            errors.append(exc)

    for _ in range(5):  # a race: several rounds, each on a fresh folder
        if key_file.exists():
            key_file.unlink()
        rings.clear()
        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(rings) == 8 and len(set(rings)) == 1
        assert rings[0] == key_file.read_text()
        assert sorted(p.name for p in key_file.parent.iterdir()) == ["master.key"]
