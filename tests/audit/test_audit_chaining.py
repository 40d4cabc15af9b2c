"""Entries are appended without a lock and chained once their transaction has committed: appends never
wait for each other, the chain follows commit order, the triggers allow an entry's one chaining and nothing
else, and `audit verify` chains what is committed before it walks."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.audit.models import AuditEntry
from omnibank.db import ensure_schema, get_engine, unit_of_work
from tests.audit.test_audit_chain import append, tampering


def _append_unchained(subject: str) -> None:
    """Append and commit outside the unit of work, so nothing chains it (as if the chaining step after
    the commit had failed)."""
    ensure_schema()
    with get_engine().connect() as conn, Session(bind=conn) as session:
        audit.record(session, actor="cli:alice", action="x.y", subject_type="t", subject_id=subject)
        session.commit()


def _rows() -> list[AuditEntry]:
    with unit_of_work() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_an_entry_is_appended_unchained_and_verify_only_reads(cli, tmp_path) -> None:
    append(2)
    _append_unchained("S3")
    rows = _rows()
    assert [r.seq is not None for r in rows] == [True, True, False]
    assert rows[2].hash is None and rows[2].prev_hash is None
    with unit_of_work() as session:
        assert audit.verify(session).unchained == 1
    r = cli("audit", "verify")  # reads only: the entry stays unchained (its MAC is checked)
    assert r.exit_code == 0, r.stderr
    assert r.last_line == "audit trail intact: 2 entries"
    assert "1 entry committed but not chained yet" in r.stderr
    assert [r.seq is not None for r in _rows()] == [True, True, False]
    r = cli("audit", "checkpoint", "--out", str(tmp_path / "checkpoints.jsonl"))  # the platform chains
    assert r.exit_code == 0, r.stderr
    rows = _rows()
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[2].prev_hash == rows[1].hash and rows[2].hash is not None
    assert cli("audit", "verify").last_line == "audit trail intact: 3 entries"


def test_the_triggers_allow_the_one_chaining_and_nothing_else(env) -> None:
    _append_unchained("S1")
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_entries SET actor = 'cli:mallory'"))  # unchained content stays
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_entries SET seq = 1, prev_hash = 'a', hash = 'b', reason = 'x'"))
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_entries SET seq = 1, prev_hash = 'a', hash = 'b', mac = 'x'"))
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_entries SET mac = NULL"))
    with get_engine().connect() as conn:
        assert audit.chain_pending(conn, wait=True) == 1
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_entries SET seq = NULL, prev_hash = NULL, hash = NULL"))
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_entries SET seq = 7"))
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text("DELETE FROM audit_entries"))
    for statement in ("UPDATE audit_seals SET head = 'x'", "DELETE FROM audit_seals"):
        with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
            conn.execute(text(statement))
    with unit_of_work() as session:
        verdict = audit.verify(session)
    assert verdict.intact and verdict.entries == 1 and verdict.sealed == 1


def test_swapping_two_entries_places_in_the_chain_is_detected(cli) -> None:
    append(4)
    with tampering() as conn:
        conn.execute(text("UPDATE audit_entries SET seq = 99 WHERE id = 2"))
        conn.execute(text("UPDATE audit_entries SET seq = 2 WHERE id = 3"))
        conn.execute(text("UPDATE audit_entries SET seq = 3 WHERE id = 2"))
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 3 does not follow entry 1" in r.stderr


def test_unchaining_a_middle_entry_to_forge_it_is_detected(cli) -> None:
    append(4)
    with tampering() as conn:  # make entry 2 look unchained, edit it: verify would chain it at the end
        conn.execute(
            text(
                "UPDATE audit_entries SET seq = NULL, prev_hash = NULL, hash = NULL, actor = 'x' WHERE id = 2"
            )
        )
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 3 does not follow entry 1" in r.stderr


@pytest.mark.postgres_only
def test_appends_do_not_wait_for_each_other_and_chain_in_commit_order(env) -> None:
    engine = get_engine()
    ensure_schema()
    with engine.connect() as slow_conn, Session(bind=slow_conn) as slow:
        audit.record(slow, actor="slow", action="x.y", subject_type="t", subject_id="first-id")
        slow.flush()  # holds its transaction open, as a long write would

        done = threading.Event()

        def quick() -> None:
            with unit_of_work() as session:
                audit.record(session, actor="quick", action="x.y", subject_type="t", subject_id="second-id")
            done.set()

        worker = threading.Thread(target=quick)
        started = time.monotonic()
        worker.start()
        assert done.wait(10), "an append waited for another transaction to end"
        assert time.monotonic() - started < 5
        worker.join()
        slow.commit()
    with engine.connect() as conn:
        verdict = audit.verify_all(conn)
    assert verdict.intact and verdict.entries == 2
    rows = sorted(_rows(), key=lambda r: r.seq or 0)
    assert [r.subject_id for r in rows] == ["second-id", "first-id"]  # commit order, not id order
    assert rows[0].id > rows[1].id


@pytest.mark.postgres_only
def test_the_background_chainer_chains_what_requests_append(env) -> None:
    engine = get_engine()
    ensure_schema()
    chainer = audit.start_chainer(engine, interval=0.2)
    try:
        with unit_of_work() as session:
            audit.record(session, actor="a", action="x.y", subject_type="t", subject_id="S1")
        deadline = time.monotonic() + 10
        while any(r.seq is None for r in _rows()):
            assert time.monotonic() < deadline, "the chainer did not chain the entry"
            time.sleep(0.05)
        _append_unchained("S2")  # appended by "another process": found by the periodic sweep
        while any(r.seq is None for r in _rows()):
            assert time.monotonic() < deadline, "the chainer did not sweep"
            time.sleep(0.05)
    finally:
        audit.stop_chainer(engine)
    assert not chainer._thread.is_alive()
    with unit_of_work() as session:
        verdict = audit.verify(session)
    assert verdict.intact and verdict.entries == 2 and verdict.unchained == 0


def _to_0010() -> None:
    """The store as release 0010 left it (a fresh store is built up to it; a migrated one goes down)."""
    from alembic import command

    from omnibank import config, db

    settings = config.get_settings()
    if db.current_revision(settings) is None:
        db.upgrade(settings, revision="0010")
        return
    cfg = db.alembic_config(settings)
    with get_engine().begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    db.dispose_engines()  # the next use migrates to the head again


def test_a_trail_chained_under_the_old_lock_upgrades_in_place(cli) -> None:
    """A store at 0010 (entries chained at append time, ids given by the appender) moves to 0011: its
    entries keep their links and get their place, new entries get fresh ids and chain after them, and the
    triggers still refuse changes."""
    from datetime import UTC, datetime

    from sqlalchemy import Column, MetaData, Table, insert

    from omnibank import db

    _to_0010()
    old = Table("audit_entries", MetaData(), *(Column(c.name, c.type) for c in AuditEntry.__table__.columns
                                               if c.name != "seq"))  # fmt: skip
    prev = audit.GENESIS
    with get_engine().begin() as conn:
        for i in (1, 2, 5):  # the old appender gave ids itself
            row = {"id": i, "at": datetime(2026, 1, 1, 9, i, tzinfo=UTC), "actor": "cli:old", "action": "x.y",
                   "subject_type": "t", "subject_id": f"S{i}", "detail": "{}", "source": "cli",
                   "reason": ""}  # fmt: skip
            digest = audit.entry_hash(**row, prev_hash=prev, legacy=True)
            conn.execute(insert(old).values(**row, prev_hash=prev, hash=digest))
            prev = digest
    db.upgrade()
    append(1)
    rows = _rows()
    assert [(r.id, r.seq) for r in rows] == [(1, 1), (2, 2), (5, 5), (6, 6)]
    assert rows[3].prev_hash == prev
    r = cli("audit", "verify")
    assert r.exit_code == 0, r.stderr
    assert r.last_line == "audit trail intact: 4 entries"
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_entries SET actor = 'x' WHERE id = 2"))


def test_a_backlog_is_chained_in_paced_slices(env, monkeypatch) -> None:
    for i in range(5):
        _append_unchained(f"S{i}")
    rounds: list[float] = []
    monkeypatch.setattr(audit.time, "sleep", rounds.append)
    with get_engine().connect() as conn:
        assert audit.chain_pending(conn, wait=True, batch=2, pause=0.01) == 5
    assert rounds == [0.01, 0.01]  # 2 + 2 + 1: a pause after each full slice
    with unit_of_work() as session:
        verdict = audit.verify(session)
    assert verdict.intact and verdict.entries == 5 and verdict.unchained == 0
    assert [r.seq for r in sorted(_rows(), key=lambda r: r.seq or 0)] == [1, 2, 3, 4, 5]
