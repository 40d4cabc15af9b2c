"""Benchmark (issue #5): coupon issue → claim → redeem over HTTP on PostgreSQL with 200 concurrent clients.

    OMNIBANK_BENCH_DATABASE_URL=postgresql+psycopg://… python benchmarks/bench_api.py [--seconds 20]
    scripts/with-postgres bash -c 'OMNIBANK_BENCH_DATABASE_URL=$OMNIBANK_TEST_DATABASE_URL \
        .venv/bin/python benchmarks/bench_api.py'

A small bank (1,000 customers) and a voucher with ample stock are loaded into a fresh database; `omnibank
serve` runs as its own process (one uvicorn worker per core), and a load process drives it with 200
concurrent keep-alive clients, each looping issue (with an Idempotency-Key) → claim → redeem with an
integration token. It prints requests/s and the p50/p99 latency (targets: ≥ 1,500 requests/s, p99 ≤ 50 ms),
and the server's CPU time per request. Then pgbench runs the statements the API runs for the same three
steps, with as many clients, against the same server: the database's ceiling for this work; our requests/s ÷
pgbench's is printed.

The clients speak HTTP/1.1 over asyncio streams themselves: a general-purpose client (httpx) spent ~9 ms of
CPU a request with 200 connections open, on the same cores as the server, and so measured itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgdb import fresh_database

HERE = Path(__file__).resolve().parent
CLIENTS = 200

# The statements the API runs for the three requests (PostgreSQL's log, one request at a time), with the
# round trip the pool makes when it hands out a connection (SELECT 1) and the same values where it can;
# the audit entries' chaining, batched in the background, is left out (a few statements per batch).
PGBENCH_SCRIPT = """\\set c random(1, 1000)
\\set n :n + 1
SELECT 1;
BEGIN;
INSERT INTO idempotency_keys (actor, key, request_hash, response_status, response_body, created_at)
  VALUES ('token:pgbench', 'k-' || :client_id || '-' || :n, repeat('0', 64), 0, '', now())
  ON CONFLICT (actor, key) DO UPDATE SET request_hash = excluded.request_hash, response_status = 0,
  response_body = '', created_at = excluded.created_at
  WHERE idempotency_keys.created_at < now() - interval '24 hours' RETURNING actor;
SELECT customer_id FROM customers WHERE customer_id = 'C' || lpad(:c::text, 6, '0');
SELECT id FROM budgets WHERE id IN ('api', 'api/rule:manual');
SELECT * FROM coupons WHERE grant_key = 'pgbench:' || :client_id || ':' || :n;
SELECT * FROM benefits WHERE id = 'voucher';
SELECT status FROM suppliers WHERE id = 'luckin';
SAVEPOINT s1;
INSERT INTO coupons (grant_key, campaign, rule, customer_id, benefit_id, face_value_fen, status, granted_at,
  claim_by, valid_from, valid_to, status_at) VALUES ('pgbench:' || :client_id || ':' || :n, 'api', 'manual',
  'C' || lpad(:c::text, 6, '0'), 'voucher', 2600, 'granted', now(), now() + interval '30 days', now(),
  now() + interval '30 days', now()) RETURNING id \\gset
UPDATE benefit_stock SET available = available - 1, granted = granted + 1
  WHERE benefit_id = 'voucher' AND available >= 1;
INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
  VALUES (:id, 'grant', NULL, 'granted', now(), 'token:pgbench', '{"key": "x"}');
RELEASE SAVEPOINT s1;
UPDATE idempotency_keys SET response_status = 201, response_body = repeat('x', 330)
  WHERE actor = 'token:pgbench' AND key = 'k-' || :client_id || '-' || :n;
COMMIT;
SELECT 1;
BEGIN;
UPDATE coupons SET status = CASE WHEN valid_from <= now() THEN 'active' ELSE 'claimed' END, status_at = now()
  WHERE id = :id AND status = 'granted' AND (claim_by IS NULL OR claim_by >= now()) RETURNING *;
INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
  VALUES (:id, 'claim', 'granted', 'claimed', now(), 'token:pgbench', '{}'),
  (:id, 'activate', 'claimed', 'active', now(), 'token:pgbench', '{}');
INSERT INTO audit_entries (at, actor, action, subject_type, subject_id, detail, source, reason)
  VALUES (now(), 'token:pgbench', 'coupon.claim', 'coupon', :id::text, '{"benefit": "voucher"}', 'cli', '');
