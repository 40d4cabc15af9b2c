"""The demo bank's year of running: what ``omnibank demo`` does once the bank is loaded, through the
product's own services only (nothing is written by hand), on the demo's own clock.

The demo's "now" is the end of its last day (:attr:`Calendar.end`); every service is handed the moment it
acts at, so the same seed gives the same bank at any hour of the wall clock. In order:

1. **stock & budgets** (:mod:`omnibank.demo.ledgers`) — the example catalogue is loaded and its benefits
   activated on the year's first day; budgets are set per campaign and per rule, sized to the bank;
2. **campaigns** — the example campaigns start on the first day and the live engine applies the event log
   to them file by file (what ``omnibank campaign run`` does), issuing coupons. At each month's start the
   bank reorders supplier stock that would not last the month (the last month's video memberships are
   delivered short, so the stock runs out); at each month's end the suppliers' stock counts are synced;
3. **journeys** — the example journeys start at 10:00 on the launch day, :data:`WINDOW_DAYS` before the
   end. The events from then on are not loaded with the rest: they arrive as a feed before each of the
   worker's looks (every :data:`LOOK_DAYS` days at 10:00, and at the very end, inside the quiet hours). At
   each look the campaigns apply the new events, staff follow their leads up
   (:mod:`omnibank.demo.behaviour`), overdue leads escalate to the branch manager, and the worker applies
   the new log files to the journeys, lets segment triggers enter, runs due steps through the contact
   policy and dispatches the outbox to the sandbox channel adapters (delivered receipts, some clicked);
4. **coupons** — customers claim and use a share of their coupons at their own moments, the coupon sweep
   running at 00:30 on each month's first day (it activates the welcome vouchers that take effect then)
   and at the end;
5. **suppliers** — the suppliers' issue results for the coupons claimed in the scorecard's 90 days;
6. **points** — the co-brand card's points ledger for the gold and platinum card holders who exchange
   points for vouchers (优惠兑): each one's balance carried over at the launch, then the card system's
   statements (earn) and exchanges (redeem) of the window, a few statements corrected by reversal.

Why the journeys' events arrive as a feed: a journey started now applies only log files published from
now on (history is for ``journey simulate``), and the worker applies a file as a whole, so events loaded
ahead of the clock would be seen before the steps due before them. Why files are applied one by one in
the order they were made, rather than by ``campaign run`` and ``omnibank worker``: files of the same month
are named by a random load id, so applying whatever is pending would apply them in an order that changes
from run to run; applied in the order they were made, the same seed gives the same grants and sends. (The
log files the platform adds in the window, lead changes and receipts, hold no campaign events: the next
``omnibank campaign run`` takes them in.)

What it costs, measured on the 20,000-customer bank (one core of this 2-core machine, idle): the live
campaigns ~42 s (each month's file costs each campaign a read, its decisions and its customers' state,
which grows through the year); the journeys' ten days ~34 s, a third of it the contact service's
dispatch (~1.7 ms a message: 5,000 of them are the silver journey's branch tasks on its first Monday), the
rest the worker's steps and its reads (~65 ms a log file and journey) and loads (~0.25 s an emit); the
coupons ~9 s (~1.8 ms an audited claim or redemption). Hence the short window, two looks, and the modest
shares of coupons customers claim.
"""

from __future__ import annotations

import mmap
import os
import re
from bisect import bisect_right
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.demo import behaviour, ledgers
from omnibank.demo.year import ACTOR, EXAMPLES, Calendar, Phases, Year
from omnibank.events.compact import unread
from omnibank.events.log import EventLog

CLICK_RATE = Decimal("0.12")  # the sandbox's share of deliveries that are clicked (messages a customer reads)
CLICKABLE = frozenset({"app_push", "sms", "wechat", "wecom"})
BATCH = 10_000  # journey entries claimed per transaction


# --------------------------------------------------------------------------------------------- the feed


@dataclass(frozen=True)
class Feed:
    """The generated events, split: those before the launch (loaded with the bank) and, per look of the
    worker, those that arrive before it."""

    history: Path | None
    history_events: int
    arrivals: list[tuple[datetime, Path | None]]

    @property
    def arriving_events(self) -> int:
        return sum(_lines(p) for _, p in self.arrivals if p is not None)


_TS = re.compile(rb'"ts"\s*:\s*"([^"]{10,40})"')


