"""Reading ``events.jsonl`` in batches of whole lines (step 1 of a load, :mod:`omnibank.events.loader`).

Apart from the load because it knows nothing of events: it turns bytes into Arrow tables of lines, and is the
part of the load tuned for memory traffic. The file is read in binary into reused buffers; numpy finds the
line ends and the batch becomes an Arrow table of string views into the bytes as read (no copy, no per-line
Python). UTF-8 is checked for the whole batch at once; only a batch that fails is decoded line by line, and
its bad lines are handed back apart to be rejected as "not valid UTF-8".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

_BOM = b"\xef\xbb\xbf"
_CHUNK = 16 << 20


def _grow(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` if it holds ``size`` items, else a bigger one with the same start."""
    if len(array) >= size:
        return array
    bigger = np.empty(max(size, len(array) * 2), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


@dataclass
class Lines:
    """One batch of the file, as :meth:`LineReader.next` hands it out."""

    table: pa.Table  # line_no, raw: every line that is valid UTF-8 (blank ones too), without its line end
    bad_utf8: list[tuple[int, str]]  # (line_no, text with replacement characters)
    count: int  # physical lines in the batch


class _Buffers:
    """Memory for one batch, reused batch after batch (fresh memory costs page faults, which are
    expensive on small virtual machines)."""

    def __init__(self) -> None:
        self.raw = np.empty(_CHUNK, dtype=np.uint8)  # the batch's bytes, as read
        self.views = np.empty(0, dtype=np.uint8)  # Arrow string views into raw, 16 bytes a line
        self.line_no = np.empty(0, dtype=np.int64)


class _ReadInto(Protocol):
    def readinto(self, buffer: Any, /) -> int | None: ...


class LineReader:
    """Reads the file in batches of ``batch_lines`` whole lines (and at most about 1 GiB) and turns each
    into an Arrow table (line_no, raw) whose strings are views into the bytes as read: no copy, and line
    ends left out. Two sets of buffers alternate, so a batch stays valid while the next one is read;
    callers must be done with a batch before asking for the one after next."""

    _MAX_BATCH_BYTES = 1 << 30

    def __init__(self, fh: _ReadInto, batch_lines: int):
        self._fh = fh
        self._batch_lines = batch_lines
        self._eq = np.empty(_CHUNK, dtype=bool)
        self._carry = b""  # bytes read past the end of the last batch
        self._eof = False
        self._sets = (_Buffers(), _Buffers())
        self._turn = 0
        self.lines = 0  # physical lines handed out so far

    def next(self) -> Lines | None:
        buf = self._sets[self._turn]
        filled = len(self._carry)
        buf.raw = _grow(buf.raw, filled + _CHUNK)
        buf.raw[:filled] = np.frombuffer(self._carry, dtype=np.uint8)
        found: list[np.ndarray] = []
        total = scanned = 0
        while True:
            if scanned < filled:
                span = filled - scanned
                self._eq = _grow(self._eq, span)
                np.equal(buf.raw[scanned:filled], 10, out=self._eq[:span])
                fresh = np.flatnonzero(self._eq[:span]) + scanned
                found.append(fresh)
                total += len(fresh)
                scanned = filled
                if total >= self._batch_lines or (filled >= self._MAX_BATCH_BYTES and total):
                    newlines = np.concatenate(found)[: self._batch_lines]
                    cut = int(newlines[-1]) + 1
                    break
            if self._eof:
                newlines = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
                cut = filled
                break
            buf.raw = _grow(buf.raw, filled + _CHUNK)
            got = self._fh.readinto(buf.raw[filled : filled + _CHUNK].data)
            if got:
                filled += got
            else:
                self._eof = True
        self._carry = buf.raw[cut:filled].tobytes()
        if cut == 0:
            return None
        self._turn = 1 - self._turn
        skip = len(_BOM) if self.lines == 0 and buf.raw[: len(_BOM)].tobytes() == _BOM else 0
        lines = _split_lines(buf, cut, newlines, self.lines + 1, skip)
        self.lines += lines.count
        return lines


def _split_lines(buf: _Buffers, size: int, newline: np.ndarray, first_line: int, skip: int) -> Lines:
    """Cut ``buf.raw[:size]`` (with its newline positions) into lines without their line ends, as Arrow
    string views; per-line decoding only when the batch is not valid UTF-8. ``skip`` bytes at the start
    (a byte order mark) are left out."""
    data = buf.raw[:size]
    ends = newline if data[-1] == 10 else np.append(newline, size)
    count = len(ends)
    starts = np.empty(count, dtype=np.int64)
    starts[0] = skip
    starts[1:] = newline[: count - 1] + 1
    ends = ends - ((ends > starts) & (data[np.maximum(ends - 1, 0)] == 13))  # drop the \r of \r\n
    lengths = ends - starts
    # Arrow string views: length, then either the bytes inline (up to 12) or a 4-byte prefix, the buffer
    # index (0) and the offset.
    buf.views = _grow(buf.views, count * 16)
    views = buf.views[: count * 16].reshape(count, 16)
    ints = views.view(np.int32)
    ints[:, 0] = lengths
    long = np.flatnonzero(lengths > 12)
    if len(long):
        at = starts[long]
        prefix = data[at].astype(np.uint32)
        for k in (1, 2, 3):
            prefix |= data[at + k].astype(np.uint32) << (8 * k)
        ints[long, 1] = prefix.view(np.int32)
        ints[long, 2] = 0
        ints[long, 3] = at
    short = np.flatnonzero(lengths <= 12)
    if len(short):
        views[short, 4:] = 0
        for k in range(12):
            rows = short[lengths[short] > k]
            views[rows, 4 + k] = data[starts[rows] + k]
    buf.line_no = _grow(buf.line_no, count)
    line_no = buf.line_no[:count]
    line_no[:] = np.arange(first_line, first_line + count, dtype=np.int64)
    raw = pa.Array.from_buffers(pa.string_view(), count, [None, pa.py_buffer(views), pa.py_buffer(data)])
    try:
        raw.validate(full=True)
    except pa.ArrowInvalid:
        pass
    else:
        return Lines(pa.table({"line_no": pa.array(line_no), "raw": raw}), [], count)
    good_no: list[int] = []
    good: list[str] = []
    bad: list[tuple[int, str]] = []
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        chunk = data[a:b].tobytes()
        try:
            good.append(chunk.decode("utf-8"))
            good_no.append(first_line + i)
        except UnicodeDecodeError:
            bad.append((first_line + i, chunk.decode("utf-8", errors="replace")))
    table = pa.table({"line_no": pa.array(good_no, pa.int64()), "raw": pa.array(good, pa.string())})
    return Lines(table, bad, count)
