"""``omnibank events protect``: personal data out of what was written before the event log protected it.

Before issue 13 the loader stored card numbers as given (in the log's ``card_id`` column and in each stored
line, in ``customer_identifiers``, in the store's mirror ``event_facts``, in journey entries and outbox
payloads that carry the trigger event's ``card_id``) and kept custom fields and free text as they came. This
module brings both stores to what the loader writes now (:mod:`omnibank.events.protect`):

* :func:`protect_store` — the store: card numbers become their tokens (the number kept encrypted beside a
  bound card's token). Migration 0015 runs it once; ``events protect`` runs it again (idempotent).
* :func:`protect_log` — the log: each file written before the protection (no protection mark in its
  metadata) is rewritten with every row protected and published in its place with the loader's crash-safe
  steps: the new file is written into a staging folder of its own, synced, the folder marked ``READY``,
  then renamed over the old file under the log's lock. A crash before ``READY`` leaves the old file; after
  it, the next load (or ``events protect``) finishes the rename. Files are done one at a time, so loads go
  on meanwhile and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, text

from omnibank.customers.identity import card_context
from omnibank.events.protect import TOKEN_RE, Protector, card_payload_sql, needs_python_sql, protected_file

if TYPE_CHECKING:
    from pathlib import Path

    from omnibank.config import Settings

_TOKEN_LIKE = "⟨card:%"
_BATCH = 1000


@dataclass
class StoreReport:
    cards: int = 0  # card identifiers now kept as tokens (numbers encrypted)
    mirrored: int = 0  # rows of event_facts whose card number became its token
    entries: int = 0  # journey entries whose trigger card became its token
    messages: int = 0  # outbox payloads likewise

    @property
    def total(self) -> int:
        return self.cards + self.mirrored + self.entries + self.messages


def _has(conn: Connection, table: str) -> bool:
    from sqlalchemy import inspect

    return inspect(conn).has_table(table)


def _card_json(protector: Protector, value: Any) -> tuple[Any, bool]:
    """``value`` (parsed JSON) with the string under each ``card_id`` key replaced by its token."""
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            if k == "card_id" and isinstance(v, str) and not TOKEN_RE.fullmatch(v):
                out[k], changed = protector.card_token(v), True
            else:
                out[k], c = _card_json(protector, v)
                changed = changed or c
        return out, changed
    if isinstance(value, list):
        items = [_card_json(protector, v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    return value, False


def protect_store(conn: Connection, protector: Protector) -> StoreReport:
    """Replace the card numbers the store holds (written before the protection) by their tokens, within
    the caller's transaction. Idempotent: tokens are left as they are."""
    report = StoreReport()
    if conn.dialect.name == "sqlite":  # overwrite the old values' space in the file, not only unlink it
        conn.execute(text("PRAGMA secure_delete = ON"))
    if _has(conn, "customer_identifiers"):
        rows = conn.execute(
            text(
                "SELECT value, customer_id FROM customer_identifiers "
                "WHERE kind = 'card_id' AND value NOT LIKE :token"
            ),
            {"token": _TOKEN_LIKE},
        ).all()
        taken = {
            v
            for (v,) in conn.execute(
                text("SELECT value FROM customer_identifiers WHERE kind = 'card_id' AND value LIKE :token"),
                {"token": _TOKEN_LIKE},
            )
        }
        for value, _customer in rows:
            token = protector.card_token(value)
            if token in taken:  # the same card written two ways ("6225 8800 …"): the first binding stays
                conn.execute(
                    text("DELETE FROM customer_identifiers WHERE kind = 'card_id' AND value = :v"),
                    {"v": value},
                )
                continue
            conn.execute(
                text(
                    "UPDATE customer_identifiers SET value = :token, value_enc = :enc "
                    "WHERE kind = 'card_id' AND value = :v"
                ).bindparams(bindparam("enc", type_=_binary())),
                {
                    "token": token,
                    "enc": protector.cipher.encrypt(value, context=card_context(token)),
                    "v": value,
                },
            )
            taken.add(token)
            report.cards += 1
    if _has(conn, "event_facts"):
        plain = [
            v
            for (v,) in conn.execute(
                text(
                    "SELECT DISTINCT card_id FROM event_facts "
                    "WHERE card_id IS NOT NULL AND card_id NOT LIKE :t"
                ),
                {"t": _TOKEN_LIKE},
            )
        ]
        if plain:
            conn.execute(
                text("CREATE TEMPORARY TABLE omnibank_card_tokens (plain VARCHAR(64), token VARCHAR(64))")
            )
            for i in range(0, len(plain), _BATCH):
                conn.execute(
                    text("INSERT INTO omnibank_card_tokens (plain, token) VALUES (:p, :t)"),
                    [{"p": v, "t": protector.card_token(v)} for v in plain[i : i + _BATCH]],
                )
            result = conn.execute(
                text(
                    "UPDATE event_facts SET card_id = t.token FROM omnibank_card_tokens t "
                    "WHERE event_facts.card_id = t.plain"
                )
            )
            report.mirrored = int(result.rowcount or 0)
            conn.execute(text("DROP TABLE omnibank_card_tokens"))
    for table, column, counter in (
        ("journey_entries", "state", "entries"),
        ("contact_messages", "payload", "messages"),
    ):
        if not _has(conn, table):
            continue
        found = conn.execute(
            text(f"SELECT id, {column} FROM {table} WHERE {column} LIKE :k"), {"k": '%"card_id"%'}
        ).all()
        for row_id, raw in found:
            try:
                value = json.loads(raw)
            except ValueError:
                continue
            fixed, changed = _card_json(protector, value)
            if changed:
                conn.execute(
                    text(f"UPDATE {table} SET {column} = :v WHERE id = :id"),
                    {"v": json.dumps(fixed, ensure_ascii=False, separators=(",", ":")), "id": row_id},
                )
                setattr(report, counter, getattr(report, counter) + 1)
    if conn.dialect.name == "sqlite":
        conn.execute(text("PRAGMA secure_delete = OFF"))
    return report


