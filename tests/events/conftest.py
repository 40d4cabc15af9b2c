"""Fixtures for the event log tests: a data home per test and a cipher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omnibank.config import Settings
from omnibank.kit.crypto import FieldCipher, KeyRing


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in list(os.environ):
        if key.startswith("OMNIBANK_"):
            monkeypatch.delenv(key)
    return Settings(home=tmp_path / "home", timezone="Asia/Shanghai")


@pytest.fixture(scope="session")
def cipher() -> FieldCipher:
    return FieldCipher(KeyRing.generate())
