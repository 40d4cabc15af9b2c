"""Leases and the shared schedule of the background jobs, in ``worker_leases`` (one row per job).

A worker takes a job with one conditional statement, in a transaction of its own that commits at once:

    UPDATE worker_leases SET holder = :me, expires_at = :now + lease
     WHERE job = :job AND (holder IS NULL OR expires_at <= :now)
       AND (next_run_at IS NULL OR next_run_at <= :now)

and, for a job never run before, ``INSERT … ON CONFLICT (job) DO NOTHING``. The row count says whether it
is ours: never a read then a write in Python (two PostgreSQL workers would both see the row free), and no
row lock held while the job runs (a job commits many transactions of its own). The holder renews the lease
while the job runs; a killed worker stops renewing, and once ``expires_at`` has passed the next worker takes
the job over. Releasing writes the run's outcome and the next time the job is due (its schedule, or its
back-off after a failure) in the same statement, conditional on still holding the lease.

Flushes and commits: each function here is one short transaction of its own (``unit_of_work``), since a
lease only counts once others can see it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, or_, select, true, update

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.db.upsert import insert_for
from omnibank.worker.models import WorkerLease

_T: Table = WorkerLease.__table__  # type: ignore[assignment]


def take(
    settings: Settings, job: str, holder: str, *, now: datetime, lease: timedelta, due_only: bool = True
) -> bool:
    """Take ``job`` for ``holder`` until ``now + lease`` if it is free (or its lease expired) and due (or,
    ``due_only=False``, whenever it is free: the last run of a stopping worker)."""
    with unit_of_work(settings) as session:
        free = or_(_T.c.holder.is_(None), _T.c.expires_at <= now)
        due = or_(_T.c.next_run_at.is_(None), _T.c.next_run_at <= now)
        taken = session.execute(
            update(_T)
            .where(_T.c.job == job, free, due if due_only else true())
            .values(holder=holder, expires_at=now + lease)
        ).rowcount  # type: ignore[attr-defined]
        if not taken:
            # a job's first run: its row does not exist yet (the INSERT's row count is -1 on psycopg; what it
            # returns says whether it inserted)
            stmt = insert_for(session, _T).values(job=job, holder=holder, expires_at=now + lease)
            inserted = stmt.on_conflict_do_nothing(index_elements=["job"]).returning(_T.c.job)
            taken = session.execute(inserted).first() is not None
    return bool(taken)


def due(settings: Settings, job: str, *, now: datetime) -> bool:
    """Whether a job run without a lease (side by side) is due: its row says so, or it has none yet."""
    with unit_of_work(settings) as session:
        stmt = insert_for(session, _T).values(job=job)
        session.execute(stmt.on_conflict_do_nothing(index_elements=["job"]))
        next_run = session.scalar(select(_T.c.next_run_at).where(_T.c.job == job))
    return next_run is None or next_run <= now


def renew(settings: Settings, job: str, holder: str, *, now: datetime, lease: timedelta) -> bool:
    """Extend the lease while the job runs; False when it is no longer ours (it expired and was taken)."""
    with unit_of_work(settings) as session:
        kept = session.execute(
            update(_T).where(_T.c.job == job, _T.c.holder == holder).values(expires_at=now + lease)
        ).rowcount  # type: ignore[attr-defined]
    return bool(kept)


@dataclass(frozen=True)
class Finished:
    """A run's outcome, as the row keeps it."""

    started_at: datetime
    finished_at: datetime
    duration_ms: int
    error: str | None  # the error's kind; None: the run succeeded


def release(
    settings: Settings,
    job: str,
    holder: str | None,
    run: Finished,
    *,
    every: timedelta | None,
    backoff: Callable[[int], timedelta],
) -> bool:
    """Record the run, set when the job is due next, and free the lease (``holder`` None: a job run without
    one). False when the lease was no longer ours: the run is recorded by nobody (its work is committed; the
    new holder's run will be recorded)."""
    failed = run.error is not None
    with unit_of_work(settings) as session:
        mine = _T.c.job == job if holder is None else (_T.c.job == job) & (_T.c.holder == holder)
        # write first: the statement takes the row's lock (SQLite: the store's write lock), so the count of
        # failures in a row read next is this run's, and no other write slips in between
        done = session.execute(
            update(_T).where(mine).values(
                last_holder=holder, last_started_at=run.started_at, last_finished_at=run.finished_at,
                last_duration_ms=run.duration_ms, last_outcome="failed" if failed else "ok",
                last_error=run.error, runs=_T.c.runs + 1, failures=_T.c.failures + int(failed),
                failures_in_row=_T.c.failures_in_row + 1 if failed else 0,
            )
        ).rowcount  # type: ignore[attr-defined]  # fmt: skip
        if not done:
            return False
        if failed:
            in_row = session.scalar(select(_T.c.failures_in_row).where(_T.c.job == job)) or 1
            next_run: datetime | None = run.started_at + backoff(in_row)
        else:
            next_run = run.started_at + every if every is not None else None
        session.execute(
            update(_T).where(_T.c.job == job).values(next_run_at=next_run, holder=None, expires_at=None)
            if holder is not None
            else update(_T).where(_T.c.job == job).values(next_run_at=next_run)
        )
    return True


def free(settings: Settings, job: str, holder: str) -> None:
    """Give a lease back without recording a run (a worker stopping between taking and running)."""
    with unit_of_work(settings) as session:
        session.execute(
            update(_T).where(_T.c.job == job, _T.c.holder == holder).values(holder=None, expires_at=None)
        )


def rows(settings: Settings) -> dict[str, WorkerLease]:
    """Every job's row, by job (``omnibank worker status``)."""
    with unit_of_work(settings) as session:
        return {r.job: r for r in session.scalars(select(WorkerLease).order_by(WorkerLease.job))}
