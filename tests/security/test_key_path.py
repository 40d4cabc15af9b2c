"""The key ring can live off the data volume (``OMNIBANK_KEY_PATH``): it is created there, nothing under the
data home holds a key, and a copy of the data home alone cannot read what was encrypted."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnibank import config
from omnibank.errors import AppError
from omnibank.security import get_cipher, reset_ciphers


def test_the_key_ring_is_created_where_the_key_path_says(
    env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    secrets = tmp_path / "secrets" / "omnibank.key"
    monkeypatch.setenv("OMNIBANK_KEY_PATH", str(secrets))
    config.reset_settings()
    reset_ciphers()
    sealed = get_cipher().encrypt("13800000001", context="customers.phone:C000001")
    assert secrets.is_file() and secrets.stat().st_mode & 0o777 == 0o600
    assert not (env.home / "keys").exists()
    assert get_cipher().decrypt(sealed, context="customers.phone:C000001") == "13800000001"
    # the data home without the key path: a new, different key ring, which cannot read it
    monkeypatch.delenv("OMNIBANK_KEY_PATH")
    config.reset_settings()
    reset_ciphers()
    with pytest.raises(AppError):
        get_cipher().decrypt(sealed, context="customers.phone:C000001")
