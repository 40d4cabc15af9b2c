"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL, and a store made
by an earlier release upgrades in place."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, Table, insert, select

from omnibank import db
from omnibank.campaigns.models import Campaign, CampaignGrant, CampaignOffset
from omnibank.db import get_engine, unit_of_work
from omnibank.db.base import Base
from omnibank.models import import_all_models

# each test here starts from an empty store and migrates it itself
pytestmark = pytest.mark.empty_store


def test_migrated_schema_matches_the_models(env) -> None:
    import_all_models()
    with unit_of_work():
        pass  # first use applies the migrations
    with get_engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_live_grants_stored_before_the_coupon_ledger_upgrade_in_place(env) -> None:
    db.upgrade(revision="0004")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    old_grants = Table(  # the table as release 0004 had it: no ledger answer yet
        "campaign_grants",
        MetaData(),
        *(
            Column(c.name, c.type)
            for c in CampaignGrant.__table__.columns
            if c.name not in {"ledger", "coupon_id"}
        ),
    )
    old_campaigns = Table(  # nor partitions
        "campaigns",
        MetaData(),
        *(Column(c.name, c.type) for c in Campaign.__table__.columns if c.name != "partitions"),
    )
    with get_engine().begin() as conn:
        conn.execute(
            insert(old_campaigns).values(
                id="c1",
                name="c1",
                definition="{}",
                status="active",
                totals="{}",
                events=0,
                started_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            insert(old_grants).values(
                key="c1:weekly:C1:2026-W09",
                campaign="c1",
                rule="weekly",
                customer_id="C1",
                benefit="v",
                granted_at=now,
                valid_from=now,
                event_id="e1",
                local_date=date(2026, 3, 1),
            )
        )
        conn.execute(  # a log file it applied, before offsets were kept per partition of the customers
            insert(Table("campaign_offsets", MetaData(), *(Column(n) for n in ("campaign", "path", "events",
                   "applied_at")))).values(campaign="c1", path="month=2026-03/a.parquet", events=3,
                                           applied_at=now)
        )  # fmt: skip
    db.upgrade()
    with unit_of_work() as session:
        grant = session.scalars(select(CampaignGrant)).one()
        campaign = session.get(Campaign, "c1")
        offset = session.scalars(select(CampaignOffset)).one()
    assert (grant.key, grant.ledger, grant.coupon_id) == ("c1:weekly:C1:2026-W09", "not_in_catalogue", None)
    # a campaign started before partitions goes on in one, which has read what it had read
    assert campaign is not None and campaign.partitions == 1
    assert (offset.campaign, offset.part, offset.path, offset.events) == (
        "c1",
        0,
        "month=2026-03/a.parquet",
        3,
    )


def test_the_head_read_from_the_files_is_alembics_and_the_current_revision_its_own(env) -> None:
    from alembic.script import ScriptDirectory

    def alembics_current() -> str | None:
        with get_engine().connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    alembic_head = ScriptDirectory.from_config(db.alembic_config(env.settings)).get_current_head()
    assert db.head_revision() == alembic_head
    assert db.current_revision() == alembics_current()
    if env.database_url is None:  # SQLite: a brand-new store, brought up in two steps
        assert db.current_revision() is None
        db.upgrade(revision="0004")
        assert db.current_revision() == alembics_current() == "0004"
    with unit_of_work():
        pass  # first use brings it to the head
    assert db.current_revision() == alembics_current() == alembic_head
