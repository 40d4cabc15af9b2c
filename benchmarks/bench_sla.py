"""Benchmark: the service desk's SLA engine over 1M tickets with 10M history entries.

    python benchmarks/bench_sla.py [--tickets 1000000] [--entries 10000000] [--processes 2] [--subset 100000]
                                   [--batch 50000] [--check 2000]

Target: ``slafast.evaluate_batches`` over all tickets with 2 worker processes ≤ 60 s on a 2-core machine.

Tickets are generated from a fixed seed (no wall clock in the data or the results), straight into columnar
:class:`~omnibank.service.slafast.ClockBatch` arrays (no per-entry objects): complaints, inquiries and
requests with categories and priorities, received across 2025 and 2026, each with a history of
``new → assigned → …`` (in_progress, responded, updated, waiting_customer/waiting_supplier and back,
resolved, reopened, closed) of on average ``entries / tickets`` entries, exactly ``--entries`` in all. The
policy is ``examples/service/sla.yaml``; the calendar the bank's (the package's statutory days). Prints the
generation time apart from the timed runs, tickets/s, peak memory, the count of target states, the time of
``processes=1`` on a subset, and PASS/MISS against the target. Untimed, ``--check`` tickets are compared line
by line with ``sla.evaluate``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

TARGET_S = 60.0
TZ = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[1]
FIRST = int(datetime(2025, 1, 1, tzinfo=TZ).timestamp())
LAST = int(datetime(2026, 10, 31, tzinfo=TZ).timestamp())
AS_OF = datetime(2026, 12, 1, 12, 0, tzinfo=TZ)
KINDS = ("complaint", "inquiry", "request")
CATEGORIES = (None, "card", "benefit", "wealth", "loan")
PRIORITIES = ("low", "normal", "high", "urgent")
# after "new" and "assigned": what happens next, and how often
STEPS = ("in_progress", "responded", "updated", "waiting_customer", "waiting_supplier", "resolved",
         "reopened", "closed")  # fmt: skip
WEIGHTS = (0.22, 0.2, 0.2, 0.1, 0.04, 0.1, 0.04, 0.1)
TARGET_STATE = attrgetter("target", "state")


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def generate(tickets: int, entries: int, batch: int, seed: int = 2026) -> list[Any]:
    """The benchmark's tickets as ClockBatches of ``batch`` tickets (the same draws, hence the same tickets,
    as the object-based generator this replaced)."""
    from omnibank.service.slafast import CODE_OF, ClockBatch

    rng = np.random.default_rng(seed)
    mean = entries // tickets
    spread = rng.integers(-min(4, mean - 2), min(4, mean - 2) + 1, tickets)
    counts = mean + spread - spread[rng.permutation(tickets)]  # sums to mean * tickets exactly
    counts[: entries - mean * tickets] += 1
    total = int(counts.sum())
    starts = rng.integers(FIRST, LAST, tickets)
    gaps = np.minimum(rng.exponential(5 * 3600, total), 20 * 86_400).astype(np.int64) + 60
    firsts = np.cumsum(counts) - counts
    position = np.arange(total) - np.repeat(firsts, counts)
    elapsed = np.cumsum(gaps)
    moments = np.repeat(starts - elapsed[firsts], counts) + elapsed  # a ticket's first entry: its start
    del elapsed, gaps
    steps = rng.choice(len(STEPS), total, p=WEIGHTS)
    names = [*STEPS, "new", "assigned"]
    to_code = np.array([CODE_OF[name] for name in names], dtype=np.int8)
    code = np.where(position == 0, len(STEPS), np.where(position == 1, len(STEPS) + 1, steps))
    codes = to_code[code]
    del code, steps, position
    at_us = moments.astype(np.int64) * 1_000_000
    del moments
    kinds = rng.choice(3, tickets, p=(0.4, 0.4, 0.2)).tolist()
    categories = rng.integers(0, len(CATEGORIES), tickets).tolist()
    priorities = rng.integers(0, len(PRIORITIES), tickets).tolist()
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out = []
    for lo in range(0, tickets, batch):
        hi = min(lo + batch, tickets)
        a, b = int(bounds[lo]), int(bounds[hi])
        out.append(ClockBatch(
            ticket_ids=[f"T{t:07d}" for t in range(lo, hi)],
            kinds=[KINDS[k] for k in kinds[lo:hi]],
            categories=[CATEGORIES[c] for c in categories[lo:hi]],
            priorities=[PRIORITIES[p] for p in priorities[lo:hi]],
            offsets=bounds[lo : hi + 1] - a,
            at_us=at_us[a:b].copy(),
            codes=codes[a:b].copy(),
        ))  # fmt: skip
    return out


def head(batches: list[Any], n: int) -> list[Any]:
    """The first ``n`` tickets of ``batches``, as batches."""
    from omnibank.service.slafast import ClockBatch

    out, left = [], n
    for b in batches:
        if left <= 0:
            break
        k = min(left, len(b))
        end = int(b.offsets[k])
        columns = (b.offsets[: k + 1].copy(), b.at_us[:end].copy(), b.codes[:end].copy())
        out.append(ClockBatch(b.ticket_ids[:k], b.kinds[:k], b.categories[:k], b.priorities[:k], *columns))
        left -= k
    return out


def setup() -> tuple[Any, Any]:
    from omnibank.service.calendar import BusinessCalendar
    from omnibank.service.sla import load_policy

    return load_policy(ROOT / "examples" / "service" / "sla.yaml"), BusinessCalendar(tz=TZ)


def run(batches: list[Any], processes: int) -> tuple[float, int, Counter[tuple[str, str]]]:
    from omnibank.service.slafast import evaluate_batches

    policy, calendar = setup()
    tally: Counter[tuple[str, str]] = Counter()
    n = 0
    t = time.perf_counter()
    for batch, lines in zip(
        batches,
        evaluate_batches(batches, policy=policy, calendar=calendar, as_of=AS_OF, processes=processes),
        strict=True,
    ):
        n += len(batch)
        tally.update(map(TARGET_STATE, lines))
    return time.perf_counter() - t, n, tally


@dataclass(frozen=True)
class _Ticket:
    kind: str
    category: str | None
    priority: str | None
    history: tuple[Any, ...]


def tickets_of(batches: list[Any]) -> list[_Ticket]:
    """The object form of ``batches`` (one ``sla.Entry`` a history line), for the check."""
    from omnibank.service.sla import Entry
    from omnibank.service.slafast import EVENTS

    out = []
    for b in batches:
        offsets, at_us, codes = b.offsets.tolist(), b.at_us.tolist(), b.codes.tolist()
        for i in range(len(b)):
            history = tuple(Entry(datetime.fromtimestamp(at_us[k] / 1e6, TZ), EVENTS[codes[k]])
                            for k in range(offsets[i], offsets[i + 1]))  # fmt: skip
            out.append(_Ticket(b.kinds[i], b.categories[i], b.priorities[i], history))
    return out


def check(batches: list[Any]) -> int:
    """Compare the lines of ``batches`` with sla.evaluate ticket by ticket; the number of differences."""
    from omnibank.errors import AppError
    from omnibank.service.calendar import utc_micros
    from omnibank.service.sla import evaluate
    from omnibank.service.slafast import evaluate_batch

    policy, calendar = setup()
    wrong = 0
    for b in batches:
        got: dict[int, list[tuple[Any, ...]]] = {}
        for line in evaluate_batch(b, policy=policy, calendar=calendar, as_of=AS_OF):
            got.setdefault(line.ticket_index, []).append(
                (line.target, line.due_us, line.used_minutes, line.paused_minutes, line.percent_used,
                 line.state, line.level, line.error))  # fmt: skip
        for i, ticket in enumerate(tickets_of([b])):
            want: list[tuple[Any, ...]] | None = None
            if ticket.history[0].at <= AS_OF:
                try:
                    targets = policy.targets_for(ticket.kind, ticket.category, ticket.priority)
                    states = evaluate(ticket.history, targets, calendar, as_of=AS_OF)
                    want = [(s.target, utc_micros(s.due_at), s.used_minutes, s.paused_minutes,
                             str(s.percent_used), s.state, s.level, None)
                            for s in states.values()] or None  # fmt: skip
                except AppError as exc:
                    want = [("-", None, None, None, "-", "error", None, exc.message)]
            wrong += got.get(i) != want
    return wrong


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--subset", type=int, default=100_000, help="tickets for the processes=1 run")
    parser.add_argument("--batch", type=int, default=50_000, help="tickets per ClockBatch")
    parser.add_argument("--check", type=int, default=2_000, help="tickets compared with sla.evaluate")
    args = parser.parse_args()
    t = time.perf_counter()
    data = generate(args.tickets, args.entries, args.batch)
    entries = sum(len(b.at_us) for b in data)
    print(f"setup: {args.tickets:,} tickets with {entries:,} history entries in {len(data)} batches "
          f"generated in {time.perf_counter() - t:.1f} s (not timed)")  # fmt: skip
    if args.check:
        t = time.perf_counter()
        wrong = check(head(data, args.check))
        print(f"check: {args.check:,} tickets against sla.evaluate: {wrong} differ "
              f"({time.perf_counter() - t:.1f} s, not timed)")  # fmt: skip
        if wrong:
            return 1
    subset = head(data, args.subset)
    seconds1, n1, _ = run(subset, 1)
    print(f"processes=1: {n1:,} tickets in {seconds1:.2f} s ({n1 / seconds1:,.0f} tickets/s)")
    seconds, n, tally = run(data, args.processes)
    own, children = peak_rss_mb()
    print(f"processes={args.processes}: {n:,} tickets ({entries:,} entries) in {seconds:.2f} s "
          f"({n / seconds:,.0f} tickets/s); peak RSS {own:,.0f} MB (largest child {children:,.0f} MB: "
          f"ru_maxrss, which counts the parent's image a spawned worker starts from)"
          )  # fmt: skip
    print("states: " + ", ".join(f"{target}:{state} {v:,}" for (target, state), v in sorted(tally.items())))
    ok = seconds <= TARGET_S
    print(f"{'PASS' if ok else 'MISS'}: SLA state of {n:,} tickets ({entries:,} entries) ≤ {TARGET_S:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
