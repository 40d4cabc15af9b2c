"""Vectorised rendering of JSON lines, the demo's fast path for writing tens of millions of events.

A day's events of one kind are split into groups whose lines all have the same shape (same byte length of
each text field, same number of digits in each number); a group is rendered as one (rows x width) byte
matrix: constants are broadcast, numbers written digit by digit, texts copied from lookup tables. Each row
then becomes one ``bytes`` line.

Apart because it knows nothing of banks: it is byte-matrix plumbing, used by :mod:`omnibank.demo.events` for
every event line it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from omnibank.demo.sampling import IntArr


@dataclass(frozen=True)
class Digits:
    """A non-negative integer column written with exactly ``width`` digits (zero-padded)."""

    values: IntArr
    width: int


@dataclass(frozen=True)
class Lookup:
    """One fixed-width byte string per row, picked from ``table`` (a rows x width uint8 matrix)."""

    table: NDArray[np.uint8]
    index: IntArr


Part = bytes | Digits | Lookup
JSON_BOOL = ("false", "true")
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)


def n_digits(values: IntArr) -> IntArr:
    """Number of decimal digits of each (non-negative) value; 0 has one digit."""
    out: IntArr = np.searchsorted(_POW10, values, side="right").astype(np.int64) + 1
    return out


def render(n: int, parts: Sequence[Part]) -> list[bytes]:
    """``n`` lines, each the concatenation of ``parts`` for that row."""
    width = 0
    for p in parts:
        width += len(p) if isinstance(p, bytes) else p.width if isinstance(p, Digits) else p.table.shape[1]
    buf = np.empty((n, width), dtype=np.uint8)
    off = 0
    for p in parts:
        if isinstance(p, bytes):
            buf[:, off : off + len(p)] = np.frombuffer(p, dtype=np.uint8)
            off += len(p)
        elif isinstance(p, Digits):
            digits = np.empty((n, p.width), dtype=np.uint8)
            q = p.values
            for j in range(p.width - 1, -1, -1):
                q, r = np.divmod(q, 10)
                digits[:, j] = r
            digits += 48
            buf[:, off : off + p.width] = digits
            off += p.width
        else:
            w = p.table.shape[1]
            buf[:, off : off + w] = p.table[p.index]
            off += w
    lines: list[bytes] = buf.view(f"S{width}").ravel().tolist()
    return lines


class Choices:
    """Byte strings of different lengths, as one lookup table per length (rows of a group must share one
    length, so a caller groups by :attr:`length_class`)."""

    def __init__(self, texts: Sequence[str]) -> None:
        raw = [t.encode() for t in texts]
        lengths = sorted({len(r) for r in raw})
        self.length_class = np.array([lengths.index(len(r)) for r in raw], dtype=np.int64)
        self.position = np.array(
            [sum(1 for q in raw[:i] if len(q) == len(r)) for i, r in enumerate(raw)], dtype=np.int64
        )
        self.tables = [
            np.frombuffer(b"".join(r for r in raw if len(r) == n), dtype=np.uint8).reshape(-1, n)
            for n in lengths
        ]

    def part(self, choice: IntArr) -> Lookup:
        """The chosen strings; all of them must have the same length."""
        return Lookup(self.tables[int(self.length_class[choice[0]])], self.position[choice])


def group_rows(keys: IntArr) -> list[IntArr]:
    """Row indices grouped by equal key (groups in key order, rows in their original order)."""
    if len(keys) == 0:
        return []
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    return list(np.split(order, bounds))


def text_table(texts: Sequence[str]) -> NDArray[np.uint8]:
    """Equal-length ASCII strings as a (len(texts) x width) uint8 matrix."""
    raw = [t.encode() for t in texts]
    if len({len(r) for r in raw}) != 1:
        raise ValueError("texts of different lengths")
    return np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(len(raw), len(raw[0]))


def concat(groups: list[IntArr]) -> IntArr:
    return np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
