"""Benchmark the events loader against DuckDB's own JSON-to-Parquet conversion.

    python benchmarks/bench_events.py [--events 10000000] [--file PATH] [--keep]

Without ``--file`` a realistic ``events.jsonl`` of ``--events`` lines is generated first: about 18 months
of a bank's feed in time order (give or take a few minutes), about 1M customers; card transactions with
Chinese merchant names, logins, points, product views, card issuing and redeeming, a few other types
(some carrying a phone number), a few repeated ids and broken lines. Then ``load_events`` is timed into
a fresh data home, and DuckDB's ``COPY (SELECT * FROM read_json(...)) TO 'x.parquet'`` on the same file
for comparison.
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

import duckdb
import numpy as np

from omnibank.config import Settings
from omnibank.events.loader import load_events
from omnibank.kit.crypto import FieldCipher, KeyRing

MERCHANTS = (
    "瑞幸咖啡(衡水人民路店)",
    "星巴克(石家庄万达店)",
    "美团外卖",
    "饿了么",
    "京东商城",
    "天猫超市",
    "拼多多",
    "盒马鲜生",
    "永辉超市",
    "沃尔玛(保定店)",
    "中国石化加油站",
    "中国石油加油站",
    "滴滴出行",
    "携程旅行",
    "海底捞火锅",
    "肯德基",
    "麦当劳",
    "必胜客",
    "喜茶",
    "蜜雪冰城",
    "华润万家",
    "苏宁易购",
    "国美电器",
    "万达影城",
    "中国移动营业厅",
    "中国联通",
    "国家电网电费",
    "衡水老白干专卖店",
    "同仁堂药店",
    "大润发",
)
MCCS = ("5814", "5812", "5411", "5541", "4121", "4722", "5311", "5732", "7832", "4900", "5912")
PRODUCTS = ("luckin_cobrand", "platinum_travel", "youth_card", "gold_classic", "etc_card")
FUNDS = tuple(f"FUND{n:04d}" for n in range(1, 201))
LOGIN_CHANNELS = ("app", "web", "wechat", "app", "app")
EVENT_CHANNELS = ("app", "wechat", "sms", "phone", "branch", "wecom", "web", "partner")
REWARDS = ("coffee_coupon", "movie_ticket", "fuel_voucher", "cash_back_10")

# 2025-01-01T00:00:00Z .. about 18 months of seconds
_START = np.datetime64("2025-01-01T00:00:00", "s")
_SPAN = 548 * 86400


def _chunk(rng: np.random.Generator, first: int, n: int, total: int) -> str:
    kinds = rng.choice(
        8, size=n, p=[0.45, 0.20, 0.12, 0.14, 0.03, 0.03, 0.025, 0.005]
    ).tolist()  # txn, login, points, view, issued, redeem, other, other with a phone
    cust = rng.integers(1, 1_000_001, size=n).tolist()
    # a feed is exported in time order, give or take a few minutes of delivery jitter
    seconds = np.arange(first, first + n, dtype=np.int64) * _SPAN // max(total, 1)
    utc = _START + (seconds + rng.integers(-300, 300, size=n)).astype("timedelta64[s]")
    local = np.datetime_as_string(utc + np.timedelta64(8, "h"), unit="s").tolist()
    utc_s = np.datetime_as_string(utc, unit="s").tolist()
    zone = rng.choice(3, size=n, p=[0.7, 0.2, 0.1]).tolist()
    fen = np.maximum(1, rng.lognormal(np.log(8000), 1.2, size=n).astype(np.int64)).tolist()
    as_number = (rng.random(n) < 0.2).tolist()
    pick = rng.integers(0, 1 << 30, size=n).tolist()
    ids = (np.arange(first, first + n) * 7919 + 1_000_003).tolist()
    repeat = (rng.random(n) < 0.002).tolist()
    broken = (rng.random(n) < 0.0005).tolist()
    lines = []
    for i in range(n):
        eid = ids[i] if not repeat[i] or i == 0 else ids[i - 1]
        z = zone[i]
        ts = local[i] + "+08:00" if z == 0 else (utc_s[i] + "Z" if z == 1 else local[i])
        head = f'{{"event_id":"ev{eid:012d}","customer_id":"C{cust[i]:07d}","ts":"{ts}"'
        k = kinds[i]
        p = pick[i]
        if k == 0:
            f = fen[i]
            amount = f"{f // 100}.{f % 100:02d}"
            amount = amount if as_number[i] else f'"{amount}"'
            line = (
                f'{head},"type":"card.transaction","channel":"partner",'
                f'"card_id":"62220{p % 10_000_000:011d}","amount":{amount},'
                f'"merchant":"{MERCHANTS[p % len(MERCHANTS)]}","mcc":"{MCCS[p % len(MCCS)]}"}}'
            )
        elif k == 1:
            line = f'{head},"type":"app.login","channel":"{LOGIN_CHANNELS[p % 5]}","device":"d{p % 99991}"}}'
        elif k == 2:
            line = f'{head},"type":"points.earned","points":{1 + p % 500},"source":"card_spend"}}'
        elif k == 3:
            line = (
                f'{head},"type":"app.product_view","channel":"app","product_id":"{FUNDS[p % len(FUNDS)]}",'
                f'"duration_s":{(p % 6000) / 10}}}'
            )
        elif k == 4:
            tier = ("classic", "gold", "platinum")[p % 3]
            line = (
                f'{head},"type":"card.issued","channel":"branch","card_id":"62220{p % 10_000_000:011d}",'
                f'"product":"{PRODUCTS[p % len(PRODUCTS)]}","tier":"{tier}",'
                f'"primary":{"true" if p % 5 else "false"},'
                f'"new_customer":{"true" if p % 7 == 0 else "false"}}}'
            )
        elif k == 5:
            line = (
                f'{head},"type":"points.redeem","channel":"app","reward":"{REWARDS[p % len(REWARDS)]}",'
                f'"quantity":{1 + p % 3}}}'
            )
        elif k == 6:
            line = (
                f'{head},"type":"wealth.fund_purchase","channel":"app",'
                f'"fund":"{FUNDS[p % 200]}","units":"{p % 9000}.00"}}'
            )
        else:
            line = (
                f'{head},"type":"service.callback_requested","channel":"phone",'
                f'"phone":"13{p % 1_000_000_000:09d}","topic":"信用卡账单"}}'
            )
        if broken[i]:
            line = line[: len(line) // 2] if p % 2 else line.replace('"ts":"2', '"ts":"x2')
        lines.append(line)
    return "\n".join(lines) + "\n"


def generate(path: Path, events: int, *, seed: int = 20260301) -> None:
    rng = np.random.default_rng(seed)
    step = 200_000
    with path.open("w", encoding="utf-8") as fh:
        for first in range(0, events, step):
            fh.write(_chunk(rng, first, min(step, events - first), events))


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_bytes() -> int:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) * 1024  # Linux reports kilobytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="lines to generate (default 10M)")
    parser.add_argument("--file", type=Path, help="an existing events.jsonl to load instead")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--no-baseline", action="store_true", help="skip the DuckDB read_json comparison")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    try:
        if args.file:
            source = args.file
        else:
            source = work / "events.jsonl"
            t0 = time.perf_counter()
            generate(source, args.events)
            size = source.stat().st_size
            print(
                f"generated {args.events:,} events ({size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f} s"
            )

        settings = Settings(home=work / "home")
        cipher = FieldCipher(KeyRing.generate())
        t0 = time.perf_counter()
        cpu0 = _cpu_seconds()
        report = load_events(settings, source, cipher=cipher, progress=sys.stderr.isatty())
        ours = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        lines = report.loaded + report.rejected + report.duplicates
        rss = _peak_rss_bytes()
        print(
            f"events: {lines:,}  load: {ours:.1f} s  {lines / ours:,.0f} events/s  "
            f"peak RSS {rss / 1e9:.2f} GB  (CPU {cpu:.1f} s on {os.cpu_count()} cores)"
        )
        print(f"  {report.summary_line()}")

        if not args.no_baseline:
            # the same file straight through DuckDB: no checks, no dedup, no partitions (ignore_errors
            # because the generated file holds broken lines on purpose)
            out = work / "duckdb.parquet"
            con = duckdb.connect(":memory:")
            t0 = time.perf_counter()
            con.execute(
                f"COPY (SELECT * FROM read_json({_literal(source)}, format = 'newline_delimited', "
                f"ignore_errors = true)) TO {_literal(out)} (FORMAT parquet)"
            )
            theirs = time.perf_counter() - t0
            con.close()
            print(f"duckdb read_json→parquet: {theirs:.1f} s  ratio {ours / theirs:.2f}")
        # other work on the machine slows both figures down alike; the ratio stays comparable
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
