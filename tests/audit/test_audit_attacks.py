"""Issue 13, the audit trail: someone with the data files (and so the database) but not the key ring tries
to rewrite the trail with raw SQL, as the issue describes, and `omnibank audit verify` (reading only) must
fail naming the problem:

1. the triggers dropped, two `customer.reveal` entries deleted and seq/prev_hash/hash recomputed with plain
   SHA-256 (the platform's own published formula);
2. a back-dated reveal inserted with the triggers in place (verify used to chain it itself);
3. the newest entries cut off (found by the seals, and by a checkpoint kept elsewhere when the seals were cut
   too), and a trigger dropped, disabled or replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Row, select, text
from sqlalchemy.exc import IntegrityError

from omnibank.audit import service as audit
from omnibank.audit.models import AuditEntry
from omnibank.db import get_engine, unit_of_work
from tests.audit.test_audit_chain import tampering
from tests.conftest import ON_POSTGRES


def reveals(n: int, *, first: int = 1) -> None:
    """``n`` reveals of a customer's phone through the API, each its own request (transaction)."""
    for i in range(first, first + n):
        with unit_of_work() as session:
            audit.record(
                session, actor="user:rm_a", action="customer.reveal", subject_type="customer",
                subject_id=f"C{i:06d}", detail={"fields": ["phone"]}, source="api:10.0.0.7",
                reason="客户来电核实",
            )  # fmt: skip


def _entries(conn: Connection) -> list[Row[Any]]:
    table = AuditEntry.__table__
    return list(conn.execute(select(table).where(table.c.seq.is_not(None)).order_by(table.c.seq)))


def rechain(conn: Connection) -> None:
    """Give every chained entry its place again, in order, with ``prev_hash`` and ``hash`` recomputed with
    SHA-256 exactly as the platform computes them (its source is public)."""
    prev = audit.GENESIS
    for seq, row in enumerate(_entries(conn), 1):
        digest = audit._hash_of(row, prev_hash=prev)
        conn.execute(
            text("UPDATE audit_entries SET seq = :seq, prev_hash = :prev, hash = :hash WHERE id = :id"),
            {"seq": seq, "prev": prev, "hash": digest, "id": row.id},
        )
        prev = digest


def verify(cli, *args: str):  # type: ignore[no-untyped-def]
    return cli("audit", "verify", *args)


# ------------------------------------------------------------------------------------------- 1. rewrite


def test_deleting_two_reveals_and_recomputing_the_chain_is_found_out(cli) -> None:
    reveals(6)
    assert verify(cli).last_line == "audit trail intact: 6 entries"
    with tampering() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE subject_id IN ('C000002', 'C000004')"))
        rechain(conn)
    r = verify(cli)
    assert r.exit_code == 1, r.stdout
    assert "the trail differs from its seal" in r.stderr and "entry 3" in r.stderr
    assert "chain recomputed" in r.stderr


def test_a_rewrite_with_every_seal_deleted_is_still_found_out_and_not_sealed_afresh(cli) -> None:
    reveals(4)
    with tampering() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE subject_id = 'C000002'"))
        conn.execute(text("DELETE FROM audit_seals"))
        rechain(conn)
    r = verify(cli)
    assert r.exit_code == 1
    assert "3 chained entries after the last seal" in r.stderr
    reveals(1, first=9)  # the platform chains the next entry, and refuses to vouch for the rewritten trail
    r = verify(cli)
    assert r.exit_code == 1 and "4 chained entries after the last seal" in r.stderr


def test_editing_an_entry_and_its_hash_is_found_out_by_its_mac(cli) -> None:
    reveals(3)
    with tampering() as conn:
        conn.execute(text("UPDATE audit_entries SET reason = '例行检查' WHERE subject_id = 'C000003'"))
        rechain(conn)
    r = verify(cli)
    assert r.exit_code == 1
    assert "entry 3 carries no valid MAC" in r.stderr


def test_a_forged_seal_does_not_verify(cli) -> None:
    reveals(2)
    with tampering() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE subject_id = 'C000002'"))
        conn.execute(text("DELETE FROM audit_seals WHERE seq = 2"))
        rechain(conn)
        head = conn.execute(text("SELECT hash FROM audit_entries WHERE seq = 1")).scalar_one()
        prev = conn.execute(text("SELECT mac FROM audit_seals WHERE seq = 1")).scalar_one()
    with get_engine().begin() as conn:  # seals may be added: this one with a made-up MAC
        conn.execute(
            text("INSERT INTO audit_seals (seq, head, at, prev, mac) VALUES (2, :head, :at, :prev, :mac)"),
            {"head": head, "at": datetime(2026, 3, 2, tzinfo=UTC), "prev": prev, "mac": "e" * 64},
        )
    r = verify(cli)
    assert r.exit_code == 1 and "the seal of" in r.stderr and "covers 2 entries, the trail has 1" in r.stderr


# ------------------------------------------------------------------------------------------- 2. forgery


