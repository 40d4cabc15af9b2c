"""Kill -9 the live engine in the middle of its work and start it again, twice at once: the grants end exactly
as an uninterrupted run (the simulation) gives them — nothing lost, nothing twice."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from omnibank.campaigns.models import CampaignOffset
from omnibank.campaigns.simulate import simulate
from omnibank.campaigns.spec import load_campaign
from omnibank.db import unit_of_work
from omnibank.demo.generator import generate
from omnibank.ingest.service import load_file
from tests.campaigns.helpers import LUCKIN


def omnibank(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "omnibank", *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_kill_minus_nine_then_restart(cli, env, tmp_path) -> None:
    files = generate(tmp_path / "bank", customers=800, seed=3, progress=False)
    events = files.paths[3]
    load_file("events", events, settings=env.settings, progress=False)
    assert cli("campaign", "start", str(LUCKIN)).exit_code == 0

    def applied() -> int:
        with unit_of_work(env.settings) as session:
            return int(session.scalar(select(func.count()).select_from(CampaignOffset)) or 0)

    for _ in range(2):  # kill it twice, each time just after it committed a file: in the middle of the next
        before = applied()
        proc = omnibank("campaign", "run")
        deadline = time.monotonic() + 60
        while proc.poll() is None and applied() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    done_before_restart = applied()
    # two runs at once finish it: the killed runs' partitions are taken over at once (their processes are
    # gone), and whichever run takes a partition, no file of it is applied twice (how the two share the
    # partitions depends on when each starts: tests/campaigns/test_partitions.py pins that down)
    both = [omnibank("campaign", "run"), omnibank("campaign", "run")]
    for finished in both:
        out, err = finished.communicate(timeout=180)
        assert finished.returncode == 0, err.decode()

    export = tmp_path / "live.jsonl"
    assert cli("campaign", "grants", "--out", str(export)).exit_code == 0
    live = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    buf = io.BytesIO()
    simulate(load_campaign(LUCKIN), env.settings, events=Path(events), out=buf)
    simulated = [json.loads(line) for line in buf.getvalue().splitlines()]

    def key(g: dict) -> tuple:
        return (
            g["granted_at"],
            g["customer_id"],
            g["rule"],
            g["benefit"],
            g.get("stage") or 0,
            g["valid_from"],
        )

    assert len(live) > 100
    assert sorted(live, key=key) == sorted(simulated, key=key)
    # the kills landed mid-run: the log has 12 monthly files, each applied once to each of 8 partitions
    assert 0 < done_before_restart < 12 * 8
    assert applied() == 12 * 8