SELECT customer_id FROM customers WHERE customer_id = 'C' || lpad(:c::text, 6, '0');
COMMIT;
SELECT 1;
BEGIN;
UPDATE coupons SET status = 'redeemed', status_at = now()
  WHERE id = :id AND status = 'active' AND valid_from <= now() AND (valid_to IS NULL OR valid_to >= now())
  RETURNING *;
INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
  VALUES (:id, 'redeem', 'active', 'redeemed', now(), 'token:pgbench', '{}');
INSERT INTO audit_entries (at, actor, action, subject_type, subject_id, detail, source, reason)
  VALUES (now(), 'token:pgbench', 'coupon.redeem', 'coupon', :id::text, '{"benefit": "voucher"}', 'cli', '');
SELECT customer_id FROM customers WHERE customer_id = 'C' || lpad(:c::text, 6, '0');
COMMIT;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class _Connection:
    """One keep-alive HTTP/1.1 connection of a client: a lean request/response loop (a general-purpose
    client such as httpx spends several ms of CPU per request with 200 connections open, on the very
    cores the server runs on; this one spends tens of µs, so the figures are the server's)."""

    def __init__(self, port: int, token: str):
        self.port = port
        self.auth = f"Authorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(
        self, path: str, body: dict[str, object] | None = None, key: str | None = None
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.auth}"
            + (f"Idempotency-Key: {key}\r\n" if key else "")
            + ("Content-Type: application/json\r\n" if body is not None else "")
            + f"Content-Length: {len(payload)}\r\n\r\n"
        )
        try:
            self.writer.write(head.encode() + payload)
            status_line = await self.reader.readline()
            status = int(status_line.split()[1])
            length = 0
            close = False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            data = await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            self.close()
            raise
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def drive(
    port: int, token: str, seconds: float, clients: int, run: str
) -> tuple[int, int, list[float]]:
    """``clients`` loops of issue → claim → redeem for ``seconds``; (requests, errors, latencies in s)."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def call(conn: _Connection, path: str, body: dict[str, object] | None = None,
                   key: str | None = None) -> bytes | None:  # fmt: skip
        nonlocal errors
        t = time.perf_counter()
        try:
            status, data = await asyncio.wait_for(conn.post(path, body, key), 30)
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError, TimeoutError) as exc:
            # a reset or a time-out under overload counts as an error
            conn.close()
            latencies.append(time.perf_counter() - t)
            errors += 1
            if errors == 1:
                print(f"first error: {type(exc).__name__} {exc}", flush=True)
            return None
        latencies.append(time.perf_counter() - t)
        if status >= 300:
            errors += 1
            if errors == 1:
                print(f"first error: {status} {data[:300]!r}", flush=True)
            return None
        return data

    async def one(i: int) -> None:
        conn = _Connection(port, token)
        n = 0
        try:
            while time.perf_counter() < stop:
                n += 1
                customer = f"C{(i * 997 + n) % 1000 + 1:06d}"
                r = await call(conn, "/api/v1/coupons", {"customer_id": customer, "benefit_id": "voucher"},
                               key=f"{run}-{i}-{n}")  # fmt: skip
                if r is None:
                    continue
                coupon = json.loads(r)["id"]
                if await call(conn, f"/api/v1/coupons/{coupon}/claim") is not None:
                    await call(conn, f"/api/v1/coupons/{coupon}/redeem")
        finally:
            conn.close()

    await asyncio.gather(*(one(i) for i in range(clients)))
    return len(latencies), errors, latencies


def process_tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its children (Linux /proc; 0 elsewhere)."""
    total = 0
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid] + ([int(c) for c in children.read_text().split()] if children.exists() else [])
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


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
    cmd = [binary, "-n", "-D", "n=0", "-f", str(script), "-c", str(clients), "-j", "2", "-T", str(seconds),
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
        cpu_before = process_tree_cpu(server.pid)
        t = time.perf_counter()
        n, errors, lat = asyncio.run(drive(port, token, args.seconds, args.clients, "run"))
        took = time.perf_counter() - t
        server_cpu = process_tree_cpu(server.pid) - cpu_before
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
    if n:
        print(f"API server CPU: {server_cpu / n * 1000:.2f} ms a request (all workers; the machine has "
              f"{os.cpu_count()} cores for the server, PostgreSQL and this load generator). With "
              f"{args.clients} clients that wait for each answer, the mean latency is {args.clients} ÷ "
              f"requests/s: a p99 of 50 ms needs over {args.clients / 0.05:,.0f} requests/s.")  # fmt: skip
    ceiling = pgbench(url, int(args.seconds), args.clients)
    if ceiling:
        print(f"pgbench, the same statements: {ceiling:,.0f} request-equivalents/s; ours ÷ pgbench = "
              f"{rate / ceiling:.2f}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
