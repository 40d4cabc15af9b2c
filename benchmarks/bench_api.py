"""Benchmark (issue #5): coupon issue → claim → redeem over HTTP on PostgreSQL with 200 concurrent clients.

    OMNIBANK_BENCH_DATABASE_URL=postgresql+psycopg://… python benchmarks/bench_api.py [--seconds 20]
    scripts/with-postgres bash -c 'OMNIBANK_BENCH_DATABASE_URL=$OMNIBANK_TEST_DATABASE_URL \
        .venv/bin/python benchmarks/bench_api.py'

A small bank (1,000 customers) and a voucher with ample stock are loaded into a fresh database; `omnibank
serve` runs as its own process (one uvicorn worker per core), and a load process drives it with 200
concurrent keep-alive clients, each looping issue (with an Idempotency-Key) → claim → redeem with an
integration token. It prints requests/s and the p50/p99 latency (targets: ≥ 1,500 requests/s, p99 ≤ 50 ms).
Then pgbench runs the statements the ledger runs for the same three steps, with as many clients, against the
same server: the database's ceiling for this work; our requests/s ÷ pgbench's is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENTS = 200

PGBENCH_SCRIPT = """\\set c random(1, 1000)
BEGIN;
INSERT INTO coupons (grant_key, campaign, rule, customer_id, benefit_id, face_value_fen, status, granted_at,
  valid_from, status_at) VALUES ('pgbench:' || :client_id || ':' || nextval('pgbench_keys'), 'api', 'manual',
  'C' || lpad(:c::text, 6, '0'), 'voucher', 2600, 'granted', now(), now(), now()) RETURNING id \\gset
UPDATE benefit_stock SET available = available - 1, granted = granted + 1
  WHERE benefit_id = 'voucher' AND available >= 1;
INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
  VALUES (:id, 'grant', NULL, 'granted', now(), 'pgbench', '{}');
COMMIT;
BEGIN;
UPDATE coupons SET status = 'claimed', status_at = now() WHERE id = :id AND status = 'granted';
INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
  VALUES (:id, 'claim', 'granted', 'claimed', now(), 'pgbench', '{}');
COMMIT;
BEGIN;
UPDATE coupons SET status = 'redeemed', status_at = now() WHERE id = :id AND status = 'claimed';
INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
  VALUES (:id, 'redeem', 'claimed', 'redeemed', now(), 'pgbench', '{}');
