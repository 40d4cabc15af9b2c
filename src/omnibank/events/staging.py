"""Checking and staging a load's batches (steps 2 and 3 of a load, :mod:`omnibank.events.loader`).

Apart from the load's orchestration because it is the per-batch work, the part that sees every row: the
check statement (:mod:`omnibank.events.sqlgen`) runs over each batch of lines, its result streamed back in
slices so that a batch never sits in memory twice. Lines DuckDB's lenient JSON reader may have accepted
wrongly (NaN, trailing commas) and the rare lines that may hold other personal data are finished in Python;
lines without a customer_id go through :mod:`omnibank.events.identifiers`. Good rows go to
``_staging/<load_id>/`` under the event log: the rows as uncompressed Arrow files, one per batch and
bank-local month (so that publishing a month reads only that month's rows), and their (event_id, line_no) as
Parquet for the deduplication (:mod:`omnibank.events.finalize`). Rejected lines go to the rejects file,
masked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from omnibank.config import Settings
from omnibank.events.columns import KNOWN_TYPES, PII_KINDS, dumps, loads
from omnibank.events.identifiers import Identities
from omnibank.events.lines import Lines
from omnibank.events.log import COLUMN_NAMES, configure
from omnibank.events.protect import TEXT_COLUMNS, Protector, registry_of
from omnibank.events.sqlgen import validate_sql
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.loading import LoadRun
from omnibank.kit.masking import mask_free_text, mask_id_number, mask_name, mask_phone

_RESULT_ROWS = 65_536  # rows DuckDB hands back at a time

# -- personal data -----------------------------------------------------------------------------------------

_MASKERS = {"name": mask_name, "phone": mask_phone, "id_number": mask_id_number}


def _masked_raw(text: str) -> str:
    """A rejected line as the rejects file may show it: personal fields masked, then free text masked."""
    try:
        obj = loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and any(k in PII_KINDS for k in obj):
        for key, kind in PII_KINDS.items():
            value = obj.get(key)
            if value is not None:
                obj[key] = _MASKERS[kind](value if isinstance(value, str) else dumps(value))
        text = dumps(obj)
    return mask_free_text(text)


def _strict_json_object(text: str) -> bool:
    """Whether the line is strict JSON (no NaN/Infinity, no trailing commas)."""

    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        json.loads(text, parse_constant=refuse)
    except ValueError:
        return False
    return True


# -- staging -----------------------------------------------------------------------------------------------


def month_name(months_since_1970: int) -> str:
    """A bank-local month as the log's partitions name it (``2026-03``)."""
    return f"{1970 + months_since_1970 // 12:04d}-{months_since_1970 % 12 + 1:02d}"


class _MonthParts:
    """A batch's staged rows, one uncompressed Arrow file per bank-local month, so that writing a month of
    the log reads only that month's rows, whatever the order of the file."""

    def __init__(self, folder: Path, name: str):
        self._folder = folder
        self._name = name
        self._open: dict[int, tuple[pa.NativeFile, pa.ipc.RecordBatchFileWriter, Path]] = {}
        self._rows: dict[int, int] = {}

    def write(self, table: pa.Table) -> None:
        days = table.column("local_date").to_numpy().astype("datetime64[D]")
        months = days.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
        if (months == months[0]).all():
            self._append(int(months[0]), table)
            return
        order = np.argsort(months, kind="stable")
        months = months[order]
        table = table.take(pa.array(order))
        values, starts = np.unique(months, return_index=True)
        ends = [*starts[1:].tolist(), len(months)]
        for month, a, b in zip(values.tolist(), starts.tolist(), ends, strict=True):
            self._append(month, table.slice(a, b - a))

    def _append(self, month: int, table: pa.Table) -> None:
        if month not in self._open:
            path = self._folder / f"{self._name}-{month_name(month)}.arrow"
            sink = pa.OSFile(str(path), "wb")
            self._open[month] = (sink, pa.ipc.new_file(sink, table.schema), path)
            self._rows[month] = 0
        self._open[month][1].write_table(table)
        self._rows[month] += table.num_rows

    def close(self) -> None:
        for sink, writer, _ in self._open.values():
            writer.close()
            sink.close()

    def files(self) -> list[tuple[int, Path, int]]:
        """(month, file, rows) of each file written."""
        return [(month, path, self._rows[month]) for month, (_, _, path) in sorted(self._open.items())]


