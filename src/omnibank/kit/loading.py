"""What every loader shares: opening a source, streaming it with a progress bar, the rejects file and
the load report.

A load writes ``<home>/loads/<stamp>-<kind>-<id>/report.json`` and, when any row was rejected,
``rejects.csv`` beside it: ``line,reason,raw`` with personal data in ``raw`` masked.

**Encodings.** Files are UTF-8 unless the loader is told ``--encoding gb18030`` (or ``gbk``), as exports
of Chinese banking systems often are; such a file is read through a transcoder, so every loader sees
UTF-8. Before any row is loaded, the first MiB is looked at (:func:`sniff`): a file said to be UTF-8 whose
lines with non-ASCII bytes are mostly not UTF-8 but read as GB18030 with Chinese characters is refused with
the hint to pass ``--encoding gb18030``; a file said to be GB18030 or GBK whose Chinese text is all valid
UTF-8 is refused too (reading it as GB18030 would store garbled names). Bytes that are not valid in the
file's encoding reject their row; the rejects file is UTF-8 whatever the input, with personal columns
masked even where their bytes could not be read.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
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

from omnibank.errors import AppError, InputRefused
from omnibank.kit.masking import mask_name


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
        if self.extra.get("left"):  # a staff file that left some staff out
            line += (f"\nstaff no longer in the file, marked as left: {self.extra['left']:,} "
                     f"(invite codes revoked: {self.extra.get('codes_revoked', 0):,})")  # fmt: skip
        if self.recovered:
            done = f"completed an interrupted earlier load first: it added {self.recovered:,} events"
            line = f"{done} to the log\n{line}"
        return line


#: the encodings a contract file may be in (``--encoding``); GB18030 is the superset of GBK and GB2312
ENCODINGS = ("utf-8", "gb18030", "gbk")
_LABELS = {"utf-8": "UTF-8", "gb18030": "GB18030", "gbk": "GBK"}
_SNIFF_BYTES = 1 << 20
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HINT = "pass --encoding gb18030"
_SURROGATE = re.compile("[\udc80-\udcff]")  # an undecodable byte, as surrogateescape gives it back
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encoding_name(value: str) -> str:
    """The canonical name of an ``--encoding`` (``UTF8``, ``GB18030``, ``cp936`` …), or an error saying
    which are accepted."""
    try:
        name = codecs.lookup(value).name
    except LookupError:
        name = ""
    if name not in ENCODINGS:
        raise AppError(f"--encoding: {value!r} is not one of {', '.join(ENCODINGS)}")
    return name


def _reads_as(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def looks_gb18030(data: bytes) -> bool:
    """Whether bytes that are not UTF-8 read as GB18030 text with Chinese characters in it."""
    text = _reads_as(data, "gb18030")
    return text is not None and _CJK.search(text) is not None


def sniff(sample: bytes, source: Path, encoding: str, *, complete: bool) -> None:
    """Refuse a file whose first bytes say it is in another encoding than the one it is to be read in
    (see the module's docstring); ``complete``: the sample is the whole file."""
    lines = sample.split(b"\n")
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut short by the sample's end
    foreign = [line for line in lines if not line.isascii()]
    if not foreign:
        return
    not_utf8 = [line for line in foreign if _reads_as(line, "utf-8") is None]
    if encoding == "utf-8":
        if 2 * len(not_utf8) > len(foreign) and 2 * sum(map(looks_gb18030, not_utf8)) > len(not_utf8):
            raise InputRefused(
                f"{source}: not UTF-8: {len(not_utf8):,} of the first {len(lines):,} lines are not; it looks "
                f"like GB18030 (GBK), as exports of Chinese banking systems often are: {_HINT}"
            )
        return
    utf8 = "\n".join(line.decode("utf-8") for line in foreign) if not not_utf8 else ""
    if _CJK.search(utf8):
        raise InputRefused(
            f"{source}: this file is UTF-8 (its Chinese text reads as UTF-8), not {_LABELS[encoding]}: leave "
            "out --encoding (reading it as GB18030 would store garbled names)"
        )


class _Transcoder(io.RawIOBase):
    """A binary file in GB18030 or GBK read as UTF-8 bytes. Bytes not valid in the source's encoding
    come through as they were (invalid UTF-8), so that their line is rejected as unreadable."""

    _CHUNK = 1 << 20

    def __init__(self, raw: IO[bytes], encoding: str):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="surrogateescape")
        self._pending = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, b: Any) -> int:
        while not self._pending and not self._eof:
            chunk = self._raw.read(self._CHUNK)
            self._eof = not chunk
            text = self._decoder.decode(chunk, final=self._eof)
            self._pending = text.encode("utf-8", errors="surrogateescape")
        view = memoryview(b).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_source(path: Path, *, encoding: str = "utf-8") -> IO[bytes]:
    """Open an input file for reading as UTF-8 bytes (transcoded from ``encoding``), refusing clearly
    what cannot be read at all or is plainly in another encoding (:func:`sniff`)."""
    if not path.exists():
        raise InputRefused(f"{path}: no such file")
    if path.is_dir():
        raise InputRefused(f"{path}: is a directory, expected a file")
    encoding = encoding_name(encoding)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputRefused(f"{path}: cannot be read ({exc.strerror})") from exc
    try:
        if fh.seekable():
            sample = fh.read(_SNIFF_BYTES)
            fh.seek(0)
            sniff(sample, path, encoding, complete=len(sample) < _SNIFF_BYTES)
    except BaseException:
        fh.close()
        raise
    if encoding == "utf-8":
        return fh
    return io.BufferedReader(_Transcoder(fh, encoding), 1 << 20)


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
        """Write a rejected row: always UTF-8, so anything that is not text (half a surrogate pair,
        from JSON's "\\ud800" or from bytes the file's encoding could not read) becomes U+FFFD."""
        reason, raw_masked = _LONE_SURROGATE.sub("\ufffd", reason), _LONE_SURROGATE.sub("\ufffd", raw_masked)
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


