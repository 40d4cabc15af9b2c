"""``omnibank worker --once`` prints what the loop did and each job's metrics; ``omnibank worker status``
shows every job's lease and last run from the store."""

from __future__ import annotations

import json


def test_once_prints_the_loop_and_the_metrics_and_status_reads_the_store(cli, env) -> None:
    before = cli("worker", "status", "--format", "json")
    assert before.exit_code == 0, before.stderr
    states = {r["job"]: r["state"] for r in map(json.loads, before.stdout.splitlines())}
    assert states == dict.fromkeys(
        ("journeys.apply_log", "journeys.segment_triggers", "journeys.due_steps", "contact.dispatch",
         "leads.escalate", "invites.bind", "service.desk", "surveys.trigger", "cx.alerts",
         "events.compact", "audit.checkpoint"), "never run",
    )  # fmt: skip
    res = cli("worker", "--once")
    assert res.exit_code == 0, res.stderr
    assert "0 log files (0 events), 0 entered" in res.stdout
    for job in ("journeys.apply_log", "journeys.due_steps", "contact.dispatch", "leads.escalate"):
        assert job in res.stdout
    assert "audit.checkpoint" not in res.stdout  # no checkpoint place configured: nothing to run
    after = cli("worker", "status", "--format", "json")
    rows = {r["job"]: r for r in map(json.loads, after.stdout.splitlines())}
    ran = rows["journeys.apply_log"]
    assert (ran["state"], ran["holder"], ran["outcome"], ran["runs"], ran["failures"]) == (
        "idle",
        None,
        "ok",
        1,
        0,
    )
    assert rows["audit.checkpoint"]["state"] == "never run"


def test_once_with_a_failing_job_says_which_and_exits_1(cli, env, monkeypatch) -> None:
    from omnibank.worker import registry
    from tests.worker.test_loop import failing, recording

    registry.load_jobs()  # the platform's jobs registered where they belong, before the stand-in below
    ran: list[str] = []
    jobs = registry.Registry()
    jobs.register(failing(ran, "x.broken"))
    jobs.register(recording(ran, "x.after"))
    monkeypatch.setattr(registry, "REGISTRY", jobs)
    res = cli("worker", "--once")
    assert res.exit_code == 1
    assert "jobs failed: x.broken" in res.stderr
    assert "x.after" in res.stdout and "ValueError" in res.stdout  # the metrics: the kind of the error
    assert "13812345678" not in res.stdout + res.stderr  # never its message
    assert [r.split("@")[0] for r in ran] == ["x.broken", "x.after"]