def _lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def split_events(source: Path, cal: Calendar, folder: Path) -> Feed:
    """Split the generator's ``events.jsonl`` at the launch and at each look of the worker (lines copied as
    they are). The generator writes events in time order, so the lines dated before the launch's eve are
    found by bisection and copied at once; only the rest is read line by line."""
    folder.mkdir(parents=True, exist_ok=True)
    looks = cal.looks()
    launch = cal.launched
    history = folder / f"events-until-{launch:%Y%m%dT%H%M}.jsonl"
    buckets: list[list[bytes]] = [[] for _ in looks]
    kept = 0
    with source.open("rb") as src, history.open("wb") as out:
        size = os.fstat(src.fileno()).st_size
        with mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) if size else nullcontext(b"") as data:
            cut = _first_dated(data, (cal.launch - timedelta(days=1)).isoformat().encode())
            for i in range(0, cut, 1 << 24):
                chunk = data[i : min(cut, i + (1 << 24))]
                out.write(chunk)
                kept += chunk.count(b"\n")
            for line in data[cut:].splitlines(keepends=True):
                m = _TS.search(line)
                at = None if m is None else _moment(m.group(1), cal.tz)
                if at is None or at < launch:
                    if line.strip():
                        out.write(line if line.endswith(b"\n") else line + b"\n")
                        kept += 1
                    continue
                buckets[min(bisect_right(looks, at), len(looks) - 1)].append(line)
    arrivals: list[tuple[datetime, Path | None]] = []
    for look, lines in zip(looks, buckets, strict=True):
        path = None
        if lines:
            path = folder / f"events-{look:%Y%m%dT%H%M}.jsonl"
            path.write_bytes(b"".join(lines))
        arrivals.append((look, path))
    return Feed(history if kept else None, kept, arrivals)


