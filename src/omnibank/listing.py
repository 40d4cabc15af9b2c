"""Listings for the CLI: the same rows as a table for people, or as CSV or JSON lines for pipes.

Every listing command takes ``--format table|csv|json`` (:data:`FormatOpt`) and hands its rows of plain values
to :func:`print_rows`:

- ``table``: a Rich table on stdout, as the commands always printed. Cell text is escaped, so text from
  customers such as ``[bold]`` prints literally; a cell styled on purpose is a ``rich.text.Text``.
- ``csv``: a header line of the column keys, then one line a row; RFC 4180 quoting, UTF-8 whatever the locale,
  lines ending in ``\\n`` (what ``grep``, ``awk`` and ``cut`` expect; every CSV reader takes it).
- ``json``: JSON lines, one object a row, keys the column keys (snake_case), values strings, integers,
  booleans or null; non-ASCII as it is, not ``\\u``-escaped.

In csv and json, stdout carries the rows only: titles, totals and "N of M" lines go to stderr (:func:`note`).
Values keep their meaning across formats: money is a ``Decimal`` (from :func:`omnibank.kit.money.from_fen`)
and prints as ``"1234.50"`` in csv and json, ``1,234.50`` in the table; a datetime prints in ISO 8601 with the
bank's offset (``2026-03-01T09:30:00+08:00``), or bank-local ``2026-03-01 09:30`` in the table; an integer
prints as it is, with thousands separators in the table. A float is refused: it has no exact decimal form.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import IO, Any

import typer
from rich.box import Box
from rich.console import Console
from rich.markup import escape
from rich.table import Column as RichColumn
from rich.table import Table
from rich.text import Text

from omnibank.kit.console import err, out


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


FormatOpt: Any = typer.Option(
    OutputFormat.table,
    "--format",
    case_sensitive=False,
    help="table (for people), csv or json (JSON lines): with csv and json, stdout carries the rows only.",
)

_KEY = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Col:
    """A column: its key (the CSV header and the JSON key) and how the table shows it.

    ``table=False`` keeps a column out of the table (it is in csv and json); ``data=False`` keeps it out of
    csv and json (a table-only view of other columns, e.g. ``campaign · rule``). ``show`` turns a value into
    its table text (a datetime arrives already in the bank's time zone); ``empty`` is the table text of None.
    """

    key: str
    header: str | None = None
    show: Callable[[Any], str | Text] | None = None
    empty: str = ""
    table: bool = True
    data: bool = True
    no_wrap: bool = False
    min_width: int | None = None

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            raise ValueError(f"column key {self.key!r} is not snake_case")


Row = Mapping[str, object] | Sequence[object]


def note(fmt: OutputFormat, text: str, *, style: str | None = None) -> None:
    """A title, total or summary line: on stdout under a table, on stderr with csv and json. ``text`` is Rich
    markup: escape what comes from data (``rich.markup.escape``)."""
    (out if fmt is OutputFormat.table else err).print(text, style=style)


def print_rows(
    columns: Sequence[Col],
    rows: Iterable[Row],
    fmt: OutputFormat,
    *,
    title: str | None = None,
    empty: str | None = None,
    tz: tzinfo | None = None,
    box: Box | None = None,
    min_width: int | None = None,
) -> int:
    """Print rows (mappings by column key, or sequences in column order) in the format asked; the row count.

    ``title`` heads the table (stderr with csv and json). ``empty``, when given and there is no row, is said
    instead of an empty table (on stderr with csv and json, after the CSV header). Both are plain text.
    ``tz`` is the bank's time zone for datetimes (default: the configured one). ``min_width``: render the
    table at least this wide, so that a narrow terminal wraps its lines rather than squeezing the columns.
    """
    keys = [c.key for c in columns]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate column keys in {keys}")
    values = [_in_order(columns, row) for row in rows]
    if fmt is OutputFormat.table:
        if not values and empty is not None:
            out.print(escape(empty))
            return 0
        _print_table(columns, values, title=title, tz=tz, box=box, min_width=min_width)
        return len(values)
    if title:
        err.print(escape(title))
    shown = [i for i, c in enumerate(columns) if c.data]
    names = [columns[i].key for i in shown]
    zone = tz if tz is not None else _LazyZone()
    if fmt is OutputFormat.csv:

        def render(stream: IO[str]) -> None:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(names)
            for v in values:
                writer.writerow(_csv_cell(_plain(v[i], zone)) for i in shown)

    else:

        def render(stream: IO[str]) -> None:
            for v in values:
                obj = {name: _plain(v[i], zone) for name, i in zip(names, shown, strict=True)}
                stream.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")

    _write_stdout(render)
    if not values and empty is not None:
        err.print(escape(empty))
    return len(values)


# ------------------------------------------------------------------------------------------------ internals


def _in_order(columns: Sequence[Col], row: Row) -> list[object]:
    if isinstance(row, Mapping):
        return [row[c.key] for c in columns]
    if len(row) != len(columns):
        raise ValueError(f"a row of {len(row)} values for {len(columns)} columns")
    return list(row)


class _LazyZone:
    """The configured bank time zone, read only if a datetime is printed."""

    zone: tzinfo | None = None

    def get(self) -> tzinfo:
        if self.zone is None:
            from omnibank.config import get_settings

            self.zone = get_settings().tz
        return self.zone


def _zone(tz: tzinfo | _LazyZone) -> tzinfo:
    return tz.get() if isinstance(tz, _LazyZone) else tz


def _plain(value: object, tz: tzinfo | _LazyZone) -> object:
    """A value for csv and json: str, int, bool or None."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: listings print aware datetimes only")
        return value.astimezone(_zone(tz)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Text):
        return value.plain
    _refuse_float(value)
    raise TypeError(f"cannot list a {type(value).__name__}: {value!r}")


