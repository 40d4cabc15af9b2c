"""The run's shifted clock (``OMNIBANK_TEST_CLOCK``, see ``tests/clock/sitecustomize.py``) reaches this
process and the Python subprocesses tests start, and ticks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import BANK_TZ, _clock_target

WANTED = os.environ.get("OMNIBANK_TEST_CLOCK")
pytestmark = pytest.mark.skipif(not WANTED, reason="the run's clock is not shifted (OMNIBANK_TEST_CLOCK)")


def _near_wanted(moment: datetime) -> bool:
    assert WANTED is not None
    since = (moment - _clock_target(WANTED, moment)) % timedelta(days=1)  # HH:MM: the run may pass midnight
    return since < timedelta(hours=1)  # the run started at the target; a whole run takes minutes


def test_this_process_reads_the_shifted_clock_and_it_ticks() -> None:
    first = datetime.now(UTC)
    assert _near_wanted(first), f"{first.astimezone(BANK_TZ)} is not near {WANTED}"
    time.sleep(0.05)
    assert datetime.now(UTC) > first


def test_subprocesses_read_the_same_shifted_clock() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OMNIBANK_")}  # as tests hand them on
    res = subprocess.run(
        [sys.executable, "-c", "from datetime import UTC, datetime; print(datetime.now(UTC).isoformat())"],
        env=environ, capture_output=True, text=True, check=True,
    )  # fmt: skip
    theirs = datetime.fromisoformat(res.stdout.strip())
    assert abs(theirs - datetime.now(UTC)) < timedelta(minutes=1)
