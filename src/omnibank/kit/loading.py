"""What every loader shares: opening a source, streaming it with a progress bar, the rejects file and
the load report.

A load writes ``<home>/loads/<stamp>-<kind>-<id>/report.json`` and, when any row was rejected,
``rejects.csv`` beside it: ``line,reason,raw`` with personal data in ``raw`` masked.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from omnibank.errors import InputRefused


@dataclass
class LoadReport:
    kind: str
    source: str
    load_id: str
    load_dir: str
    started_at: str
    finished_at: str | None = None
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejects_path: str | None = None
    #: events an interrupted earlier load had staged and this one published first (its ``duplicates``
    #: then count the lines that interrupted load had brought already)
    recovered: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary_line(self) -> str:
        line = f"loaded {self.loaded:,}, rejected {self.rejected:,}, duplicates {self.duplicates:,}"
        if self.rejects_path:
            line += f" (rejects: {self.rejects_path})"
        if self.recovered:
            done = f"completed an interrupted earlier load first: it added {self.recovered:,} events"
            line = f"{done} to the log\n{line}"
        return line


def open_source(path: Path) -> IO[bytes]:
    """Open an input file for reading, refusing clearly what cannot be read at all."""
    if not path.exists():
        raise InputRefused(f"{path}: no such file")
    if path.is_dir():
        raise InputRefused(f"{path}: is a directory, expected a file")
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputRefused(f"{path}: cannot be read ({exc.strerror})") from exc


def new_load_id(started: datetime) -> str:
    """A load's id: its start in milliseconds (12 hex digits), then 4 random ones. The event log's files are
    named by it, so they sort in the order their loads started: ``campaign run`` and the worker apply pending
    files in that order, the same from one run to the next (random ids applied a month's files in an order
    that changed from run to run)."""
    return f"{int(started.timestamp() * 1000):012x}{secrets.token_hex(2)}"


class LoadRun:
    """One load: its folder, its rejects file (created on the first reject) and its report."""

    def __init__(self, loads_dir: Path, kind: str, source: Path):
        started = datetime.now(UTC)
        self.load_id = new_load_id(started)
        self.dir = loads_dir / f"{started:%Y%m%dT%H%M%SZ}-{kind}-{self.load_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.report = LoadReport(
            kind=kind,
            source=str(source),
            load_id=self.load_id,
            load_dir=str(self.dir),
            started_at=started.isoformat(),
        )
        self._rejects_fh: IO[str] | None = None
        self._rejects: Any = None

    def reject(self, line: int, reason: str, raw_masked: str) -> None:
        if self._rejects is None:
            path = self.dir / "rejects.csv"
            # utf-8-sig so that spreadsheet tools show the Chinese text correctly
            self._rejects_fh = path.open("w", encoding="utf-8-sig", newline="")
            self._rejects = csv.writer(self._rejects_fh)
            self._rejects.writerow(["line", "reason", "raw"])
            self.report.rejects_path = str(path)
        self._rejects.writerow([line, reason, raw_masked.rstrip("\r\n")])
        self.report.rejected += 1

    def finish(self) -> LoadReport:
        if self._rejects_fh is not None:
            self._rejects_fh.close()
            self._rejects_fh = None
        self.report.finished_at = datetime.now(UTC).isoformat()
        (self.dir / "report.json").write_text(
            json.dumps(asdict(self.report), ensure_ascii=False, indent=2), encoding="utf-8"
        )
        return self.report

    def abandon(self) -> None:
        """The load was refused: close the rejects file and leave a report saying so."""
        self.report.extra["refused"] = True
        self.finish()

    def __enter__(self) -> LoadRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.report.extra["error"] = str(exc)
            self.abandon()


class CountingReader(io.RawIOBase):
    """Wraps a binary file and reports bytes read to a callback (for the progress bar)."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None]):
        self._raw = raw
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)  # type: ignore[attr-defined]
        if n:
            self._on_read(n)
        return n or 0


