"""Benchmark (issue #16, S4): ``process report`` over a log of 10M events.

    python benchmarks/bench_process.py [--events 10000000] [--cases 1000000] [--keep]

Target: the report (per-step and end-to-end lead times in calendar and business days, open cases, and a
second period side by side) over 10M events ≤ 10 s.

The log is written directly as Parquet files in the log's layout (``events/month=YYYY-MM/*.parquet``, the
log's Arrow schema, time order, zstd, the loader's row groups and dictionary columns), with ``payload`` the
JSON line as the log stores it, built with numpy and pyarrow compute (the loader is benchmarked by
``bench_events.py``). The year 2025: ``--cases`` loan applications going ``loan.application_submitted →
loan.documents_checked → loan.approved → loan.disbursed`` (``application_id``; ~21 days until July, ~4
after; 3% stall), the rest of the events ordinary logins and card spending of 1M customers. Prints the setup
time apart from the timed report, peak memory, and PASS/MISS against the target.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

YEAR = 2025
US = 1_000_000
DAY_US = 86_400 * US
LOCAL_US = 8 * 3600 * US  # Asia/Shanghai has no summer time
Y0_US = int((datetime(YEAR, 1, 1, tzinfo=UTC).timestamp() - 8 * 3600) * US)
CUT_US = int((datetime(YEAR, 7, 1, tzinfo=UTC).timestamp() - 8 * 3600) * US)
TARGET_S = 10.0
STEPS = ("loan.application_submitted", "loan.documents_checked", "loan.approved", "loan.disbursed")
OTHER = ("app.login", "card.transaction")
BEFORE = (4.0, 12.0, 5.0)
AFTER = (1.0, 2.0, 1.0)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _join(*parts: object) -> pa.Array:
    n = next(len(p) for p in parts if not isinstance(p, str))  # type: ignore[arg-type]
    arrays = [pa.array([p] * n, pa.string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


def _padded(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(values).cast(pa.string()), width, "0")


def build(events: int, cases: int, seed: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(UTC µs, type index, case index or -1) of every event, in time order."""
    rng = np.random.default_rng(seed)
    start = Y0_US + rng.integers(0, 365 * DAY_US, cases)
    means = np.where((start < CUT_US)[:, None], np.array(BEFORE), np.array(AFTER))
    gaps = (rng.gamma(4.0, means / 4.0) * DAY_US).astype(np.int64)
    stops = np.where(rng.random(cases) < 0.03, rng.integers(1, 4, cases), 4)  # steps reached
    times = [start] + [start + np.cumsum(gaps, axis=1)[:, k] for k in range(3)]
    loan_us = np.concatenate([times[k][stops > k] for k in range(4)])
    loan_type = np.concatenate([np.full(int((stops > k).sum()), k) for k in range(4)])
    loan_case = np.concatenate([np.arange(cases)[stops > k] for k in range(4)])
    rest = max(0, events - len(loan_us))
    other_us = Y0_US + rng.integers(0, 365 * DAY_US, rest)
    other_type = 4 + rng.integers(0, 2, rest)
    us = np.concatenate([loan_us, other_us])
    kind = np.concatenate([loan_type, other_type])
    case = np.concatenate([loan_case, np.full(rest, -1)])
    order = np.argsort(us, kind="stable")
    return us[order], kind[order], case[order]


