"""Benchmark: segment counts and tag computation on 1M customers and ~50M events.

    python benchmarks/bench_segments.py [--customers 1000000] [--data DIR]

The demo bank is generated (``omnibank demo generate``) and loaded into a data home kept under
``--data`` (both are reused by later runs). Then, each timed as a user's command does it in-process
(parse, snapshot check, DuckDB over the snapshot and the event log):

* an attribute-only count (target ≤ 0.3 s), an ``events(…)`` count and an ``amount(…)`` count
  (target ≤ 3 s each), each beside the same count written by hand in DuckDB SQL on the same files
  (our time ÷ hand-written time, goal ≤ 1.5);
* all example tags computed and stored (target ≤ 60 s);
* peak memory of the process (target ≤ 4 GB).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
AS_OF = date(2026, 12, 31)


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def best_of(n: int, fn):  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(n):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path("bench-data"), help="generated files and data home")
    args = parser.parse_args()
    n = args.customers
    src = args.data / f"seg-{n}"
    home = args.data / f"seg-{n}-home"
    os.environ["OMNIBANK_HOME"] = str(home)
    os.environ.pop("OMNIBANK_DATABASE_URL", None)

    from sqlalchemy import text

    from omnibank import config, db
    from omnibank.db import versions
    from omnibank.demo.generator import generate
    from omnibank.events.log import EventLog
    from omnibank.ingest.service import load_file
    from omnibank.segments import service as segments
    from omnibank.segments.engine import current_snapshot
    from omnibank.tags import service as tags

    if not (src / "events.jsonl").exists():
        t = time.perf_counter()
        summary = generate(src, customers=n, seed=2026, progress=False)
        print(f"generated {n:,} customers, {sum(summary.events_by_type.values()):,} events "
              f"in {time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
    config.reset_settings()
    settings = config.get_settings()
    if not (home / "loaded").exists():
        for kind in ("orgs", "staff", "customers", "events"):
            t = time.perf_counter()
            path = src / f"{kind}.{'jsonl' if kind == 'events' else 'csv'}"
            report = load_file(kind, path, settings=settings, progress=False)
            print(f"loaded {kind}: {report.summary_line()} in {time.perf_counter() - t:.0f} s", flush=True)
        (home / "loaded").touch()
    events = EventLog(settings).count()
    print(f"bank: {n:,} customers, {events:,} events in the log", flush=True)

    with db.unit_of_work(settings) as session:
        t = time.perf_counter()
        snap = current_snapshot(session, settings)
        print(f"profile snapshot ready in {time.perf_counter() - t:.1f} s", flush=True)

    log_glob = str(settings.event_log_dir / "month=*" / "*.parquet")
    profiles = str(snap.profiles)
    hand = duckdb.connect()
    hand.execute(f"SET TimeZone = '{settings.timezone}'")
    cases = [
        (
            "attribute-only",
            0.3,
            "age >= 60 AND aum >= 500000 AND occupation = 'retired'",
            f"SELECT count(*) FROM read_parquet('{profiles}') WHERE birth_date <= DATE '1966-12-31' "
            "AND aum_fen >= 50000000 AND occupation = 'retired'",
        ),
        (
            "events(…)",
            3.0,
            "age >= 60 AND events('app.login', 90) = 0",
            f"SELECT count(*) FROM read_parquet('{profiles}') p LEFT JOIN (SELECT customer_id, count(*) AS n "
            f"FROM read_parquet('{log_glob}', hive_partitioning = true) WHERE type = 'app.login' "
            "AND local_date > DATE '2026-10-02' AND local_date <= DATE '2026-12-31' AND month >= '2026-10' "
            "GROUP BY customer_id) e ON e.customer_id = p.customer_id "
            "WHERE p.birth_date <= DATE '1966-12-31' AND coalesce(e.n, 0) = 0",
        ),
        (
            "amount(…)",
            3.0,
            "amount('card.transaction', 30, merchant = '瑞幸咖啡') >= 99",
            f"SELECT count(*) FROM (SELECT customer_id, sum(amount) AS s "
            f"FROM read_parquet('{log_glob}', hive_partitioning = true) WHERE type = 'card.transaction' "
            "AND merchant = '瑞幸咖啡' AND local_date > DATE '2026-12-01' "
            "AND local_date <= DATE '2026-12-31' "
            "AND month >= '2026-12' GROUP BY customer_id) e JOIN read_parquet('"
            f"{profiles}') p ON p.customer_id = e.customer_id WHERE e.s >= 99",
        ),
    ]
    failed = 0
    for label, target, expr, sql in cases:

        def ours(expr: str = expr) -> int:
            with db.unit_of_work(settings) as session:
                return segments.count(session, settings, expr, as_of=AS_OF)

        ours()  # warm the file cache, as for any repeated use
        ours_t, ours_n = best_of(3, ours)
        hand_t, hand_row = best_of(3, lambda sql=sql: hand.execute(sql).fetchone())
        hand_n = hand_row[0] if hand_row else None
        ok = ours_t <= target and ours_n == hand_n
        failed += not ok
        print(
            f"count {label:15} {ours_n:>9,} customers  ours {ours_t:6.3f} s  "
            f"hand-written DuckDB {hand_t:6.3f} s  ratio {ours_t / hand_t:4.2f}  "
            f"[target ≤ {target} s{', same count' if ours_n == hand_n else ''}: {'PASS' if ok else 'MISS'}]",
            flush=True,
        )

    with db.unit_of_work(settings) as session:
        specs = tags.read_definitions(HERE.parent / "examples" / "tags")
        tags.store_definitions(session, specs)
        # from scratch, as the first computation in a bank is (the heaviest: every tag is a gain)
        session.execute(text("DELETE FROM customer_tags"))
        session.execute(text("DELETE FROM customer_tag_changes"))
        versions.bump(session, "tags")
    t = time.perf_counter()
    with db.unit_of_work(settings, bulk_load=True) as session:
        report = tags.compute_tags(session, settings, as_of=AS_OF)
    took = time.perf_counter() - t
    failed += took > 60
    print(
        f"tags: {len(report.results)} example tags computed as of {AS_OF} in {took:.1f} s "
        f"({report.gained:,} gained, {report.lost:,} lost)  "
        f"[target ≤ 60 s: {'PASS' if took <= 60 else 'MISS'}]",
        flush=True,
    )
    peak = peak_rss_mb()
    failed += peak > 4096
    print(f"peak RSS {peak:,.0f} MB  [target ≤ 4096 MB: {'PASS' if peak <= 4096 else 'MISS'}]", flush=True)
    db.dispose_engines()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
