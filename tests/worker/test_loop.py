"""The worker's loop over a registry of jobs, on the real store: registration order, back-off, the shared
schedule, leases taken over when they expire, metrics; the clock is injected, never read."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from omnibank.config import Settings
from omnibank.worker import leases
from omnibank.worker.loop import Runner, work, work_once
from omnibank.worker.registry import EACH_LOOP, Job, JobResult, Limits, Registry

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)


def recording(log: list[str], name: str, **counts: int) -> Job:
    def run(_settings: Settings, now: datetime, _limits: Limits) -> JobResult:
        log.append(f"{name}@{now:%H:%M:%S}")
        return JobResult(counts)

    return Job(name=name, run=run)


def failing(log: list[str], name: str, *, times: int = 1_000, **kw: object) -> Job:
    def run(_settings: Settings, now: datetime, _limits: Limits) -> JobResult:
        log.append(f"{name}@{now:%H:%M:%S}")
        if len([x for x in log if x.startswith(name)]) <= times:
            raise ValueError("customer 13812345678 refused")  # personal data in the message
        return JobResult({"recovered": 1})

    return Job(name=name, run=run, backoff=timedelta(seconds=10), **kw)  # type: ignore[arg-type]


def test_jobs_run_in_registration_order_and_their_counts_add_up(env) -> None:
    ran: list[str] = []
    registry = Registry()
    for name in ("b.second", "a.first", "c.third"):
        registry.register(recording(ran, name, things=2))
    report = work_once(env.settings, now=T0, jobs=registry)
    assert ran == ["b.second@10:00:00", "a.first@10:00:00", "c.third@10:00:00"]
    assert report.ran == ["b.second", "a.first", "c.third"]
    assert report.things == 6 and report.counts["things"] == 6 and report.nothing_counted == 0
    # each loop: they run again on the next loop, in the same order
    work_once(env.settings, now=T0 + timedelta(seconds=1), jobs=registry)
    assert ran[3:] == ["b.second@10:00:01", "a.first@10:00:01", "c.third@10:00:01"]


def test_a_registry_refuses_a_second_job_of_the_same_name() -> None:
    registry = Registry()
    registry.register(recording([], "x.job"))
    with pytest.raises(ValueError, match="registered already"):
        registry.register(recording([], "x.job"))


def test_a_failing_job_backs_off_exponentially_and_the_others_keep_running(env, caplog) -> None:
    ran: list[str] = []
    registry = Registry()
    registry.register(recording(ran, "a.before"))
    registry.register(failing(ran, "b.broken", times=2))
    registry.register(recording(ran, "c.after"))
    runner = Runner(env.settings, jobs=registry, holder="w1")
    with caplog.at_level(logging.WARNING, logger="omnibank.worker"):
        first = runner.once(T0)
    assert first.failed == ["b.broken"] and first.ran == ["a.before", "c.after"]
    assert "b.broken failed: ValueError at test_loop.py" in caplog.text
    assert "13812345678" not in caplog.text  # the error's kind and place, never its message
    row = leases.rows(env.settings)["b.broken"]
    assert (row.last_outcome, row.last_error, row.failures_in_row, row.holder) == (
        "failed",
        "ValueError",
        1,
        None,
    )
    assert row.next_run_at == T0 + timedelta(seconds=10)
    assert runner.once(T0 + timedelta(seconds=9)).skipped == ["b.broken"]  # still backing off
    second = runner.once(T0 + timedelta(seconds=10))
    assert second.failed == ["b.broken"]  # fails again: the delay doubles
    assert leases.rows(env.settings)["b.broken"].next_run_at == T0 + timedelta(seconds=30)
    assert runner.once(T0 + timedelta(seconds=29)).skipped == ["b.broken"]
    third = runner.once(T0 + timedelta(seconds=30))
    assert third.ran == ["a.before", "b.broken", "c.after"] and third.recovered == 1
    row = leases.rows(env.settings)["b.broken"]
    assert (row.last_outcome, row.last_error, row.failures_in_row, row.failures, row.runs) == (
        "ok",
        None,
        0,
        2,
        3,
    )
    assert row.next_run_at is None  # each loop again
    assert [x for x in ran if x.startswith("c.")] == [
        "c.after@10:00:00", "c.after@10:00:09", "c.after@10:00:10", "c.after@10:00:29", "c.after@10:00:30",
    ]  # fmt: skip
    m = runner.metrics.jobs
    assert (m["b.broken"].runs, m["b.broken"].failures, m["b.broken"].skipped) == (3, 2, 2)
    assert (m["c.after"].runs, m["c.after"].failures, m["c.after"].skipped) == (5, 0, 0)
    assert m["b.broken"].last_error is None and m["b.broken"].counts["recovered"] == 1


def test_the_back_off_is_capped() -> None:
    job = Job(
        name="x", run=lambda *_: JobResult(), backoff=timedelta(seconds=10), max_backoff=timedelta(minutes=1)
    )
    assert [job.delay_after(n).total_seconds() for n in range(1, 7)] == [10, 20, 40, 60, 60, 60]


def test_a_periodic_job_runs_on_its_schedule_across_workers(env) -> None:
    ran: list[str] = []

    def run(_s: Settings, now: datetime, _l: Limits) -> JobResult:
        ran.append(f"{now:%H:%M}")
        return JobResult()

    registry = Registry()
    registry.register(Job(name="x.every5", run=run, every=timedelta(minutes=5)))
    one, two = (Runner(env.settings, jobs=registry, holder=h) for h in ("w1", "w2"))
    for minute in range(11):
        (one if minute % 2 else two).once(T0 + timedelta(minutes=minute))
    assert ran == ["10:00", "10:05", "10:10"]  # not every 5 minutes per worker: the schedule is the store's


def test_an_expired_lease_is_taken_over(env) -> None:
    ran: list[str] = []
    registry = Registry()
    registry.register(Job(name="x.job", run=recording(ran, "x.job").run, lease=timedelta(seconds=60)))
    # a worker took the job and was killed: its lease stays in the store until it expires
    assert leases.take(env.settings, "x.job", "killed:1", now=T0, lease=timedelta(seconds=60))
    other = Runner(env.settings, jobs=registry, holder="w2")
    assert other.once(T0 + timedelta(seconds=59)).skipped == ["x.job"]
    assert leases.rows(env.settings)["x.job"].holder == "killed:1"
    assert other.once(T0 + timedelta(seconds=60)).ran == ["x.job"]
    row = leases.rows(env.settings)["x.job"]
    assert (row.holder, row.expires_at, row.last_holder, row.runs) == (None, None, "w2", 1)
    # the killed worker's late release changes nothing
    late = leases.Finished(T0, T0, 1, None)
    assert not leases.release(
        env.settings, "x.job", "killed:1", late, every=None, backoff=lambda n: timedelta(1)
    )
    assert leases.rows(env.settings)["x.job"].runs == 1


def test_a_job_run_side_by_side_takes_no_lease(env) -> None:
    ran: list[str] = []
    registry = Registry()
    registry.register(Job(name="x.shared", run=recording(ran, "x.shared").run, exclusive=False))
    assert leases.take(env.settings, "x.shared", "someone", now=T0, lease=timedelta(minutes=5))
    assert Runner(env.settings, jobs=registry, holder="w1").once(T0).ran == ["x.shared"]
    assert Runner(env.settings, jobs=registry, holder="w2").once(T0).ran == ["x.shared"]
    assert leases.rows(env.settings)["x.shared"].runs == 2


def test_when_and_on_stop(env) -> None:
    ran: list[str] = []
    registry = Registry()
    registry.register(Job(name="x.never", run=recording(ran, "x.never").run, when=lambda _s: False))
    registry.register(
        Job(name="x.final", run=recording(ran, "x.final").run, every=timedelta(hours=1), on_stop=True)
    )  # fmt: skip
    runner = Runner(env.settings, jobs=registry, holder="w1", clock=lambda: T0 + timedelta(minutes=1))
    runner.once(T0)
    runner.finish(graceful=False)
    assert ran == ["x.final@10:00:00"]
    runner.finish(graceful=True)  # a graceful stop runs it once more, whatever its schedule
    assert ran == ["x.final@10:00:00", "x.final@10:01:00"]
    assert "x.never" not in leases.rows(env.settings)


def test_work_stops_when_asked_between_jobs_and_releases_its_leases(env) -> None:
    import threading

    stop = threading.Event()
    ran: list[str] = []

    def stopping(_s: Settings, now: datetime, limits: Limits) -> JobResult:
        ran.append("asks")
        stop.set()  # as SIGTERM would, while this job runs
        assert limits.stopping()
        return JobResult()

    registry = Registry()
    registry.register(Job(name="a.asks", run=stopping))
    registry.register(recording(ran, "b.next"))
    runner = work(env.settings, once=False, batch=10, interval=60, clock=lambda: T0, jobs=registry, stop=stop)
    assert ran == ["asks"]  # the current job finished; the next did not start; no sleep
    assert runner.metrics.jobs["a.asks"].runs == 1
    assert all(r.holder is None for r in leases.rows(env.settings).values())


def test_work_once_leaves_out_dispatch_and_escalation_when_asked(env) -> None:
    ran: list[str] = []
    registry = Registry()
    for name in ("journeys.x", "contact.dispatch", "leads.escalate"):
        registry.register(recording(ran, name))
    work_once(env.settings, now=T0, jobs=registry, dispatch=False)
    work_once(env.settings, now=T0, jobs=registry, escalate=False)
    assert ran == [
        "journeys.x@10:00:00", "leads.escalate@10:00:00", "journeys.x@10:00:00", "contact.dispatch@10:00:00"
    ]  # fmt: skip


def test_each_loop_is_the_default_schedule() -> None:
    job = Job(name="x", run=lambda *_: JobResult())
    assert job.every == EACH_LOOP and job.interval(Settings()) is None


def test_work_once_runs_every_job_then_raises_the_first_error(env) -> None:
    ran: list[str] = []
    registry = Registry()
    registry.register(failing(ran, "a.broken"))
    registry.register(recording(ran, "b.after"))
    with pytest.raises(ValueError, match="refused"):
        work_once(env.settings, now=T0, jobs=registry)
    assert ran == ["a.broken@10:00:00", "b.after@10:00:00"]
    report = work_once(env.settings, now=T0 + timedelta(seconds=10), jobs=registry, raise_errors=False)
    assert report.failed == ["a.broken"] and report.ran == ["b.after"]
