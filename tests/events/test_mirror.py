"""`omnibank events mirror` copies the log into the store once: a second run copies nothing, a new load
only its own files; amounts stay exact and times stay the same instants."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select

from omnibank.db import unit_of_work
from omnibank.events.models import EventFact
from omnibank.ingest.service import load_file
from tests.events.helpers import event, jsonl, txn


def facts(env) -> dict[str, EventFact]:
    with unit_of_work(env.settings) as session:
        return {f.event_id: f for f in session.scalars(select(EventFact))}


def test_mirror_copies_each_file_once(cli, env, tmp_path) -> None:
    first = jsonl(
        tmp_path / "a.jsonl",
        txn("t1", "0.10", ts="2026-02-28T16:30:00Z", merchant="瑞幸咖啡"),
        event("l1", "app.login", ts="2026-03-01T09:00:00+08:00"),
    )
    load_file("events", first, settings=env.settings, progress=False)
    r = cli("events", "mirror")
    assert r.exit_code == 0, r.stderr
    assert "mirrored 2 events from 1 new files" in r.stdout
    got = facts(env)
    assert got["t1"].amount == Decimal("0.10")
    assert got["t1"].merchant == "瑞幸咖啡"
    assert got["t1"].ts == datetime(2026, 2, 28, 16, 30, tzinfo=UTC)
    assert str(got["t1"].local_date) == "2026-03-01"  # bank-local day

    again = cli("events", "mirror")
    assert "mirrored 0 events from 0 new files (1 files were mirrored before)" in again.stdout

    second = jsonl(tmp_path / "b.jsonl", event("l2", "app.login"))
    load_file("events", second, settings=env.settings, progress=False)
    cli("events", "mirror")
    with unit_of_work(env.settings) as session:
        assert session.scalar(select(func.count()).select_from(EventFact)) == 3
