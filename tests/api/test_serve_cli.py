"""`omnibank serve` starts the API as a real server, in as many processes as asked, over the configured
store, and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_two_workers(env) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "omnibank", "serve", "--port", str(port), "--workers", "2", "--no-access-log"],
        env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.2)
        assert health is not None and health.status_code == 200
        assert health.json()["database"] == "ok" and health.json()["revision"]
        unauthorized = httpx.post(f"http://127.0.0.1:{port}/api/v1/coupons", json={}, timeout=5)
        assert unauthorized.status_code == 401 and unauthorized.json()["code"] == "unauthorized"
        assert "server" not in unauthorized.headers  # no server banner
        workers = [c for c in _children(server.pid)]
        assert len(workers) >= 2
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert "2 processes" in out


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    if not os.path.exists(path):
        return [0, 0]  # not Linux: nothing to count by
    with open(path) as f:
        return [int(c) for c in f.read().split()]
