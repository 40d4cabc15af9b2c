"""Field-level encryption (AES-256-GCM) and keyed blind indexes (HMAC-SHA256).

A *key ring* holds one or more data keys (the active one encrypts, any of them decrypts) and one index
key for blind indexes. The ring lives in ``<home>/keys/master.key`` (mode 0600, created on first use)
unless ``OMNIBANK_MASTER_KEY`` gives a base64 master secret, from which both keys are derived (HKDF).

Ciphertext layout: ``0x01 | len(kid) | kid | nonce(12) | ciphertext+tag``. The associated data binds a
ciphertext to its column and row (``customers.phone:C000001``), so values cannot be swapped between rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from omnibank.errors import ConfigError

_FORMAT = 1
_NONCE = 12


def _hkdf(secret: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(secret)


@dataclass(frozen=True)
class KeyRing:
    active: str
    data_keys: dict[str, bytes]
    index_key: bytes

    @classmethod
    def generate(cls) -> KeyRing:
        kid = "k1"
        return cls(active=kid, data_keys={kid: secrets.token_bytes(32)}, index_key=secrets.token_bytes(32))

    @classmethod
    def from_master_secret(cls, secret_b64: str) -> KeyRing:
        try:
            secret = base64.b64decode(secret_b64, validate=True)
        except ValueError as exc:
            raise ConfigError("OMNIBANK_MASTER_KEY is not valid base64") from exc
        if len(secret) < 32:
            raise ConfigError(f"OMNIBANK_MASTER_KEY must decode to at least 32 bytes, got {len(secret)}")
        return cls(
            active="m0",
            data_keys={"m0": _hkdf(secret, "omnibank/data/m0")},
            index_key=_hkdf(secret, "omnibank/index"),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": 1,
                "active": self.active,
                "data_keys": {k: base64.b64encode(v).decode() for k, v in self.data_keys.items()},
                "index_key": base64.b64encode(self.index_key).decode(),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, *, source: str) -> KeyRing:
        try:
            raw = json.loads(text)
            keys = {k: base64.b64decode(v, validate=True) for k, v in raw["data_keys"].items()}
            ring = cls(active=raw["active"], data_keys=keys, index_key=base64.b64decode(raw["index_key"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"key file {source} is damaged: {exc}") from exc
        if ring.active not in ring.data_keys or any(len(k) != 32 for k in keys.values()):
            raise ConfigError(f"key file {source} is damaged: active key missing or a key is not 32 bytes")
        return ring


def load_or_create_key_ring(key_file: Path, master_secret: str | None) -> KeyRing:
    if master_secret:
        return KeyRing.from_master_secret(master_secret)
    if key_file.exists():
        mode = key_file.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"key file {key_file} is readable by others (mode {mode:o}); run: chmod 600 {key_file}"
            )
        return KeyRing.from_json(key_file.read_text(), source=str(key_file))
    key_file.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(key_file.parent, 0o700)
    ring = KeyRing.generate()
    # a name of its own per attempt: threads or processes creating the ring at once must not truncate,
    # link or remove each other's file (one shared name lost a ring half the time under four threads)
    tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.to_json())
    try:
        os.link(tmp, key_file)  # never overwrite a key ring another process created meanwhile
    except FileExistsError:
        tmp.unlink()
        return KeyRing.from_json(key_file.read_text(), source=str(key_file))
    tmp.unlink()
    return ring


class FieldCipher:
    """Encrypts, decrypts and blind-indexes personal fields with one key ring."""

    def __init__(self, ring: KeyRing):
        self.ring = ring
        self._active = AESGCM(ring.data_keys[ring.active])
        self._kid = ring.active.encode()
        self._header = bytes([_FORMAT, len(self._kid)]) + self._kid
        self._by_kid = {kid.encode(): AESGCM(key) for kid, key in ring.data_keys.items()}
        # HMAC with the key schedule done once; each digest copies it (much cheaper than hmac.new per value)
        self._index_mac = hmac.new(ring.index_key, digestmod=hashlib.sha256)

    def _mac(self, message: bytes) -> bytes:
        mac = self._index_mac.copy()
        mac.update(message)
        return mac.digest()[:16]

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return self._header + nonce + self._active.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, *, context: str) -> str:
        if not blob or blob[0] != _FORMAT:
            raise ConfigError("ciphertext has an unknown format")
        klen = blob[1]
        kid = bytes(blob[2 : 2 + klen])
        aead = self._by_kid.get(kid)
        if aead is None:
            raise ConfigError(f"ciphertext was made with key {kid.decode()!r}, which is not in the key ring")
        nonce = bytes(blob[2 + klen : 2 + klen + _NONCE])
        try:
            return aead.decrypt(nonce, bytes(blob[2 + klen + _NONCE :]), context.encode()).decode()
        except InvalidTag as exc:
            raise ConfigError(f"ciphertext for {context} does not verify (wrong key or tampered)") from exc

    def blind_index(self, kind: str, value: str) -> str:
        """Keyed, deterministic digest for exact lookup; reveals nothing without the index key."""
        return self._mac(f"{kind}\x1f{value}".encode()).hex()

    def fingerprint(self, *parts: str) -> str:
        """Keyed digest of a whole row, to tell whether a re-load changes anything."""
        return self._mac("\x1e".join(parts).encode()).hex()
