"""A live campaign applied in partitions of its customers, each under a lease: runs side by side never grant
twice, a killed run's partitions are taken over once its lease expires (at once on the same machine), and
whatever the interleaving the grants are exactly those of the backtest."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from omnibank.campaigns import live, partitions
from omnibank.campaigns.models import Campaign, CampaignOffset
from omnibank.campaigns.simulate import simulate
from omnibank.campaigns.spec import CampaignSpec, load_campaign
from omnibank.db import unit_of_work
from omnibank.demo.generator import generate
from omnibank.errors import Conflict, InputRefused
from omnibank.events.compact import consumer_positions
from omnibank.ingest.service import load_file
from tests.campaigns.test_live import grants_of

LUCKIN = Path(__file__).resolve().parents[2] / "examples" / "campaigns" / "luckin_cobrand.yaml"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_a_customer_s_partition_is_a_stable_number_duckdb_computes_the_same() -> None:
    # pinned: partitions must not move between releases (offsets are kept per partition)
    assert [partitions.part_of(c, 8) for c in ("C000001", "C000002", "客户甲", "")] == [3, 1, 2, 4]
    assert partitions.part_of("C000001", 1) == 0


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=20), n=st.integers(2, 64))
def test_the_partition_is_the_md5_s_first_eight_bytes_modulo_the_count(ids: list[str], n: int) -> None:
    ids = [i.replace("\x00", "") for i in ids]  # a customer id never holds NUL
    con = duckdb.connect()
    try:
        for cid in ids:
            part = partitions.part_of(cid, n)
            # the first 8 bytes of its MD5, little-endian, modulo n: DuckDB's md5_number_upper as a reference
            assert con.execute(f"SELECT md5_number_upper(?) % {n}", [cid]).fetchone() == (part,)
    finally:
        con.close()


def _spec(**changes: object) -> CampaignSpec:
    spec = load_campaign(LUCKIN)
    return spec.model_copy(update=changes)


def test_partitions_follow_the_budgets(env) -> None:
    from omnibank.campaigns.spec import Budget

    text = LUCKIN.read_text(encoding="utf-8")
    with unit_of_work(env.settings) as session:
        assert live.start(session, load_campaign(LUCKIN), source_text=text).partitions == 8
    budgeted = _spec(id="budgeted", budget=Budget(count=100))
    with unit_of_work(env.settings) as session:
        assert live.start(session, budgeted, source_text=text).partitions == 1
    with unit_of_work(env.settings) as session, pytest.raises(InputRefused, match="budget across customers"):
        live.start(session, _spec(id="b2", budget=Budget(count=5)), source_text=text, partitions=4)
    with unit_of_work(env.settings) as session:  # nothing applied yet: the count may change
        assert live.start(session, load_campaign(LUCKIN), source_text=text, partitions=3).partitions == 3


@pytest.fixture(scope="module")
def events_file(tmp_path_factory) -> Path:
    return Path(generate(tmp_path_factory.mktemp("bank"), customers=300, seed=5, progress=False).paths[3])


@pytest.fixture
def bank(env, events_file):
    load_file("events", events_file, settings=env.settings, progress=False)
    with unit_of_work(env.settings) as session:
        live.start(
            session, load_campaign(LUCKIN), source_text=LUCKIN.read_text(encoding="utf-8"), partitions=4
        )
    return events_file


def simulated(env, events: Path) -> list[dict]:
    buf = io.BytesIO()
    simulate(load_campaign(LUCKIN), env.settings, events=events, out=buf)
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def key(g: dict) -> tuple:
    return (g["granted_at"], g["customer_id"], g["rule"], g["benefit"], g.get("stage") or 0, g["valid_from"])


def offsets(env) -> dict[int, int]:
    with unit_of_work(env.settings) as session:
        rows = session.execute(
            select(CampaignOffset.part, func.count())
            .group_by(CampaignOffset.part)
            .order_by(CampaignOffset.part)
        )
        return {int(p): int(n) for p, n in rows}


def test_a_partition_held_elsewhere_is_left_until_its_lease_expires(env, bank) -> None:
    cid = "luckin2026"
    partitions.ensure(env.settings, cid, 4)
    lease = timedelta(seconds=30)
    assert partitions.take(env.settings, cid, 2, "elsewhere:1", now=T0, lease=lease)  # another machine
    (report,) = live.run_once(env.settings, holder="here:1", clock=lambda: T0 + timedelta(seconds=10))
    assert report.held == [2]
    files = offsets(env)
    assert 2 not in files and set(files) == {0, 1, 3} and len(set(files.values())) == 1
    with unit_of_work(env.settings) as session:  # the partition's files count as read by their own consumer
        positions = consumer_positions(session, "2026-03")
    assert {f"campaign_offsets:{cid}#{p}" for p in (0, 1, 3)} <= set(positions)
    assert f"campaign_offsets:{cid}#2" not in positions
    # renewed, it stays elsewhere; once it has expired, the next run takes it over
    assert partitions.renew(env.settings, cid, 2, "elsewhere:1", now=T0 + timedelta(seconds=20), lease=lease)
    (report,) = live.run_once(env.settings, holder="here:1", clock=lambda: T0 + timedelta(seconds=45))
    assert report.held == [2] and 2 not in offsets(env)
    (report,) = live.run_once(env.settings, holder="here:1", clock=lambda: T0 + timedelta(seconds=51))
    assert report.held == [] and report.files > 0
    assert len(set(offsets(env).values())) == 1 and set(offsets(env)) == {0, 1, 2, 3}
    assert not partitions.holders(env.settings, cid, now=T0 + timedelta(seconds=51))  # released
    assert not partitions.renew(
        env.settings, cid, 2, "elsewhere:1", now=T0 + timedelta(seconds=52), lease=lease
    )
    # every partition's customers, each once: exactly the backtest
    assert sorted(grants_of(env), key=key) == sorted(simulated(env, bank), key=key)
    # the campaign's counters: each partition's events and grants added up under the row's lock
    with unit_of_work(env.settings) as session:
        row = session.get(Campaign, cid)
        applied = session.scalar(
            select(func.sum(CampaignOffset.events)).where(CampaignOffset.campaign == cid)
        )
        assert row is not None and row.events == applied > 0
        assert sum(json.loads(row.totals)["rule_items"].values()) == len(grants_of(env))
    (again,) = live.run_once(env.settings, holder="here:2")
    assert again.files == 0 and again.grants == 0  # nothing left, nothing twice


def test_the_partition_count_is_fixed_once_files_are_applied(env, bank) -> None:
    live.run_once(env.settings)
    text = LUCKIN.read_text(encoding="utf-8")
    with unit_of_work(env.settings) as session, pytest.raises(Conflict, match="4 partitions"):
        live.start(session, load_campaign(LUCKIN), source_text=text, partitions=8)
    from omnibank.campaigns.spec import Budget

    with unit_of_work(env.settings) as session, pytest.raises(Conflict, match="budget across customers"):
        live.start(session, _spec(budget=Budget(count=10)), source_text=text)
    with unit_of_work(env.settings) as session:  # the same count (or none given) resumes it
        assert live.start(session, load_campaign(LUCKIN), source_text=text).partitions == 4
