"""`segment count` over a snapshot already built reads the store through a plain DB-API cursor (no
SQLAlchemy, no models): the same answers as the ordinary path, and the ordinary path whenever the
snapshot is stale or the store is not at the newest migration."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from omnibank.db import unit_of_work, versions
from omnibank.segments import service
from omnibank.segments.duck import VERSION_KINDS, count_if_ready
from omnibank.tags.models import CustomerTag, TagDefinition
from tests.segments.bank import load_bank

MARCH_1 = date(2026, 3, 1)
MOMENT = datetime(2026, 3, 1, 2, tzinfo=UTC)

EXPRESSIONS = (
    "age >= 60",
    "in_org('B001') AND aum >= 50000",
    "events('app.login', 30) > 0 OR gender = 'F'",
    "has_tag('vip')",
)


@pytest.fixture
def bank(env, tmp_path):
    load_bank(env.settings, tmp_path / "bank")
    with unit_of_work(env.settings) as session:
        session.add(
            TagDefinition(name="vip", category="wealth", expression="aum >= 100000", updated_at=MOMENT)
        )
        session.add_all(CustomerTag(customer_id=c, tag="vip", since=MARCH_1) for c in ("C01", "C04"))
        versions.bump(session, "tags")
    return env


def ordinary(env, text_: str) -> int:
    with unit_of_work(env.settings) as session:
        return service.count(session, env.settings, text_, as_of=MARCH_1)


def test_the_kinds_a_snapshot_is_built_from_are_the_stores() -> None:
    assert VERSION_KINDS == versions.KINDS


def test_same_answers_as_the_ordinary_path_once_the_snapshot_is_built(bank) -> None:
    settings = bank.settings
    assert count_if_ready(settings, "age >= 60", MARCH_1) is None  # no snapshot yet
    expected = {e: ordinary(bank, e) for e in EXPRESSIONS}  # builds it
    assert expected["in_org('B001') AND aum >= 50000"] == 2 and expected["has_tag('vip')"] == 2
    assert {e: count_if_ready(settings, e, MARCH_1) for e in EXPRESSIONS} == expected


def test_a_store_that_moved_on_takes_the_ordinary_path(bank) -> None:
    settings = bank.settings
    ordinary(bank, "age >= 60")
    assert count_if_ready(settings, "age >= 60", MARCH_1) is not None
    with unit_of_work(settings) as session:
        versions.bump(session, "consent")
    assert count_if_ready(settings, "age >= 60", MARCH_1) is None
    ordinary(bank, "age >= 60")  # rebuilds
    assert count_if_ready(settings, "age >= 60", MARCH_1) is not None


def test_a_store_behind_the_newest_migration_takes_the_ordinary_path(bank) -> None:
    settings = bank.settings
    ordinary(bank, "age >= 60")
    with unit_of_work(settings) as session:
        head = session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        assert count_if_ready(settings, "age >= 60", MARCH_1) is None
    finally:
        with unit_of_work(settings) as session:
            session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})


def test_unknown_names_are_refused_with_the_ordinary_message(bank) -> None:
    from omnibank.errors import AppError

    ordinary(bank, "age >= 60")
    with pytest.raises(AppError) as quick:
        count_if_ready(bank.settings, "has_tag('gold') AND in_org('B999')", MARCH_1)
    with pytest.raises(AppError) as slow:
        ordinary(bank, "has_tag('gold') AND in_org('B999')")
    assert str(quick.value) == str(slow.value)


def test_the_count_command_does_not_import_sqlalchemy(bank) -> None:
    ordinary(bank, "age >= 60")  # the snapshot a count after a load would have built
    argv = ["omnibank", "segment", "count", "in_org('B001') AND aum >= 50000", "--as-of", "2026-03-01"]
    probe = (
        f"import runpy, sys\nsys.argv = {argv!r}\n"
        "try:\n    runpy.run_module('omnibank', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ.copy())
    assert res.returncode == 0, res.stderr
    *_, number, imported = res.stdout.split()
    assert (number, imported) == ("2", "False")