def _refuse_float(value: object) -> None:
    if isinstance(value, float):
        raise TypeError(f"float {value!r} in a listing: use an int or a Decimal (exact)")


def _csv_cell(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def _shown(col: Col, value: object, tz: tzinfo | _LazyZone) -> str | Text:
    """A value as table text: escaped, so that markup in data prints literally."""
    if value is None:
        return escape(col.empty)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: listings print aware datetimes only")
        value = value.astimezone(_zone(tz))
    _refuse_float(value)
    if col.show is not None:
        shown = col.show(value)
    elif isinstance(value, bool):
        shown = "yes" if value else "no"
    elif isinstance(value, int | Decimal):
        shown = f"{value:,}"
    elif isinstance(value, datetime):
        shown = value.strftime("%Y-%m-%d %H:%M")
    elif isinstance(value, date):
        shown = value.isoformat()
    elif isinstance(value, Text):
        shown = value
    else:
        shown = str(value)
    return shown if isinstance(shown, Text) else escape(shown)


def _print_table(
    columns: Sequence[Col],
    values: list[list[object]],
    *,
    title: str | None,
    tz: tzinfo | None,
    box: Box | None,
    min_width: int | None,
) -> None:
    shown = [i for i, c in enumerate(columns) if c.table]
    heads = [
        RichColumn(escape(c.key if c.header is None else c.header), no_wrap=c.no_wrap, min_width=c.min_width)
        for c in (columns[i] for i in shown)
    ]  # fmt: skip
    options: dict[str, Any] = {"title": escape(title), "title_justify": "left"} if title else {}
    if box is not None:
        options["box"] = box
    table = Table(*heads, **options)
    zone = tz if tz is not None else _LazyZone()
    for v in values:
        table.add_row(*(_shown(columns[i], v[i], zone) for i in shown))
    console = out
    if min_width is not None and out.width < min_width:
        console = Console(highlight=False, soft_wrap=True, width=min_width)
    console.print(table)


def _write_stdout(render: Callable[[IO[str]], None]) -> None:
    """Write UTF-8 text to stdout whatever the locale's encoding; a reader that stops early (``| head``)
    ends the command quietly."""
    stream = sys.stdout
    try:
        stream.flush()
        raw = getattr(stream, "buffer", None)
        if raw is None:  # a text-only stream put in place of stdout
            render(stream)
            stream.flush()
            return
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            render(text)
            text.flush()
        finally:
            text.detach()
    except BrokenPipeError:
        try:  # nothing more can reach the reader: point stdout at nothing, so the exit flush stays quiet
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        raise typer.Exit(141) from None
