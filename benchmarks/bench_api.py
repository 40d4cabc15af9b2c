"""Benchmark (issue #5): coupon issue → claim → redeem over HTTP on PostgreSQL with 200 concurrent clients.

    OMNIBANK_BENCH_DATABASE_URL=postgresql+psycopg://… python benchmarks/bench_api.py [--seconds 20]
    scripts/with-postgres bash -c 'OMNIBANK_BENCH_DATABASE_URL=$OMNIBANK_TEST_DATABASE_URL \
        .venv/bin/python benchmarks/bench_api.py'

A small bank (1,000 customers) and a voucher with ample stock are loaded into a fresh database; `omnibank
serve --workers N` runs as its own process (one worker per core), and a load process drives it with 200
keep-alive clients, each looping issue (with an Idempotency-Key) → claim → redeem with an integration token.

Two runs. Flat out, each client sends its next request as soon as it has its answer: the most the server
does (target ≥ 1,500 requests/s). Paced, the 200 clients together offer 1,500 requests/s on a fixed
schedule, and each latency counts from when its request was due (target p99 ≤ 50 ms). Why two: 200 clients
that each wait for their answer and never pause keep 200 requests in the server, so their mean latency is
200 ÷ requests/s (Little's law), 133 ms at 1,500/s; a p99 of 50 ms that way needs over 4,000 requests/s on
two cores shared with PostgreSQL and the load generator. The target, read as 200 clients sustaining
1,500 requests/s with a p99 of 50 ms, is the paced run (wrk2 and locust, whose users pause, measure so).

It prints the CPU a request costs in the server, PostgreSQL and the load generator, then runs pgbench with
the statements the API runs for the same three steps, on as many connections as the server holds: the
database's ceiling for this work; our requests/s ÷ pgbench's is printed.

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
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from omnibank.db.databases import fresh_database

HERE = Path(__file__).resolve().parent
CLIENTS = 200
T = TypeVar("T")
TARGET_RATE = 1500

# The statements the API runs for the three requests on PostgreSQL (the fast path, one round trip each, plus
# the read of the benefit's terms and a coupon id before an issue), with the same values where it can (an
# audit entry each, with a MAC of the right length); the audit entries' chaining and sealing, batched in the
# background, is left out (a few statements per batch).
PGBENCH_SCRIPT = """\\set c random(1, 1000)
\\set n :n + 1
SELECT nextval(pg_get_serial_sequence('coupons', 'id')) AS coupon_id, face_value_fen, claim_days, valid_days
  FROM benefits WHERE id = 'voucher' AND status = 'active' AND type <> 'points' \\gset
SELECT omnibank_grant_fast(:coupon_id::bigint, 'pgbench:' || :client_id::text || ':' || :n::text, 'api',
  'manual', 'C' || lpad(:c::text, 6, '0'), 'voucher', :face_value_fen::bigint, NULL, :claim_days::integer,
  :valid_days::integer, now(), now() + interval '30 days', now() + interval '30 days', 'token:pgbench',
  '{"key": "x"}', ARRAY['api', 'api/rule:manual'], NULL, 'token:pgbench',
  'k-' || :client_id::text || '-' || :n::text, repeat('0', 64), now() - interval '24 hours',
  repeat('x', 330), 'api:127.0.0.1', repeat('x', 110),
  'm1:' || md5(random()::text) || ':' || repeat('0', 64), NULL);
SELECT * FROM omnibank_coupon_move(:coupon_id::bigint, 'claim', now(), 'token:pgbench', NULL, NULL,
  'api:127.0.0.1', NULL, NULL, NULL, NULL, 'm1d:' || md5(random()::text) || ':' || repeat('0', 64), NULL);
SELECT * FROM omnibank_coupon_move(:coupon_id::bigint, 'redeem', now(), 'token:pgbench', NULL, NULL,
  'api:127.0.0.1', NULL, NULL, NULL, NULL, 'm1d:' || md5(random()::text) || ':' || repeat('0', 64), NULL);
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(home: Path, url: str) -> str:
    """Load a small bank and a voucher with ample stock; return an integration token."""
    from datetime import UTC, datetime, timedelta

    from omnibank import config, db
    from omnibank.benefits.loading import read_catalogue, store_catalogue
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
            bank_wide=True,
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
    port: int, token: str, seconds: float, clients: int, run: str, rate: float | None = None
) -> tuple[int, int, list[float]]:
    """``clients`` loops of issue → claim → redeem for ``seconds``; (requests, errors, latencies in s).

    Without ``rate`` each client sends its next request as soon as it has the answer (closed loop: the most
    the server does). With ``rate`` (requests/s, all clients together) each client's requests are due on a
    fixed schedule, ``clients / rate`` s apart, and a latency counts from when the request was due, not from
    when it could be sent: a late answer delays the client's next request, and that wait counts as latency
    (no coordinated omission, as wrk2 measures)."""
    latencies: list[float] = []
    errors = 0
    begin = time.perf_counter()
    stop = begin + seconds
    interval = clients / rate if rate else 0.0

    async def call(conn: _Connection, path: str, body: dict[str, object] | None = None,
                   key: str | None = None, due: float | None = None) -> bytes | None:  # fmt: skip
        nonlocal errors
        t = time.perf_counter()
        if due is not None:
            if due > t:
                await asyncio.sleep(due - t)
            t = due
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
        # clients start spread over one interval, so the schedule is even from the first request
        due = begin + interval * i / clients if rate else None

        def next_due() -> float | None:
            nonlocal due
            if due is None:
                return None
            current = due
            due += interval
            return current

        try:
            while time.perf_counter() < stop:
                n += 1
                customer = f"C{(i * 997 + n) % 1000 + 1:06d}"
                r = await call(conn, "/api/v1/coupons", {"customer_id": customer, "benefit_id": "voucher"},
                               key=f"{run}-{i}-{n}", due=next_due())  # fmt: skip
                if r is None:
                    continue
                coupon = json.loads(r)["id"]
                if await call(conn, f"/api/v1/coupons/{coupon}/claim", due=next_due()) is not None:
                    await call(conn, f"/api/v1/coupons/{coupon}/redeem", due=next_due())
        finally:
            conn.close()

    await asyncio.gather(*(one(i) for i in range(clients)))
    return len(latencies), errors, latencies


