"""The worker's loop: every registered job, in registration order, on each loop; leases, back-off, metrics
and a graceful stop in one place, whatever the job.

A run of a job:

1. skipped where its ``when`` says it has nothing to do here (no audit checkpoint place configured);
2. an exclusive job is taken with a lease (:mod:`omnibank.worker.leases`): held by another worker, not due
   yet (its schedule) or backing off (its last runs failed), it is skipped on this loop; a job run side by
   side (due journey steps) only checks that it is due;
3. it runs with the loop's ``now`` (injected: tests pass theirs and never read the wall clock); a renewer
   thread extends its lease while it runs, so a long run keeps it and a killed worker's lease ends soon;
4. an error is caught: the job is logged by name and error kind (never the message: it may hold a
   customer's data), retried after an exponential back-off, and the loop goes on with the next job;
5. its outcome and next due time are written as the lease is released.

SIGTERM or SIGINT sets a flag the loop looks at between jobs (and a job working in batches between
batches): the current job finishes, the jobs marked ``on_stop`` run once more, the leases are released and
the worker returns; the command exits 0. A second signal interrupts at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from omnibank.config import Settings
from omnibank.kit.clock import Clock, system_clock
from omnibank.worker import leases
from omnibank.worker.metrics import Metrics, error_kind
from omnibank.worker.registry import Job, Limits, load_jobs

log = logging.getLogger("omnibank.worker")

#: the jobs ``work_once(dispatch=False)`` and ``work_once(escalate=False)`` leave out
DISPATCH_JOB, ESCALATE_JOB = "contact.dispatch", "leads.escalate"


def worker_id() -> str:
    """This process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LoopReport:
    """What one loop did (or several, added up): the jobs' counts by name, and which jobs ran, failed or were
    skipped. A count reads as an attribute too: ``report.entered`` is ``report.counts["entered"]`` (0 when
    no job counted it), so callers of the journeys' worker read it as they always did."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.ran: list[str] = []
        self.failed: list[str] = []
        self.skipped: list[str] = []
        self.busy = False

    def add(self, other: LoopReport) -> None:
        self.counts.update(other.counts)
        self.ran += other.ran
        self.failed += other.failed
        self.skipped += other.skipped
        self.busy = self.busy or other.busy

    def group(self, prefix: str) -> dict[str, int]:
        """The counts named ``prefix.something``, by ``something`` (``sends.defer`` → ``defer``)."""
        head = prefix + "."
        return {k[len(head) :]: v for k, v in self.counts.items() if k.startswith(head)}

    def __getattr__(self, name: str) -> int:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.counts.get(name, 0)


class _Renewer:
    """Extends a lease every third of its length while its job runs (on a connection of its own)."""

    def __init__(self, settings: Settings, job: Job, holder: str, now: datetime):
        self.settings, self.job, self.holder = settings, job, holder
        self.now, self.started = now, time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease:{job.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        every = self.job.lease.total_seconds() / 3
        while not self._done.wait(every):
            moment = self.now + timedelta(seconds=time.monotonic() - self.started)  # the loop's clock
            try:
                job = self.job
                kept = leases.renew(self.settings, job.name, self.holder, now=moment, lease=job.lease)
                if not kept:
                    log.warning("job %s: lease lost to another worker while running", self.job.name)
                    return
            except Exception as exc:  # the store may be away for a moment: the next turn retries
                log.warning("job %s: lease renewal failed (%s)", self.job.name, error_kind(exc))

    def stop(self) -> None:
        self._done.set()
        self._thread.join(30)


def _where(exc: BaseException) -> str:
    """Where an error was raised (file:line in function), without its message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{Path(f.filename).name}:{f.lineno} in {f.name}"


