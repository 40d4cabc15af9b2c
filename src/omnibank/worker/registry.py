"""Where the domains register their background jobs.

A domain that has work to do in the background writes a ``jobs.py`` that calls :func:`register` with a
:class:`Job`: its name (``domain.what``), its schedule (each loop, or every so often) and a function
``run(settings, now, limits) -> JobResult`` that calls the domain's own services and commits itself, as a
CLI command does. The worker imports the modules named in :data:`JOB_MODULES` (with importlib, by name)
and runs their jobs in the order they registered.

This module imports no domain: layers point down, so the domains import ``omnibank.worker.registry`` and
the worker knows them only as the names in that one list.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from datetime import datetime

    from omnibank.config import Settings

#: the modules whose import registers the jobs, in the order the worker runs them
JOB_MODULES: tuple[str, ...] = (
    "omnibank.journeys.jobs",
    "omnibank.contact.jobs",
    "omnibank.leads.jobs",
    "omnibank.invites.jobs",
    "omnibank.service.jobs",
    "omnibank.surveys.jobs",
    "omnibank.cx.jobs",
    "omnibank.events.jobs",
    "omnibank.audit.jobs",
)

#: a job that runs on every loop of the worker
EACH_LOOP: Final = "each loop"


@dataclass(frozen=True)
class Limits:
    """How much a job may do in one run: ``batch`` items a transaction (``omnibank worker --batch``), at most
    ``max_batches`` transactions (None: until nothing is left), and whether the worker is stopping (a job
    that works in batches looks between them and ends early)."""

    batch: int = 500
    max_batches: int | None = None
    stopping: Callable[[], bool] = field(default=lambda: False)


@dataclass(frozen=True)
class JobResult:
    """What a run did: counts by name (the worker adds them up and prints them), and whether work may be
    left (``busy``: the worker loops again at once instead of sleeping)."""

    counts: Mapping[str, int] = field(default_factory=dict)
    busy: bool = False


Run = Callable[["Settings", "datetime", Limits], JobResult]


@dataclass(frozen=True)
class Job:
    """A background job.

    ``every``: :data:`EACH_LOOP`, a ``timedelta``, or a function of the settings giving one (the audit
    checkpoint runs every ``OMNIBANK_AUDIT_CHECKPOINT_SECONDS``); across all workers of a store, not per
    worker. ``exclusive``: one worker at a time (a lease in ``worker_leases``); a job whose runs are safe
    side by side and gain from it (due journey steps, claimed with ``FOR UPDATE SKIP LOCKED``) says False.
    ``lease``: how long a worker holds the job without renewing it (the worker renews it while the job
    runs; a killed worker's lease ends this long after its last renewal). ``backoff`` doubles with each
    failure in a row, up to ``max_backoff``. ``when``: the job runs only where this says so (the audit
    checkpoint: where a checkpoint place is configured). ``on_stop``: run once more when the worker stops
    gracefully (the last checkpoint covers the last entries)."""

    name: str
    run: Run
    every: timedelta | Callable[[Settings], timedelta] | Literal["each loop"] = EACH_LOOP
    exclusive: bool = True
    lease: timedelta = timedelta(seconds=60)
    backoff: timedelta = timedelta(seconds=10)
    max_backoff: timedelta = timedelta(minutes=15)
    when: Callable[[Settings], bool] | None = None
    on_stop: bool = False

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64:
            raise ValueError(f"job name {self.name!r}: 1 to 64 characters")
        if self.lease <= timedelta(0) or self.backoff <= timedelta(0) or self.max_backoff < self.backoff:
            raise ValueError(f"job {self.name}: lease and backoff must be positive, max_backoff >= backoff")

    def interval(self, settings: Settings) -> timedelta | None:
        """Time between runs (None: each loop)."""
        if isinstance(self.every, str):  # EACH_LOOP
            return None
        if isinstance(self.every, timedelta):
            return self.every
        return self.every(settings)

    def delay_after(self, failures_in_row: int) -> timedelta:
        """The back-off after ``failures_in_row`` failures in a row: ``backoff``, doubled each time."""
        doublings = min(max(failures_in_row - 1, 0), 30)
        return min(self.backoff * (1 << doublings), self.max_backoff)


class Registry:
    """Jobs in the order they registered; a name once."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def register(self, job: Job) -> Job:
        known = self._jobs.get(job.name)
        if known is not None and known != job:
            raise ValueError(f"a job named {job.name!r} is registered already")
        self._jobs[job.name] = job
        return job

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

    def names(self) -> list[str]:
        return list(self._jobs)

    def reorder(self, modules: tuple[str, ...]) -> None:
        """The platform's jobs in the order of the modules that define them (then as they registered): a
        module imported early elsewhere (a command, a test) does not move its jobs ahead of the others'.
        Jobs of other modules keep their places."""
        rank = {name: i for i, name in enumerate(modules)}
        jobs = list(self._jobs.values())
        listed = [i for i, j in enumerate(jobs) if getattr(j.run, "__module__", "") in rank]
        ordered = sorted((jobs[i] for i in listed), key=lambda j: rank[j.run.__module__])
        for slot, job in zip(listed, ordered, strict=True):  # other jobs keep their places
            jobs[slot] = job
        self._jobs = {j.name: j for j in jobs}


#: the jobs of the platform (the modules of :data:`JOB_MODULES` register into it)
REGISTRY = Registry()


def register(job: Job) -> Job:
    """Register a job of the platform (call it from a domain's ``jobs.py``)."""
    return REGISTRY.register(job)


def load_jobs(modules: tuple[str, ...] = JOB_MODULES) -> Registry:
    """Import the job modules (each registers its jobs once) and return the platform's registry."""
    for name in modules:
        importlib.import_module(name)
    REGISTRY.reorder(modules)
    return REGISTRY