class _AmountColumn(DownloadColumn):
    """Bytes for a file being read; ``done/total unit`` for a step counted in other units (the task's
    ``unit`` field, e.g. files)."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit")
        if unit is None:
            return super().render(task)
        total = f"{int(task.total):,}" if task.total is not None else "?"
        return Text(f"{int(task.completed):,}/{total} {unit}", style="progress.download")


class _SpeedColumn(TransferSpeedColumn):
    """Bytes per second for a file being read; nothing for a step counted in other units."""

    def render(self, task: Task) -> Text:
        return Text("") if task.fields.get("unit") else super().render(task)


def progress_bar(console: Console | None = None, *, enabled: bool = True) -> Progress:
    """A load's progress on stderr: one line per step (reading the file, then any step after it, each
    added with ``add_task(..., unit="files")``)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        _AmountColumn(),
        _SpeedColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=True,
        disable=not enabled,
    )


@dataclass
class CsvRecord:
    line: int  # physical line number where the record starts (the header is line 1)
    values: dict[str, str] | None  # None when the record could not be mapped to the columns
    raw: str
    error: str | None = None


_SURROGATE = re.compile("[\udc80-\udcff]")


def iter_csv(
    fh: IO[bytes], *, source: Path, required: list[str], optional: list[str] | None = None
) -> Iterator[CsvRecord]:
    """Stream a UTF-8 CSV file record by record in constant memory.

    The header is read and checked at once (a wrong header raises InputRefused before any row is
    looked at): it must name every required column, in any order; an unknown or repeated column refuses
    the file, so a misspelt column is never silently ignored. A record that is not valid UTF-8 or has the
    wrong number of fields comes back with ``error`` set, and the rest of the file goes on. ``raw`` is the
    record's fields joined by commas (invalid bytes shown as U+FFFD).
    """
    optional = optional or []
    # surrogateescape keeps reading past invalid bytes; they surface as lone surrogates, found per row
    text = io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise InputRefused(f"{source}: the file is empty; expected a header line") from None
    except csv.Error as exc:
        raise InputRefused(f"{source}: the header line cannot be read as CSV ({exc})") from None
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    if _SURROGATE.search("".join(header)):
        raise InputRefused(f"{source}: the header line is not valid UTF-8")
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in required and c not in optional]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or dupes:
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        if unknown:
            parts.append("unknown column(s) " + ", ".join(unknown))
        if dupes:
            parts.append("repeated column(s) " + ", ".join(dupes))
        raise InputRefused(
            f"{source}: wrong header: {'; '.join(parts)}. Expected: {','.join(required + optional)}"
        )
    width = len(header)

    def records() -> Iterator[CsvRecord]:
        end = reader.line_num
        while True:
            start = end + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                end = reader.line_num
                yield CsvRecord(start, None, "", f"cannot be read as CSV ({exc})")
                continue
            end = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            joined = ",".join(row)
            if _SURROGATE.search(joined):
                yield CsvRecord(start, None, _SURROGATE.sub("\ufffd", joined), "not valid UTF-8")
            elif len(row) != width:
                yield CsvRecord(start, None, joined, f"expected {width} fields, found {len(row)}")
            else:
                yield CsvRecord(start, {h: v.strip() for h, v in zip(header, row, strict=True)}, joined)

    return records()


@contextmanager
def csv_source(
    path: Path, *, required: list[str], description: str, progress: bool = True
) -> Iterator[Iterator[CsvRecord]]:
    """Open a contract CSV file, check its header, and stream its records with a progress bar."""
    fh = open_source(path)
    with fh:
        size = max(path.stat().st_size, 1)
        with progress_bar(enabled=progress) as bar:
            task = bar.add_task(description, total=size)
            counted = io.BufferedReader(CountingReader(fh, lambda n: bar.advance(task, n)), 1 << 20)
            yield iter_csv(counted, source=path, required=required)
