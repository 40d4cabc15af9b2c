"""The demo's calendar and what its year did: shared by :mod:`omnibank.demo.living` (the year) and
:mod:`omnibank.demo.ledgers` (stock, budgets, suppliers, coupons, points)."""

from __future__ import annotations

import time as clock
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
WINDOW_DAYS = 10  # the journeys' live window: the last ten days
LOOK_DAYS = 5  # the worker looks every five days in the window (and at the end)
SCORECARD_DAYS = 90
ACTOR = "demo:operations"  # who the bank's own routines act as (audit trail, lead history)


@dataclass(frozen=True)
class Calendar:
    """The demo's days, in the bank's zone."""

    first: date
    last: date
    tz: ZoneInfo
    window: int  # days of the journeys' window

    @classmethod
    def of(cls, first: date, days: int, tz: ZoneInfo) -> Calendar:
        return cls(first, first + timedelta(days=days - 1), tz, min(WINDOW_DAYS, max(1, days // 4)))

    def at(self, day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute, second), tzinfo=self.tz)

    @property
    def start(self) -> datetime:
        return self.at(self.first)

    @property
    def end(self) -> datetime:
        """The demo's now: the last second of its last day."""
        return self.at(self.last, 23, 59, 59)

    @property
    def launch(self) -> date:
        """The journeys' launch: the window's first day."""
        return self.last - timedelta(days=self.window - 1)

    @property
    def scorecard_from(self) -> date:
        return self.last - timedelta(days=SCORECARD_DAYS - 1)

    @property
    def launched(self) -> datetime:
        """When the journeys start (10:00 on the launch day); the feed brings the events from then on."""
        return self.at(self.launch, 10)

    def looks(self) -> list[datetime]:
        """The worker's looks over the window: every :data:`LOOK_DAYS` days after the launch at 10:00,
        then at the end."""
        out = []
        day = self.launch + timedelta(days=LOOK_DAYS)
        while day <= self.last:
            out.append(self.at(day, 10))
            day += timedelta(days=LOOK_DAYS)
        return [*out, self.end]

    def months(self) -> list[date]:
        """The first day of every month the year touches."""
        out, day = [], self.first.replace(day=1)
        while day <= self.last:
            out.append(day)
            day = (day + timedelta(days=32)).replace(day=1)
        return out


@dataclass
class Phases:
    """Wall-clock seconds per phase, in order (the demo prints them)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = clock.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + clock.perf_counter() - started


@dataclass
class Year:
    """What the year did, as the phases saw it (the store holds the rest)."""

    lots: int = 0
    syncs: int = 0
    results: int = 0
    moves: Counter[str] = field(default_factory=Counter)  # claim / redeem / refused
    swept: Counter[str] = field(default_factory=Counter)  # activated / expired
    postings: Counter[str] = field(default_factory=Counter)  # earn / redeem / reverse / refused
    looks: int = 0
    arrived: int = 0  # events of the feed
    emitted: int = 0  # log files the platform added (leads, receipts)

    def line(self) -> str:
        """The year in one line."""
        return (
            f"the year: {self.arrived:,} events arrived over {self.looks} look(s) of the worker, which added "
            f"{self.emitted} log files (lead changes, receipts); customers claimed {self.moves['claim']:,} "
            f"and redeemed {self.moves['redeem']:,} coupons ({self.moves['refused']:,} refused), the sweep "
            f"expired {self.swept['expired']:,}; {self.lots} stock lots reordered, {self.syncs} supplier "
            f"stock syncs, {self.results:,} issue results"
        )
