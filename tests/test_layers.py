"""The layers: where a lower domain reads a higher one's table, it does so through a plain table construct
(not the higher domain's model); these tests keep each construct true to the model that owns the table.
``make lint`` (import-linter, ``[tool.importlinter]`` in pyproject.toml) checks the imports themselves."""

from __future__ import annotations

import pytest
from sqlalchemy import TableClause

from omnibank.db.base import Base
from omnibank.models import import_all_models
from omnibank.segments import tables as segment_tables
from omnibank.users import service as users_service

import_all_models()  # every model, so that the metadata holds every table (run alone too)


@pytest.mark.parametrize(
    "construct",
    [segment_tables.tag_definitions, segment_tables.customer_tags, users_service._SUPPLIERS],
    ids=lambda t: t.name,
)
def test_a_table_construct_names_columns_its_owner_has(construct: TableClause) -> None:
    owned = Base.metadata.tables[construct.name]
    assert set(construct.c.keys()) <= set(owned.c.keys())
