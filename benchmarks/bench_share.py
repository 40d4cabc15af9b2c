"""Benchmark (issue #15, M4): ``GET /s/{token}`` redirects on the embedded store (SQLite).

    python benchmarks/bench_share.py [--seconds 10] [--clients 50] [--workers 2]

A small bank (the demo generator's orgs and staff, invite codes issued, 200 share links) in a fresh data
home; ``omnibank serve --workers N`` in its own process; a load process keeps ``--clients`` keep-alive
connections busy, each request a link at random with a user agent of its own (so clicks are counted and
written, not only deduplicated). Target: ≥ 2,000 redirects/s on two cores (server and load generator share
them). Afterwards the server is stopped gracefully and the clicks stored are counted: every distinct
(link, device) pair of the run must be there (the buffer is written on stop).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_api import free_port, process_tree_cpu, run  # noqa: E402

TARGET_RATE = 2000


def setup(home: Path, links: int) -> list[str]:
    from datetime import UTC, datetime

    from omnibank import config, db
    from omnibank.demo.generator import generate
    from omnibank.ingest.service import load_file
    from omnibank.invites import codes, share
    from omnibank.orgs.models import Staff

    os.environ["OMNIBANK_HOME"] = str(home)
    config.reset_settings()
    settings = config.get_settings()
    db.upgrade()
    bank = home / "bank"
    generate(bank, customers=200, seed=5, events_per_customer=0, progress=False)
    for kind in ("orgs", "staff"):
        load_file(kind, bank / f"{kind}.csv", settings=settings, progress=False)
    now = datetime.now(UTC)
    tokens = []
    with db.unit_of_work(settings) as session:
        codes.issue(session, now=now, actor="bench")
        staff = [s.staff_id for s in session.query(Staff).order_by(Staff.staff_id).limit(links // 2)]
        for i in range(links):
            link = share.make_link(session, staff_id=staff[i % len(staff)], kind="scene",
                                   target_id=f"scene_{i // len(staff)}", channel="wechat", now=now,
                                   actor="bench")  # fmt: skip
            tokens.append(link.token)
    db.dispose_engines()
    return tokens


async def drive(
    port: int, tokens: list[str], seconds: float, clients: int
) -> tuple[int, int, set[tuple[str, int]]]:
    """(redirects, errors, (token, user agent) pairs sent) of ``clients`` keep-alive loops for ``seconds``."""
    done = errors = 0
    pairs: set[tuple[str, int]] = set()
    stop = time.perf_counter() + seconds

    async def one(i: int) -> None:
        nonlocal done, errors
        rng = random.Random(i)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                token, agent = rng.choice(tokens), rng.randrange(1000)
                writer.write(
                    f"GET /s/{token} HTTP/1.1\r\nHost: bank\r\nUser-Agent: bench/{agent}\r\n\r\n".encode()
                )
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if status == 302:
                    done += 1
                    pairs.add((token, agent))
                else:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(clients)))
    return done, errors, pairs


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--links", type=int, default=200)
    args = parser.parse_args()
    for key in [k for k in os.environ if k.startswith("OMNIBANK_")]:
        del os.environ[key]
    home = Path(tempfile.mkdtemp(prefix="omnibank-bench-share-")) / "home"
    tokens = setup(home, args.links)
    port = free_port()
    env = {**os.environ, "OMNIBANK_HOME": str(home), "OMNIBANK_SHARE_RATE_PER_MINUTE": "100000000"}
    server = subprocess.Popen(
        [sys.executable, "-m", "omnibank", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(args.workers), "--no-access-log"],
        env=env, stderr=subprocess.DEVNULL,
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
        run(drive(port, tokens, 2, args.clients))  # warm-up: every link cached in every worker
        cpu = process_tree_cpu(server.pid)
        t = time.perf_counter()
        n, errors, pairs = run(drive(port, tokens, args.seconds, args.clients))
        took = time.perf_counter() - t
        used = process_tree_cpu(server.pid) - cpu
    finally:
        server.terminate()
        server.wait(60)
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{home / 'omnibank.db'}")
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*), count(DISTINCT token || device) FROM share_clicks")
        ).one()
    rate = n / took
    ok = rate >= TARGET_RATE and not errors
    print(
        f"/s/ redirects on SQLite, {args.workers} workers, {args.clients} clients: {n:,} in {took:.1f} s = "
        f"{rate:,.0f}/s, {errors} errors; server CPU "
        f"{used / max(n, 1) * 1000:.3f} ms a redirect on "
        f"{os.cpu_count()} cores shared with the load generator\n"
        f"  clicks stored after a graceful stop: {stored[0]:,} ({stored[1]:,} link × device pairs; the run's "
        f"pairs {len(pairs):,}, the warm-up's are among them)\n"
        f"  [target ≥ {TARGET_RATE:,}/s: {'PASS' if ok else 'MISS'}]",
        flush=True,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