COMMIT;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(url: str, name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def setup(home: Path, url: str) -> str:
    """Load a small bank and a voucher with ample stock; return an integration token."""
    from datetime import UTC, datetime, timedelta

    from omnibank import config, db
    from omnibank.benefits.service import read_catalogue, store_catalogue
    from omnibank.demo.generator import generate
    from omnibank.ingest.service import load_file
    from omnibank.users import service as users

    os.environ["OMNIBANK_HOME"] = str(home)
    os.environ["OMNIBANK_DATABASE_URL"] = url
    config.reset_settings()
    settings = config.get_settings()
    bank = home / "bank"
    generate(bank, customers=1000, seed=5, events_per_customer=0, progress=False)
    for kind in ("orgs", "staff", "customers"):
        load_file(kind, bank / f"{kind}.csv", settings=settings, progress=False)
    catalogue = home / "catalogue.yaml"
    catalogue.write_text(
        """
suppliers:
  - {id: luckin, name: 瑞幸咖啡}
benefits:
  - id: voucher
    type: voucher
    name: 瑞幸咖啡饮品券
    supplier: luckin
    face_value: "26.00"
    cost: "17.50"
    usage_instructions: 每单限用1张
    redemption_steps: [打开瑞幸咖啡App, 选择饮品, 使用优惠券]
    validity: {valid_days: 30, claim_days: 30}
    lots: [{ref: BENCH-1, quantity: 10000000, unit_cost: "17.50", received_at: 2026-01-02}]
""",
        encoding="utf-8",
    )
    now = datetime.now(UTC)
    with db.unit_of_work(settings) as session:
        store_catalogue(session, read_catalogue(catalogue), tz=settings.tz, now=now)
        _, token = users.create_api_token(
            session,
            name="bench",
            scopes=["coupons:write", "benefits:read", "customers:read"],
            lifetime=timedelta(days=1),
            now=now,
            actor="bench",
        )
    db.dispose_engines()
    return token


async def drive(
    port: int, token: str, seconds: float, clients: int, run: str
) -> tuple[int, int, list[float]]:
    """``clients`` loops of issue → claim → redeem for ``seconds``; (requests, errors, latencies in s)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits,
                                 timeout=30) as client:  # fmt: skip

        async def call(path: str, **kw: object) -> httpx.Response | None:
            nonlocal errors
            t = time.perf_counter()
            try:
                r = await client.post(path, **kw)  # type: ignore[arg-type]
            except httpx.HTTPError as exc:  # a reset or a time-out under overload counts as an error
                latencies.append(time.perf_counter() - t)
                errors += 1
                if errors == 1:
                    print(f"first error: {type(exc).__name__} {exc}", flush=True)
                return None
            latencies.append(time.perf_counter() - t)
            if r.status_code >= 300:
                errors += 1
                if errors == 1:
                    print(f"first error: {r.status_code} {r.text[:300]}", flush=True)
                return None
            return r

        async def one(i: int) -> None:
            n = 0
            while time.perf_counter() < stop:
                n += 1
                customer = f"C{(i * 997 + n) % 1000 + 1:06d}"
                r = await call("/api/v1/coupons", json={"customer_id": customer, "benefit_id": "voucher"},
                               headers={"Idempotency-Key": f"{run}-{i}-{n}"})  # fmt: skip
                if r is None:
                    continue
                coupon = r.json()["id"]
                if await call(f"/api/v1/coupons/{coupon}/claim") is not None:
                    await call(f"/api/v1/coupons/{coupon}/redeem")

        await asyncio.gather(*(one(i) for i in range(clients)))
    return len(latencies), errors, latencies


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


def pgbench(url: str, seconds: int, clients: int) -> float | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    binary = pg_bin("pgbench")
    if binary is None:
        print("pgbench not found: no database ceiling printed")
        return None
    u = make_url(url)
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("CREATE SEQUENCE IF NOT EXISTS pgbench_keys"))
    eng.dispose()
    script = Path(tempfile.mkdtemp()) / "coupon.sql"
    script.write_text(PGBENCH_SCRIPT, encoding="utf-8")
    cmd = [binary, "-n", "-f", str(script), "-c", str(clients), "-j", "2", "-T", str(seconds),
           "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
           u.database or "postgres"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("tps ="):
            return 3 * float(line.split()[2])  # a transaction of the script is 3 API requests' work
    print("pgbench failed:", out.stderr.strip().splitlines()[-1:] or out.stdout[-200:])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes")
    args = parser.parse_args()
    base = os.environ.get("OMNIBANK_BENCH_DATABASE_URL")
    if not base:
        print("bench_api: skipped, it needs PostgreSQL (set OMNIBANK_BENCH_DATABASE_URL)")
        return 0
    url = fresh_database(base, "omnibank_bench_api")
    home = Path(tempfile.mkdtemp(prefix="omnibank-bench-api-"))
    token = setup(home, url)
    port = free_port()
    env = {**os.environ, "OMNIBANK_HOME": str(home), "OMNIBANK_DATABASE_URL": url,
           "OMNIBANK_API_RATE_PER_MINUTE": "100000000"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "omnibank.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(args.workers), "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    try:
        import httpx

        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        asyncio.run(drive(port, token, 3, args.clients, "warm-up"))
        t = time.perf_counter()
        n, errors, lat = asyncio.run(drive(port, token, args.seconds, args.clients, "run"))
        took = time.perf_counter() - t
    finally:
        server.terminate()
        server.wait(30)
    lat.sort()
    rate = n / took
    p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
    ok = rate >= 1500 and p99 <= 50
    print(
        f"API on PostgreSQL, {args.clients} clients, {args.workers} workers: {n:,} requests in "
        f"{took:.1f} s = {rate:,.0f} requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors  "
        f"[target ≥ 1,500/s, p99 ≤ 50 ms: {'PASS' if ok else 'MISS'}]",
        flush=True,
    )
    ceiling = pgbench(url, int(args.seconds), args.clients)
    if ceiling:
        print(f"pgbench, the same statements: {ceiling:,.0f} request-equivalents/s; ours ÷ pgbench = "
              f"{rate / ceiling:.2f}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
