"""Partitions of a live campaign's customers, and the leases that let several runs apply one campaign at once.

A campaign whose limits are all per customer (no budget spans customers) is split into ``partitions`` shares
by a stable hash of the customer id: the first 8 bytes of its MD5, little-endian, modulo the count
(:func:`part_of`; the same number as DuckDB's ``md5_number_upper``). A customer's events all fall in one
partition, so applying the partitions apart, in any interleaving, gives each customer the decisions of one
ordered pass. A campaign with a budget across customers has one partition.

A run takes a partition with one conditional statement, in a transaction of its own that commits at once
(the scheme of :mod:`omnibank.worker.leases`, keyed by campaign and partition):

    UPDATE campaign_partitions SET holder = :me, expires_at = :now + lease
     WHERE campaign = :c AND part = :p AND (holder IS NULL OR expires_at <= :now)

A renewer thread extends the lease while the run applies the partition's files; a killed run stops renewing
and, once the lease has expired, the next run takes the partition over (at once when the killed run was a
process of the same machine: its pid is gone). The lease only spreads the work:
what makes a file applied once per partition is the offset row (campaign, partition, file), inserted first
in the file's transaction. Two runs that both believe they hold a partition (a lease that expired while its
holder was paused) conflict on that row, and the second one's transaction is rolled back whole.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
from sqlalchemy import Table, or_, select, update

from omnibank.campaigns.models import CampaignPartition
from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.db.upsert import insert_for

log = logging.getLogger("omnibank.campaigns")

_T: Table = CampaignPartition.__table__  # type: ignore[assignment]

#: partitions of a campaign without a budget across customers (more than the runs a bank starts, so the
#: last partitions even out the runs' shares)
DEFAULT_PARTITIONS = 8
LEASE = timedelta(seconds=30)


def run_id() -> str:
    """This run: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@functools.lru_cache(maxsize=1 << 20)
def part_of(customer_id: str, partitions: int) -> int:
    """The partition of a customer (stable across processes, machines and releases)."""
    if partitions <= 1:
        return 0
    return int.from_bytes(hashlib.md5(customer_id.encode("utf-8")).digest()[:8], "little") % partitions


def customers_in(settings: Settings, path: Path, partitions: int, part: int) -> list[str]:
    """The customers of one partition among those with events in a log file."""
    return _shares(settings.home_dir, path, partitions)[part]


@functools.lru_cache(maxsize=4096)
def _shares(home: Path, path: Path, partitions: int) -> tuple[list[str], ...]:
    """A log file's customers by partition: its distinct ids (DuckDB), each hashed once a process. Cached
    (a published file never changes): a run applies the file to its partitions one after another. The
    reader then joins the file to a partition's ids; an MD5 a row in DuckDB's SQL instead cost 1.4 µs, 8 ×
    a file's rows for a run over 8 partitions."""
    con = _duck().cursor()  # a cursor of one in-memory database: a connection of its own costs ~30 ms
    try:
        ids = con.execute(
            "SELECT DISTINCT customer_id FROM read_parquet(?) WHERE customer_id IS NOT NULL", [str(path)]
        ).fetchall()
    finally:
        con.close()
    shares: tuple[list[str], ...] = tuple([] for _ in range(partitions))
    for (cid,) in ids:
        shares[part_of(cid, partitions)].append(cid)
    return shares


@functools.cache
def _duck() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config={"threads": 1})


def ensure(settings: Settings, campaign: str, partitions: int) -> None:
    """The campaign's partition rows (a campaign started before partitions has none yet)."""
    with unit_of_work(settings) as session:  # writes only (SQLite: no read before a write, see live)
        for part in range(partitions):
            stmt = insert_for(session, _T).values(campaign=campaign, part=part)
            session.execute(stmt.on_conflict_do_nothing(index_elements=["campaign", "part"]))


def take(
    settings: Settings, campaign: str, part: int, holder: str, *, now: datetime, lease: timedelta
) -> bool:
    """Take a partition for ``holder`` until ``now + lease`` if it is free, its lease has expired, or its
    holder was a run on this machine whose process is gone (killed: no need to wait for the lease)."""
    with unit_of_work(settings) as session:
        mine = _T.c.campaign == campaign, _T.c.part == part
        free = or_(_T.c.holder.is_(None), _T.c.holder == holder, _T.c.expires_at <= now)
        taken = session.execute(
            update(_T).where(*mine, free).values(holder=holder, expires_at=now + lease)
        ).rowcount  # type: ignore[attr-defined]
        if not taken:
            other = session.scalar(select(_T.c.holder).where(*mine))
            if other is not None and _gone(other):
                taken = session.execute(
                    update(_T)
                    .where(*mine, _T.c.holder == other)
                    .values(holder=holder, expires_at=now + lease)
                ).rowcount  # type: ignore[attr-defined]
    return bool(taken)


def _gone(holder: str) -> bool:
    """Whether ``holder`` (``host:pid``) was a process of this machine that no longer runs."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def renew(
    settings: Settings, campaign: str, part: int, holder: str, *, now: datetime, lease: timedelta
) -> bool:
    """Extend the lease; False when the partition is no longer ours (it expired and was taken)."""
    with unit_of_work(settings) as session:
        kept = session.execute(
            update(_T)
            .where(_T.c.campaign == campaign, _T.c.part == part, _T.c.holder == holder)
            .values(expires_at=now + lease)
        ).rowcount  # type: ignore[attr-defined]
    return bool(kept)


def release(settings: Settings, campaign: str, part: int, holder: str) -> None:
    """Free the partition if it is still ours."""
    with unit_of_work(settings) as session:
        session.execute(
            update(_T)
            .where(_T.c.campaign == campaign, _T.c.part == part, _T.c.holder == holder)
            .values(holder=None, expires_at=None)
        )


def holders(settings: Settings, campaign: str, *, now: datetime) -> dict[int, str]:
    """The partitions held under a lease that has not expired, by partition."""
    with unit_of_work(settings) as session:
        rows = session.execute(
            select(_T.c.part, _T.c.holder).where(
                _T.c.campaign == campaign, _T.c.holder.is_not(None), _T.c.expires_at > now
            )
        )
        return {int(part): str(who) for part, who in rows}


class Renewer:
    """Extends a partition's lease every third of its length while a run applies it (on a connection of its
    own); ``lost`` is set when another run has taken it (the run stops after the file in hand, whose
    transaction the offset row fences anyway)."""

    def __init__(
        self, settings: Settings, campaign: str, part: int, holder: str, *, now: datetime, lease: timedelta
    ) -> None:
        self.settings, self.campaign, self.part, self.holder, self.lease = (
            settings,
            campaign,
            part,
            holder,
            lease,
        )
        self.now, self.started = now, time.monotonic()
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease:{campaign}#{part}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self.lease.total_seconds() / 3):
            moment = self.now + timedelta(seconds=time.monotonic() - self.started)
            try:
                if not renew(
                    self.settings, self.campaign, self.part, self.holder, now=moment, lease=self.lease
                ):
                    log.warning(
                        "campaign %s partition %d: lease lost to another run", self.campaign, self.part
                    )
                    self.lost.set()
                    return
            except Exception as exc:  # the store may be away for a moment: the next turn retries
                log.warning(
                    "campaign %s partition %d: lease renewal failed (%s)",
                    self.campaign, self.part, type(exc).__name__,
                )  # fmt: skip

    def stop(self) -> None:
        self._done.set()
        self._thread.join(30)
