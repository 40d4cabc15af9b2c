"""Benchmark (issue #17, X1): the experience index of a 40-indicator map over 1M customers and 10M events.

    python benchmarks/bench_cx_index.py [--customers 1000000] [--events 10000000] [--by branch]
                                        [--data DIR | --keep]

Target: ``compute_index`` by branch for one month ≤ 10 s.

Setup (not timed): a migrated store in a temporary data home; a profile snapshot of ``--customers``
customers (200 branches) written straight as the segment engine's Parquet snapshot at the store's data
versions (loading a million customers through the store would take minutes and measure the loader, not the
index); ``--events`` events of November 2026 in the log's layout (``events/month=2026-11/*.parquet``, the
log's Arrow schema, time order, zstd, the loader's row groups and dictionary columns), ``payload`` the JSON
line: logins and failed logins, card spending, branch visits with ``branch_id`` and ``wait_min``, survey
answers (``nps_card``, ``csat_branch``, ``ces_service``), card applications, issues and activations,
message receipts and complaints. The map: 5 stages × 2 touchpoints × 2 experience points × 2 indicators, the
40 cycling through every source kind (surveys, event ratios and means, per 1,000 customers, ``within``
cases, ``customers`` shares with event functions, tickets), the four uses of each differing in their days
or windows so that nothing is computed once for two indicators. Prints setup and timed figures, peak
memory and
PASS/MISS. ``--data DIR`` keeps the generated data home there and reuses it on later runs of the same size.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

US = 1_000_000
DAY_US = 86_400 * US
LOCAL_US = 8 * 3600 * US
M0_US = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * US) - LOCAL_US  # 2026-11-01 00:00 +08:00
TARGET_S = 10.0
BRANCHES = 200
#: event type → share of the events
MIX = {
    "app.login": 0.38,
    "app.login_failed": 0.02,
    "card.transaction": 0.30,
    "branch.visit": 0.06,
    "survey.response": 0.06,
    "card.application_submitted": 0.03,
    "card.application_approved": 0.025,
    "card.application_declined": 0.005,
    "card.issued": 0.03,
    "card.activated": 0.025,
    "message.delivered": 0.04,
    "message.clicked": 0.01,
    "complaint.filed": 0.005,
    "app.product_view": 0.01,
}

TEMPLATES = [
    "survey: {id: nps_card, metric: nps}\n{p}direction: higher_better\n{p}target: 50\n{p}floor: -20",
    "survey: {id: csat_branch, metric: csat}\n{p}direction: higher_better\n{p}target: 95\n{p}floor: 60",
    "survey: {id: ces_service, metric: ces}\n{p}direction: lower_better\n{p}target: 2\n{p}floor: 6",
    "events: {count: app.login_failed, per: app.login}\n{p}direction: lower_better\n{p}target: 1\n"
    "{p}floor: 10",
    "events: {mean: wait_min, of: branch.visit}\n{p}direction: lower_better\n{p}target: 5\n{p}floor: 30",
    "events: {count: card.transaction, per: customers}\n{p}direction: higher_better\n{p}target: 5000\n"
    "{p}floor: 500",
    "within: {start: card.application_submitted, end: card.application_approved, days: 3}\n"
    "{p}direction: higher_better\n{p}target: 90\n{p}floor: 30",
    "events: {count: message.clicked, per: message.delivered}\n{p}direction: higher_better\n{p}target: 30\n"
    "{p}floor: 2",
    "customers: {of: \"events('card.issued', 365) > 0\", share: \"events('card.transaction', 30) > 0\"}\n"
    "{p}direction: higher_better\n{p}target: 70\n{p}floor: 20",
    "tickets: {metric: complaints_per_1000}\n{p}direction: lower_better\n{p}target: 1\n{p}floor: 10",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def map_yaml() -> str:
    """5 stages × 2 touchpoints × 2 points × 2 indicators; template k for indicator k (mod 10)."""
    lines = ["id: bench", "name: 基准旅程", "stages:"]
    k = 0
    for s in range(5):
        lines += [f"  - id: s{s}", f"    name: 阶段{s}", "    weight: 0.2", "    touchpoints:"]
        for t in range(2):
            lines += [f"      - id: t{s}{t}", f"        name: 触点{s}{t}", "        weight: 0.5",
                      "        experience_points:"]  # fmt: skip
            for e in range(2):
                lines += [f"          - id: p{s}{t}{e}", f"            name: 体验点{s}{t}{e}",
                          "            weight: 0.5", "            indicators:"]  # fmt: skip
                for _ in range(2):
                    p = " " * 16
                    # the 4 uses of a template differ (days, windows), as a real map's indicators would
                    days = (3, 7, 14, 30)[k // len(TEMPLATES)]
                    body = TEMPLATES[k % len(TEMPLATES)].replace("{p}", p)
                    body = body.replace("days: 3}", f"days: {days}}}").replace("', 30)", f"', {days * 2})")
                    lines += [f"              - id: i{k:02d}", f"{p}name: 指标{k:02d}", f"{p}weight: 0.5",
                              p + body]  # fmt: skip
                    k += 1
    return "\n".join(lines) + "\n"


def _join(*parts: object) -> pa.Array:
    n = next(len(p) for p in parts if not isinstance(p, str))  # type: ignore[arg-type]
    arrays = [pa.array([p] * n, pa.string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


def _padded(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(values).cast(pa.string()), width, "0")


def write_profiles(folder: Path, customers: int, rng: np.random.Generator) -> None:
    from omnibank.segments.engine import snapshot_schemas

    profiles, tags, merges, scores = snapshot_schemas()
    n = customers
    branch = _join("B", _padded(rng.integers(0, BRANCHES, n), 3))
    cols = {
        "customer_id": _join("C", _padded(np.arange(1, n + 1), 7)),
        "gender": pa.array(np.where(rng.random(n) < 0.5, "M", "F")),
        "birth_date": pa.array(rng.integers(-7000, 12000, n).astype(np.int32), pa.date32()),
        "branch_id": branch,
        "rm_id": pa.nulls(n, pa.string()),
        "aum_fen": pa.array(rng.integers(0, 200_000_000, n), pa.int64()),
        "occupation": pa.array(["employee"] * n),
        "risk_tolerance": pa.array(["C3"] * n),
        "channel_pref": pa.array(["app"] * n),
        "marketing_consent": pa.array(rng.random(n) < 0.7),
        "registered_at": pa.array(rng.integers(10000, 20000, n).astype(np.int32), pa.date32()),
        "org_path": _join("HQ/", branch),
    }
    folder.mkdir(parents=True)
    pq.write_table(pa.table([cols[f.name].cast(f.type) for f in profiles], schema=profiles),
                   folder / "profiles.parquet")  # fmt: skip
    pq.write_table(tags.empty_table(), folder / "tags.parquet")
    pq.write_table(merges.empty_table(), folder / "merges.parquet")
    pq.write_table(scores.empty_table(), folder / "scores.parquet")


def write_events(
    path: Path,
    events: int,
    customers: int,
    rng: np.random.Generator,
    *,
    start_us: int = M0_US,
    days: int = 30,
    mix: dict[str, float] = MIX,
    weights: np.ndarray | None = None,
    amounts: bool = False,
    first_id: int = 1,
) -> None:
    """``events`` events of the types and shares of ``mix`` over ``days`` days from ``start_us`` (UTC µs of
    a bank-local midnight), customers drawn uniformly, or by ``weights`` (one per customer, summing to 1);
    with ``amounts``, ``card.transaction`` events carry an ``amount`` (yuan, 2 decimals). The defaults are
    this benchmark's month (``bench_models.py`` writes several months of its own mix with these)."""
    from omnibank.events.log import DICTIONARY_COLUMNS, ROW_GROUP_ROWS, arrow_schema

    names = list(mix)
    kind = rng.choice(len(names), events, p=np.array(list(mix.values())) / sum(mix.values()))
    us = start_us + rng.integers(0, days * DAY_US, events)
    order = np.argsort(us, kind="stable")
    us, kind = us[order], kind[order]
    if weights is None:
        cust = rng.integers(1, customers + 1, events)
    else:
        cust = rng.choice(customers, events, p=weights) + 1
    n = events
    type_ = pa.array(np.array(names, dtype=object)[kind], pa.string())
    event_id = _join("e", _padded(np.arange(first_id, first_id + n), 9))
    customer_id = _join("C", _padded(cust, 7))

    def is_(t: str) -> pa.Array:
        return pa.array(kind == names.index(t) if t in names else np.zeros(n, dtype=bool))

    n_ = rng.integers(0, 11, n)
    survey = np.array(["nps_card", "csat_branch", "ces_service"], dtype=object)[rng.integers(0, 3, n)]
    csat, ces = _padded(rng.integers(1, 6, n), 1), _padded(rng.integers(1, 8, n), 1)
    survey_json = _join(',"survey":"', pa.array(survey, pa.string()), '","nps":', _padded(n_, 1),
                        ',"csat":', csat, ',"ces":', ces)  # fmt: skip
    visit_json = _join(',"branch_id":"B', _padded(rng.integers(0, BRANCHES, n), 3), '","wait_min":',
                       _padded(rng.integers(0, 45, n), 1))  # fmt: skip
    app_json = _join(',"application_id":"A', _padded(cust, 7), '"')
    extra = pc.if_else(
        is_("survey.response"),
        survey_json,
        pc.if_else(
            is_("branch.visit"),
            visit_json,
            pc.if_else(pc.starts_with(type_, "card.application"), app_json, ""),
        ),
    )
    amount = pa.nulls(n, pa.decimal128(18, 2))
    if amounts:  # lognormal spending, median ¥60 (drawn only here: the default data stays the same)
        words = np.zeros((n, 2), dtype=np.int64)  # decimal128's unscaled 128-bit integer: fen, scale 2
        words[:, 0] = np.maximum(np.rint(rng.lognormal(np.log(6000), 1.0, n)), 1)
        is_txn = is_("card.transaction")
        yuan = pa.Array.from_buffers(pa.decimal128(18, 2), n, [None, pa.py_buffer(words)])
        amount = pc.if_else(is_txn, yuan, amount)
        amount_json = _join(',"amount":"', pc.cast(amount, pa.string()), '"')
        extra = pc.if_else(is_txn, amount_json, extra)
    local_us = us + LOCAL_US
    ts_text = _join(
        pc.strftime(pa.array(local_us // US, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S"), "+08:00"
    )
    payload = _join('{"event_id":"', event_id, '","type":"', type_, '","customer_id":"', customer_id,
                    '","ts":"', ts_text, '","channel":"app"', extra, "}")  # fmt: skip
    card = pc.if_else(pc.starts_with(type_, "card."), _join("K", _padded(cust, 7)), pa.nulls(n, pa.string()))
    arrays: dict[str, pa.Array] = {
        "event_id": event_id,
        "type": type_,
        "customer_id": customer_id,
        "ts": pa.array(us, pa.timestamp("us", tz="UTC")),
        "local_date": pa.array((local_us // DAY_US).astype(np.int32), pa.date32()),
        "channel": pa.array(np.where(rng.random(n) < 0.8, "app", "wechat"), pa.string()),
        "amount": amount,
        "card_id": card,
        "payload": payload,
        "load_id": pa.array(["0bench0000000017"] * n, pa.string()),
        "line_no": pa.array(np.arange(1, n + 1), pa.int64()),
    }
    schema = arrow_schema()
    cols = [arrays[f.name].cast(f.type) if f.name in arrays else pa.nulls(n, f.type) for f in schema]
    table = pa.table(cols, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table, path, compression="zstd", use_dictionary=DICTIONARY_COLUMNS, row_group_size=ROW_GROUP_ROWS
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--by", default="branch")
    parser.add_argument("--keep", action="store_true", help="keep the data home (printed)")
    parser.add_argument("--data", type=Path, help="a folder to keep the generated data home in, and reuse")
    args = parser.parse_args()
    if args.data is not None:
        home = args.data.resolve() / f"home-{args.customers}-{args.events}"
        args.keep = True
    else:
        home = Path(tempfile.mkdtemp(prefix="omnibank-bench-cx-")) / "home"
    ready = home / "bench-ready"
    for key in [k for k in os.environ if k.startswith("OMNIBANK_")]:
        del os.environ[key]
    os.environ["OMNIBANK_HOME"] = str(home)
    import json

    from omnibank import config, db
    from omnibank.cx.index import compute_index
    from omnibank.cx.maps import parse_map
    from omnibank.db import versions

    settings = config.get_settings()
    try:
        t = time.perf_counter()
        if not ready.exists():
            db.upgrade()
            rng = np.random.default_rng(17)
            with db.unit_of_work(settings) as session:
                now_versions = versions.current(session)
            snapshots = settings.home_dir / "snapshots"
            shutil.rmtree(snapshots, ignore_errors=True)
            write_profiles(snapshots / "v1", args.customers, rng)
            (snapshots / "state.json").write_text(json.dumps({"folder": "v1", "versions": now_versions}))
            write_events(settings.event_log_dir / "month=2026-11" / "0bench0000000017-0.parquet", args.events,
                         args.customers, rng)  # fmt: skip
            ready.touch()
        spec = parse_map(map_yaml(), source="bench_map.yaml")
        n_ind = len(list(spec.indicators()))
        print(f"setup: {args.customers:,} customers, {args.events:,} events, a map of {n_ind} indicators "
              f"in {time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
        t, cpu = time.perf_counter(), time.process_time()
        with db.unit_of_work(settings) as session:
            result = compute_index(session, settings, spec, by=args.by, period="2026-11")
        seconds = time.perf_counter() - t
        cpu = time.process_time() - cpu  # all threads: with others on the machine, wall time says less
        scores = [s for s in result.map_scores().values() if s is not None]
        print(
            f"index by {args.by}: {len(result.groups):,} groups × "
            f"{len(result.rows) // max(len(result.groups), 1)} rows in {seconds:.2f} s (CPU {cpu:.2f} s) "
            f"(map index {min(scores):.1f} … {max(scores):.1f}); "
            f"peak RSS {peak_rss_mb():,.0f} MB"
        )
        ok = seconds <= TARGET_S
        print(f"{'PASS' if ok else 'MISS'}: experience index, {n_ind} indicators, "
              f"{args.customers:,} customers, {args.events:,} events ≤ {TARGET_S:.0f} s")  # fmt: skip
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept: {home}")
        else:
            shutil.rmtree(home.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
