"""Benchmark: simulate the Luckin co-branded year over ~10M card transactions of 1M customers, on two shapes
of data.

    python benchmarks/bench_campaigns.py [--customers 1000000] [--data DIR] [--shape all|spread|dense]
                                         [--quick]

`--quick` runs at a tenth of the size (for trying things). Shape "spread" (the demo bank):

The demo bank's events are generated (``omnibank demo generate``, about 28 events per customer, ~10M of
them card transactions) into ``--data`` once. Then ``campaign simulate`` runs
``examples/campaigns/luckin_cobrand.yaml`` over the file (target ≥ 300k events/s, peak ≤ 4 GB), and the
weekly gift (3 spends in a natural week → a voucher, at most 52 a year) is computed again by hand-written
DuckDB SQL over the same file: both must give exactly the same grants; the ratio of times is printed.
Last, ``campaign run`` applies the campaign live to the event log of a 100k-customer bank (about 5M events)
on SQLite and, with OMNIBANK_BENCH_DATABASE_URL, on PostgreSQL (target ≥ 20k events/s).

Shape "dense" (a co-branded card's real shape, issue 20): of 1M customers, 100k hold a ``luckin_cobrand``
card issued January–June 2026 (gold, platinum or classic; mostly primary and new customers), and they alone
make the 10M card transactions of 2026 (about 100 each), beside 4 ``points.earned`` and 1 ``points.redeem``
a holder; one customer in seven holds another card. The file is made by DuckDB (deterministic, ~1 min).
``omnibank campaign simulate`` runs as a user runs it (the CLI, in a process of its own: its wall and CPU
time, and its peak memory, summed over its worker processes); then the hand-written DuckDB SQL of the
weekly gift over the same file, whose grants must be exactly ours. Targets: ≥ 300k transaction events/s,
≤ 3× the hand-written SQL's time, peak ≤ 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
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
    parser.add_argument("--shape", choices=["all", "spread", "dense"], default="all")
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    args = parser.parse_args()
    if args.quick:
        args.customers //= 10
        args.live_customers //= 10
    ok = True
    if args.shape in ("all", "dense"):
        ok = dense_benchmark(args.data, args.customers) and ok
    if args.shape in ("all", "spread"):
        ok = spread_benchmark(args) and ok
    return 0 if ok else 1


def spread_benchmark(args: argparse.Namespace) -> bool:
    """The demo bank's events: transactions spread over every customer."""
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
    hand_weekly = {(c, int(us), fv) for c, us, fv in hand}
    ours_weekly = weekly_grants(grants_file)
    same = ours_weekly == hand_weekly
    print(
        f"weekly gift by hand-written DuckDB SQL: {hand_t:.1f} s, {len(hand_weekly):,} grants; ours "
        f"{len(ours_weekly):,}: {'the same grants' if same else 'DIFFERENT'}; "
        f"our whole simulation ÷ hand-written weekly = {ours / hand_t:.2f}",
        flush=True,
    )
    live_ok = live_benchmark(args.data, args.live_customers, spec_path=HERE.parent / "examples" / "campaigns")
    return same and live_ok


def weekly_grants(grants_file: Path) -> set[tuple[str, int, str | None]]:
    """The weekly gift's grants of a grants.jsonl: (customer, instant in µs, face value)."""
    out = set()
    with grants_file.open(encoding="utf-8") as fh:
        for line in fh:
            g = json.loads(line)
            if g["rule"] == "weekly":
                at = datetime.fromisoformat(g["granted_at"])
                out.add((g["customer_id"], int(at.timestamp() * 1_000_000), g.get("face_value")))
    return out