def _cpu_seconds(stat: str) -> float:
    """User + system CPU seconds in the text of a /proc/<pid>/stat."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its children (Linux /proc; 0 elsewhere)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid] + ([int(c) for c in children.read_text().split()] if children.exists() else [])
    total = 0.0
    for p in pids:
        try:
            total += _cpu_seconds(Path(f"/proc/{p}/stat").read_text())
        except OSError:
            continue
    return total


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


def pgbench(url: str, seconds: int, clients: int) -> float | None:
    from sqlalchemy.engine import make_url

    binary = pg_bin("pgbench")
    if binary is None:
        print("pgbench not found: no database ceiling printed")
        return None
    u = make_url(url)
    script = Path(tempfile.mkdtemp()) / "coupon.sql"
    script.write_text(PGBENCH_SCRIPT, encoding="utf-8")
    cmd = [binary, "-n", "-D", "n=0", "-f", str(script), "-c", str(clients), "-j", "2",
           "-T", str(seconds),
           "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
           u.database or "postgres"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("tps ="):
            return 3 * float(line.split()[2])  # a transaction of the script is 3 API requests' work
    print("pgbench failed:", out.stderr.strip().splitlines()[-1:] or out.stdout[-200:])
    return None


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run the load on uvloop (installed with the server's uvicorn[standard]): the load generator shares the
    cores with the server and PostgreSQL, and uvloop's event loop costs it about half the CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)


def postgres_cpu() -> float:
    """CPU seconds used so far by this machine's PostgreSQL processes (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if "(postgres)" in stat or "(postmaster)" in stat:
            total += _cpu_seconds(stat)
    return total


def percentile(sorted_values: list[float], q: float) -> float:
    return (
        sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))] * 1000
        if sorted_values
        else float("nan")
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20, help="length of each of the two runs")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests/s offered in the paced run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes")
    args = parser.parse_args()
    base = os.environ.get("OMNIBANK_BENCH_DATABASE_URL")
    if not base:
        print("bench_api: skipped, it needs PostgreSQL (set OMNIBANK_BENCH_DATABASE_URL)")
        return 0
    from omnibank.config import Settings

    connections = Settings().api_db_connections
    url = fresh_database(base, "omnibank_bench_api")
    home = Path(tempfile.mkdtemp(prefix="omnibank-bench-api-"))
    token = setup(home, url)
    port = free_port()
    env = {**os.environ, "OMNIBANK_HOME": str(home), "OMNIBANK_DATABASE_URL": url,
           "OMNIBANK_API_RATE_PER_MINUTE": "100000000"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "omnibank", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(args.workers), "--no-access-log"],
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
        run(drive(port, token, 3, args.clients, "warm-up"))
        cpu = (process_tree_cpu(server.pid), postgres_cpu(), sum(os.times()[:2]))
        t = time.perf_counter()
        n, errors, lat = run(drive(port, token, args.seconds, args.clients, "run"))
        took = time.perf_counter() - t
        used = (process_tree_cpu(server.pid) - cpu[0], postgres_cpu() - cpu[1], sum(os.times()[:2]) - cpu[2])
        t = time.perf_counter()
        paced_n, paced_errors, paced = run(
            drive(port, token, args.seconds, args.clients, "paced", rate=args.rate)
        )
        paced_took = time.perf_counter() - t
    finally:
        server.terminate()
        server.wait(30)
    lat.sort()
    paced.sort()
    rate = n / took
    paced_rate = paced_n / paced_took
    p99 = percentile(paced, 0.99)
    ok = rate >= TARGET_RATE and paced_rate >= 0.98 * args.rate and p99 <= 50 and not (errors or paced_errors)
    print(
        f"API on PostgreSQL, {args.clients} clients, {args.workers} workers of {connections} connections:\n"
        f"  flat out (each client sends on as soon as it has its answer): {n:,} requests in {took:.1f} s = "
        f"{rate:,.0f} requests/s, p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms, "
        f"{errors} errors\n"
        f"  paced at {args.rate:,.0f} requests/s (latency from when each request was due): {paced_rate:,.0f} "
        f"requests/s, p50 {percentile(paced, 0.5):.1f} ms, p99 {p99:.1f} ms, {paced_errors} errors\n"
        f"  [target ≥ {TARGET_RATE:,}/s with p99 ≤ 50 ms: {'PASS' if ok else 'MISS'}]",
        flush=True,
    )
    if n:
        print(f"CPU a request (flat out): API server {used[0] / n * 1000:.2f} ms (all workers), PostgreSQL "
              f"{used[1] / n * 1000:.2f} ms, this load generator {used[2] / n * 1000:.2f} ms, on "
              f"{os.cpu_count()} cores for all three. Flat out, {args.clients} clients that wait for each "
              f"answer see a mean latency of {args.clients} ÷ requests/s.")  # fmt: skip
    ceiling = pgbench(url, int(args.seconds), args.workers * connections)
    if ceiling:
        print(f"pgbench, the same statements on {args.workers * connections} connections: {ceiling:,.0f} "
              f"request-equivalents/s; ours (flat out) ÷ pgbench = {rate / ceiling:.2f}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