class Runner:
    """Runs jobs for one worker: its holder name (unique per runner, so two runners of one process are two
    workers), its metrics, its stop flag."""

    def __init__(
        self,
        settings: Settings,
        *,
        jobs: Iterable[Job] | None = None,
        holder: str | None = None,
        clock: Clock = system_clock,
        limits: Limits | None = None,
        skip: Iterable[str] = (),
        stop: threading.Event | None = None,
    ):
        self.settings = settings
        self.jobs = list(jobs if jobs is not None else load_jobs())
        self.holder = holder or f"{worker_id()}:{secrets.token_hex(3)}"
        self.clock = clock
        self.stop = stop or threading.Event()
        base = limits or Limits()
        self.limits = Limits(base.batch, base.max_batches, stopping=self.stop.is_set)
        self.skip = frozenset(skip)
        self.metrics = Metrics()
        self.total = LoopReport()
        self.errors: list[Exception] = []  # the errors of the last loop (work_once raises the first)
        self._held: set[str] = set()

    def once(self, now: datetime | None = None) -> LoopReport:
        """One loop: each job in registration order (until a stop is asked)."""
        now = now or self.clock()
        report = LoopReport()
        self.errors = []
        for job in self.jobs:
            if self.stop.is_set():
                break
            self.run_job(job, now, report)
        self.total.add(report)
        return report

    def run_job(self, job: Job, now: datetime, report: LoopReport, *, anyway: bool = False) -> None:
        """Run one job if it is this worker's to run now (``anyway``: whatever its schedule)."""
        if job.name in self.skip or (job.when is not None and not job.when(self.settings)):
            return
        name, settings = job.name, self.settings
        if job.exclusive:
            if not leases.take(settings, name, self.holder, now=now, lease=job.lease, due_only=not anyway):
                self.metrics.skipped(name)
                report.skipped.append(name)
                return
            self._held.add(name)
        elif not anyway and not leases.due(settings, name, now=now):
            self.metrics.skipped(name)
            report.skipped.append(name)
            return
        renewer = _Renewer(settings, job, self.holder, now) if job.exclusive else None
        started = time.perf_counter()
        error: str | None = None
        counts: Counter[str] = Counter()
        try:
            result = job.run(settings, now, self.limits)
            counts.update({k: v for k, v in result.counts.items() if v})
            report.busy = report.busy or result.busy
        except Exception as exc:
            error = error_kind(exc)
            self.errors.append(exc)
            # by kind and place, never the message (it may carry a customer's data); retried after a back-off
            log.warning("job %s failed: %s at %s; retried after a back-off", name, error, _where(exc))
        finally:
            if renewer is not None:
                renewer.stop()
        elapsed = time.perf_counter() - started
        duration_ms = round(elapsed * 1000)
        self.metrics.ran(name, duration_ms=duration_ms, error=error, counts=counts)
        report.counts.update(counts)
        (report.failed if error else report.ran).append(name)
        run = leases.Finished(now, now + timedelta(seconds=elapsed), duration_ms, error)
        try:
            recorded = leases.release(
                settings, name, self.holder if job.exclusive else None, run, every=job.interval(settings),
                backoff=job.delay_after,
            )  # fmt: skip
        except Exception as exc:  # the lease expires by itself; the run's work is committed
            log.warning("job %s: its lease could not be released (%s)", name, error_kind(exc))
            return
        self._held.discard(name)
        if not recorded:
            log.warning("job %s: the lease expired while it ran (another worker has it)", name)

    def finish(self, *, graceful: bool) -> None:
        """At the end: the ``on_stop`` jobs once more (graceful stop), and no lease left held."""
        if graceful:
            report = LoopReport()
            for job in self.jobs:
                if job.on_stop:
                    self.run_job(job, self.clock(), report, anyway=True)
            self.total.add(report)
        for name in sorted(self._held):
            try:
                leases.free(self.settings, name, self.holder)
            except Exception as exc:
                log.warning("job %s: its lease could not be released (%s)", name, error_kind(exc))
        self._held.clear()


def work_once(
    settings: Settings,
    *,
    now: datetime | None = None,
    batch: int = 500,
    max_batches: int | None = None,
    dispatch: bool = True,
    escalate: bool = True,
    jobs: Iterable[Job] | None = None,
    holder: str | None = None,
    raise_errors: bool = True,
) -> LoopReport:
    """One loop of the worker over the registered jobs (or ``jobs``): the journeys' log, segment triggers and
    due steps (until none are due, or ``max_batches`` of ``batch``), the outbox (not with
    ``dispatch=False``), overdue leads (not with ``escalate=False``), the audit checkpoint when due.

    A failing job is recorded and backs off as in the worker, and the jobs after it run; then the first
    error is raised (``raise_errors=False``: only recorded), so that a caller sees it."""
    skip = [n for n, keep in ((DISPATCH_JOB, dispatch), (ESCALATE_JOB, escalate)) if not keep]
    runner = Runner(settings, jobs=jobs, holder=holder, limits=Limits(batch, max_batches), skip=skip)
    try:
        report = runner.once(now or system_clock())
    finally:
        runner.finish(graceful=False)
    if raise_errors and runner.errors:
        raise runner.errors[0]
    return report


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside: SIGTERM and SIGINT set ``stop`` (the loop ends after the current job); a second one
    interrupts at once. Only the main thread can take signals: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("%s: stopping after the current job", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def work(
    settings: Settings,
    *,
    once: bool,
    batch: int,
    interval: float,
    on_loop: Callable[[LoopReport], Any] | None = None,
    clock: Clock = system_clock,
    jobs: Iterable[Job] | None = None,
    holder: str | None = None,
    stop: threading.Event | None = None,
) -> Runner:
    """The worker: loops until stopped (a signal, or ``stop`` set), or once; sleeps ``interval`` seconds
    after a loop in which no job said work was left. Returns the runner (its totals and metrics)."""
    runner = Runner(settings, jobs=jobs, holder=holder, clock=clock, limits=Limits(batch), stop=stop)
    with stop_on_signals(runner.stop):
        try:
            while not runner.stop.is_set():
                r = runner.once(clock())
                if on_loop is not None:
                    on_loop(r)
                if once:
                    break
                if not r.busy:
                    runner.stop.wait(interval)
        except BaseException:
            runner.finish(graceful=False)
            raise
        runner.finish(graceful=runner.stop.is_set())
    return runner
