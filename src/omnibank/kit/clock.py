"""Injected clocks: code asks a clock for 'now' instead of reading the system time itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def fixed_clock(at: datetime) -> Clock:
    if at.tzinfo is None:
        raise ValueError("a clock needs an aware datetime")
    return lambda: at


def local_today(tz: ZoneInfo, clock: Clock = system_clock) -> date:
    return clock().astimezone(tz).date()
