"""On PostgreSQL the database chains the audit trail (``omnibank_chain_audit``, migration 0013); the hashes it
writes must be the ones ``entry_hash`` computes in Python, which ``verify`` checks, for any text an entry
may hold: quotes, backslashes, control characters, Chinese, characters outside the BMP, empty strings and a
missing subject."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text

from omnibank import config
from omnibank.audit import service as audit
from omnibank.audit.keyed import audit_key
from omnibank.audit.models import AuditEntry
from omnibank.db import ensure_schema, unit_of_work

pytestmark = pytest.mark.postgres_only

# anything PostgreSQL text can hold (no NUL, no lone surrogates)
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
_ENTRY = st.fixed_dictionaries(
    {
        "actor": _TEXT.map(lambda s: s[:128]),
        "action": _TEXT,
        "subject_type": _TEXT.map(lambda s: s[:32]),
        "subject_id": st.none() | _TEXT,
        "detail": _TEXT,
        "source": _TEXT,
        "reason": _TEXT,
        "at": st.datetimes(  # hypothesis takes naive bounds and adds the zone
            min_value=datetime(2000, 1, 1),  # noqa: DTZ001
            max_value=datetime(2099, 12, 31),  # noqa: DTZ001
            timezones=st.just(UTC),
        ),
    }
)


@given(entries=st.lists(_ENTRY, min_size=1, max_size=6))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_database_hashes_as_python_does(env, entries: list[dict]) -> None:
    ensure_schema()
    key = audit_key(config.get_settings())
    with unit_of_work() as session:
        # the triggers refuse DELETE, not TRUNCATE
        session.execute(text("TRUNCATE audit_entries, audit_seals"))
        for e in entries:
            session.execute(insert(AuditEntry).values(**e, mac=key.entry_mac(**e)))
    audit.forget_seals()  # this process's last seal went with the TRUNCATE
    with unit_of_work() as session:
        assert audit.chain(session) == len(entries)
    with unit_of_work() as session:
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        prev = audit.GENESIS
        for row in rows:
            assert row.prev_hash == prev
            assert row.hash == audit._hash_of(row, prev_hash=prev), (row.actor, row.detail)
            assert key.entry_ok(row)
            prev = row.hash
        verdict = audit.verify(session)
    assert verdict.intact and verdict.entries == len(entries) and verdict.unchained == 0


def test_chaining_continues_from_the_head_and_skips_a_held_lock(env) -> None:
    ensure_schema()
    now = datetime(2026, 3, 2, 2, tzinfo=UTC)
    with unit_of_work() as session:
        for i in range(3):
            audit.record(session, actor="a", action="x.y", subject_type="t", subject_id=f"S{i}",
                         at=now + timedelta(seconds=i))  # fmt: skip
    with unit_of_work() as session:  # the unit of work chained them already (no server here)
        assert audit.pending(session) == 0
        entry = {"at": now, "actor": "b", "action": "x.z", "subject_type": "t", "subject_id": None,
                 "detail": "{}", "source": "", "reason": ""}  # fmt: skip
        key = audit_key(config.get_settings())
        session.execute(insert(AuditEntry).values(**entry, mac=key.entry_mac(**entry)))
    with unit_of_work() as holder, unit_of_work() as other:
        holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit.APPEND_LOCK})
        assert audit.chain(other, wait=False) == 0  # another chainer is at work: skip, do not wait
    with unit_of_work() as session:
        assert audit.chain(session, wait=False) == 1
    with unit_of_work() as session:
        verdict = audit.verify(session)
        seqs = session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
    assert verdict.intact and verdict.entries == 4 and seqs == [1, 2, 3, 4]
