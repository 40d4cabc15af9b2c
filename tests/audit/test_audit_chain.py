"""The audit trail is append-only and hash-chained: `audit verify` passes on a normal trail and names the
first entry that was edited, deleted, re-ordered or re-hashed (tampering done with raw SQL, as an
attacker with database access would)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from omnibank.audit import service as audit
from omnibank.audit.models import AuditEntry
from omnibank.db import get_engine, unit_of_work
from tests.conftest import ON_POSTGRES


def append(n: int, *, actor: str = "cli:alice") -> None:
    with unit_of_work() as session:
        for i in range(n):
            audit.record(
                session,
                actor=actor,
                action="customer.view",
                subject_type="customer",
                subject_id=f"C{i:06d}",
                detail={"fields": ["phone"], "n": i},
            )


@contextmanager
def tampering() -> Iterator[Connection]:
    """A connection that can change audit rows and seals, as someone with the data files but not the key:
    the append-only triggers are switched off first and put back afterwards as they were."""
    engine = get_engine()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
            if _has_seals(conn):
                conn.execute(text("ALTER TABLE audit_seals DISABLE TRIGGER USER"))
            yield conn
            conn.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER USER"))
            if _has_seals(conn):
                conn.execute(text("ALTER TABLE audit_seals ENABLE TRIGGER USER"))
            return
        triggers = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                     "AND tbl_name LIKE 'audit_%'")).all()  # fmt: skip
        for name, _ in triggers:
            conn.execute(text(f"DROP TRIGGER {name}"))
        yield conn
        for _, ddl in triggers:
            conn.execute(text(ddl))


def _has_seals(conn: Connection) -> bool:
    from sqlalchemy import inspect

    return inspect(conn).has_table("audit_seals")


def test_a_normal_trail_verifies_and_chains_each_entry_to_the_one_before(cli) -> None:
    append(5)
    r = cli("audit", "verify")
    assert r.exit_code == 0, r.stderr
    assert r.last_line == "audit trail intact: 5 entries"
    with unit_of_work() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [e.id for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert len({e.hash for e in entries}) == 5
    assert f"head {entries[-1].hash}" in r.stdout


def test_an_empty_trail_is_intact(cli) -> None:
    r = cli("audit", "verify")
    assert r.exit_code == 0
    assert r.last_line == "audit trail intact: 0 entries"


def test_editing_an_entrys_detail_is_detected(cli) -> None:
    append(5)
    with tampering() as conn:
        conn.execute(text("UPDATE audit_entries SET detail = :d WHERE id = 3"), {"d": json.dumps({"n": 99})})
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 3 does not match its hash" in r.stderr
    assert "2 entries before it verify" in r.stderr


def test_editing_the_actor_or_reason_is_detected(cli) -> None:
    append(3)
    with tampering() as conn:
        conn.execute(text("UPDATE audit_entries SET reason = 'nothing to see' WHERE id = 2"))
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 2 does not match its hash" in r.stderr


def test_deleting_a_middle_entry_is_detected(cli) -> None:
    append(5)
    with tampering() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE id = 3"))
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 4 does not follow entry 2" in r.stderr
    assert "deleted" in r.stderr


def test_swapping_two_entries_contents_is_detected(cli) -> None:
    append(5)
    cols = ["at", "actor", "action", "subject_type", "subject_id", "detail", "source", "reason",
            "prev_hash", "hash"]  # fmt: skip
    with tampering() as conn:
        rows = {
            r.id: r
            for r in conn.execute(text(f"SELECT id, {', '.join(cols)} FROM audit_entries WHERE id IN (2, 3)"))
        }
        # the unique hash columns: park row 2 on placeholders first
        conn.execute(text("UPDATE audit_entries SET prev_hash = 'x', hash = 'y' WHERE id = 2"))
        sets = ", ".join(f"{c} = :{c}" for c in cols)
        for target, source in ((3, 2), (2, 3)):
            values = {c: getattr(rows[source], c) for c in cols}
            conn.execute(text(f"UPDATE audit_entries SET {sets} WHERE id = :id"), {**values, "id": target})
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 2 does not follow entry 1" in r.stderr


def test_changing_a_hash_is_detected(cli) -> None:
    append(4)
    with tampering() as conn:
        conn.execute(text("UPDATE audit_entries SET hash = :h WHERE id = 4"), {"h": "f" * 64})
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 4 does not match its hash" in r.stderr


def test_rehashing_an_edited_entry_still_breaks_the_next_link(cli) -> None:
    append(4)
    with unit_of_work() as session:
        e2 = session.get(AuditEntry, 2)
        assert e2 is not None
        forged = audit.entry_hash(
            id=2, at=e2.at, actor="cli:mallory", action=e2.action, subject_type=e2.subject_type,
            subject_id=e2.subject_id, detail=e2.detail, source=e2.source, reason=e2.reason,
            prev_hash=e2.prev_hash, mac=e2.mac,
        )  # fmt: skip
    with tampering() as conn:
        conn.execute(
            text("UPDATE audit_entries SET actor = 'cli:mallory', hash = :h WHERE id = 2"), {"h": forged}
        )
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 3 does not follow entry 2" in r.stderr


@pytest.mark.parametrize("statement", ["UPDATE audit_entries SET actor = 'x'", "DELETE FROM audit_entries"])
def test_the_database_refuses_to_change_or_delete_entries(env, statement: str) -> None:
    append(2)
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text(statement))
    with unit_of_work() as session:
        assert audit.verify(session).entries == 2


def test_the_chain_cannot_fork(env) -> None:
    append(1)
    with pytest.raises(DBAPIError), get_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_entries (id, at, actor, action, subject_type, detail, source, reason, "
                "prev_hash, hash) VALUES (99, :at, 'x', 'x', 'x', '{}', '', '', :prev, :h)"
            ),
            {"at": datetime(2026, 1, 1, tzinfo=UTC), "prev": audit.GENESIS, "h": "a" * 64},
        )


def test_record_keeps_source_and_reason_and_old_callers_still_work(env) -> None:
    with unit_of_work() as session:
        old = audit.record(session, actor="a", action="x.y", subject_type="t", subject_id=None)
        new = audit.record(
            session, actor="a", action="x.y", subject_type="t", subject_id="S1", source="api:10.0.0.7",
            reason="客户申请 call 13812345678",
        )  # fmt: skip
    assert (old.source, old.reason) == ("cli", "")
    assert new.source == "api:10.0.0.7"
    assert new.reason == "客户申请 call 138****5678"
    with unit_of_work() as session:
        assert audit.verify(session).intact


def test_list_filters_by_actor_subject_and_time(cli) -> None:
    append(3, actor="cli:alice")
    append(2, actor="cli:bob")
    r = cli("audit", "list", "--actor", "cli:bob")
    assert r.exit_code == 0, r.stderr
    assert r.last_line == "2 entries"
    assert "cli:alice" not in r.stdout
    r = cli("audit", "list", "--subject", "C000001")
    assert r.last_line == "2 entries"  # alice's second and bob's second
    r = cli("audit", "list", "-n", "1")
    assert r.last_line == "1 entry"
    assert "n=1" in r.stdout  # the newest: bob's second
    r = cli("audit", "list", "--since", "2199-01-01")  # the latest date accepted
    assert r.last_line == "0 entries"
    r = cli("audit", "list", "--since", "yesterday")
    assert r.exit_code == 1
    assert "--since: 'yesterday'" in r.stderr


def test_cli_commands_write_chained_entries(cli) -> None:
    append(1)
    with unit_of_work() as session:
        audit.record(session, actor="a", action="b", subject_type="c", subject_id=None)
    r = cli("audit", "verify")
    assert r.last_line == "audit trail intact: 2 entries"


def test_concurrent_appenders_keep_one_unbroken_chain(env) -> None:
    """Several transactions append at once (PostgreSQL: real concurrency, serialised by the advisory lock;
    SQLite: one writer at a time): every entry lands, and the chain has no fork and no gap."""
    import threading

    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(8):
                with unit_of_work() as session:
                    audit.record(
                        session, actor=f"worker:{k}", action="x.y", subject_type="t", subject_id=f"{k}-{i}"
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with unit_of_work() as session:
        verdict = audit.verify(session)
        subjects = set(session.scalars(select(AuditEntry.subject_id)))
    assert verdict.intact and verdict.entries == 32
    assert subjects == {f"{k}-{i}" for k in range(4) for i in range(8)}


@pytest.mark.skipif(ON_POSTGRES, reason="needs a store that is still at revision 0005 (a fresh SQLite file)")
@pytest.mark.empty_store
def test_entries_written_before_the_chain_are_chained_by_the_upgrade(cli) -> None:
    from sqlalchemy import Column, MetaData, Table, insert

    from omnibank import db

    db.upgrade(revision="0005")
    old = Table(  # the table as release 0005 had it
        "audit_entries",
        MetaData(),
        *(
            Column(c.name, c.type)
            for c in AuditEntry.__table__.columns
            if c.name not in {"source", "reason", "prev_hash", "hash"}
        ),
    )
    with get_engine().begin() as conn:
        for i, gap in enumerate((1, 2, 7)):  # ids need not be dense
            conn.execute(
                insert(old).values(
                    id=gap, at=datetime(2026, 1, 1, 9, i, 0, 123456, tzinfo=UTC), actor="cli:old",
                    action="customer.view", subject_type="customer", subject_id=f"C{i}",
                    detail='{"fields": ["phone"]}',
                )
            )  # fmt: skip
    db.upgrade()
    append(1)
    r = cli("audit", "verify")
    assert r.exit_code == 0, r.stderr
    assert r.last_line == "audit trail intact: 4 entries"
    with unit_of_work() as session:
        assert [e.id for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [1, 2, 7, 8]
    with tampering() as conn:  # the triggers exist after the upgrade, and the old entries are covered
        conn.execute(text("UPDATE audit_entries SET actor = 'cli:someone' WHERE id = 2"))
    assert "entry 2 does not match its hash" in cli("audit", "verify").stderr
