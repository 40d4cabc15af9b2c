from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from omnibank.db import get_engine, unit_of_work
from tests.conftest import ON_POSTGRES


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite connection pragma")
def test_bulk_load_relaxes_foreign_keys_for_that_unit_only(env) -> None:
    with unit_of_work(bulk_load=True) as s:
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 0
    with unit_of_work() as s:
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_ddl_in_a_failed_unit_of_work_is_rolled_back(env) -> None:
    with unit_of_work() as s:
        s.execute(text("SELECT 1"))

    def failing_load() -> None:
        with unit_of_work() as s:
            s.execute(text("DROP INDEX ix_customers_phone_bidx"))
            raise RuntimeError("load failed half way")

    with pytest.raises(RuntimeError):
        failing_load()
    assert "ix_customers_phone_bidx" in {i["name"] for i in inspect(get_engine()).get_indexes("customers")}
