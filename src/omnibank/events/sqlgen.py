"""The one DuckDB statement that checks a batch of ``events.jsonl`` lines (step 2 of a load,
:mod:`omnibank.events.loader`), generated from the data contract's field mapping
(:mod:`omnibank.events.columns`).

Apart from the load because it is a compiler, not a pipeline: it turns the mapping into SQL text once a load
and touches no file, connection or row. The statement parses every line once (``from_json``) and works out,
vectorised, either the typed row or the reason the line is rejected (the first failing check, naming the
field); a cheap "passes every check" expression runs first, so the detailed reasons are worked out only for
the lines that fail.
"""

from __future__ import annotations

from omnibank.customers.identity import MAX_VALUE, RESOLVE_FIELDS
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
)
from omnibank.events.log import COLUMN_NAMES, sql_string
from omnibank.events.protect import Registry, card_payload_sql, needs_python_sql

# Where a JSON number amount is written in the line (DuckDB gives back a double, not the text).
AMOUNT_KEY_PATTERN = r'"amount"\s*:\s*(-?[0-9][0-9.eE+-]*)'
# DuckDB's JSON reader accepts NaN/Infinity and trailing commas; lines that may use them are re-checked
# strictly in Python (rare: only these lines).
# (three patterns, each starting with a literal character, which RE2 scans for much faster than a class)
LENIENT_PATTERNS = (r",\s*([\]}]|[-+]?[NnIi][NnAa])", r":\s*[-+]?[NnIi][NnAa]", r"\[\s*[-+]?[NnIi][NnAa]")


_COMMON = ("event_id", "type", "customer_id", "ts", "channel")
_TYPED: dict[str, Field] = {f.name: f for fields in KNOWN_TYPES.values() for f in fields}
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


def _typed_expr(field: Field) -> str:
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


def _ok_expr(field: Field) -> str:
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
                        f"{f.name}: {BAD_MESSAGES[f.kind]}",
                    )
                )
                continue
            checks.append((f"{is_type} AND {_absent(f.name)}", f"{f.name}: missing"))
            checks.append((f"{is_type} AND NOT {_ok_expr(f)}", f"{f.name}: {BAD_MESSAGES[f.kind]}"))
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


def validate_sql(load_id: str, registry: Registry | None = None) -> str:
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
    by_column: dict[str, list[str]] = {}  # a column filled by fields of several names (terms: quantity)
    for key, field in _TYPED.items():
        by_column.setdefault(field.column, []).append(
            f"CASE WHEN type IN {_in(_types_with(key))} THEN {_typed_expr(field)} END"
        )
    typed = [
        f"{exprs[0]} AS {column}" if len(exprs) == 1 else f"coalesce({', '.join(exprs)}) AS {column}"
        for column, exprs in by_column.items()
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
