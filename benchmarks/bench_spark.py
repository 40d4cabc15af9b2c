"""Benchmark (issue #20): segment counts on Spark in local mode beside DuckDB, 1M customers and 10M events;
and a campaign backtest on Spark beside the local one.

    python benchmarks/bench_spark.py [--customers 1000000] [--events 10000000] [--data DIR] [--master M]
                                     [--backtest-customers 20000] [--backtest-only]

The data is ``bench_models.py``'s (the profile snapshot of ``--customers`` customers and ``--events`` events
over five months, written straight in the engine's layout; ``--data DIR`` shares and reuses it). Each
expression is counted by the embedded engine (DuckDB) and by Spark (pyspark in local mode, the JVM started
before timing), best of two, and the counts must be equal. On one machine Spark is slower: the figure shows
its overhead; the point is the same answers on a cluster. Needs ``pip install -e '.[spark]'`` and Java 17.

Then the backtest: a demo bank of ``--backtest-customers`` customers (``omnibank demo generate``, a year)
loaded into an event log of its own; ``campaign simulate examples/campaigns/luckin_cobrand.yaml`` runs
locally and with ``--engine spark`` (as the functions the command calls); the grants files must be equal
byte for byte. ``--backtest-customers 0`` leaves it out.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

AS_OF = date(2026, 12, 30)
EXPRESSIONS = (
    "age >= 60 AND aum < 50000",
    "events('app.login', 30) >= 3",
    "amount('card.transaction', 90) >= 1000 AND days_since('app.login') <= 14",
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, help="a folder with (or for) bench_models.py's data home")
    parser.add_argument("--master", default="local[*]", help="the Spark master")
    parser.add_argument("--backtest-customers", type=int, default=20_000, help="bank size of the backtest")
    parser.add_argument("--backtest-only", action="store_true", help="leave out the segment counts")
    args = parser.parse_args()
    try:
        import pyspark  # noqa: F401
    except ImportError:
        print("spark: skipped (pip install -e '.[spark]' and Java 17 to run it)")
        return 0
    data = args.data.resolve() if args.data else Path(tempfile.mkdtemp(prefix="omnibank-bench-spark-"))
    if args.backtest_only:
        from omnibank.segments.spark import stop_sessions

        ok = backtest(data, args.backtest_customers, args.master)
        stop_sessions()
        return 0 if ok else 1
    home = data / f"models-{args.customers}-{args.events}"
    if not (home / "bench-ready").exists():  # bench_models.py's setup phase, in its own process
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIBANK_")}
        env["OMNIBANK_HOME"] = str(home)
        cmd = [sys.executable, str(HERE / "bench_models.py"), "--phase", "setup", "--customers",
               str(args.customers), "--events", str(args.events)]  # fmt: skip
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        (home / "bench-ready").touch()
    os.environ["OMNIBANK_HOME"] = str(home)
    os.environ.pop("OMNIBANK_DATABASE_URL", None)

    from bench_segments import best_of

    from omnibank import config, db
    from omnibank.segments.engine import current_snapshot, duck_engine, parse_in
    from omnibank.segments.spark import SparkEngine, stop_sessions

    settings = config.get_settings()
    ok = True
    with db.unit_of_work(settings) as session:
        t = time.perf_counter()
        spark = SparkEngine(settings, current_snapshot(session, settings), master=args.master)
        print(f"spark ({args.master}): session started in {time.perf_counter() - t:.1f} s", flush=True)
        for text in EXPRESSIONS:
            expression = parse_in(session, text)
            with duck_engine(session, settings) as duck:
                duck_s, n_duck = best_of(2, lambda e=expression, d=duck: d.count(e, AS_OF))
            spark_s, n_spark = best_of(2, lambda e=expression: spark.count(e, AS_OF))
            same = n_duck == n_spark
            ok &= same
            verdict = "= Spark" if same else f"≠ Spark {n_spark:,}"
            print(f"{text}\n    DuckDB {duck_s:.2f} s · Spark {spark_s:.2f} s ({spark_s / duck_s:.1f}×) · "
                  f"{n_duck:,} customers {verdict}", flush=True)  # fmt: skip
    print(f"same counts on both engines: {'PASS' if ok else 'FAIL'}")
    if args.backtest_customers:
        ok = backtest(data, args.backtest_customers, args.master) and ok
    stop_sessions()
    return 0 if ok else 1


def backtest(data: Path, customers: int, master: str) -> bool:
    """The Luckin year backtested locally and on Spark over the same event log: times and equality."""
    import io

    from omnibank import config, db
    from omnibank.campaigns.simulate import simulate
    from omnibank.campaigns.spark import simulate_on_spark
    from omnibank.campaigns.spec import load_campaign
    from omnibank.demo.generator import generate
    from omnibank.ingest.service import load_file

    src = data / f"backtest-{customers}"
    if not (src / "events.jsonl").exists():
        generate(src, customers=customers, seed=2026, progress=False)
    home = Path(tempfile.mkdtemp(prefix="omnibank-bench-spark-backtest-"))
    os.environ["OMNIBANK_HOME"] = str(home)
    config.reset_settings()
    db.dispose_engines()
    settings = config.get_settings()
    load_file("events", src / "events.jsonl", settings=settings, progress=False)
    spec = load_campaign(HERE.parent / "examples" / "campaigns" / "luckin_cobrand.yaml")
    local, on_spark = io.BytesIO(), io.BytesIO()
    t = time.perf_counter()
    report = simulate(spec, settings, events=None, out=local)
    local_s = time.perf_counter() - t
    simulate_on_spark(spec, settings, out=io.BytesIO(), master=master)  # the first: the session's start-up
    t = time.perf_counter()
    simulate_on_spark(spec, settings, out=on_spark, master=master)
    spark_s = time.perf_counter() - t
    same = local.getvalue() == on_spark.getvalue()
    print(
        f"backtest of the Luckin year, {customers:,} customers, {report.events:,} campaign events, "
        f"{report.grants:,} grants: local {local_s:.1f} s · Spark {spark_s:.1f} s "
        f"({spark_s / local_s:.1f}×) · "
        f"grants.jsonl {'byte-identical' if same else 'DIFFERENT'}  [{'PASS' if same else 'FAIL'}]",
        flush=True,
    )
    return same


if __name__ == "__main__":
    sys.exit(main())
