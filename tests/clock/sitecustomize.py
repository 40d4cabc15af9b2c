"""Runs the test processes at a shifted wall clock, so a test that reads the clock fails whatever the hour.

``make test`` runs the SQLite pass at 23:30 bank time (inside the quiet hours) and the PostgreSQL pass at
10:00 (``OMNIBANK_TEST_CLOCK``, see ``tests/conftest.py``). The conftest turns that into an offset from the
real clock, ``_OMNIBANK_CLOCK_SHIFT`` (seconds; its name lacks the ``OMNIBANK_`` prefix that tests strip
from the environments they hand to subprocesses), and puts this folder first on ``PYTHONPATH``. Every
Python process of the run (pytest-xdist workers and the ``omnibank`` subprocesses tests start) imports
this file at start-up and travels by the same offset with ``time-machine``, ticking: time runs on as usual
from the shifted moment. Only the wall clock moves (``time.time``, ``datetime.now``, ``date.today``);
monotonic clocks, which time-outs use, do not. Far faster than libfaketime, which slowed the suite to a
crawl.
"""

from __future__ import annotations

import os

SHIFT_VAR = "_OMNIBANK_CLOCK_SHIFT"
_STARTED_VAR = "_OMNIBANK_CLOCK_PID"


def travel_if_shifted() -> float | None:
    """Start travelling by the run's offset in this process (once); the offset in seconds, or None."""
    value = os.environ.get(SHIFT_VAR)
    if not value:
        return None
    shift = float(value)
    if os.environ.get(_STARTED_VAR) == str(os.getpid()):
        return shift
    from datetime import UTC, datetime, timedelta

    import time_machine

    time_machine.travel(datetime.now(UTC) + timedelta(seconds=shift), tick=True).start()
    os.environ[_STARTED_VAR] = str(os.getpid())
    return shift


travel_if_shifted()