def _first_dated(data: bytes | mmap.mmap, day: bytes) -> int:
    """The offset of the first line dated ``day`` or later (``YYYY-MM-DD``), the lines being in time order."""
    lo, hi = 0, len(data)
    while lo < hi:
        start = data.rfind(b"\n", 0, (lo + hi) // 2) + 1
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        m = _TS.search(data[start:end])
        if m is None or m.group(1)[:10] < day:
            lo = end + 1
        else:
            hi = start
    return min(lo, len(data))


def _moment(raw: bytes, tz: ZoneInfo) -> datetime | None:
    try:
        at = datetime.fromisoformat(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=tz)


# ------------------------------------------------------------------------------------------- the year


def lived(settings: Settings) -> bool:
    """Whether this data home's bank has lived its year already (the example campaigns are there)."""
    from omnibank.campaigns.models import Campaign

    with unit_of_work(settings) as session:
        return session.scalar(select(func.count()).select_from(Campaign)) != 0


def live_year(
    settings: Settings,
    *,
    cal: Calendar,
    seed: int,
    feed: Feed,
    folder: Path,
    phases: Phases,
    customers: int,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Year:
    """Run the bank's year (the module's docstring says how). ``folder`` receives the suppliers' files."""
    year = Year()
    ops = ledgers.Operations(settings, cal, seed, folder / "suppliers", year)
    with phases("stock & budgets"):
        ledgers.open_books(settings, cal, customers)
    with phases("campaigns"):
        progress("campaigns: the live engine applies the year's events month by month")
        camp = _Campaigns(settings, cal, ops)
        camp.apply(_new_files(settings, set()))
    with phases("journeys"):
        progress(f"journeys: {cal.window} days of events arrive between the worker's looks")
        _window(settings, cal, seed, feed, camp, year)
        ops.until(cal.end)
    with phases("coupons"):
        progress("coupons: customers claim and use theirs; the sweep expires what lapsed")
        ledgers.use_coupons(settings, cal, seed, year)
    with phases("suppliers"):
        ledgers.issue_results(settings, cal, seed, folder / "suppliers", year)
    with phases("points"):
        ledgers.points_ledger(settings, cal, seed, year)
    return year


def _month_of(rel: str) -> date:
    """The bank-local month of an event-log file (``month=2026-03/…``)."""
    year, month = rel.split("/", 1)[0].removeprefix("month=").split("-")
    return date(int(year), int(month), 1)


def _new_files(settings: Settings, known: set[str]) -> list[str]:
    """The event log's files not in ``known`` (relative paths, by name), added to ``known``."""
    log = EventLog(settings)
    new = [str(f.relative_to(log.dir)) for f in unread(log, known)]  # compaction-aware
    known.update(new)
    return new


# ------------------------------------------------------------------------------------------------ campaigns


class _Campaigns:
    """The example campaigns, started on the year's first day; :meth:`apply` hands them log files in the
    order given, each file to each campaign in a transaction of its own (as ``campaign run`` does)."""

    def __init__(self, settings: Settings, cal: Calendar, ops: ledgers.Operations):
        from omnibank.campaigns import live
        from omnibank.campaigns.audience import eligible
        from omnibank.campaigns.spec import load_campaign

        self.settings, self.ops = settings, ops
        specs = [
            (load_campaign(p), p.read_text(encoding="utf-8"))
            for p in sorted((EXAMPLES / "campaigns").glob("*.yaml"))
        ]
        with unit_of_work(settings) as session:  # one partition each: the demo applies them in one process
            for spec, text in specs:
                live.start(session, spec, source_text=text, now=cal.start, partitions=1)
        with unit_of_work(settings) as session:
            self.audience = {spec.id: eligible(session, settings, spec, as_of=cal.last) for spec, _ in specs}
        self.reports = {spec.id: live.RunReport(campaign=spec.id) for spec, _ in specs}

    def apply(self, files: list[str]) -> None:
        from omnibank.campaigns import live

        for rel in files:
            month = _month_of(rel)
            self.ops.until(datetime.combine(month, time(9), tzinfo=self.ops.cal.tz))
            for cid, report in self.reports.items():
                with unit_of_work(self.settings) as session:
                    live.apply_file(
                        session, self.settings, cid, rel, eligible=self.audience[cid], report=report
                    )


# -------------------------------------------------------------------------------------------------- journeys


class _Desk:
    """Branch staff: the leads the worker made are followed up as :func:`behaviour.lead_moves` says."""

    def __init__(self, settings: Settings, seed: int, tz: ZoneInfo):
        self.settings, self.seed, self.tz = settings, seed, tz
        self.moves: list[tuple[behaviour.LeadMove, str | None]] = []  # the move, the member of staff
        self.taken: set[str] = set()

    def take(self) -> None:
        """Plan the follow-up of the leads not seen yet."""
        from omnibank.leads.models import Lead
        from omnibank.leads.service import branch_managers

        with unit_of_work(self.settings) as session:
            rows = session.execute(
                select(Lead.lead_id, Lead.created_at, Lead.owner_staff_id, Lead.org_id).order_by(Lead.lead_id)
            ).all()
            fresh = [r for r in rows if r.lead_id not in self.taken]
            managers = branch_managers(session, {r.org_id for r in fresh}) if fresh else {}
        for r in fresh:
            self.taken.add(r.lead_id)
            staff = r.owner_staff_id or managers.get(r.org_id)
            for move in behaviour.lead_moves(self.seed, r.lead_id, r.created_at, self.tz):
                self.moves.append((move, staff))
        self.moves.sort(key=lambda m: m[0])

    def follow_up(self, until: datetime) -> list[dict[str, Any]]:
        """Record the follow-ups made before ``until``; their events, to emit."""
        from omnibank.leads.service import TransitionRefused, set_status

        due = [m for m in self.moves if m[0].at < until]
        self.moves = [m for m in self.moves if m[0].at >= until]
        events: list[dict[str, Any]] = []
        if not due:
            return events
        with unit_of_work(self.settings) as session:
            for move, staff in due:
                try:
                    change = set_status(
                        session,
                        move.lead_id,
                        move.status,
                        by=staff or ACTOR,
                        now=move.at,
                        note=move.note,
                        staff_id=staff,
                    )
                except TransitionRefused:
                    continue
                events.extend(change.events)
        return events


def _window(settings: Settings, cal: Calendar, seed: int, feed: Feed, camp: _Campaigns, year: Year) -> None:
    from omnibank.contact.channels import Adapter, SandboxAdapter
    from omnibank.contact.dispatch import dispatch
    from omnibank.contact.policy import CHANNELS
    from omnibank.ingest.service import load_file
    from omnibank.journeys import runtime
    from omnibank.journeys.spec import load_journey
    from omnibank.leads import service as leads

    specs = [
        (load_journey(p), p.read_text(encoding="utf-8"))
        for p in sorted((EXAMPLES / "journeys").glob("*.yaml"))
    ]
    with unit_of_work(settings) as session:
        for spec, text in specs:
            runtime.start(session, settings, spec, source_text=text, now=cal.launched)
    known: set[str] = set()
    _new_files(settings, known)
    read, done = SandboxAdapter(CLICK_RATE), SandboxAdapter()  # calls and branch tasks are not clicked
    adapters: dict[str, Adapter] = {channel: read if channel in CLICKABLE else done for channel in CHANNELS}
    desk = _Desk(settings, seed, cal.tz)
    work = runtime.WorkReport()
    pending: list[str] = []  # files made since the journeys last looked, in the order they were made
    for look, arrival in feed.arrivals:
        if arrival is not None:
            load_file("events", arrival, settings=settings, progress=False)
            new = _new_files(settings, known)
            camp.apply(new)
            pending += new
        events = desk.follow_up(look)
        with unit_of_work(settings) as session:
            escalation = leads.escalate_overdue(session, now=look)
        events += escalation.events
        if events:
            leads.emit_events(settings, events, now=look)
            pending += _emitted(settings, known, year)
        for rel in pending:
            for spec, _ in specs:
                with unit_of_work(settings) as session:
                    runtime.apply_file(session, settings, spec.id, rel, now=look, report=work)
        pending = []
        runtime.tick_segments(settings, now=look, report=work)
        while runtime.run_due(settings, now=look, batch=BATCH, report=work) >= BATCH:
            pass
        pending += _emitted(settings, known, year)
        desk.take()
        dispatch(settings, now=look, limit=1_000_000, adapters=adapters)
        pending += _emitted(settings, known, year)
        year.looks += 1
    for rel in pending:  # the last look's leads and receipts
        for spec, _ in specs:
            with unit_of_work(settings) as session:
                runtime.apply_file(session, settings, spec.id, rel, now=cal.end, report=work)
    year.arrived = feed.arriving_events


def _emitted(settings: Settings, known: set[str], year: Year) -> list[str]:
    new = _new_files(settings, known)
    year.emitted += len(new)
    return new
