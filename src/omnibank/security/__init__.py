"""Keys and field encryption for the configured data home."""

from __future__ import annotations

from omnibank.config import Settings, get_settings
from omnibank.kit.crypto import FieldCipher, load_or_create_key_ring

_ciphers: dict[tuple[str, str], FieldCipher] = {}


def get_cipher(settings: Settings | None = None) -> FieldCipher:
    settings = settings or get_settings()
    secret = settings.master_key.get_secret_value() if settings.master_key else None
    cache_key = (str(settings.key_file), secret or "")
    cipher = _ciphers.get(cache_key)
    if cipher is None:
        cipher = FieldCipher(load_or_create_key_ring(settings.key_file, secret))
        _ciphers[cache_key] = cipher
    return cipher


def reset_ciphers() -> None:
    _ciphers.clear()