def dense_events(path: Path, customers: int) -> None:
    """The dense shape (see the module's docstring), deterministic: hash() of a row number is its dice."""
    holders, transactions = customers // 10, customers * 10
    start, half, year = 1_767_196_800, 181 * 86_400, 365 * 86_400  # 2026-01-01 00:00 +08:00; Jan–Jun; 2026

    def dice(row: str, salt: int) -> str:  # uniform in [0, 1)
        return f"((hash({row}, {salt}) % 1000003) / 1000003.0)"

    holder = f"(hash(range, 5) % {holders}) * 10"  # customers 0, 10, 20, … hold the card
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""
        CREATE TABLE ev AS
        WITH cards AS (
            SELECT range AS c, 'card.issued' AS type,
                {start} + CAST(floor({dice("range", 1)} * {half}) AS BIGINT) AS s,
                json_object('card_id', 'CD' || lpad(CAST(range AS VARCHAR), 10, '0'),
                    'product', CASE WHEN range % 10 = 0 THEN 'luckin_cobrand' ELSE 'standard_credit' END,
                    'tier', CASE WHEN {dice("range", 2)} < 0.5 THEN 'gold'
                                 WHEN {dice("range", 2)} < 0.85 THEN 'platinum' ELSE 'classic' END,
                    'primary', {dice("range", 3)} < 0.95, 'new_customer', {dice("range", 4)} < 0.8) AS f
            FROM range({holders * 10}) WHERE range % 10 = 0 OR range % 7 = 1
        ),
        spends AS (
            SELECT {holder} AS c, 'card.transaction' AS type,
                {start} + CAST(floor({dice("range", 6)} * {year}) AS BIGINT) AS s,
                json_object('card_id', 'CD' || lpad(CAST({holder} AS VARCHAR), 10, '0'),
                    'amount', printf('%.2f', CASE WHEN {dice("range", 7)} < 0.2
                        THEN 99 + {dice("range", 8)} * 400 ELSE 5 + {dice("range", 8)} * 90 END),
                    'merchant', CASE range % 3 WHEN 0 THEN '瑞幸咖啡' WHEN 1 THEN '美团外卖'
                        ELSE '盒马鲜生' END,
                    'mcc', '5814') AS f
            FROM range({transactions})
        ),
        earned AS (
            SELECT (range % {holders}) * 10 AS c, 'points.earned' AS type,
                {start} + CAST(floor({dice("range", 9)} * {year}) AS BIGINT) AS s,
                json_object('points', 200 + CAST(floor({dice("range", 10)} * 800) AS INT)) AS f
            FROM range({holders * 4})
        ),
        redeemed AS (
            SELECT (hash(range, 11) % {holders}) * 10 AS c, 'points.redeem' AS type,
                {start} + CAST(floor({dice("range", 12)} * {year}) AS BIGINT) AS s,
                json_object('channel', 'app', 'reward', 'luckin_voucher',
                    'quantity', 1 + CAST(range % 3 = 0 AS INT)) AS f
            FROM range({holders})
        )
        SELECT * FROM cards UNION ALL SELECT * FROM spends UNION ALL SELECT * FROM earned
        UNION ALL SELECT * FROM redeemed
    """)
    lines = con.sql("""
        SELECT '{"event_id":"EV' || lpad(CAST(row_number() OVER (ORDER BY s, c, type, CAST(f AS VARCHAR))
            AS VARCHAR), 10, '0')
            || '","type":"' || type || '","customer_id":"C' || lpad(CAST(c AS VARCHAR), 7, '0')
            || '","ts":"' || strftime(make_timestamp((s + 28800) * 1000000), '%Y-%m-%dT%H:%M:%S')
            || '+08:00",'
            || substr(CAST(f AS VARCHAR), 2) AS line
        FROM ev ORDER BY s, c, type, CAST(f AS VARCHAR)
    """)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for batch in lines.to_arrow_reader(500_000):
            fh.write("\n".join(batch.column(0).to_pylist()) + "\n")
    tmp.replace(path)
    con.close()


class TreeMemory:
    """The peak of a process's memory summed with its descendants' (sampled from /proc every 0.1 s)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.1):
            parents: dict[int, int] = {}
            rss: dict[int, int] = {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                parents[int(entry)] = int(stat[1])
                rss[int(entry)] = int(stat[21]) * page
            tree, total, grew = {self.pid}, 0, True
            while grew:
                more = {p for p, parent in parents.items() if parent in tree} - tree
                grew = bool(more)
                tree |= more
            total = sum(rss.get(p, 0) for p in tree)
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def dense_benchmark(data: Path, customers: int) -> bool:
    """The dense shape: card holders' transactions only."""
    events = data / f"dense-{customers}" / "events.jsonl"
    if not events.exists():
        t = time.perf_counter()
        dense_events(events, customers)
        print(f"dense: generated {events} in {time.perf_counter() - t:.0f} s", flush=True)
    con = duckdb.connect()
    path_sql = "'" + str(events).replace("'", "''") + "'"
    counts = dict(
        con.execute(
            f"SELECT type, count(*) FROM read_json({path_sql}, format = 'newline_delimited', "
            "columns = {'type': 'VARCHAR'}, ignore_errors = true) GROUP BY type"
        ).fetchall()
    )
    transactions = counts.get("card.transaction", 0)
    print(
        f"dense: {customers:,} customers, {customers // 10:,} card holders; {sum(counts.values()):,} events, "
        f"{transactions:,} card transactions",
        flush=True,
    )
    home = Path(tempfile.mkdtemp(prefix="omnibank-bench-dense-"))
    grants_file = home / "grants.jsonl"
    spec = HERE.parent / "examples" / "campaigns" / "luckin_cobrand.yaml"
    command = [sys.executable, "-m", "omnibank", "campaign", "simulate", str(spec), str(events)]
    command += ["--out", str(grants_file)]
    env = {**os.environ, "OMNIBANK_HOME": str(home)}
    env.pop("OMNIBANK_DATABASE_URL", None)
    before = os.times()
    t = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    memory = TreeMemory(proc.pid)
    output, _ = proc.communicate()
    ours = time.perf_counter() - t
    peak = memory.stop() / (1 << 20)
    after = os.times()
    cpu = after.children_user - before.children_user + after.children_system - before.children_system
    if proc.returncode != 0:
        print(output.decode(errors="replace"), flush=True)
        return False
    summary = output.decode(errors="replace").strip().splitlines()[-1]
    rate = transactions / ours
    print(
        f"dense simulate (the CLI): {ours:.1f} s wall, {cpu:.1f} s CPU, {rate:,.0f} transaction events/s, "
        f"peak {peak:,.0f} MB  [target ≥ 300,000/s, ≤ 4096 MB: "
        f"{'PASS' if rate >= 300_000 and peak <= 4096 else 'MISS'}]\n  {summary}",
        flush=True,
    )

    con.execute("SET TimeZone = 'Asia/Shanghai'")
    con.execute("SET memory_limit = '3GB'")
    before = os.times()
    t = time.perf_counter()
    hand = con.execute(WEEKLY_SQL.format(path=path_sql)).fetchall()
    hand_t = time.perf_counter() - t
    after = os.times()
    hand_cpu = after.user - before.user + after.system - before.system
    hand_weekly = {(c, int(us), fv) for c, us, fv in hand}
    ours_weekly = weekly_grants(grants_file)
    same = ours_weekly == hand_weekly
    ratio = ours / hand_t
    print(
        f"dense weekly gift by hand-written DuckDB SQL: {hand_t:.1f} s wall, {hand_cpu:.1f} s CPU, "
        f"{len(hand_weekly):,} grants; ours {len(ours_weekly):,}: "
        f"{'the same grants' if same else 'DIFFERENT'}; our whole simulation ÷ hand-written weekly = "
        f"{ratio:.2f} (CPU {cpu / hand_cpu:.2f})  [target ≤ 3: {'PASS' if ratio <= 3 else 'MISS'}]",
        flush=True,
    )
    con.close()
    return same


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