def checkpoint(conn: Connection) -> None:
    """On SQLite, copy the write-ahead log into the database file and empty it, so that the pages written
    before the protection are gone from it too (it cannot finish while another process reads; the next
    checkpoint then does)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _binary() -> Any:
    from sqlalchemy import LargeBinary

    return LargeBinary()


# -- the log ------------------------------------------------------------------------------------------------


@dataclass
class LogReport:
    files: int = 0  # files rewritten
    events: int = 0  # their events
    python: int = 0  # of which went through the Python pass (a personal field or something to scan)
    left: int = 0  # files still unprotected (another process wrote one meanwhile: run again)


def _rewrite_file(src: Path, dest: Path, protector: Protector, settings: Settings) -> tuple[int, int]:
    """Write ``src`` protected to ``dest``; (rows, rows through the Python pass)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from omnibank.events.log import DICTIONARY_COLUMNS, ROW_GROUP_ROWS, configure, sql_string
    from omnibank.events.protect import PROTECTED_KEY, PROTECTED_VERSION
    from omnibank.events.staging import protect_flagged

    schema = pq.read_schema(src)
    names = schema.names
    con = duckdb.connect(":memory:")
    rows = python = 0
    writer: pq.ParquetWriter | None = None
    try:
        configure(con, settings, temp_dir=dest.parent)
        protector.register(con)
        frag = "json_extract(payload, '$.card_id')::VARCHAR"
        text_ = (
            "CASE WHEN json_type(payload, '$.card_id') = 'VARCHAR' "
            "AND trim(json_extract_string(payload, '$.card_id')) <> '' "
            "THEN json_extract_string(payload, '$.card_id') END"
        )
        needs = needs_python_sql(
            protector.registry, raw="payload", card_text="c_text", card_fragment="c_frag", type_="type"
        )
        fast = card_payload_sql(payload="payload", card_text="c_text", card_token="c_token")
        replace = [
            "CASE WHEN card_id IS NOT NULL THEN omnibank_card_token(card_id) END AS card_id"
            if "card_id" in names
            else None,
            f"CASE WHEN needs THEN payload ELSE {fast} END AS payload",
        ]
        replaced = ", ".join(r for r in replace if r)
        sql = (
            f"SELECT * EXCLUDE (c_text, c_frag, c_token) REPLACE ({replaced}) FROM ("
            f"SELECT *, CASE WHEN c_text IS NOT NULL THEN omnibank_card_token(c_text) END AS c_token, "
            f"{needs} AS needs FROM (SELECT *, {text_} AS c_text, {frag} AS c_frag "
            f"FROM read_parquet({sql_string(str(src))})))"
        )
        out_schema = schema.with_metadata({**(schema.metadata or {}), PROTECTED_KEY: PROTECTED_VERSION})
        for chunk in con.sql(sql).to_arrow_reader(ROW_GROUP_ROWS):
            table = pa.Table.from_batches([chunk])
            python += int(pc.sum(table.column("needs")).as_py() or 0)
            table = protect_flagged(table, "needs", protector).select(names).cast(out_schema)
            if writer is None:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dictionary = [c for c in DICTIONARY_COLUMNS if c in names]
                writer = pq.ParquetWriter(dest, out_schema, compression="zstd", use_dictionary=dictionary)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += table.num_rows
        if writer is None:  # an empty file stays an empty file, marked
            pq.write_table(pa.Table.from_batches([], out_schema), dest, compression="zstd")
    finally:
        if writer is not None:
            writer.close()
        con.close()
    return rows, python


def protect_log(
    settings: Settings, protector: Protector, *, on_file: Callable[[str, int], Any] | None = None
) -> LogReport:
    """Rewrite every log file written before the protection (see the module's docstring)."""
    from omnibank.events.log import FINAL, EventLog

    log = EventLog(settings)
    report = LogReport()
    log.recover()
    for src in log.unprotected_files():
        name = f"protect-{src.parent.name.removeprefix('month=')}-{src.stem}"[:120]
        with log.staging(name) as folder:
            dest = folder / FINAL / src.parent.name / src.name
            rows, python = _rewrite_file(src, dest, protector, settings)
            with log.locked():
                if not src.exists() or protected_file(src):
                    continue  # done meanwhile by another run
                log.mark_ready(folder)
                log.publish_locked(folder)
        report.files += 1
        report.events += rows
        report.python += python
        if on_file is not None:
            on_file(str(src.relative_to(log.dir)), rows)
    report.left = len(log.unprotected_files())
    return report
