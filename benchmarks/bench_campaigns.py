"""Benchmark: simulate the Luckin co-branded year over ~10M card transactions of 1M customers.

    python benchmarks/bench_campaigns.py [--customers 1000000] [--data DIR]

The demo bank's events are generated (``omnibank demo generate``, about 28 events per customer, ~10M of
them card transactions) into ``--data`` once. Then ``campaign simulate`` runs
``examples/campaigns/luckin_cobrand.yaml`` over the file (target ≥ 300k events/s, peak ≤ 4 GB), and the
weekly gift (3 spends in a natural week → a voucher, at most 52 a year) is computed again by hand-written
DuckDB SQL over the same file: both must give exactly the same grants; the ratio of times is printed.
Last, ``campaign run`` applies the campaign live to the event log of a 100k-customer bank (about 5M events)
on SQLite and, with OMNIBANK_BENCH_DATABASE_URL, on PostgreSQL (target ≥ 20k events/s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb

from omnibank.db.databases import fresh_database

HERE = Path(__file__).resolve().parent

WEEKLY_SQL = """
WITH raw AS (
    SELECT *, row_number() OVER () AS line
    FROM read_json({path}, format = 'newline_delimited', ignore_errors = true, columns = {{
        'event_id': 'VARCHAR', 'type': 'VARCHAR', 'customer_id': 'VARCHAR', 'ts': 'VARCHAR',
        'product': 'VARCHAR', 'tier': 'VARCHAR', 'primary': 'BOOLEAN', 'new_customer': 'BOOLEAN'}})
),
ev AS (
    SELECT event_id, type, customer_id, CAST(ts AS TIMESTAMPTZ) AS ts, product, tier, "primary", new_customer
    FROM raw WHERE type IN ('card.issued', 'card.transaction')
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY line) = 1
),
cards AS (  -- each customer's first qualifying card
    SELECT customer_id, arg_min(tier, (ts, event_id)) AS tier, min((ts, event_id)) AS issued
    FROM ev WHERE type = 'card.issued' AND product = 'luckin_cobrand' AND "primary" AND new_customer
        AND tier IN ('gold', 'platinum')
    GROUP BY customer_id
),
spends AS (
    SELECT e.customer_id, e.ts, e.event_id, c.tier, yearweek(CAST(e.ts AS DATE)) AS week
    FROM ev e JOIN cards c ON c.customer_id = e.customer_id
    WHERE e.type = 'card.transaction' AND (e.ts, e.event_id) > c.issued
        AND CAST(e.ts AS DATE) BETWEEN DATE '2026-01-01' AND DATE '2026-12-31'
),
third AS (  -- the third spend of a natural week earns the week's voucher
    SELECT * FROM spends QUALIFY row_number() OVER (PARTITION BY customer_id, week ORDER BY ts, event_id) = 3
)
SELECT customer_id, epoch_us(ts) AS at_us, CASE tier WHEN 'gold' THEN '26.00' ELSE '29.00' END AS face_value
FROM third QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY ts, event_id) <= 52
"""


def peak_rss_mb() -> float:
    """Peak memory, as an upper bound: this process's peak plus, for each worker process (one per core,
    running at once), the largest peak of any of them."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + (os.cpu_count() or 1) * worker) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--live-customers", type=int, default=100_000, help="bank size for the live run")
    args = parser.parse_args()
    src = args.data / f"camp-{args.customers}"
    home = Path(tempfile.mkdtemp(prefix="omnibank-bench-"))
    os.environ["OMNIBANK_HOME"] = str(home)
    os.environ.pop("OMNIBANK_DATABASE_URL", None)

    from omnibank import config
    from omnibank.campaigns.simulate import simulate
    from omnibank.campaigns.spec import load_campaign
    from omnibank.demo.generator import generate

    events = src / "events.jsonl"
    if not events.exists():
        t = time.perf_counter()
        summary = generate(src, customers=args.customers, seed=2026, events_per_customer=28.5, progress=False)
        print(
            f"generated {args.customers:,} customers, {sum(summary.events_by_type.values()):,} events "
            f"in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
    con = duckdb.connect()
    path_sql = "'" + str(events).replace("'", "''") + "'"
    counts = dict(
        con.execute(
            f"SELECT type, count(*) FROM read_json({path_sql}, format = 'newline_delimited', "
            "columns = {'type': 'VARCHAR'}, ignore_errors = true) GROUP BY type"
        ).fetchall()
    )
    transactions = counts.get("card.transaction", 0)
    print(f"file: {sum(counts.values()):,} events, {transactions:,} card transactions", flush=True)

    config.reset_settings()
    settings = config.get_settings()
    spec = load_campaign(HERE.parent / "examples" / "campaigns" / "luckin_cobrand.yaml")
    grants_file = home / "grants.jsonl"
    t = time.perf_counter()
    with grants_file.open("wb") as fh:
        report = simulate(spec, settings, events=events, out=fh)
    ours = time.perf_counter() - t
    rate = transactions / ours
    print(
        f"simulate: {ours:.1f} s  {rate:,.0f} transaction events/s  ({report.events:,} events of card "
        f"holders through the engine; {report.grants:,} grants, face value {report.face_value:,.2f} CNY)  "
        f"peak RSS {peak_rss_mb():,.0f} MB  [target ≥ 300,000/s, ≤ 4096 MB: "
        f"{'PASS' if rate >= 300_000 and peak_rss_mb() <= 4096 else 'MISS'}]",
        flush=True,
    )

    con.execute(f"SET TimeZone = '{settings.timezone}'")
    con.execute("SET memory_limit = '3GB'")
    t = time.perf_counter()
    hand = con.execute(WEEKLY_SQL.format(path=path_sql)).fetchall()
    hand_t = time.perf_counter() - t
    ours_weekly = set()
    for line in grants_file.open(encoding="utf-8"):
        g = json.loads(line)
        if g["rule"] == "weekly":
            at = datetime.fromisoformat(g["granted_at"])
            ours_weekly.add((g["customer_id"], int(at.timestamp() * 1_000_000), g.get("face_value")))
    hand_weekly = {(c, int(us), fv) for c, us, fv in hand}
    same = ours_weekly == hand_weekly
    print(
        f"weekly gift by hand-written DuckDB SQL: {hand_t:.1f} s, {len(hand_weekly):,} grants; ours "
        f"{len(ours_weekly):,}: {'the same grants' if same else 'DIFFERENT'}; "
        f"our whole simulation ÷ hand-written weekly = {ours / hand_t:.2f}",
        flush=True,
    )
    live_ok = live_benchmark(args.data, args.live_customers, spec_path=HERE.parent / "examples" / "campaigns")
    return 0 if same and live_ok else 1


def live_benchmark(data: Path, customers: int, *, spec_path: Path) -> bool:
    """`campaign run` over a loaded event log, on SQLite and (with OMNIBANK_BENCH_DATABASE_URL) PostgreSQL."""
    from omnibank import config, db
    from omnibank.campaigns import live
    from omnibank.campaigns.spec import load_campaign
    from omnibank.demo.generator import generate
    from omnibank.events.log import EventLog
    from omnibank.ingest.service import load_file

    src = data / f"live-{customers}"
    if not (src / "events.jsonl").exists():
        generate(src, customers=customers, seed=2026, progress=False)
    stores = [None]
    if os.environ.get("OMNIBANK_BENCH_DATABASE_URL"):
        stores.append(os.environ["OMNIBANK_BENCH_DATABASE_URL"])
    ok = True
    for url in stores:
        home = Path(tempfile.mkdtemp(prefix="omnibank-bench-live-"))
        os.environ["OMNIBANK_HOME"] = str(home)
        if url:  # a database of its own: coupons, stock and grants of an earlier run would change the work
            os.environ["OMNIBANK_DATABASE_URL"] = fresh_database(url, "omnibank_bench_live")
        else:
            os.environ.pop("OMNIBANK_DATABASE_URL", None)
        config.reset_settings()
        db.dispose_engines()
        settings = config.get_settings()
        if url:
            db.upgrade(settings)
        load_file("events", src / "events.jsonl", settings=settings, progress=False)
        from omnibank.benefits.loading import read_catalogue, store_catalogue

        catalogue = read_catalogue(spec_path.parent / "benefits" / "catalogue.yaml")
        with db.unit_of_work(settings) as session:  # grants are issued as coupons, stock taken
            store_catalogue(session, catalogue, tz=settings.tz, now=datetime.now(settings.tz))
        spec_file = spec_path / "luckin_cobrand.yaml"
        with db.unit_of_work(settings) as session:
            live.start(session, load_campaign(spec_file), source_text=spec_file.read_text(encoding="utf-8"))
        t = time.perf_counter()
        (report,) = live.run_once(settings)
        took = time.perf_counter() - t
        rate = report.events / took
        store = "PostgreSQL" if url else "SQLite"
        ok = ok and rate >= 20_000
        print(
            f"live on {store}: {report.events:,} campaign events of {EventLog(settings).count():,} "
            f"in the log applied in {took:.1f} s: {rate:,.0f} events/s, {report.grants:,} grants, "
            f"{report.coupons:,} coupons issued  "
            f"[target ≥ 20,000/s: {'PASS' if rate >= 20_000 else 'MISS'}]",
            flush=True,
        )
        db.dispose_engines()
    return ok


if __name__ == "__main__":
    sys.exit(main())
