"""Load ``events.jsonl`` (one JSON object a line, see the data contract) into the event log.

How a load runs (10M events in about a minute on two cores):

1. **Read.** The file is read in binary, in batches of whole lines, into reused buffers; numpy finds the
   line ends and the batch becomes an Arrow table of string views into the bytes as read (no copy, no
   per-line Python). UTF-8 is checked for the whole batch at once; only a batch that fails is decoded
   line by line, and its bad lines are rejected as "not valid UTF-8". The next batch is read in a worker
   thread while DuckDB checks the current one.
2. **Check.** One DuckDB statement parses every line of the batch once (``from_json``) and works out,
   vectorised, either the typed row or the reason the line is rejected: the first failing check, naming
   the field. Card numbers become their tokens there (a keyed HMAC, :mod:`omnibank.events.protect`), in
   the column and in the stored line. Lines DuckDB's lenient JSON reader may have accepted wrongly (NaN,
   trailing commas) and the rare lines that may hold other personal data (a personal field, or anything a
   cheap pattern takes for a phone, ID or card number) are finished in Python, which protects the whole
   line (personal fields by their blind index, the rest scanned). A line without ``customer_id`` that
   carries an identifier (card id, WeChat openid, app user id, phone, ID number) passes this step; only such
   lines then go through a second pass that finds their customer
   (:class:`omnibank.customers.identity.Resolver`) or rejects them.
3. **Stage.** Good rows go to ``_staging/<load_id>/`` under the event log: the rows as uncompressed Arrow
   files, one per batch and bank-local month, and their (event_id, line_no) as Parquet.
4. **Finalize** (under the log's lock). One DuckDB statement finds the staged lines not to publish: an id
   seen on an earlier line of the file (the first line wins) or already in the log. pyarrow then writes the
   month partitions (zstd) into the staging folder (it does so at well under half the CPU of DuckDB's
   partitioned ``COPY``, which matters on two cores), the folder is marked ``READY`` and its files are
   renamed into the log (see :mod:`omnibank.events.log`).
5. **Learn.** The identifiers that ``card.issued`` and ``identity.linked`` lines bind to their customer are
   recorded in the store once the log has published (first binding wins; conflicts counted in the report).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.exc import SQLAlchemyError

from omnibank.config import Settings
from omnibank.customers.identity import (
    BINDINGS_SCHEMA,
    MAX_VALUE,
    RESOLVE_FIELDS,
    Resolver,
    learn_identifiers,
)
from omnibank.errors import AppError, InputRefused
from omnibank.events.columns import (
    AMOUNT_PATTERN,
    BAD_MESSAGES,
    CHANNELS,
    CUSTOMER_ID_REQUIRED,
    INTEGER_PATTERN,
    KNOWN_TYPES,
    LEARNT_FROM,
    NUMBER_PATTERN,
    ONE_OF_REQUIRED,
    PII_KINDS,
    TIERS,
    TS_PATTERN,
    TYPE_PATTERN,
    Field,
    dumps,
    loads,
)
from omnibank.events.log import (
    COLUMN_NAMES,
    DICTIONARY_COLUMNS,
    FINAL,
    ROW_GROUP_ROWS,
    EventLog,
    configure,
    sql_string,
)
from omnibank.events.protect import (
    PROTECTED_KEY,
    PROTECTED_VERSION,
    TEXT_COLUMNS,
    Protector,
    Registry,
    card_payload_sql,
    needs_python_sql,
    registry_of,
)
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.loading import CountingReader, LoadReport, LoadRun, open_source, progress_bar
from omnibank.kit.masking import mask_free_text, mask_id_number, mask_name, mask_phone

# Where a JSON number amount is written in the line (DuckDB gives back a double, not the text).
AMOUNT_KEY_PATTERN = r'"amount"\s*:\s*(-?[0-9][0-9.eE+-]*)'
# DuckDB's JSON reader accepts NaN/Infinity and trailing commas; lines that may use them are re-checked
# strictly in Python (rare: only these lines).
# (three patterns, each starting with a literal character, which RE2 scans for much faster than a class)
LENIENT_PATTERNS = (r",\s*([\]}]|[-+]?[NnIi][NnAa])", r":\s*[-+]?[NnIi][NnAa]", r"\[\s*[-+]?[NnIi][NnAa]")

# The field/column mapping lives in omnibank.events.columns (the typed append reads it too).
_Field = Field
_BAD_MESSAGES = BAD_MESSAGES
_loads = loads
_dumps = dumps

_COMMON = ("event_id", "type", "customer_id", "ts", "channel")
_TYPED: dict[str, _Field] = {f.name: f for fields in KNOWN_TYPES.values() for f in fields}
# Every key is fetched by one from_json() call per line.
_KEYS: tuple[str, ...] = _COMMON + tuple(_TYPED) + tuple(PII_KINDS)
_INTEGER_RE = sql_string(INTEGER_PATTERN)
_NUMBER_RE = sql_string(NUMBER_PATTERN)
_WS = "' ' || chr(9) || chr(10) || chr(13)"


# Keys read straight as text: any non-string value fails their check anyway (a pattern or a set of words),
# so there is no need to know the JSON type. The others come as JSON fragments ('"text"', '12.5', 'true').
_TEXT_KEYS = ("type", "ts", "channel", "tier")


def _absent(key: str) -> str:
    if key in _TEXT_KEYS:
        return f"(f_{key} IS NULL)"  # absent or JSON null
    return f"(f_{key} IS NULL OR f_{key} = 'null')"


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(sql_string(v) for v in values) + ")"


def _string_value(key: str) -> str:
    """The text of a JSON string fragment (unescaped only when it has escapes), else NULL."""
    f = f"f_{key}"
    if key in _TEXT_KEYS:
        return f
    return (
        f"CASE WHEN NOT starts_with({f}, '\"') THEN NULL "
        f"WHEN contains({f}, '\\') THEN json_extract_string({f}, '$') "
        f"ELSE substring({f}, 2, length({f}) - 2) END"
    )


def _amount_text() -> str:
    """The text of ``amount``: a string's content, or the number as written in the line (a non-integer
    JSON number comes back from DuckDB re-printed from a double, so its exact text is taken from the line:
    the occurrence of ``"amount":`` whose value is that same number)."""
    f = "f_amount"
    return (
        f"CASE WHEN starts_with({f}, '\"') THEN {_string_value('amount')} "
        f"WHEN regexp_full_match({f}, {_INTEGER_RE}) THEN {f} "
        f"WHEN regexp_full_match({f}, {_NUMBER_RE}) THEN "
        f"list_filter(regexp_extract_all(raw, {sql_string(AMOUNT_KEY_PATTERN)}, 1), "
        f"lambda x: try_cast(x AS DOUBLE) = try_cast({f} AS DOUBLE))[1] END"
    )


def _typed_expr(field: _Field) -> str:
    """The typed value of a field, from its fragment ``f_<key>`` or its string ``s_<key>``."""
    f, s = f"f_{field.name}", f"s_{field.name}"
    if field.kind == "str":
        return f"CASE WHEN trim({s}) <> '' THEN {s} END"
    if field.kind == "opt_str":
        return s
    if field.kind == "opt_id":
        return f"CASE WHEN trim({s}) <> '' AND length({s}) <= {MAX_VALUE} THEN {s} END"
    if field.kind == "tier":
        return f"CASE WHEN {s} IN {_in(TIERS)} THEN {s} END"
    if field.kind == "bool":
        return f"CASE {f} WHEN 'true' THEN true WHEN 'false' THEN false END"
    if field.kind == "pos_int":
        return f"CASE WHEN regexp_full_match({f}, {_INTEGER_RE}) THEN try_cast({f} AS BIGINT) END"
    if field.kind == "nonneg_number":
        return f"CASE WHEN regexp_full_match({f}, {_NUMBER_RE}) THEN try_cast({f} AS DOUBLE) END"
    if field.kind == "amount":
        return (
            f"CASE WHEN regexp_full_match({s}, {sql_string(AMOUNT_PATTERN)}) "
            f"THEN try_cast({s} AS DECIMAL(18,2)) END"
        )
    raise ValueError(field.kind)


def _ok_expr(field: _Field) -> str:
    col = field.column
    if field.kind in ("amount", "pos_int"):
        return f"coalesce({col} > 0, false)"
    if field.kind == "nonneg_number":
        return f"coalesce(isfinite({col}) AND {col} >= 0, false)"
    return f"{col} IS NOT NULL"


def _checks() -> list[tuple[str, str]]:
    """(condition of failure, reason) in the order they are checked; the first that holds wins."""
    checks = [
        ("NOT ok", "not valid JSON"),
        ("NOT is_object", "not a JSON object"),
        (_absent("event_id"), "event_id: missing"),
        ("event_id IS NULL", "event_id: must be a non-empty string or an integer"),
        (_absent("type"), "type: missing"),
        (
            f"type IS NULL OR NOT regexp_full_match(type, {sql_string(TYPE_PATTERN)})",
            "type: must be lowercase dotted words such as card.transaction",
        ),
        (f"{_absent('customer_id')} AND NOT {_RESOLVABLE}", "customer_id: missing"),
        (f"NOT {_absent('customer_id')} AND customer_id IS NULL", "customer_id: must be a non-empty string"),
        (_absent("ts"), "ts: missing"),
        ("ts_text IS NULL", "ts: not an ISO 8601 date-time"),
        ("ts IS NULL", "ts: not a real date and time"),
        (f"NOT {_absent('channel')} AND channel IS NULL", "channel: must be one of " + ", ".join(CHANNELS)),
    ]
    for type_name, fields in KNOWN_TYPES.items():
        is_type = f"type = {sql_string(type_name)}"
        if type_name in ONE_OF_REQUIRED:
            names = ONE_OF_REQUIRED[type_name]
            checks.append(
                (
                    f"{is_type} AND " + " AND ".join(_absent(n) for n in names),
                    f"{names[0]}: missing ({type_name} needs {' or '.join(names)})",
                )
            )
        for f in fields:
            if f.kind in ("opt_str", "opt_id"):
                checks.append(
                    (
                        f"{is_type} AND NOT {_absent(f.name)} AND {f.column} IS NULL",
                        f"{f.name}: {_BAD_MESSAGES[f.kind]}",
                    )
                )
                continue
            checks.append((f"{is_type} AND {_absent(f.name)}", f"{f.name}: missing"))
            checks.append((f"{is_type} AND NOT {_ok_expr(f)}", f"{f.name}: {_BAD_MESSAGES[f.kind]}"))
    return checks


def _fine() -> str:
    """Whether a line passes every check: one cheap expression, so that the detailed reasons are worked
    out only for the lines that fail."""
    per_type = []
    for type_name, fields in KNOWN_TYPES.items():
        oks = [
            f"({_absent(f.name)} OR {f.column} IS NOT NULL)"
            if f.kind in ("opt_str", "opt_id")
            else _ok_expr(f)
            for f in fields
        ]
        if type_name in ONE_OF_REQUIRED:
            oks.append("NOT (" + " AND ".join(_absent(n) for n in ONE_OF_REQUIRED[type_name]) + ")")
        per_type.append(f"WHEN {sql_string(type_name)} THEN {' AND '.join(oks) or 'true'}")
    return (
        "ok AND is_object AND event_id IS NOT NULL "
        f"AND (customer_id IS NOT NULL OR ({_absent('customer_id')} AND {_RESOLVABLE})) AND ts IS NOT NULL "
        f"AND (channel IS NOT NULL OR {_absent('channel')}) "
        f"AND CASE type {' '.join(per_type)} "
        f"ELSE coalesce(regexp_full_match(type, {sql_string(TYPE_PATTERN)}), false) END"
    )


def _identifier_expr(key: str) -> str:
    """``x_<key>``: the text of an identifier field where it is needed, NULL elsewhere (which costs next to
    nothing): on a line without a customer_id, to find the customer by it, and on the lines that bind it
    to their customer (``identity.linked``; ``card.issued`` binds its typed ``card_id``)."""
    f = f"f_{key}"
    text = _string_value(key)
    if key in PII_KINDS:  # a phone or ID number may come as a JSON number
        text = (
            f"CASE WHEN starts_with({f}, '\"') THEN {text} "
            f"WHEN regexp_full_match({f}, {_NUMBER_RE}) THEN {f} END"
        )
    value = f"CASE WHEN trim({text}) <> '' THEN {text} END"
    binding = tuple(t for t, learnt in LEARNT_FROM.items() if any(c == f"x_{key}" for c, _ in learnt))
    if binding:
        return f"CASE WHEN type IN {_in(binding)} THEN {key} WHEN customer_id IS NULL THEN {value} END"
    return f"CASE WHEN customer_id IS NULL THEN {value} END"


# A line without customer_id whose customer may be found by an identifier it carries.
_RESOLVABLE = (
    f"(type NOT IN {_in(CUSTOMER_ID_REQUIRED)} "
    f"AND coalesce({', '.join(f'x_{k}' for k in RESOLVE_FIELDS)}) IS NOT NULL)"
)


def _types_with(key: str) -> tuple[str, ...]:
    return tuple(t for t, fields in KNOWN_TYPES.items() if any(f.name == key for f in fields))


def _validate_sql(load_id: str, registry: Registry | None = None) -> str:
    """One statement over the registered ``batch`` (line_no, raw): a row per non-blank line with the
    typed columns, ``reason`` (NULL when the line is good), and the ``suspect`` and ``pii`` flags (``pii``:
    the line needs the Python pass that protects personal data, :mod:`omnibank.events.protect`). Card
    numbers come out as their tokens (the function ``omnibank_card_token`` must be registered), and a
    line without ``pii`` has its card number replaced in ``payload`` already; ``x_card_clear`` is the
    number itself where a line binds it (kept in memory, to be encrypted in the store)."""
    structure = "{" + ", ".join(f'"{k}": "{"VARCHAR" if k in _TEXT_KEYS else "JSON"}"' for k in _KEYS) + "}"
    fragments = ", ".join(f"fr.{k}::VARCHAR AS f_{k}" for k in _KEYS)
    lenient = " OR ".join(f"regexp_matches(raw, {sql_string(p)})" for p in LENIENT_PATTERNS)
    strings = ", ".join(f"{_string_value(k)} AS s_{k}" for k in _COMMON)
    # string values of typed fields, worked out only for the types that have them
    typed_strings = []
    for key, field in _TYPED.items():
        if field.kind in ("str", "opt_str", "opt_id", "tier"):
            value = _string_value(key)
        elif field.kind == "amount":
            value = _amount_text()
        else:
            continue
        typed_strings.append(f"CASE WHEN type IN {_in(_types_with(key))} THEN {value} END AS s_{key}")
    typed = [
        f"CASE WHEN type IN {_in(_types_with(key))} THEN {_typed_expr(field)} END AS {field.column}"
        for key, field in _TYPED.items()
    ]
    pii = " OR ".join(f"f_{k} IS NOT NULL" for k in PII_KINDS)
    detail = "CASE " + " ".join(f"WHEN {c} THEN {sql_string(r)}" for c, r in _checks()) + " END"
    reason = f"CASE WHEN coalesce({_fine()}, false) THEN NULL ELSE {detail} END"
    needs_python = needs_python_sql(
        registry or Registry(), raw="raw", card_text="c_text", card_fragment="f_card_id", type_="type"
    )
    fast = card_payload_sql(payload="payload", card_text="c_text", card_token="c_token")
    outputs = {  # card numbers out: their tokens, in the column and (fast path) in the stored line
        "card_id": "CASE WHEN card_id IS NOT NULL THEN c_token END AS card_id",
        "x_card_id": "CASE WHEN x_card_id IS NOT NULL THEN c_token END AS x_card_id",
        "payload": f"CASE WHEN needs_python OR pii THEN payload ELSE {fast} END AS payload",
    }
    return f"""
