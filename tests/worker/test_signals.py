"""``omnibank worker`` in a process of its own, stopped by SIGTERM or SIGINT mid-job: the job finishes, the
next does not start, the leases are released and the process exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omnibank.worker import leases

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys, time, pathlib
from omnibank.worker.registry import Job, JobResult, register
marks = pathlib.Path(sys.argv[1])

def slow(settings, now, limits):
    (marks / "started").write_text("1")
    time.sleep(1.0)
    (marks / "finished").write_text("1")
    return JobResult({"slow": 1})

register(Job(name="test.slow", run=slow))  # before the platform's jobs: the first of the loop
from omnibank.cli import main
sys.argv = ["omnibank", "worker", "--interval", "0.2"]
main()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_current_job_releases_the_leases_and_exits_0(env, tmp_path, signum) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(marks)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ.copy(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not (marks / "started").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the worker did not start its first job"
            time.sleep(0.05)
        rows = leases.rows(env.settings)
        assert rows["test.slow"].holder is not None  # held while it runs
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert (marks / "finished").exists()  # the current job finished
    rows = leases.rows(env.settings)
    assert rows["test.slow"].runs == 1 and rows["test.slow"].last_outcome == "ok"
    assert all(r.holder is None for r in rows.values())
    assert "journeys.apply_log" not in rows  # the loop stopped after the current job
    assert "stopping after the current job" in stderr