class Stager:
    """Validates batches and stages their good rows: the ids (for deduplication) and the rows, as
    uncompressed Arrow files that the final step reads back without copying. DuckDB's result is
    streamed in slices, so a batch never sits in memory twice."""

    def __init__(self, settings: Settings, run: LoadRun, cipher: FieldCipher, folder: Path):
        self.run = run
        self.ids_dir = folder / "ids"
        self.parts_dir = folder / "parts"
        self.ids_dir.mkdir()
        self.parts_dir.mkdir()
        self.con = duckdb.connect(":memory:")
        configure(self.con, settings, temp_dir=folder / "tmp")
        self.protector = Protector(cipher, registry_of(settings))
        self.protector.register(self.con)
        self.sql = validate_sql(run.load_id, self.protector.registry)
        self.schema: pa.Schema | None = None  # of the log files
        self.staged = 0  # good rows staged
        self.events = 0  # non-blank lines seen
        self.batches = 0
        self.parts: dict[int, list[tuple[Path, int]]] = {}  # month -> [(part file, rows)]
        self.identities = Identities(settings, cipher)  # found and bound by the lines

    def close(self) -> None:
        self.con.close()

    def process(self, lines: Lines) -> None:
        """Check a batch: rejects go to the rejects file, good rows (personal fields replaced) to staging."""
        rejects: list[tuple[int, str, str]] = [(n, "not valid UTF-8", raw) for n, raw in lines.bad_utf8]
        self.events += len(lines.bad_utf8)
        if lines.table.num_rows:
            name = f"b{self.batches:06d}"
            self.batches += 1
            parts = _MonthParts(self.parts_dir, name)
            ids_writer: pq.ParquetWriter | None = None
            self.con.register("batch", lines.table)
            try:
                for chunk in self.con.sql(self.sql).to_arrow_reader(_RESULT_ROWS):
                    result = pa.Table.from_batches([chunk])
                    self.events += result.num_rows
                    result = self._recheck_lenient(result)
                    reason = result.column("reason")
                    if reason.null_count < result.num_rows:
                        bad = result.filter(pc.is_valid(reason)).select(["line_no", "reason", "payload"])
                        rejects.extend(zip(*(bad.column(i).to_pylist() for i in range(3)), strict=True))
                        result = result.filter(pc.is_null(reason))
                    if not result.num_rows:
                        continue
                    self.identities.bind(result, explicit=True)
                    if result.column("customer_id").null_count:
                        result = self.identities.resolve(result, rejects)
                        if not result.num_rows:
                            continue
                    table = self._scrub(result).select(list(COLUMN_NAMES))
                    ts = table.schema.get_field_index("ts")
                    table = table.set_column(ts, "ts", table.column(ts).cast(pa.timestamp("us", tz="UTC")))
                    if ids_writer is None:
                        self.schema = self.schema or table.schema
                        ids_writer = pq.ParquetWriter(
                            self.ids_dir / f"{name}.parquet",
                            pa.schema([table.schema.field("event_id"), table.schema.field("line_no")]),
                            compression="none",
                            use_dictionary=False,
                        )
                    ids_writer.write_table(table.select(["event_id", "line_no"]))
                    parts.write(table)
                    self.staged += table.num_rows
            finally:
                self.con.unregister("batch")
                if ids_writer is not None:
                    ids_writer.close()
                parts.close()
            for month, path, rows in parts.files():
                self.parts.setdefault(month, []).append((path, rows))
        for line_no, why, raw in sorted(rejects):
            self.run.reject(line_no, why, _masked_raw(raw))

    def _recheck_lenient(self, result: pa.Table) -> pa.Table:
        suspect = result.column("suspect")
        if not pc.any(suspect).as_py():
            return result
        reason = result.column("reason")
        rows = np.flatnonzero(suspect.to_numpy(zero_copy_only=False))
        payloads = result.column("payload").take(pa.array(rows)).to_pylist()
        invalid = np.zeros(result.num_rows, dtype=bool)
        for i, text in zip(rows.tolist(), payloads, strict=True):
            invalid[i] = not _strict_json_object(text)
        if not invalid.any():
            return result
        fixed = pc.if_else(pa.array(invalid), pa.scalar("not valid JSON", reason.type), reason)
        return result.set_column(result.schema.get_field_index("reason"), "reason", fixed)

    def _scrub(self, result: pa.Table) -> pa.Table:
        return protect_flagged(result, "pii", self.protector)


def protect_flagged(result: pa.Table, flag: str, protector: Protector) -> pa.Table:
    """The Python pass over the rows flagged in column ``flag`` (those that may hold personal data): each
    stored line (``payload``) is protected whole (:meth:`Protector.protect`), and the typed text columns
    of the known types follow their fields."""
    marked = result.column(flag)
    if not pc.any(marked).as_py():
        return result
    payload = result.column("payload")
    mask = marked.to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(mask)
    scrubbed: list[str] = []
    changed: dict[str, dict[int, Any]] = {}
    for i, text in zip(rows.tolist(), payload.take(pa.array(rows)).to_pylist(), strict=True):
        obj = loads(text)
        protected = protector.protect(obj, dumps)
        scrubbed.append(dumps(protected))
        if obj.get("type") in KNOWN_TYPES:
            for name in TEXT_COLUMNS:
                if isinstance(obj.get(name), str) and protected.get(name) != obj[name]:
                    changed.setdefault(name, {})[i] = protected.get(name)
    fixed = pc.replace_with_mask(payload, pa.array(mask), pa.array(scrubbed, payload.type))
    result = result.set_column(result.schema.get_field_index("payload"), "payload", fixed)
    for name, values in changed.items():
        at = result.schema.get_field_index(name)
        column = result.column(at).to_pylist()
        for i, value in values.items():
            column[i] = value
        result = result.set_column(at, name, pa.array(column, result.schema.field(at).type))
    return result
