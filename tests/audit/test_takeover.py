"""A trail made before keyed entries (release 0013) is taken over: the upgrade chains its pending entries as
they always were, the platform's first chaining after it seals them as they stand, and from then on they
cannot be changed unnoticed; an entry without a MAC added after the takeover is not taken for an old one."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, MetaData, Table, insert, select, text

from omnibank import config, db
from omnibank.audit import service as audit
from omnibank.audit.models import AuditEntry
from omnibank.db import get_engine, unit_of_work
from tests.audit.test_audit_attacks import rechain, reveals
from tests.audit.test_audit_chain import tampering


def _to_0013() -> None:
    from alembic import command

    settings = config.get_settings()
    if db.current_revision(settings) is None:
        db.upgrade(settings, revision="0013")
        return
    cfg = db.alembic_config(settings)
    with get_engine().begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0013")
    db.dispose_engines()


def _old_trail() -> None:
    """Three entries chained by release 0013 (v1 hashes) and a fourth it had not chained yet."""
    columns = (Column(c.name, c.type) for c in AuditEntry.__table__.columns if c.name != "mac")
    old = Table("audit_entries", MetaData(), *columns)
    prev = audit.GENESIS
    with get_engine().begin() as conn:
        for i in (1, 2, 3, 4):
            row = {"id": i, "at": datetime(2026, 1, 1, 9, i, tzinfo=UTC), "actor": "user:rm_a",
                   "action": "customer.reveal", "subject_type": "customer", "subject_id": f"C{i:06d}",
                   "detail": '{"fields": ["phone"]}', "source": "api:10.0.0.7", "reason": "核实"}  # fmt: skip
            if i == 4:
                conn.execute(insert(old).values(**row))
                continue
            digest = audit.entry_hash(**row, prev_hash=prev, legacy=True)
            conn.execute(insert(old).values(**row, seq=i, prev_hash=prev, hash=digest))
            prev = digest
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('audit_entries', 'id'), 5, false)"))


def test_an_old_trail_is_taken_over_by_the_first_seal(cli) -> None:
    _to_0013()
    _old_trail()
    db.upgrade()
    with unit_of_work() as session:
        assert audit.pending(session) == 0  # the upgrade chained the pending entry as before
    r = cli("audit", "verify")
    assert r.exit_code == 0, r.stderr
    assert "4 entries made before keyed entries are not sealed yet" in r.stderr
    assert r.last_line == "audit trail intact: 4 entries"

    reveals(1, first=5)  # the first chaining after the upgrade seals the old entries with the new one
    r = cli("audit", "verify")
    assert r.exit_code == 0, r.stderr
    assert "not sealed yet" not in r.stderr and "sealed up to entry 5" in r.stdout
    with unit_of_work() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        assert [r.mac is None for r in rows] == [True, True, True, True, False]

    with tampering() as conn:  # an old entry rewritten, the chain recomputed
        conn.execute(text("UPDATE audit_entries SET actor = 'user:rm_b' WHERE id = 2"))
        rechain(conn)
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 2" in r.stderr


def test_an_entry_without_a_mac_after_the_takeover_is_not_an_old_one(cli) -> None:
    _to_0013()
    _old_trail()
    db.upgrade()
    reveals(1, first=5)
    with tampering() as conn:  # appended pre-chained with the old formula, as release 0013 would have
        head = conn.execute(text("SELECT hash FROM audit_entries WHERE seq = 5")).scalar_one()
        row = {"id": 9, "at": datetime(2026, 1, 2, tzinfo=UTC), "actor": "user:rm_b",
               "action": "customer.reveal", "subject_type": "customer", "subject_id": "C000009",
               "detail": "{}", "source": "cli", "reason": ""}  # fmt: skip
        digest = audit.entry_hash(**row, prev_hash=head, legacy=True)
        conn.execute(insert(AuditEntry.__table__).values(**row, seq=6, prev_hash=head, hash=digest))
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "entry 9 carries no MAC yet was chained after keyed entries" in r.stderr
