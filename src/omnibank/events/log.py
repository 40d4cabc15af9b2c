"""The event log: append-only, partitioned Parquet under ``<home>/events``.

Layout::

    events/
      month=2026-03/<load_id>-<n>.parquet    # the log: bank-local month, hive style, zstd
      .lock                                   # flock held while a load publishes (and by recovery)
      _staging/<load_id>/                     # a load in progress; readers never look here
          parts/ ids/ tmp/                    #   staged rows, their ids, DuckDB's spill space
          final/month=…/<load_id>-<n>.parquet #   the files to publish
          READY                               #   written once final/ is complete and synced
      _staging/<load_id>.lock                 # flock held by the live load that owns the folder

Readers see exactly the files matching ``month=*/*.parquet`` (:meth:`EventLog.files`). A load writes
everything into its staging folder first, deduplicates there under the log lock, marks the folder
``READY`` and only then renames the final files into place. A crash before ``READY`` leaves nothing
visible (the folder is deleted later); a crash after it is rolled forward by the next load or by
:meth:`EventLog.recover`. Staging folders whose load is still running are left alone.

Events the platform produces itself (receipts, lead events, single API events) take the typed append,
:meth:`EventLog.batch` / :meth:`EventLog.append`: rows already checked, protected and resolved to a customer
(:mod:`omnibank.events.emit` does that) go straight into the log's columns, with the same protocol: held in
memory until the batch closes, then under the log lock deduplicated by ``event_id`` (first in the batch
wins; ids already anywhere in the log are left out), written as one file per bank-local month into a
staging folder, marked ``READY`` and renamed into place. A batch that raises adds nothing. Through emit
it costs ~15 ms for one event and ~0.13 s for 1,000 (the file loader took ~0.3 s for either), and the
1,000 receipts of one dispatch make one file.

``ts`` is stored as an instant (UTC); fetch it through ``epoch_us(ts)`` or Arrow: DuckDB's Python
conversion of TIMESTAMPTZ values needs ``pytz``, which the platform does not depend on.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from omnibank.config import Settings
from omnibank.events.manifest import fsync_dir, visible

if TYPE_CHECKING:
    import pyarrow as pa

MEMORY_LIMIT = "1GB"
STAGING = "_staging"
READY = "READY"
FINAL = "final"
LOCK = ".lock"

# The columns of every event log file, in order (``month`` is the hive partition, not stored in files).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "VARCHAR"),
    ("type", "VARCHAR"),
    ("customer_id", "VARCHAR"),
    ("ts", "TIMESTAMPTZ"),
    ("local_date", "DATE"),
    ("channel", "VARCHAR"),
    ("amount", "DECIMAL(18,2)"),
    ("card_id", "VARCHAR"),
    ("product", "VARCHAR"),
    ("tier", "VARCHAR"),
    ("is_primary", "BOOLEAN"),
    ("new_customer", "BOOLEAN"),
    ("merchant", "VARCHAR"),
    ("mcc", "VARCHAR"),
    ("points", "BIGINT"),
    ("reward", "VARCHAR"),
    ("quantity", "BIGINT"),
    ("product_id", "VARCHAR"),
    ("duration_s", "DOUBLE"),
    ("payload", "VARCHAR"),
    ("load_id", "VARCHAR"),
    ("line_no", "BIGINT"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)


@functools.cache
def arrow_schema() -> pa.Schema:
    """The Arrow schema of those columns in the files (as the loader writes them). A function, so that
    pyarrow (~0.2 s to import) is imported by what writes the log, not by every command that reads it
    (``segment count`` over a built snapshot: ``benchmarks/bench_cli.py``)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("event_id", pa.string()),
            ("type", pa.string()),
            ("customer_id", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("local_date", pa.date32()),
            ("channel", pa.string()),
            ("amount", pa.decimal128(18, 2)),
            ("card_id", pa.string()),
            ("product", pa.string()),
            ("tier", pa.string()),
            ("is_primary", pa.bool_()),
            ("new_customer", pa.bool_()),
            ("merchant", pa.string()),
            ("mcc", pa.string()),
            ("points", pa.int64()),
            ("reward", pa.string()),
            ("quantity", pa.int64()),
            ("product_id", pa.string()),
            ("duration_s", pa.float64()),
            ("payload", pa.string()),
            ("load_id", pa.string()),
            ("line_no", pa.int64()),
        ]
    )


# Columns that repeat a lot: dictionary-encoded in the log files (the rest is mostly unique).
DICTIONARY_COLUMNS = [
    "type", "channel", "tier", "product", "merchant", "mcc", "reward", "product_id", "load_id",
]  # fmt: skip
ROW_GROUP_ROWS = 131_072

