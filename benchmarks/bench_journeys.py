"""Benchmark (issue #6): the journey worker on PostgreSQL with 2 processes (target ≥ 2,000 steps/s).

    OMNIBANK_BENCH_DATABASE_URL=postgresql+psycopg://… python benchmarks/bench_journeys.py [--customers 10000]
    scripts/with-postgres bash -c 'OMNIBANK_BENCH_DATABASE_URL=$OMNIBANK_TEST_DATABASE_URL \
        .venv/bin/python benchmarks/bench_journeys.py'

A demo bank's customers are loaded into a fresh database and one entry per customer is put into a journey
of six steps (a marketing push through the contact policy, a tag, a wait, a branch on the customer's assets,
a service SMS or a lead for the RM, the end), all due. Two worker processes then claim due entries in
batches (``FOR UPDATE SKIP LOCKED``) and run them through to the end, as ``omnibank worker`` does: every
send goes through ``contact.outbox.submit`` (consent, do-not-disturb, quiet hours, caps taken with
conditional UPDATEs), leads through ``leads.service.create_leads``, each step run recorded under its key.
Prints steps/s and checks that no step ran twice.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from omnibank.db.databases import fresh_database

HERE = Path(__file__).resolve().parent
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)  # a Monday morning: no quiet hours
JOURNEY = """\
id: bench_journey
name: 基准旅程
purpose: marketing
trigger: {event: app.login}
steps:
  - {id: push, send: {channel: app_push, template: 欢迎使用手机银行}}
  - {id: seen, tag: {add: [bench_seen]}}
  - {id: pause, wait: 1h}
  - {id: rich, branch: {if: "aum >= 500000", then: lead, else: notice}}
  - {id: notice, send: {channel: sms, template: 账户服务提醒, purpose: service}, next: end}
  - {id: lead, lead: {product: WM2026A01, due_in: 2d, note: 高净值客户跟进}}
"""


def setup(customers: int) -> int:
    """Load the bank, start the journey and put every customer in it, due now; the entries made."""
    from omnibank import config, db
    from omnibank.db.bulk import insert_rows
    from omnibank.demo.generator import generate
    from omnibank.ingest.service import load_file
    from omnibank.journeys import runtime
    from omnibank.journeys.machine import enter
    from omnibank.journeys.models import JourneyEntry
    from omnibank.journeys.spec import Compiled, parse_journey

    settings = config.get_settings()
    src = settings.home_dir / "bank"
    summary = generate(src, customers=customers, seed=2026, events_per_customer=0.0, progress=False)
    for kind, path in zip(("orgs", "staff", "customers"), summary.paths[:3], strict=True):
        load_file(kind, path, settings=settings, progress=False)
    spec = parse_journey(JOURNEY)
    compiled = Compiled(spec)
    with db.unit_of_work(settings) as session:
        runtime.start(session, settings, spec, source_text=JOURNEY, now=T0)
        from sqlalchemy import select

        from omnibank.customers.models import Customer

        ids = list(session.scalars(select(Customer.customer_id).order_by(Customer.customer_id)))
        rows = []
        for cid in ids:
            _, state = enter(compiled, cid, 1, T0)
            state_text = json.dumps(state.dump(), ensure_ascii=False, separators=(",", ":"))
            rows.append((spec.id, cid, 1, state.status, state.step, state.status == "control", state_text,
                         state.due, T0, None, T0))  # fmt: skip
        cols = ("journey", "customer_id", "entry_no", "status", "step", "control", "state", "next_due_at",
                "entered_at", "converted_at", "updated_at")  # fmt: skip
        insert_rows(session, JourneyEntry.__table__, cols, rows)  # type: ignore[arg-type]
    return len(ids)


def worker(start: Any, results: Any, batch: int) -> None:
    from omnibank import config
    from omnibank.journeys import runtime

    settings = config.get_settings()
    now = T0 + timedelta(hours=2)
    report = runtime.WorkReport()
    runtime.run_due(settings, now=now - timedelta(days=1), batch=1, report=runtime.WorkReport())  # warm up
    start.wait()
    t = time.perf_counter()
    try:
        while runtime.run_due(settings, now=now, batch=batch, report=report):
            pass
    except Exception as exc:  # reported by the main process
        results.put(f"{type(exc).__name__}: {exc}"[:2000])
        return
    results.put((report.steps, report.claimed, time.perf_counter() - t, dict(report.sends), report.leads))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=10_000, help="entries (one per customer)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--batch", type=int, default=500, help="entries claimed per transaction")
    args = parser.parse_args()
    base = os.environ.get("OMNIBANK_BENCH_DATABASE_URL")
    if not base:
        print("bench_journeys: skipped, it needs PostgreSQL (set OMNIBANK_BENCH_DATABASE_URL)")
        return 0
    home = Path(tempfile.mkdtemp(prefix="omnibank-bench-journeys-"))
    os.environ["OMNIBANK_HOME"] = str(home)
    os.environ["OMNIBANK_DATABASE_URL"] = fresh_database(base, "omnibank_bench_journeys")
    from omnibank import config, db

    config.reset_settings()
    db.upgrade(config.get_settings())
    t = time.perf_counter()
    entries = setup(args.customers)
    print(f"set up {entries:,} due entries in {time.perf_counter() - t:.1f} s", flush=True)
    db.dispose_engines()
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    procs = [context.Process(target=worker, args=(start, results, args.batch)) for _ in range(args.workers)]
    for p in procs:
        p.start()
    time.sleep(3)  # every worker has started and connected
    t = time.perf_counter()
    start.set()
    done = [results.get(timeout=3600) for _ in procs]
    took = time.perf_counter() - t
    for p in procs:
        p.join()
    failures = [d for d in done if isinstance(d, str)]
    if failures:
        print("bench_journeys: a worker failed: " + failures[0], flush=True)
        return 1
    steps = sum(d[0] for d in done)
    sends: dict[str, int] = {}
    for d in done:
        for k, v in d[3].items():
            sends[k] = sends.get(k, 0) + v
    from sqlalchemy import func, select

    from omnibank.journeys.models import JourneyEntry, JourneyStepRun

    with db.unit_of_work(config.get_settings()) as session:
        runs = session.scalar(
            select(func.count()).select_from(JourneyStepRun).where(JourneyStepRun.kind != "enter")
        )
        left = session.scalar(
            select(func.count()).select_from(JourneyEntry).where(JourneyEntry.status == "active")
        )
    rate = steps / took
    once = left == 0 and sum(d[1] for d in done) >= entries
    outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(sends.items()))
    print(
        f"worker on PostgreSQL, {args.workers} processes, batch {args.batch}: {steps:,} steps of {entries:,} "
        f"entries in {took:.1f} s: {rate:,.0f} steps/s ({outcomes}; "
        f"{sum(d[4] for d in done):,} leads; {runs:,} step runs recorded, {left} entries left)  "
        f"[target ≥ 2,000 steps/s: {'PASS' if rate >= 2_000 and once else 'MISS'}]",
        flush=True,
    )
    return 0 if once else 1


if __name__ == "__main__":
    sys.exit(main())
