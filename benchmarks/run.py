"""Run every benchmark, each in its own process (so peak memory is its own), and print the figures.

    python benchmarks/run.py [--quick]

`--quick` runs at a tenth of the sizes the issues set (for a smoke test); the targets are for full size.
Set OMNIBANK_BENCH_DATABASE_URL to a PostgreSQL URL to run the store benchmarks there as well.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tenth of the full sizes")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    runs = [
        [sys.executable, str(HERE / "bench_cli.py")],  # the demo bank's size whatever the scale
        [sys.executable, str(HERE / "bench_console.py")],  # the demo bank (omnibank demo), whatever the scale
        [sys.executable, str(HERE / "bench_share.py"), "--seconds", str(10 // scale or 2)],
        [sys.executable, str(HERE / "bench_assistant.py"), "--entries", str(5_000 // scale)],
        [sys.executable, str(HERE / "bench_customers.py"), "--customers", str(1_000_000 // scale)],
        [sys.executable, str(HERE / "bench_events.py"), "--events", str(10_000_000 // scale)],
        [sys.executable, str(HERE / "bench_segments.py"), "--customers", str(1_000_000 // scale)],
        [
            sys.executable,
            str(HERE / "bench_sla.py"),
            "--tickets",
            str(1_000_000 // scale),
            "--entries",
            str(10_000_000 // scale),
            "--subset",
            str(100_000 // scale),
        ],  # fmt: skip
        [
            sys.executable,
            str(HERE / "bench_invites.py"),
            "--customers",
            str(1_000_000 // scale),
            "--events",
            str(10_000_000 // scale),
        ],  # fmt: skip
        [
            sys.executable,
            str(HERE / "bench_process.py"),
            "--events",
            str(10_000_000 // scale),
            "--cases",
            str(1_000_000 // scale),
        ],  # fmt: skip
        [
            sys.executable,
            str(HERE / "bench_cx_index.py"),
            "--customers",
            str(1_000_000 // scale),
            "--events",
            str(10_000_000 // scale),
        ],  # fmt: skip
        [
            sys.executable,
            str(HERE / "bench_models.py"),
            "--customers",
            str(1_000_000 // scale),
            "--events",
            str(10_000_000 // scale),
        ],  # fmt: skip
        [
            sys.executable,
            str(HERE / "bench_spark.py"),
            "--customers",
            str(1_000_000 // scale),
            "--events",
            str(10_000_000 // scale),
        ],  # fmt: skip (skipped without pyspark)
        [sys.executable, str(HERE / "bench_recommend.py"), "--customers", str(50_000 // scale)],
        [sys.executable, str(HERE / "bench_installment.py")],  # the demo bank, whatever the scale
        [sys.executable, str(HERE / "bench_cx_text.py"), "--comments", str(100_000 // scale)],
        [sys.executable, str(HERE / "bench_cx_alerts.py"), "--events", str(1_000_000 // scale)],
        [
            sys.executable,
            str(HERE / "bench_campaigns.py"),
            "--customers",
            str(1_000_000 // scale),
            "--live-customers",
            str(100_000 // scale),
        ],
        [
            sys.executable,
            str(HERE / "bench_contact.py"),
            "--sends",
            str(1_000_000 // scale),
            "--customers",
            str(200_000 // scale),
        ],  # fmt: skip
    ]
    pg = os.environ.get("OMNIBANK_BENCH_DATABASE_URL")
    if pg:
        runs.insert(2, runs[1] + ["--database-url", pg])
        runs.append([sys.executable, str(HERE / "bench_journeys.py"), "--customers", str(10_000 // scale)])
        runs.append([sys.executable, str(HERE / "bench_api.py"), "--seconds", str(20 // scale or 2)])
    failed = 0
    for cmd in runs:
        print(f"$ {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}", flush=True)
        failed += subprocess.call(cmd) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
