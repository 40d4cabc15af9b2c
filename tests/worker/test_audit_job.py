"""The audit checkpoint as a job of the worker: exported every ``OMNIBANK_AUDIT_CHECKPOINT_SECONDS`` (the
store's schedule, on the injected clock), once more when the worker stops, only where a place is set."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from omnibank import config
from omnibank.worker.loop import Runner
from omnibank.worker.registry import load_jobs
from tests.audit.test_audit_attacks import reveals

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_checkpoints_on_schedule_and_at_a_graceful_stop(cli, env, tmp_path, monkeypatch) -> None:
    (job,) = [j for j in load_jobs() if j.name == "audit.checkpoint"]
    assert Runner(env.settings, jobs=[job], holder="w0").once(T0).ran == []  # no place configured
    target = tmp_path / "off-volume" / "cp.jsonl"
    monkeypatch.setenv("OMNIBANK_AUDIT_CHECKPOINT_PATH", str(target))
    monkeypatch.setenv("OMNIBANK_AUDIT_CHECKPOINT_SECONDS", "300")
    config.reset_settings()
    reveals(2)
    moment = T0
    runner = Runner(env.settings, jobs=[job], holder="w1", clock=lambda: moment)
    assert runner.once(T0).checkpoints == 1
    reveals(1, first=3)
    assert runner.once(T0 + timedelta(seconds=299)).skipped == ["audit.checkpoint"]  # not due yet
    assert runner.once(T0 + timedelta(seconds=300)).checkpoints == 1
    reveals(1, first=4)
    moment = T0 + timedelta(seconds=301)
    runner.finish(graceful=True)  # the last entries are covered before the worker goes
    assert [json.loads(line)["seq"] for line in target.read_text().splitlines()] == [2, 3, 4]
    verdict = cli("audit", "verify", "--checkpoint", str(target))
    assert verdict.exit_code == 0, verdict.stderr
    assert "3 checkpoints matched" in verdict.stdout
