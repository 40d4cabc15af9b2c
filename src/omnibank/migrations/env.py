from __future__ import annotations

from alembic import context

from omnibank.db.base import Base
from omnibank.models import import_all_models

import_all_models()
config = context.config
connection = config.attributes.get("connection")
if connection is None:
    from sqlalchemy import create_engine

    connection = create_engine(config.get_main_option("sqlalchemy.url") or "").connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
