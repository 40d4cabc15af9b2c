"""Benchmark: load customers.csv (validation, AES-GCM encryption of three fields, blind indexes, upsert).

    python benchmarks/bench_customers.py [--customers 1000000] [--database-url URL]

Target (issue #2): 1M customers in ≤ 60 s on 2 cores, peak memory ≤ 2 GB. Prints the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process plus the largest worker it ran (they overlap in time)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--data", type=Path, default=Path("bench-data"), help="where generated files are kept"
    )
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a fresh data home")
    args = parser.parse_args()

    from omnibank.demo.generator import generate

    src = args.data / f"customers-{args.customers}"
    if not (src / "customers.csv").exists():
        t = time.perf_counter()
        generate(src, customers=args.customers, seed=7, events_per_customer=0.0, progress=False)
        print(f"generated {args.customers:,} customers in {time.perf_counter() - t:.1f} s", flush=True)

    home = Path(tempfile.mkdtemp(prefix="omnibank-bench-"))
    os.environ["OMNIBANK_HOME"] = str(home)
    if args.database_url:
        os.environ["OMNIBANK_DATABASE_URL"] = args.database_url
    from omnibank import config, db
    from omnibank.ingest.service import load_file

    config.reset_settings()
    settings = config.get_settings()
    try:
        for kind in ("orgs", "staff"):
            load_file(kind, src / f"{kind}.csv", settings=settings, progress=False)
        t = time.perf_counter()
        report = load_file("customers", src / "customers.csv", settings=settings, progress=False)
        took = time.perf_counter() - t
        ok = took <= 60 * args.customers / 1e6 and peak_rss_mb() <= 2048
        store = "PostgreSQL" if settings.db_url.startswith("postgresql") else "SQLite"
        print(
            f"customers: {report.loaded:,} loaded ({report.rejected} rejected) into {store} in {took:.1f} s  "
            f"{report.loaded / took:,.0f} rows/s  peak RSS {peak_rss_mb():,.0f} MB  "
            f"[target for 1M: ≤ 60 s, ≤ 2048 MB: {'PASS' if ok else 'MISS'}]",
            flush=True,
        )
        if report.loaded != args.customers:
            print(f"error: expected {args.customers:,} loaded", file=sys.stderr)
            return 1
    finally:
        db.dispose_engines()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
