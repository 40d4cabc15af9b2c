"""Two workers with connections of their own never run one job at the same time: the lease (a conditional
UPDATE/INSERT on ``worker_leases``). Written for PostgreSQL (row-level concurrency, several workers against
one store); it holds on SQLite too, where the store has one writer at a time."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from omnibank.config import Settings
from omnibank.worker import leases
from omnibank.worker.loop import Runner
from omnibank.worker.registry import Job, JobResult, Limits, Registry

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
LOOPS = 25


def test_two_workers_never_run_one_job_at_once(env) -> None:
    running = 0
    most = 0
    runs_by: dict[str, int] = {}
    guard = threading.Lock()

    def job(settings: Settings, _now: datetime, _l: Limits) -> JobResult:
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)
        time.sleep(0.02)  # long enough for the other worker to try meanwhile
        with guard:
            running -= 1
        return JobResult({"done": 1})

    registry = Registry()
    registry.register(Job(name="x.exclusive", run=job))
    runners = [Runner(env.settings, jobs=registry, holder=f"w{i}") for i in (1, 2)]
    gate = threading.Barrier(2)
    errors: list[BaseException] = []

    def loop(runner: Runner) -> None:
        try:
            gate.wait()
            for _ in range(LOOPS):
                runner.once(T0)  # the same moment for both: only the lease decides
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert most == 1
    for r in runners:
        m = r.metrics.jobs["x.exclusive"]
        runs_by[r.holder] = m.runs
        assert m.runs + m.skipped == LOOPS and m.failures == 0
    row = leases.rows(env.settings)["x.exclusive"]
    assert row.runs == sum(runs_by.values()) and row.holder is None
