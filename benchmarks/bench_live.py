"""Benchmark: `omnibank campaign run` on PostgreSQL with 1 and with 2 processes at once (issue 20).

    scripts/with-postgres bash -c 'OMNIBANK_BENCH_DATABASE_URL=$OMNIBANK_TEST_DATABASE_URL \\
        .venv/bin/python benchmarks/bench_live.py [--customers 100000] [--data DIR]'

A bank is generated once into ``--data`` (``omnibank demo generate``: a year of ~28 events a customer) and
loaded into the event log of a fresh data home and a database of its own; the Luckin co-branded campaign
(``examples/campaigns/luckin_cobrand.yaml``, grants issued as coupons of its catalogue, 8 partitions) is
started and applied by ``omnibank campaign run`` processes, first one alone, then (on a fresh database) two
at once, each taking free partitions under a lease. Printed: each run's wall time and campaign events/s,
the grants (the same with one and two processes, and no key twice), and the speed-up. Target on this
2-core machine: two processes ≥ 1.6× one's events/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent / "examples" / "campaigns" / "luckin_cobrand.yaml"
CATALOGUE = HERE.parent / "examples" / "benefits" / "catalogue.yaml"


def omnibank(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "omnibank", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def checked(proc: subprocess.Popen[bytes]) -> str:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{proc.args}: exit {proc.returncode}\n{err.decode(errors='replace')[-2000:]}")
    return out.decode()


def prepared(events: Path, url: str, label: str, partitions: int) -> dict[str, str]:
    """A data home with the events loaded, the catalogue stored and the campaign started."""
    from omnibank.db.databases import fresh_database

    home = Path(tempfile.mkdtemp(prefix=f"omnibank-bench-live-{label}-"))
    env = {**os.environ, "OMNIBANK_HOME": str(home)}
    env["OMNIBANK_DATABASE_URL"] = fresh_database(url, f"omnibank_bench_live_{label}")
    checked(omnibank(env, "load", "events", str(events)))
    checked(omnibank(env, "benefits", "load", str(CATALOGUE)))
    checked(omnibank(env, "campaign", "start", str(SPEC), "--partitions", str(partitions)))
    return env


def counts(env: dict[str, str]) -> tuple[int, int, int]:
    """(campaign events applied, grants, distinct grant keys) as stored."""
    from sqlalchemy import create_engine, text

    engine = create_engine(env["OMNIBANK_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            events = conn.execute(text("SELECT coalesce(sum(events), 0) FROM campaigns")).scalar_one()
            grants, keys = conn.execute(
                text("SELECT count(*), count(DISTINCT key) FROM campaign_grants")
            ).one()
        return int(events), int(grants), int(keys)
    finally:
        engine.dispose()


def timed_run(env: dict[str, str], processes: int) -> float:
    t = time.perf_counter()
    procs = [omnibank(env, "campaign", "run") for _ in range(processes)]
    for p in procs:
        checked(p)
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--partitions", type=int, default=8, help="the campaign's partitions")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="runs at once, in turn")
    args = parser.parse_args()
    url = os.environ.get("OMNIBANK_BENCH_DATABASE_URL")
    if not url:
        print("bench_live: set OMNIBANK_BENCH_DATABASE_URL to a PostgreSQL URL (see the docstring)")
        return 2
    from omnibank.demo.generator import generate

    src = args.data / f"live-{args.customers}"
    if not (src / "events.jsonl").exists():
        generate(src, customers=args.customers, seed=2026, progress=False)
    rates, grants = {}, {}
    for processes in args.processes:
        env = prepared(src / "events.jsonl", url, f"{processes}w", args.partitions)
        took = timed_run(env, processes)
        events, made, keys = counts(env)
        rates[processes], grants[processes] = events / took, made
        print(
            f"live on PostgreSQL, {processes} process{'es' if processes > 1 else ''}: "
            f"{events:,} campaign events in {took:.1f} s: {events / took:,.0f} events/s, {made:,} grants"
            f"{'' if made == keys else f' ({made - keys:,} KEYS TWICE)'}",
            flush=True,
        )
        shutil.rmtree(env["OMNIBANK_HOME"], ignore_errors=True)
    if set(rates) != {1, 2}:
        return 0
    speedup = rates[2] / rates[1]
    same = grants[1] == grants[2]
    print(
        f"two processes ÷ one = {speedup:.2f}×; grants {'the same' if same else 'DIFFERENT'}  "
        f"[target ≥ 1.6×: {'PASS' if speedup >= 1.6 and same else 'MISS'}]",
        flush=True,
    )
    return 0 if speedup >= 1.6 and same else 1


if __name__ == "__main__":
    sys.exit(main())