# The typed fields of known event types (recent() returns those that are not null).
TYPED_FIELDS = (
    "amount",
    "card_id",
    "product",
    "tier",
    "is_primary",
    "new_customer",
    "merchant",
    "mcc",
    "points",
    "reward",
    "quantity",
    "product_id",
    "duration_s",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


#: the DuckDB type each field of an ``events.jsonl`` line is read as, by readers that parse a contract file
#: straight from JSON (campaign and journey simulation); ``primary`` is the contract's name of ``is_primary``
JSON_FIELD_TYPES: dict[str, str] = {
    "event_id": "VARCHAR",
    "type": "VARCHAR",
    "customer_id": "VARCHAR",
    "ts": "VARCHAR",
    "channel": "VARCHAR",
    "amount": "VARCHAR",
    "card_id": "VARCHAR",
    "product": "VARCHAR",
    "tier": "VARCHAR",
    "primary": "BOOLEAN",
    "new_customer": "BOOLEAN",
    "merchant": "VARCHAR",
    "mcc": "VARCHAR",
    "points": "BIGINT",
    "reward": "VARCHAR",
    "quantity": "BIGINT",
    "product_id": "VARCHAR",
    "duration_s": "DOUBLE",
}


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


_shared: tuple[int, duckdb.DuckDBPyConnection] | None = None
_shared_lock = threading.Lock()


def duck(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A new connection, configured for ``settings`` (:func:`configure`), to this process's in-memory DuckDB
    database: opening a database costs ~35 ms, a connection to an open one ~0.02 ms, and a live campaign or
    journey reads the log file by file. Its temporary tables, registered views and session settings (the
    time zone) are its own; closing it leaves the database open for the next."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid():  # a forked child opens its own
            _shared = (os.getpid(), duckdb.connect(":memory:"))
        con = _shared[1].cursor()
    configure(con, settings)
    return con


def configure(con: duckdb.DuckDBPyConnection, settings: Settings, *, temp_dir: Path | None = None) -> None:
    """Bank time zone and bounded memory for a DuckDB connection that works on the event log."""
    con.execute(f"SET TimeZone = {sql_string(settings.timezone)}")
    con.execute(f"SET memory_limit = {sql_string(MEMORY_LIMIT)}")
    con.execute("SET enable_progress_bar = false")  # our commands draw their own
    if temp_dir is not None:
        con.execute(f"SET temp_directory = {sql_string(str(temp_dir))}")


def _flock(path: Path, *, wait: bool) -> int | None:
    """Open and lock the file at ``path``; the descriptor, or None when someone else holds it (and
    ``wait`` is false). Lock files may be removed by their holder, so the lock only counts if the file
    locked is still the one at ``path``."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


class EventLog:
    """Read access to the event log, and the few write steps a load shares with recovery."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.event_log_dir

    # -- reading -------------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """The Parquet files of the log as it stands now (staging folders excluded; of a compacted month,
        the compacted files once switched in and the originals until then: :mod:`omnibank.events.compact`)."""
        if not self.dir.is_dir():
            return []
        # the listing first, the manifest second (the argument is evaluated before visible reads it)
        return visible(self.dir, sorted(self.dir.glob("month=*/*.parquet")))

    def scan_sql(self) -> str:
        """A FROM-clause expression over the current files, with the ``month`` partition column."""
        files = self.files()
        if not files:
            cols = ", ".join(f"NULL::{kind} AS {name}" for name, kind in COLUMNS)
            return f"(SELECT {cols}, NULL::VARCHAR AS month WHERE false)"
        listing = ", ".join(sql_string(str(f)) for f in files)
        return (
            f"read_parquet([{listing}], hive_partitioning = true, union_by_name = true, "
            "hive_types = {'month': VARCHAR})"
        )

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection in the bank's time zone with bounded memory."""
        return duck(self.settings)

    def count(self) -> int:
        """Events in the log."""
        if not self.files():
            return 0
        con = self.connect()
        try:
            row = con.execute(f"SELECT count(*) FROM {self.scan_sql()}").fetchone()
        finally:
            con.close()
        return int(row[0]) if row else 0

    def unprotected_files(self) -> list[Path]:
        """Files written before personal data was protected in the log (their metadata lacks the mark the
        loader sets, :data:`omnibank.events.protect.PROTECTED_KEY`): ``omnibank events protect`` rewrites
        them."""
        from omnibank.events.protect import protected_file

        return [path for path in self.files() if not protected_file(path)]

    def recent(self, customer_ids: str | Sequence[str], limit: int = 10) -> list[dict[str, Any]]:
        """The latest events of a customer, or of several (a survivor and the customers merged into it),
        most recent first: event_id, type, customer_id, ts (an aware datetime in the bank's zone),
        channel, and those typed fields that are set."""
        ids = [customer_ids] if isinstance(customer_ids, str) else list(dict.fromkeys(customer_ids))
        if not ids or not self.files():
            return []
        fields = ", ".join(TYPED_FIELDS)
        con = self.connect()
        try:
            cur = con.execute(
                f"SELECT event_id, type, customer_id, epoch_us(ts) AS ts_us, channel, {fields} "
                f"FROM {self.scan_sql()} WHERE customer_id IN ({', '.join('?' for _ in ids)}) "
                "ORDER BY ts DESC, event_id DESC LIMIT ?",
                [*ids, limit],
            )
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        finally:
            con.close()
        tz = self.settings.tz
        result: list[dict[str, Any]] = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            event: dict[str, Any] = {
                "event_id": values["event_id"],
                "type": values["type"],
                "customer_id": values["customer_id"],
                "ts": (_EPOCH + timedelta(microseconds=values["ts_us"])).astimezone(tz),
                "channel": values["channel"],
            }
            event.update({k: values[k] for k in TYPED_FIELDS if values[k] is not None})
            result.append(event)
        return result

    def known_ids(self, ids: Collection[str]) -> set[str]:
        """Those of ``ids`` that are in the log already (in any month: an event's id is unique in the log
        whatever its time, as the loader has it)."""
        files = self.files()
        if not files or not ids:
            return set()
        con = self.connect()
        try:
            listing = ", ".join(sql_string(str(f)) for f in files)
            rows = con.execute(
                f"SELECT DISTINCT event_id FROM read_parquet([{listing}]) "
                "WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
                [list(ids)],
            ).fetchall()
        finally:
            con.close()
        return {row[0] for row in rows}

    # -- the typed append ----------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Collect rows (:meth:`Batch.add`) and append them when the block ends: one file per bank-local
        month touched, published as a load publishes. Nothing is written if the block raises; the result is
        in :attr:`Batch.result` afterwards."""
        batch = Batch(self)
        yield batch
        batch.commit()

    def append(self, rows: Sequence[Mapping[str, Any]]) -> Appended:
        """Append rows in one batch (:meth:`batch`); what was added."""
        with self.batch() as b:
            for row in rows:
                b.add(row)
        assert b.result is not None
        return b.result

    # -- writing (used by the loader) ------------------------------------------------------------------

    @property
    def staging_root(self) -> Path:
        return self.dir / STAGING

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the log's exclusive lock (across processes and threads: one open file per holder)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @contextmanager
    def staging(self, load_id: str) -> Iterator[Path]:
        """A staging folder owned by this load for as long as the block runs; removed afterwards."""
        self.staging_root.mkdir(parents=True, exist_ok=True)
        lock_path = self.staging_root / f"{load_id}.lock"
        fd = _flock(lock_path, wait=True)
        assert fd is not None
        try:
            folder = self.staging_root / load_id
            folder.mkdir()
            try:
                yield folder
            finally:
                if folder.exists() and not (folder / READY).exists():
                    shutil.rmtree(folder, ignore_errors=True)
                if not folder.exists():  # a READY folder left by a failure stays for recovery
                    lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def recover(self) -> int:
        """Finish or discard what crashed loads left in staging; the events the finished ones added."""
        if not self.staging_root.is_dir():
            return 0
        with self.locked():
            return self.recover_locked()

    def recover_locked(self) -> int:
        """:meth:`recover` for a caller that already holds :meth:`locked`.

        Folders whose owning load is still running (its staging lock is held) are left alone.
        """
        if not self.staging_root.is_dir():
            return 0
        added = 0
        names = {p.name.removesuffix(".lock") for p in self.staging_root.iterdir()}
        for name in sorted(names):
            folder = self.staging_root / name
            lock_path = self.staging_root / f"{name}.lock"
            fd = _flock(lock_path, wait=False)
            if fd is None:
                continue  # its load is still running
            try:
                if (folder / READY).exists():
                    added += self.publish_locked(folder)
                elif folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)
                lock_path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return added

    def mark_ready(self, folder: Path) -> list[Path]:
        """Make the staged final files durable and mark the folder READY; the files to publish."""
        staged = sorted((folder / FINAL).glob("month=*/*.parquet"))
        for path in staged:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        marker = folder / READY
        tmp = folder / f"{READY}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write("\n".join(str(p.relative_to(folder / FINAL)) for p in staged) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, marker)
        fsync_dir(folder)
        return staged

    def publish_locked(self, folder: Path) -> int:
        """Move a READY folder's final files into the log and remove the folder; the events moved.

        Idempotent: a file already moved by an interrupted earlier attempt is simply no longer there (its
        events are not counted again).
        """
        import pyarrow.parquet as pq

        moved = 0
        touched: set[Path] = set()
        for src in sorted((folder / FINAL).glob("month=*/*.parquet")):
            dest_dir = self.dir / src.parent.name
            dest_dir.mkdir(parents=True, exist_ok=True)
            moved += pq.read_metadata(src).num_rows
            os.replace(src, dest_dir / src.name)
            touched.add(dest_dir)
        for dest_dir in touched:
            fsync_dir(dest_dir)
        shutil.rmtree(folder, ignore_errors=True)
        return moved


@dataclass(frozen=True)
class Appended:
    added: int  # events now in the log
    duplicates: int  # rows left out: their event_id was in the log, or earlier in the batch
    files: int  # Parquet files published (one per month touched)
    added_ids: frozenset[str] = frozenset()


class Batch:
    """Rows for the typed append, kept in memory until :meth:`commit` (:meth:`EventLog.batch` calls it).

    A row maps log columns (:data:`COLUMNS`) to values: ``event_id``, ``type``, ``customer_id``, ``ts`` (an
    aware datetime) and ``payload`` (the event as stored, JSON) are required; typed columns may be left out;
    ``local_date`` defaults to the bank-local date of ``ts`` and ``line_no`` to the row's place in the batch
    (from 1); ``load_id`` is set when the batch publishes (a load's id, so that log files sort in the order
    they were published). Rows must be checked and protected already: this is storage, not the contract's
    gate (:func:`omnibank.events.emit.emit` is).
    """

    def __init__(self, log: EventLog):
        self.log = log
        self.load_id: str | None = None  # set when it publishes: file names sort in publish order
        self.rows: list[dict[str, Any]] = []
        self.result: Appended | None = None

    def add(self, row: Mapping[str, Any]) -> None:
        if self.result is not None:
            raise RuntimeError("this batch is committed already")
        missing = [k for k in ("event_id", "type", "customer_id", "ts", "payload") if row.get(k) is None]
        if missing:
            raise ValueError(f"an event log row needs {', '.join(missing)}")
        unknown = set(row) - set(COLUMN_NAMES)
        if unknown:
            raise ValueError(f"not columns of the event log: {', '.join(sorted(unknown))}")
        ts = row["ts"]
        if not isinstance(ts, datetime) or ts.tzinfo is None:
            raise ValueError("ts: an aware datetime is needed")
        out = dict(row)
        if out.get("local_date") is None:
            out["local_date"] = ts.astimezone(self.log.settings.tz).date()
        if out.get("line_no") is None:
            out["line_no"] = len(self.rows) + 1
        self.rows.append(out)

    def __len__(self) -> int:
        return len(self.rows)

    def commit(self) -> Appended:
        """Deduplicate and publish (see the module docstring); idempotent."""
        if self.result is not None:
            return self.result
        if not self.rows:
            self.result = Appended(0, 0, 0)
            return self.result
        firsts: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            firsts.setdefault(str(row["event_id"]), row)
        log = self.log
        with log.locked():
            log.recover_locked()
            from omnibank.kit.loading import new_load_id  # with Rich's progress: not for every reader

            load_id = self.load_id = new_load_id(datetime.now(UTC))
            known = log.known_ids(list(firsts))
            fresh = [row for event_id, row in firsts.items() if event_id not in known]
            by_month: dict[str, list[dict[str, Any]]] = {}
            for row in fresh:
                day: date = row["local_date"]
                by_month.setdefault(f"{day.year:04d}-{day.month:02d}", []).append(row)
            if by_month:
                import pyarrow as pa
                import pyarrow.parquet as pq

                from omnibank.events.protect import PROTECTED_KEY, PROTECTED_VERSION

                schema = arrow_schema().with_metadata(
                    {PROTECTED_KEY: PROTECTED_VERSION}
                )  # see events protect
                with log.staging(load_id) as folder:
                    for month, rows in sorted(by_month.items()):
                        path = folder / FINAL / f"month={month}" / f"{load_id}-0.parquet"
                        path.parent.mkdir(parents=True)
                        for row in rows:
                            row["load_id"] = load_id
                        table = pa.Table.from_pylist(rows, schema=schema)
                        pq.write_table(
                            table, path, compression="zstd", use_dictionary=DICTIONARY_COLUMNS,
                            row_group_size=ROW_GROUP_ROWS,
                        )  # fmt: skip
                    log.mark_ready(folder)
                    log.publish_locked(folder)
        self.result = Appended(
            added=len(fresh),
            duplicates=len(self.rows) - len(fresh),
            files=len(by_month),
            added_ids=frozenset(str(row["event_id"]) for row in fresh),
        )
        return self.result