def month_table(us: np.ndarray, kind: np.ndarray, case: np.ndarray, first_id: int) -> pa.Table:
    from omnibank.events.log import arrow_schema

    n = len(us)
    types = (*STEPS, *OTHER)
    type_ = pa.array(np.array(types, dtype=object)[kind], pa.string())
    event_id = _join("e", _padded(np.arange(first_id, first_id + n), 9))
    customer_id = _join("C", _padded((np.abs(case) * 7 + us // US) % 1_000_000 + 1, 7))
    local_us = us + LOCAL_US
    ts_text = _join(
        pc.strftime(pa.array(local_us // US, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S"), "+08:00"
    )
    app_id = _join("LN", _padded(np.maximum(case, 0) + 1, 8))
    is_loan = kind < 4
    extra = pc.if_else(
        pa.array(is_loan),
        _join(',"application_id":"', app_id, '"'),
        pc.if_else(pa.array(kind == 5), ',"card_id":"⟨card:0⟩","amount":"35.00","merchant":"瑞幸咖啡"', ""),
    )
    payload = _join('{"event_id":"', event_id, '","type":"', type_, '","customer_id":"', customer_id,
                    '","ts":"', ts_text, '","channel":"app"', extra, "}")  # fmt: skip
    schema = arrow_schema()
    arrays: dict[str, pa.Array] = {
        "event_id": event_id,
        "type": type_,
        "customer_id": customer_id,
        "ts": pa.array(us, pa.timestamp("us", tz="UTC")),
        "local_date": pa.array((local_us // DAY_US).astype(np.int32), pa.date32()),
        "channel": pa.array(["app"] * n, pa.string()),
        "payload": payload,
        "load_id": pa.array(["0bench0000000016"] * n, pa.string()),
        "line_no": pa.array(np.arange(first_id, first_id + n), pa.int64()),
    }
    cols = [arrays[f.name].cast(f.type) if f.name in arrays else pa.nulls(n, f.type) for f in schema]
    return pa.table(cols, schema=schema)


def write_log(folder: Path, us: np.ndarray, kind: np.ndarray, case: np.ndarray) -> None:
    from omnibank.events.log import DICTIONARY_COLUMNS, ROW_GROUP_ROWS

    month = (us + LOCAL_US).astype("datetime64[us]").astype("datetime64[M]")
    written = 0
    for m in np.unique(month):
        lo, hi = np.searchsorted(month, m, "left"), np.searchsorted(month, m, "right")
        table = month_table(us[lo:hi], kind[lo:hi], case[lo:hi], written + 1)
        path = folder / f"month={str(m)[:7]}" / "0bench0000000016-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd", use_dictionary=DICTIONARY_COLUMNS,
                       row_group_size=ROW_GROUP_ROWS)  # fmt: skip
        written += hi - lo


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the data home (printed)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="omnibank-bench-process-")) / "home"
    for key in [k for k in os.environ if k.startswith("OMNIBANK_")]:
        del os.environ[key]
    os.environ["OMNIBANK_HOME"] = str(home)
    from zoneinfo import ZoneInfo

    from omnibank import config
    from omnibank.process.report import Period, make_spec, report

    settings = config.get_settings()
    try:
        t = time.perf_counter()
        cases = min(args.cases, args.events // 4)
        us, kind, case = build(args.events, cases)
        write_log(settings.event_log_dir, us, kind, case)
        setup = time.perf_counter() - t
        print(f"setup: {len(us):,} events ({cases:,} loan applications) written in {setup:.1f} s")
        tz = ZoneInfo("Asia/Shanghai")
        as_of = datetime(YEAR + 1, 1, 10, tzinfo=tz)
        spec = make_spec(STEPS[0], STEPS[-1], steps=STEPS)
        t = time.perf_counter()
        rep = report(settings, spec, now=as_of, as_of=as_of, period=Period(None, date(YEAR, 6, 30)),
                     compare=Period(date(YEAR, 7, 1), date(YEAR, 12, 31)))  # fmt: skip
        seconds = time.perf_counter() - t
        assert rep.compare is not None
        a, b = rep.main.end_to_end.times, rep.compare.end_to_end.times
        print(
            f"process report over {rep.events:,} process events of {len(us):,}: {seconds:.2f} s "
            f"(end to end p50 {a.p50} → {b.p50} days, business {a.business_p50} → {b.business_p50}; "
            f"open {rep.main.open_cases + rep.compare.open_cases:,}); peak RSS {peak_rss_mb():,.0f} MB"
        )
        ok = seconds <= TARGET_S
        print(f"{'PASS' if ok else 'MISS'}: process report over {len(us):,} events ≤ {TARGET_S:.0f} s")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept: {home}")
        else:
            shutil.rmtree(home.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
