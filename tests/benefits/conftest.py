from __future__ import annotations

import pytest

from omnibank.kit.console import out


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables print in full (the CLI runner has no terminal, and rich would fit them to 80 columns)."""
    monkeypatch.setattr(out, "width", 240)