WITH valid AS (
    SELECT line_no, raw, json_valid(raw) AS ok FROM batch WHERE raw <> ''
), nonblank AS (
    SELECT line_no, raw, ok,
        CASE WHEN NOT ok THEN false WHEN starts_with(raw, '{{') THEN true
             ELSE json_type(raw) = 'OBJECT' END AS is_object
    FROM valid WHERE CASE WHEN ok THEN true ELSE trim(raw, {_WS}) <> '' END
), extracted AS (
    SELECT line_no, raw, ok, is_object,
        CASE WHEN is_object THEN from_json(raw, {sql_string(structure)}) END AS fr,
        ok AND ({lenient}) AS suspect
    FROM nonblank
), fragments AS (
    SELECT line_no, raw, ok, is_object, suspect, {fragments} FROM extracted
), strings AS (
    SELECT *, {strings} FROM fragments
), common AS (
    SELECT *,
        CASE WHEN trim(s_event_id) <> '' THEN s_event_id
             WHEN regexp_full_match(f_event_id, {_INTEGER_RE}) THEN f_event_id END AS event_id,
        s_type AS type,
        CASE WHEN trim(s_customer_id) <> '' THEN s_customer_id END AS customer_id,
        CASE WHEN regexp_full_match(s_ts, {sql_string(TS_PATTERN)}) THEN s_ts END AS ts_text,
        CASE WHEN s_channel IN {_in(CHANNELS)} THEN s_channel END AS channel,
        {pii} AS pii
    FROM strings
), typed_strings AS (
    SELECT *, try_cast(ts_text AS TIMESTAMPTZ) AS ts, {", ".join(typed_strings)} FROM common
), typed AS (
    SELECT *, {", ".join(typed)} FROM typed_strings
), identified AS (
    SELECT *, {", ".join(f"{_identifier_expr(k)} AS x_{k}" for k in RESOLVE_FIELDS)},
        CASE WHEN trim({_string_value("card_id")}) <> '' THEN {_string_value("card_id")} END AS c_text
    FROM typed
), checked AS (
    SELECT *, {reason} AS reason, ts::DATE AS local_date, raw AS payload, {sql_string(load_id)} AS load_id,
        CASE WHEN c_text IS NOT NULL THEN omnibank_card_token(c_text) END AS c_token,
        coalesce(x_card_id, card_id) AS x_card_clear, {needs_python} AS needs_python
    FROM identified
)
SELECT {", ".join(outputs.get(c, c) for c in COLUMN_NAMES)}, reason, suspect, pii OR needs_python AS pii,
    {", ".join(outputs.get(f"x_{k}", f"x_{k}") for k in RESOLVE_FIELDS)}, x_card_clear