Masker = Callable[[str], str]


def _hint(row: list[str], encoding: str) -> str:
    """For fields read as UTF-8 with undecodable bytes: a hint when they read as GB18030."""
    if encoding == "utf-8" and looks_gb18030(",".join(row).encode("utf-8", "surrogateescape")):
        return f" (it looks like GB18030: {_HINT})"
    return ""


def _unreadable(row: list[str], header: list[str], personal: Mapping[str, Masker]) -> str:
    """A row holding bytes that could not be read, as the rejects file may show it: undecodable bytes
    as U+FFFD; its personal columns masked by their maskers when the row has the header's width, else
    every field that held such bytes masked as a name would be (no column can be told apart then)."""
    fields = [_SURROGATE.sub("\ufffd", value) for value in row]
    if len(row) == len(header):
        fields = [personal[h](f.strip()) if h in personal else f for h, f in zip(header, fields, strict=True)]
    else:
        fields = [mask_name(f) if _SURROGATE.search(v) else f for v, f in zip(row, fields, strict=True)]
    return ",".join(fields)


def iter_csv(
    fh: IO[bytes],
    *,
    source: Path,
    required: list[str],
    optional: list[str] | None = None,
    encoding: str = "utf-8",
    personal: Mapping[str, Masker] | None = None,
) -> Iterator[CsvRecord]:
    """Stream a CSV file, as UTF-8 bytes (:func:`open_source` transcodes), record by record in constant
    memory.

    The header is read and checked at once (a wrong header raises InputRefused before any row is
    looked at): it must name every required column, in any order; an unknown or repeated column refuses
    the file, so a misspelt column is never silently ignored. A record that is not valid in the file's
    ``encoding`` or has the wrong number of fields comes back with ``error`` set, and the rest of the file
    goes on. ``raw`` is the record's fields joined by commas; in a record with unreadable bytes they show as
    U+FFFD and the ``personal`` columns are masked (column → masker), whatever their bytes.
    """
    optional = optional or []
    personal = personal or {}
    label = _LABELS.get(encoding, encoding)
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
        raise InputRefused(f"{source}: the header line is not valid {label}{_hint(header, encoding)}")
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
                why = f"not valid {label}{_hint(row, encoding)}"
                yield CsvRecord(start, None, _unreadable(row, header, personal), why)
            elif len(row) != width:
                yield CsvRecord(start, None, joined, f"expected {width} fields, found {len(row)}")
            else:
                yield CsvRecord(start, {h: v.strip() for h, v in zip(header, row, strict=True)}, joined)

    return records()


@contextmanager
def csv_source(
    path: Path,
    *,
    required: list[str],
    description: str,
    progress: bool = True,
    encoding: str = "utf-8",
    personal: Mapping[str, Masker] | None = None,
) -> Iterator[Iterator[CsvRecord]]:
    """Open a contract CSV file in ``encoding``, check its header, and stream its records with a progress
    bar; ``personal`` columns are masked in records that cannot be read (see :func:`iter_csv`)."""
    fh = open_source(path, encoding=encoding)
    with fh:
        size = max(path.stat().st_size, 1)
        with progress_bar(enabled=progress) as bar:
            task = bar.add_task(description, total=size)
            counted = io.BufferedReader(CountingReader(fh, lambda n: bar.advance(task, n)), 1 << 20)
            yield iter_csv(
                counted, source=path, required=required, encoding=encoding_name(encoding), personal=personal
            )


def read_text_file(path: Path) -> str:
    """A definition file's text (a journey, reward rules): a missing or non-UTF-8 file is refused, named."""
    if not path.is_file():
        raise InputRefused(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputRefused(f"{path}: not UTF-8 text") from None
