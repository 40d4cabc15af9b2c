"""`omnibank serve` in a process of its own, over the test's store, with what it logs captured in a file:
a second server process for the tests that need one (a revocation must reach it at once), and the log the
tests grep for personal data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.api.server import free_port


@contextmanager
def omnibank_serve(log: Path, *args: str) -> Iterator[str]:
    """Run ``omnibank serve`` (access log on unless ``args`` turn it off) until the block ends; yields the
    base URL. Everything the server writes (its access log included) goes to ``log``, complete once the
    block has ended."""
    port = free_port()
    with log.open("w", encoding="utf-8") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "omnibank", "serve", "--port", str(port), *args],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"omnibank serve did not start:\n{log.read_text(encoding='utf-8')}")
            time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