def _forge_reveal(conn: Connection, **extra: str) -> None:
    """A reveal that never happened, dated January, inserted with the triggers in place."""
    at = "2026-01-05 01:30:00+00" if ON_POSTGRES else "2026-01-05 01:30:00.000000"
    columns = {"at": at, "actor": "user:rm_b", "action": "customer.reveal", "subject_type": "customer",
               "subject_id": "C000003", "detail": '{"fields": ["phone"]}', "source": "api:10.0.0.9",
               "reason": "客户来电核实", **extra}  # fmt: skip
    names = ", ".join(columns)
    conn.execute(text(f"INSERT INTO audit_entries ({names}) VALUES ({', '.join(':' + c for c in columns)})"),
                 columns)  # fmt: skip


def test_a_back_dated_reveal_inserted_with_sql_is_found_out(cli) -> None:
    reveals(2)
    with get_engine().begin() as conn:
        _forge_reveal(conn)
    r = verify(cli)
    assert r.exit_code == 1
    assert "entry 3 (not chained yet) carries no valid MAC" in r.stderr
    with unit_of_work() as session:  # verify read only: nothing was chained
        assert audit.pending(session) == 1
    reveals(1, first=5)  # the platform chains whatever is committed, the forgery included
    r = verify(cli)
    assert r.exit_code == 1
    assert "entry 3 carries no valid MAC" in r.stderr


def test_a_copy_of_a_genuine_entry_is_refused(env) -> None:
    reveals(1)
    with get_engine().connect() as conn:
        mac = conn.execute(text("SELECT mac FROM audit_entries")).scalar_one()
    with pytest.raises(IntegrityError), get_engine().begin() as conn:
        _forge_reveal(conn, mac=mac)


# ------------------------------------------------------------------------------ 3. truncation, triggers


def test_cutting_off_the_newest_entries_is_found_by_the_seals(cli) -> None:
    reveals(5)
    with tampering() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq > 3"))
    r = verify(cli)
    assert r.exit_code == 1
    assert "covers 4 entries, the trail has 3: the newest entries were cut off" in r.stderr


def test_cutting_off_entries_and_seals_is_found_by_a_checkpoint_kept_elsewhere(cli, tmp_path: Path) -> None:
    reveals(3)
    kept = tmp_path / "elsewhere" / "audit-checkpoints.jsonl"
    r = cli("audit", "checkpoint", "--out", str(kept))
    assert r.exit_code == 0, r.stderr
    assert "3 entries" in r.stdout
    reveals(2, first=4)
    assert cli("audit", "checkpoint", "--out", str(kept)).exit_code == 0
    assert len(kept.read_text().splitlines()) == 2
    assert verify(cli, "--checkpoint", str(kept)).exit_code == 0
    with tampering() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq > 2"))
        conn.execute(text("DELETE FROM audit_seals WHERE seq > 2"))
    assert verify(cli).exit_code == 0  # nothing in the store shows it: that is what the checkpoints are for
    r = verify(cli, "--checkpoint", str(kept))
    assert r.exit_code == 1
    assert "counted 3 entries, the trail has 2: the newest entries were cut off" in r.stderr
    assert "counted 5 entries, the trail has 2" in r.stderr


@contextmanager
def _trigger_gone() -> Iterator[str]:
    """Drop the trigger that refuses DELETE (and put it back: the PostgreSQL test database outlives the
    test); yields its name."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER audit_entries_no_delete"))
        yield "audit_entries_no_delete"
        return
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_entries_append_only ON audit_entries"))
    try:
        yield "audit_entries_append_only"
    finally:
        with engine.begin() as conn:
            conn.execute(text(
                "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries "
                "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
            ))  # fmt: skip


def test_a_dropped_trigger_is_reported(cli) -> None:
    reveals(2)
    with _trigger_gone() as name:
        r = verify(cli)
        assert r.exit_code == 1, r.stdout
        assert f"protection missing: the trigger {name}" in r.stderr and "is gone" in r.stderr


@pytest.mark.postgres_only
def test_a_disabled_trigger_is_reported(cli) -> None:
    reveals(1)
    with get_engine().begin() as conn:
        conn.execute(text("ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_append_only"))
    try:
        r = verify(cli)
        assert r.exit_code == 1
        assert "the trigger audit_seals_append_only on audit_seals is disabled" in r.stderr
    finally:
        with get_engine().begin() as conn:
            conn.execute(text("ALTER TABLE audit_seals ENABLE TRIGGER audit_seals_append_only"))
    r = verify(cli)
    assert r.exit_code == 0, r.stderr
    assert "warning: the database role" in r.stderr  # the test role owns the tables: said, not refused


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's triggers")
def test_a_trigger_replaced_by_one_that_never_fires_is_reported(cli) -> None:
    reveals(1)
    with get_engine().begin() as conn:
        conn.execute(text("DROP TRIGGER audit_entries_no_delete"))
        conn.execute(text("CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries WHEN 0 "
                          "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END"))  # fmt: skip
    r = verify(cli)
    assert r.exit_code == 1 and "the trigger audit_entries_no_delete is not the platform's" in r.stderr


def test_an_intact_trail_verifies_with_its_seals(cli) -> None:
    reveals(3)
    r = verify(cli)
    assert r.exit_code == 0, r.stderr
    assert "sealed up to entry 3" in r.stdout and r.last_line == "audit trail intact: 3 entries"
    with unit_of_work() as session:
        verdict = audit.verify(session)
    assert verdict.intact and verdict.sealed == 3 and verdict.problems == ()
