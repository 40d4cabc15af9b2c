"""The worker's one table: a row per background job, its lease and its last run.

The row is the lease (``holder``, ``expires_at``: taken with one conditional UPDATE, so two workers on
PostgreSQL never run an exclusive job at once, and a killed worker's lease simply expires), the shared
schedule (``next_run_at``: a periodic job runs every so often across all workers, not per worker; a failing
job's back-off is kept here too, so every worker waits it out) and what ``omnibank worker status`` shows.
Nothing personal: ``last_error`` is the kind of the error (its class), never its message.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from omnibank.db.base import Base, one_of
from omnibank.db.types import UTCDateTime

OUTCOMES = ("ok", "failed")


class WorkerLease(Base):
    __tablename__ = "worker_leases"
    __table_args__ = (CheckConstraint(one_of("last_outcome", OUTCOMES), name="last_outcome"),)

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))  # the worker running it now (None: free)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the holder's lease ends then
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # not before (schedule, back-off)
    last_holder: Mapped[str | None] = mapped_column(String(128))
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(String(128))  # the error's kind (class), never its text
    runs: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failures: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failures_in_row: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