FROM checked
"""


# -- reading the file ------------------------------------------------------------------------------------


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
class _Lines:
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


class _Reader:
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

    def next(self) -> _Lines | None:
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


def _split_lines(buf: _Buffers, size: int, newline: np.ndarray, first_line: int, skip: int) -> _Lines:
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
        return _Lines(pa.table({"line_no": pa.array(line_no), "raw": raw}), [], count)
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
    return _Lines(table, bad, count)


# -- personal data -----------------------------------------------------------------------------------------


_MASKERS = {"name": mask_name, "phone": mask_phone, "id_number": mask_id_number}


def _masked_raw(text: str) -> str:
    """A rejected line as the rejects file may show it: personal fields masked, then free text masked."""
    try:
        obj = _loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and any(k in PII_KINDS for k in obj):
        for key, kind in PII_KINDS.items():
            value = obj.get(key)
            if value is not None:
                obj[key] = _MASKERS[kind](value if isinstance(value, str) else _dumps(value))
        text = _dumps(obj)
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


# -- the load ----------------------------------------------------------------------------------------------

# How the log's files are written: shared with the typed append (omnibank.events.log).
_DICTIONARY_COLUMNS = DICTIONARY_COLUMNS
_ROW_GROUP_ROWS = ROW_GROUP_ROWS
_FILE_ROWS = 2_000_000  # a month of one load is split into files of about this many rows
_WRITERS = 2
_DEDUP_MEMORY = "384MB"
_ID_HASH = "hash(event_id)"  # 64 bits: ids are grouped by it first, then compared exactly where it repeats
_RESULT_ROWS = 65_536  # rows DuckDB hands back at a time
_LEARNING_TYPES = pa.array(list(LEARNT_FROM), pa.string())


def _month_name(months_since_1970: int) -> str:
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
            path = self._folder / f"{self._name}-{_month_name(month)}.arrow"
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


class _Stager:
    """Validates batches and stages their good rows: the ids (for deduplication) and the rows, as
    uncompressed Arrow files that the final step reads back without copying. DuckDB's result is
    streamed in slices, so a batch never sits in memory twice."""

    def __init__(self, settings: Settings, run: LoadRun, cipher: FieldCipher, folder: Path):
        self.run = run
        self.cipher = cipher
        self.ids_dir = folder / "ids"
        self.parts_dir = folder / "parts"
        self.ids_dir.mkdir()
        self.parts_dir.mkdir()
        self.con = duckdb.connect(":memory:")
        configure(self.con, settings, temp_dir=folder / "tmp")
        self.protector = Protector(cipher, registry_of(settings))
        self.protector.register(self.con)
        self.sql = _validate_sql(run.load_id, self.protector.registry)
        self.schema: pa.Schema | None = None  # of the log files
        self.staged = 0  # good rows staged
        self.events = 0  # non-blank lines seen
        self.batches = 0
        self.parts: dict[int, list[tuple[Path, int]]] = {}  # month -> [(part file, rows)]
        self.bindings: list[pa.Table] = []  # identifiers bound by good lines (BINDINGS_SCHEMA)
        self.resolver = Resolver(settings, cipher)
        self.resolved: Counter[str] = Counter()  # lines whose customer was found, by the field that found it

    def close(self) -> None:
        self.con.close()

    def process(self, lines: _Lines) -> None:
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
                    self._bind(result, explicit=True)
                    if result.column("customer_id").null_count:
                        result = self._resolve(result, rejects)
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

    def _bind(self, result: pa.Table, *, explicit: bool) -> None:
        """Keep the identifiers that lines of ``result`` bind to their customer (``card.issued``,
        ``identity.linked``), to learn them after the load publishes. Those of lines that name their
        customer themselves (``explicit``) also resolve later lines of the file."""
        types = result.column("type")
        if not pc.any(pc.is_in(types, value_set=_LEARNING_TYPES)).as_py():
            return
        customer = result.column("customer_id")
        for type_name, learnt in LEARNT_FROM.items():
            is_type = pc.and_(pc.equal(types, type_name), pc.is_valid(customer))
            if not pc.any(is_type).as_py():
                continue
            rows = result.filter(is_type)
            for column, kind in learnt:
                values = rows.column(column)
                if values.null_count == rows.num_rows:
                    continue
                got = rows.filter(pc.is_valid(values))
                columns = [got.column(c) for c in ("customer_id", "event_id", "line_no", "ts")]
                # a card's number itself, to be kept encrypted beside its token
                clear = (
                    got.column("x_card_clear") if kind == "card_id" else pa.nulls(got.num_rows, pa.string())
                )
                table = pa.Table.from_arrays(
                    [pa.array([kind] * got.num_rows, pa.string()), got.column(column), *columns, clear],
                    names=BINDINGS_SCHEMA.names,
                ).cast(BINDINGS_SCHEMA)
                self.bindings.append(table)
                if explicit:
                    self.resolver.note(table)

    def _resolve(self, result: pa.Table, rejects: list[tuple[int, str, str]]) -> pa.Table:
        """Find the customer of the lines without a customer_id (through the identifiers they carry);
        the lines whose customer is not found are rejected with the reason."""
        customer = result.column("customer_id").combine_chunks()
        missing = pc.is_null(customer)
        x_columns = [f"x_{name}" for name in RESOLVE_FIELDS]
        pending = result.select(["line_no", "type", "payload", *x_columns]).filter(missing)
        lines = pending.column("line_no").to_pylist()
        fields = {
            name: pending.column(f"x_{name}").to_pylist()
            for name in RESOLVE_FIELDS
            if pending.column(f"x_{name}").null_count < pending.num_rows
        }
        found, via, reasons = self.resolver.resolve(lines, fields)
        self.resolved.update(v for v in via if v is not None)
        if any(why is not None for why in reasons):
            payloads = pending.column("payload").to_pylist()
            for line, why, raw in zip(lines, reasons, payloads, strict=True):
                if why is not None:
                    rejects.append((line, why, raw))
        filled = pc.replace_with_mask(customer, missing, pa.array(found, customer.type))
        result = result.set_column(result.schema.get_field_index("customer_id"), "customer_id", filled)
        if pc.any(pc.is_in(pending.column("type"), value_set=_LEARNING_TYPES)).as_py():
            self._bind(result.filter(pc.and_(missing, pc.is_valid(filled))), explicit=False)
        return result.filter(pc.is_valid(filled)) if filled.null_count else result

    def binding_table(self, leave_out: np.ndarray) -> pa.Table:
        """The identifiers bound by the staged lines (:data:`BINDINGS_SCHEMA`), leaving out the lines in
        ``leave_out`` (sorted line numbers: repeats of an event id earlier in the file)."""
        if not self.bindings:
            return BINDINGS_SCHEMA.empty_table()
        table = pa.concat_tables(self.bindings)
        if len(leave_out):
            line_no = table.column("line_no").to_numpy()
            at = np.minimum(np.searchsorted(leave_out, line_no), len(leave_out) - 1)
            table = table.filter(pa.array(leave_out[at] != line_no))
        return table

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
        obj = _loads(text)
        protected = protector.protect(obj, _dumps)
        scrubbed.append(_dumps(protected))
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
            writer = pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=_DICTIONARY_COLUMNS)
        writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=_ROW_GROUP_ROWS)
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
                        if pending_rows >= _ROW_GROUP_ROWS:
                            flush()
        if pending:
            flush()
    finally:
        if writer is not None:
            writer.close()
    return written


@dataclass
class _Published:
    written: int  # events this load added to the log
    repeats: np.ndarray  # lines left out as repeats of an earlier line's event id
    recovered: int  # events an interrupted earlier load had staged, published first


def _finalize(
    log: EventLog,
    settings: Settings,
    stager: _Stager,
    folder: Path,
    load_id: str,
    on_files: Callable[[int], None] = lambda _n: None,
    on_file: Callable[[], None] = lambda: None,
) -> _Published:
    """Deduplicate the staged rows and publish them (``on_files`` hears how many files will be written,
    ``on_file`` each one written)."""
    if stager.schema is None:
        return _Published(0, np.empty(0, dtype=np.int64), 0)
    schema = stager.schema.with_metadata({PROTECTED_KEY: PROTECTED_VERSION})  # see events protect
    with log.locked():
        recovered = log.recover_locked()
        dropped, repeats = _dropped_lines(settings, folder, log.files())
        jobs: list[tuple[Path, list[Path]]] = []
        for month, parts in sorted(stager.parts.items()):
            target = folder / FINAL / f"month={_month_name(month)}"
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
    return _Published(written, repeats, recovered)


def _learn(settings: Settings, stager: _Stager, repeats: np.ndarray) -> dict[str, Any]:
    """Learn the identifiers bound by the file's lines, once the log has published them: in the store,
    first binding wins. Lines whose event was already in the log count too (a repeated id is the same
    event), so loading a file again learns what an interrupted load could not; repeats of an id within
    the file do not. The report's part: counts only."""
    from omnibank.db import unit_of_work

    report: dict[str, Any] = {}
    if stager.resolved:
        report["resolved"] = dict(stager.resolved)
    bindings = stager.binding_table(repeats)
    if bindings.num_rows:
        try:
            with unit_of_work(settings) as session:
                learnt = learn_identifiers(session, bindings, cipher=stager.cipher)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise AppError(
                f"the events were loaded, but the identifiers they bind could not be recorded ({reason}); "
                "loading the same file again records them"
            ) from exc
        report.update(learnt.as_report())
    return report


def _run_batches(reader: _Reader, stager: _Stager) -> None:
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
            stager = _Stager(settings, run, cipher, folder)
            try:
                with progress_bar(enabled=progress) as bar:
                    task = bar.add_task(f"events {path.name}", total=size)
                    reader = _Reader(CountingReader(fh, lambda n: bar.advance(task, n)), batch_lines)
                    _run_batches(reader, stager)
                    if stager.events == 0:
                        raise InputRefused(f"{path}: holds only blank lines; expected one JSON event a line")
                    bar.update(task, description=f"events {path.name}: read and checked")
                    step = bar.add_task("events: deduplicating", total=None, unit="files")
                    published = _finalize(
                        log, settings, stager, folder, run.load_id,
                        on_files=lambda n: bar.update(step, total=n, description="events: publishing"),
                        on_file=lambda: bar.advance(step),
                    )  # fmt: skip
                    identity = _learn(settings, stager, published.repeats)
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
