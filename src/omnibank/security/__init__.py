"""Keys and field encryption for the configured data home."""

from __future__ import annotations

import os

from omnibank.config import Settings, get_settings
from omnibank.kit.crypto import FieldCipher, load_or_create_key_ring

# (key file, master secret) -> (the key file's identity when loaded, the cipher)
_ciphers: dict[tuple[str, str], tuple[tuple[int, int, int] | None, FieldCipher]] = {}


def _file_identity(settings: Settings, secret: str | None) -> tuple[int, int, int] | None:
    if secret:
        return None
    try:
        st = os.stat(settings.key_file)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def get_cipher(settings: Settings | None = None) -> FieldCipher:
    """The cipher of the data home's key ring. The ring is loaded again when its key file changed (a
    key rotation or retirement in another process), so a long-running process learns a new key."""
    settings = settings or get_settings()
    secret = settings.master_key.get_secret_value() if settings.master_key else None
    cache_key = (str(settings.key_file), secret or "")
    identity = _file_identity(settings, secret)
    cached = _ciphers.get(cache_key)
    if cached is not None and cached[0] == identity:
        return cached[1]
    cipher = FieldCipher(load_or_create_key_ring(settings.key_file, secret))
    _ciphers[cache_key] = (_file_identity(settings, secret), cipher)
    return cipher


def reset_ciphers() -> None:
    _ciphers.clear()
