"""Finalizing a load (step 4, :mod:`omnibank.events.loader`): deduplicating the staged rows and publishing
them into the event log, under the log's lock.

Apart from staging because it runs once a load, over everything staged, and holds the log's lock: one DuckDB
statement finds the staged lines not to publish (an id seen on an earlier line of the file, the first line
winning, or already in the log); pyarrow then writes the month partitions (zstd) into the staging folder (it
does so at well under half the CPU of DuckDB's partitioned ``COPY``, which matters on two cores), the folder
is marked ``READY`` and its files are renamed into the log (see :mod:`omnibank.events.log`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from omnibank.config import Settings
from omnibank.events.log import DICTIONARY_COLUMNS, FINAL, ROW_GROUP_ROWS, EventLog, configure, sql_string
from omnibank.events.protect import PROTECTED_KEY, PROTECTED_VERSION
from omnibank.events.staging import Stager, month_name

# How the log's files are written (their dictionary columns and row groups are the typed append's too,
# omnibank.events.log).
_FILE_ROWS = 2_000_000  # a month of one load is split into files of about this many rows
_WRITERS = 2
_DEDUP_MEMORY = "384MB"
_ID_HASH = "hash(event_id)"  # 64 bits: ids are grouped by it first, then compared exactly where it repeats


def _dropped_lines(settings: Settings, folder: Path, existing: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Line numbers of staged rows not to publish, sorted: a repeat of an earlier line's id, or an id
    already in the log; and, apart, those of the repeats. Ids are grouped by their 64-bit hash first
    (cheap), then compared exactly where a hash repeats. DuckDB works within a small memory limit (the
    process also holds Arrow buffers) and spills to the staging folder beyond it."""
    con = duckdb.connect(":memory:")
    try:
        configure(con, settings, temp_dir=folder / "tmp")
        con.execute(f"SET memory_limit = {sql_string(_DEDUP_MEMORY)}")
        con.execute("SET preserve_insertion_order = false")
        staged = f"read_parquet({sql_string(str(folder / 'ids' / '*.parquet'))})"
        if existing:
            listing = ", ".join(sql_string(str(f)) for f in existing)
            known = f"SELECT event_id FROM read_parquet([{listing}])"
        else:
            known = "SELECT NULL::VARCHAR AS event_id WHERE false"
        result = con.execute(
            f"""
WITH staged AS (SELECT {_ID_HASH} AS h, event_id, line_no FROM {staged}),
repeated_hashes AS (SELECT h FROM staged GROUP BY h HAVING count(*) > 1),
candidates AS (SELECT event_id, line_no FROM staged SEMI JOIN repeated_hashes USING (h)),
firsts AS (SELECT event_id, min(line_no) AS first FROM candidates GROUP BY event_id),
dropped AS (
    SELECT line_no, true AS repeat FROM candidates JOIN firsts USING (event_id) WHERE line_no <> first
    UNION ALL
    SELECT line_no, false AS repeat FROM staged SEMI JOIN ({known}) AS known USING (event_id)
)
SELECT line_no, bool_or(repeat) AS repeat FROM dropped GROUP BY line_no ORDER BY line_no
"""
        ).fetchnumpy()
        line_no = np.asarray(result["line_no"], dtype=np.int64)
        return line_no, line_no[np.asarray(result["repeat"], dtype=bool)]
    finally:
        con.close()


def _write_log_file(path: Path, schema: pa.Schema, parts: list[Path], dropped: np.ndarray) -> int:
    """Write one log file from staged parts (all of one month), leaving out the dropped lines; the rows
    written. Parts are read a slice at a time, so memory stays small."""
    written = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    writer: pq.ParquetWriter | None = None

    def flush() -> None:
        nonlocal writer, pending, pending_rows
        if writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=DICTIONARY_COLUMNS)
        writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=ROW_GROUP_ROWS)
        pending, pending_rows = [], 0

    try:
        for part in parts:
            with pa.OSFile(str(part), "rb") as source:
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    chunk = reader.get_batch(i)
                    if len(dropped):
                        line_no = chunk.column("line_no").to_numpy()
                        at = np.minimum(np.searchsorted(dropped, line_no), len(dropped) - 1)
                        keep = dropped[at] != line_no
                        if not keep.all():
                            chunk = chunk.filter(pa.array(keep))
                    if chunk.num_rows:
                        pending.append(chunk)
                        pending_rows += chunk.num_rows
                        written += chunk.num_rows
                        if pending_rows >= ROW_GROUP_ROWS:
                            flush()
        if pending:
            flush()
    finally:
        if writer is not None:
            writer.close()
    return written


@dataclass
class Published:
    written: int  # events this load added to the log
    repeats: np.ndarray  # lines left out as repeats of an earlier line's event id
    recovered: int  # events an interrupted earlier load had staged, published first


def finalize(
    log: EventLog,
    settings: Settings,
    stager: Stager,
    folder: Path,
    load_id: str,
    on_files: Callable[[int], None] = lambda _n: None,
    on_file: Callable[[], None] = lambda: None,
) -> Published:
    """Deduplicate the staged rows and publish them (``on_files`` hears how many files will be written,
    ``on_file`` each one written)."""
    if stager.schema is None:
        return Published(0, np.empty(0, dtype=np.int64), 0)
    schema = stager.schema.with_metadata({PROTECTED_KEY: PROTECTED_VERSION})  # see events protect
    with log.locked():
        recovered = log.recover_locked()
        dropped, repeats = _dropped_lines(settings, folder, log.files())
        jobs: list[tuple[Path, list[Path]]] = []
        for month, parts in sorted(stager.parts.items()):
            target = folder / FINAL / f"month={month_name(month)}"
            group: list[Path] = []
            rows = 0
            for part, n in parts:
                group.append(part)
                rows += n
                if rows >= _FILE_ROWS:
                    jobs.append((target / f"{load_id}-{len(jobs)}.parquet", group))
                    group, rows = [], 0
            if group:
                jobs.append((target / f"{load_id}-{len(jobs)}.parquet", group))
        on_files(len(jobs))

        def write(job: tuple[Path, list[Path]]) -> int:
            n = _write_log_file(job[0], schema, job[1], dropped)
            on_file()
            return n

        with ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="events-write") as pool:
            written = sum(pool.map(write, jobs))
        if written:
            log.mark_ready(folder)
            log.publish_locked(folder)
    return Published(written, repeats, recovered)
