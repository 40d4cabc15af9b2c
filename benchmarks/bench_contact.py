"""Benchmark: the contact policy planning 1M sends (target ≤ 60 s on two cores), caps exact.

    python benchmarks/bench_contact.py [--sends 1000000] [--customers 200000] [--weeks 4] [--seed 2026]

A stream of sends is generated (seeded): 200k customers, every channel, 80 % marketing and 20 % service,
asked for at any minute of four weeks (so about 45 % fall in the quiet hours), 75 % of the customers
consenting to marketing, 2 % on do-not-disturb for everything and 3 % for one channel. The stream is
planned with :func:`omnibank.contact.policy.plan` over in-memory counters — every send decided, deferred
ones decided again at 08:00 bank-local, caps taken when a message goes — and timed from the first ``Send``
built to the last decision.

Then the result is checked independently, with numpy over the final decisions (bank-local days and weeks
computed from POSIX seconds, not from the policy's code): no customer above 1 marketing send per channel
per day or 3 per natural week, the policy's counters equal to the recount, no marketing send without
consent, nothing to a customer on do-not-disturb, nothing but branch tasks in quiet hours, service never
capped. Prints sends/s, seconds and peak memory with PASS/MISS against the target.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

TZ = ZoneInfo("Asia/Shanghai")  # no daylight saving: a bank-local day is UTC+8, which the recount uses
START = datetime(2026, 11, 30, 0, 0, tzinfo=TZ)  # a Monday
ACTIONS = {"send": 0, "suppress": 1}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:  # noqa: C901, PLR0915 - one linear script
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sends", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    from omnibank.contact.policy import CHANNELS, MemoryCounters, PolicyConfig, Send, plan

    n, n_cust = args.sends, args.customers
    rng = np.random.default_rng(args.seed)
    cust = rng.integers(0, n_cust, n)
    chan = rng.integers(0, len(CHANNELS), n)
    marketing = rng.random(n) < 0.8
    start_ts = int(START.timestamp())
    ts = np.sort(start_ts + rng.integers(0, args.weeks * 7 * 86400 // 60, n) * 60)
    consent = rng.random(n_cust) < 0.75
    dnd_all = rng.random(n_cust) < 0.02
    dnd_one = np.where(rng.random(n_cust) < 0.03, rng.integers(0, len(CHANNELS), n_cust), -1)
    ids = [f"C{i:07d}" for i in range(n_cust)]
    config = PolicyConfig(tz=TZ)
    purposes = ("service", "marketing")

    def stream() -> Iterator[Send]:
        cust_l, chan_l, mkt_l, ts_l = cust.tolist(), chan.tolist(), marketing.tolist(), ts.tolist()
        for i in range(n):
            yield Send(str(i), ids[cust_l[i]], CHANNELS[chan_l[i]], purposes[mkt_l[i]],  # type: ignore[arg-type]
                       datetime.fromtimestamp(ts_l[i], TZ))  # fmt: skip

    index = {cid: i for i, cid in enumerate(ids)}
    channel_no = {c: i for i, c in enumerate(CHANNELS)}

    def consents(s: Send) -> bool:
        return bool(consent[index[s.customer_id]])

    def blocked(s: Send) -> bool:
        c = index[s.customer_id]
        return bool(dnd_all[c]) or dnd_one[c] == channel_no[s.channel]

    counters = MemoryCounters()
    action = np.full(n, -1, np.int8)
    went = np.zeros(n, np.int64)  # POSIX seconds of the final decision
    deferred = np.zeros(n, bool)
    reasons: dict[str, int] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for s, d in plan(stream(), config, consent=consents, dnd=blocked, counters=counters):
        i = int(s.key)
        if d.action == "defer":
            deferred[i] = True
            continue
        action[i] = ACTIONS[d.action]
        went[i] = int(d.at.timestamp())
        if d.reason:
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
    took = time.perf_counter() - t0
    cpu = time.process_time() - c0  # the same on a machine shared with other work
    rate = n / took
    peak = peak_rss_mb()
    sent = int((action == 0).sum())
    print(f"planned {n:,} sends for {n_cust:,} customers over {args.weeks} weeks in {took:.1f} s "
          f"({rate:,.0f} sends/s): {sent:,} go, {int(deferred.sum()):,} deferred first, suppressed "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items())), flush=True)  # fmt: skip

    # ------------------------------------------------------------------ independent recount (numpy)
    problems: list[str] = []
    if (action < 0).any():
        problems.append(f"{int((action < 0).sum())} sends without a final decision")
    go = action == 0
    local_s = went + 8 * 3600
    day = local_s // 86400
    week = (day + 3) // 7  # 1970-01-01 was a Thursday: +3 makes weeks start on Monday
    sec_of_day = local_s % 86400
    mkt_go = go & marketing
    c, ch, dy, wk = cust[mkt_go], chan[mkt_go], day[mkt_go], week[mkt_go]
    _, per_day = np.unique((c * len(CHANNELS) + ch) * 100_000 + dy, return_counts=True)
    _, per_week = np.unique(c * 100_000 + wk, return_counts=True)
    if per_day.size and per_day.max() > config.channel_day_cap:
        problems.append(f"a customer got {per_day.max()} marketing sends on one channel in a day")
    if per_week.size and per_week.max() > config.week_cap:
        problems.append(f"a customer got {per_week.max()} marketing sends in a week")
    day_total = sum(v for (_, k), v in counters.counts.items() if k.startswith("d:"))
    week_total = sum(v for (_, k), v in counters.counts.items() if k.startswith("w:"))
    if not (day_total == week_total == int(mkt_go.sum())):
        problems.append(f"counters {day_total}/{week_total} ≠ recount {int(mkt_go.sum())}")
    if (mkt_go & ~consent[cust]).any():
        problems.append("a marketing send without consent")
    if (go & (dnd_all[cust] | (dnd_one[cust] == chan))).any():
        problems.append("a send to a customer on do-not-disturb")
    quiet = (sec_of_day >= 21 * 3600) | (sec_of_day < 8 * 3600)
    if (go & quiet & (chan != CHANNELS.index("branch_task"))).any():
        problems.append("a send in quiet hours")
    if reasons.get("cap_channel_day", 0) + reasons.get("cap_week", 0) == 0:
        problems.append("no cap was ever reached: the benchmark does not exercise the caps")
    svc_capped = (~marketing) & (action == 1) & ~(dnd_all[cust] | (dnd_one[cust] == chan))
    if svc_capped.any():
        problems.append("a service send suppressed for caps")
    exact = not problems
    top_day = int(per_day.max()) if per_day.size else 0
    top_week = int(per_week.max()) if per_week.size else 0
    print(f"caps exact: {'yes' if exact else 'NO'} (max {top_day} per channel-day, {top_week} per week; "
          f"{len(counters.counts):,} counters = recount)"
          + ("" if exact else " — " + "; ".join(problems)), flush=True)  # fmt: skip
    ok = took <= 60 and exact
    print(f"policy plan {n:,} sends: {took:.1f} s ({cpu:.1f} s CPU), {rate:,.0f} sends/s, "
          f"peak RSS {peak:,.0f} MB  "
          f"[target ≤ 60 s, caps exact: {'PASS' if ok else 'MISS'}]", flush=True)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
