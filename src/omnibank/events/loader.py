"""Load ``events.jsonl`` (one JSON object a line, see the data contract) into the event log.

How a load runs (10M events in about a minute on two cores). This module holds the order of the steps, the
progress bar and the report; each step is a module of its own, because each is a different job (bytes, SQL
text, per-batch rows, the log's lock, the store's customers):

1. **Read** (:mod:`omnibank.events.lines`). The file is read in binary, in batches of whole lines, into
   reused buffers; numpy finds the line ends and the batch becomes an Arrow table of string views into the
   bytes as read (no copy, no per-line Python). UTF-8 is checked for the whole batch at once; only a batch
   that fails is decoded line by line, and its bad lines are rejected as "not valid UTF-8". The next batch
   is read in a worker thread while DuckDB checks the current one.
2. **Check** (the statement from :mod:`omnibank.events.sqlgen`, run by :mod:`omnibank.events.staging`). One
   DuckDB statement parses every line of the batch once (``from_json``) and works out, vectorised, either
   the typed row or the reason the line is rejected: the first failing check, naming the field. Card
   numbers become their tokens there (a keyed HMAC, :mod:`omnibank.events.protect`), in the column and in
   the stored line. Lines DuckDB's lenient JSON reader may have accepted wrongly (NaN, trailing commas) and
   the rare lines that may hold other personal data (a personal field, or anything a cheap pattern takes
   for a phone, ID or card number) are finished in Python, which protects the whole line (personal fields
   by their blind index, the rest scanned). A line without ``customer_id`` that carries an identifier (card
   id, WeChat openid, app user id, phone, ID number) passes this step; only such lines then go through a
   second pass that finds their customer (:mod:`omnibank.events.identifiers`, with
   :class:`omnibank.customers.identity.Resolver`) or rejects them.
3. **Stage** (:mod:`omnibank.events.staging`). Good rows go to ``_staging/<load_id>/`` under the event log:
   the rows as uncompressed Arrow files, one per batch and bank-local month, and their (event_id, line_no)
   as Parquet.
4. **Finalize** (:mod:`omnibank.events.finalize`, under the log's lock). One DuckDB statement finds the
   staged lines not to publish: an id seen on an earlier line of the file (the first line wins) or already
   in the log. pyarrow then writes the month partitions (zstd) into the staging folder (it does so at well
   under half the CPU of DuckDB's partitioned ``COPY``, which matters on two cores), the folder is marked
   ``READY`` and its files are renamed into the log (see :mod:`omnibank.events.log`).
5. **Learn** (:mod:`omnibank.events.identifiers`). The identifiers that ``card.issued`` and
   ``identity.linked`` lines bind to their customer are recorded in the store once the log has published
   (first binding wins; conflicts counted in the report).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omnibank.config import Settings
from omnibank.errors import InputRefused
from omnibank.events.finalize import finalize
from omnibank.events.lines import LineReader
from omnibank.events.log import EventLog
from omnibank.events.staging import Stager
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.loading import CountingReader, LoadReport, LoadRun, open_source, progress_bar


def _run_batches(reader: LineReader, stager: Stager) -> None:
    """Read, check and stage every batch; the next batch is read and cut in a worker thread while
    DuckDB checks the current one (numpy, file reads and DuckDB release the GIL)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="events-read") as pool:
        reading = pool.submit(reader.next)
        try:
            while (lines := reading.result()) is not None:
                reading = pool.submit(reader.next)
                stager.process(lines)
                del lines
        finally:
            reading.cancel()


def load_events(
    settings: Settings,
    path: Path,
    *,
    cipher: FieldCipher,
    progress: bool = True,
    batch_lines: int = 500_000,
    encoding: str = "utf-8",
) -> LoadReport:
    """Load an ``events.jsonl`` file into the event log; the load report.

    ``loaded`` counts events added to the log, ``rejected`` lines that break the contract (each in the
    rejects file with its line number and reason), ``duplicates`` events whose ``event_id`` is already in
    the log or appeared earlier in the file. A file that cannot be read, or holds no events, is refused
    with :class:`InputRefused` and nothing of it is loaded.
    """
    if batch_lines < 1:
        raise ValueError("batch_lines must be at least 1")
    started = time.perf_counter()
    with open_source(path, encoding=encoding) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise InputRefused(f"{path}: the file is empty; expected one JSON event a line")
        log = EventLog(settings)
        recovered = log.recover()
        run = LoadRun(settings.loads_dir, "events", path)
        with run, log.staging(run.load_id) as folder:
            stager = Stager(settings, run, cipher, folder)
            try:
                with progress_bar(enabled=progress) as bar:
                    task = bar.add_task(f"events {path.name}", total=size)
                    reader = LineReader(CountingReader(fh, lambda n: bar.advance(task, n)), batch_lines)
                    _run_batches(reader, stager)
                    if stager.events == 0:
                        raise InputRefused(f"{path}: holds only blank lines; expected one JSON event a line")
                    bar.update(task, description=f"events {path.name}: read and checked")
                    step = bar.add_task("events: deduplicating", total=None, unit="files")
                    published = finalize(
                        log, settings, stager, folder, run.load_id,
                        on_files=lambda n: bar.update(step, total=n, description="events: publishing"),
                        on_file=lambda: bar.advance(step),
                    )  # fmt: skip
                    identity = stager.identities.learn(settings, published.repeats)
            finally:
                stager.close()
            seconds = time.perf_counter() - started
            run.report.loaded = published.written
            run.report.duplicates = stager.staged - published.written
            recovered += published.recovered
            if recovered:
                run.report.recovered = recovered
            run.report.extra.update(
                {
                    "bytes": size,
                    "lines": reader.lines,
                    "seconds": round(seconds, 3),
                    "events_per_s": round(stager.events / seconds) if seconds > 0 else None,
                }
            )
            if identity:
                run.report.extra["identity"] = identity
        return run.finish()
