"""The demo bank's loan process (流程再造, seed 004): about 600 loan applications over the year, each going
``loan.application_submitted → loan.documents_checked → loan.approved → loan.disbursed`` with its
``application_id``, by customers of the demo bank. Until the re-engineering date (2026-07-01, or the middle of
the demo's year when that date is outside it) a loan takes about 21 days (documents ~4, approval ~12,
disbursement ~5); from then on about 4 (1, 2, 1). A few applications stall at a step, and those submitted in
the last days are still under way: about 3% are open at the year's end.

Written as an ``events.jsonl`` of the data contract ("any other type" carrying ``application_id``) and loaded
like any bank's events, so that ``omnibank process report`` reads them from the log. Deterministic for a
seed (its own random stream: the rest of the demo is unchanged).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from omnibank.config import Settings
from omnibank.demo.year import Calendar

STEPS = ("loan.application_submitted", "loan.documents_checked", "loan.approved", "loan.disbursed")
CASE_FIELD = "application_id"
REENGINEERED = date(2026, 7, 1)
#: mean days of each step (submitted → checked, checked → approved, approved → disbursed), before and after
BEFORE = (4.0, 12.0, 5.0)
AFTER = (1.0, 2.0, 1.0)
APPLICATIONS_A_YEAR = 600
STALL = 0.02  # applications that stop at some step and never finish
PRODUCTS = ("个人消费贷", "个人经营贷", "个人住房贷款", "小微快贷")
CHANNELS = ("app", "app", "branch", "wechat")


@dataclass(frozen=True)
class LoansYear:
    applications: int
    events: int
    open_at_end: int
    reengineered: date

    def line(self) -> str:
        return (
            f"loans: {self.applications:,} applications ({self.events:,} events), re-engineered on "
            f"{self.reengineered}; {self.open_at_end:,} still open at the year's end"
        )


def reengineering_day(first: date, last: date) -> date:
    """2026-07-01 when the demo's year holds it, else the year's middle day."""
    if first < REENGINEERED <= last:
        return REENGINEERED
    return first + (last - first) / 2


def _customer_id(n: int, customers: int) -> str:
    """As the demo generator numbers its customers (``C000001``, wider past 999,999)."""
    return f"C{n:0{max(6, len(str(customers)))}d}"


def loan_events(
    *, seed: int, first: date, last: date, customers: int, tz: ZoneInfo, applications: int | None = None
) -> list[dict[str, object]]:
    """The year's loan events (in submission order), none after ``last``."""
    rng = random.Random(f"{seed}:loans")
    days = (last - first).days + 1
    n = applications if applications is not None else max(30, round(APPLICATIONS_A_YEAR * days / 365))
    cut = reengineering_day(first, last)
    end = datetime.combine(last + timedelta(days=1), time(), tz)
    events: list[dict[str, object]] = []
    submitted = sorted(first + timedelta(days=rng.randrange(days)) for _ in range(n))
    for i, day in enumerate(submitted):
        app_id = f"LN{first:%y}{i + 1:05d}"
        customer = _customer_id(rng.randrange(1, customers + 1), customers)
        at = datetime.combine(day, time(rng.randrange(8, 21), rng.randrange(60)), tz)
        means = BEFORE if day < cut else AFTER
        stall = rng.randrange(1, len(STEPS)) if rng.random() < STALL else len(STEPS)
        common = {CASE_FIELD: app_id, "customer_id": customer}
        for k, step in enumerate(STEPS):
            if k:
                if k >= stall:
                    break
                at = at + timedelta(days=rng.gammavariate(4.0, means[k - 1] / 4.0))
            if at >= end:
                break
            event: dict[str, object] = {
                "event_id": f"loan-{app_id}-{k + 1}",
                "type": step,
                **common,
                "ts": at.isoformat(timespec="seconds"),
                "channel": rng.choice(CHANNELS) if k == 0 else "branch",
            }
            if k == 0:
                event["loan_product"] = rng.choice(PRODUCTS)
            events.append(event)
    return events


def open_cases(events: list[dict[str, object]]) -> int:
    """Applications without a disbursement."""
    started = {e[CASE_FIELD] for e in events if e["type"] == STEPS[0]}
    done = {e[CASE_FIELD] for e in events if e["type"] == STEPS[-1]}
    return len(started - done)


def load_loans(settings: Settings, *, cal: Calendar, seed: int, customers: int, folder: Path) -> LoansYear:
    """Write the year's loan events to ``folder`` and load them into the event log."""
    from omnibank.ingest.service import load_file

    events = loan_events(seed=seed, first=cal.first, last=cal.last, customers=customers, tz=settings.tz)
    folder.mkdir(parents=True, exist_ok=True)
    feed = folder / "loan_events.jsonl"
    feed.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    load_file("events", feed, settings=settings, progress=False)
    started = sum(1 for e in events if e["type"] == STEPS[0])
    return LoansYear(started, len(events), open_cases(events), reengineering_day(cal.first, cal.last))
