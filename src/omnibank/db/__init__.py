"""Engine, sessions and the unit of work: the one place that commits."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session

from omnibank.config import Settings, get_settings
from omnibank.errors import ConfigError
from omnibank.kit.private import ensure_home
from omnibank.kit.store import head_revision, migrations_dir

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()

#: ``session.info`` key: the :class:`CommitHook` s this transaction asked for, by name
COMMIT_HOOKS = "commit_hooks"


@dataclass(frozen=True)
class CommitHook:
    """Work a domain asks the unit of work to do around one transaction's commit, so that this module
    (infrastructure) calls up into a domain without importing it: the audit trail chains the entries a
    transaction appended this way (:func:`omnibank.audit.service.record`)."""

    #: runs inside the transaction just before it commits; returns True when it did all that was needed
    #: (``after`` is then skipped)
    before: Callable[[Session], bool] | None = None
    #: runs once the transaction has committed, on the same connection
    after: Callable[[Connection, Settings], None] | None = None


def add_commit_hook(session: Session, name: str, hook: CommitHook) -> None:
    """Ask for ``hook`` around this session's commit (once per ``name``, however often asked)."""
    session.info.setdefault(COMMIT_HOOKS, {})[name] = hook


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver would open transactions only before DML, leaving DDL (a dropped index) auto-committed;
    # instead SQLAlchemy starts every transaction itself (see _sqlite_begin), so DDL rolls back too.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-262144")  # 256 MB: bulk loads insert into random-order index pages
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    url = settings.db_url
    engine = _engines.get(url)
    if engine is None:
        ensure_home(settings.home_dir)  # created 0700, or a warning when others can read it
        if url.startswith("sqlite"):
            engine = create_engine(url)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        elif url.startswith("postgresql"):
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            # a connection for each request a server process works on at once, and a few more (the audit
            # chainer, health checks): requests beyond that queue for one rather than each opening its own
            engine = create_engine(
                url, pool_pre_ping=True, pool_size=settings.api_threads + 2, max_overflow=8
            )
        else:
            raise ConfigError(f"OMNIBANK_DATABASE_URL: unsupported database {url.split(':', 1)[0]!r}")
        _engines[settings.db_url] = engine
    return engine


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _migrated.clear()


def alembic_config(settings: Settings) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", settings.db_url.replace("%", "%%"))
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    """Apply migrations; serialised between processes so first use by two commands is safe."""
    from alembic import command

    settings = settings or get_settings()
    ensure_home(settings.home_dir)
    lock_path = settings.home_dir / ".migrate.lock"
    with open(os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        engine = get_engine(settings)
        cfg = alembic_config(settings)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7312001)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    if revision == "head":
        _migrated.add(settings.db_url)


def current_revision(settings: Settings | None = None) -> str | None:
    """The store's migration revision (None: an empty store). Read with one query rather than through
    Alembic, whose import (~130 ms) every command used to pay to learn that nothing needed migrating."""
    with get_engine(settings).connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(settings: Settings | None = None) -> None:
    """Migrations apply themselves on first use."""
    settings = settings or get_settings()
    if settings.db_url in _migrated:
        return
    if current_revision(settings) != head_revision():
        upgrade(settings)
    _migrated.add(settings.db_url)


@contextmanager
def unit_of_work(settings: Settings | None = None, *, bulk_load: bool = False) -> Iterator[Session]:
    """A session that commits once at the end (or rolls back on error). Services only flush.

    ``bulk_load=True`` is for loaders that check every reference themselves before writing: on SQLite it
    turns the per-row foreign-key lookups off for this connection only (they double the cost of a bulk
    insert there); PostgreSQL keeps enforcing them."""
    settings = settings or get_settings()
    ensure_schema(settings)
    engine = get_engine(settings)
    with engine.connect() as conn:
        relax = bulk_load and engine.dialect.name == "sqlite"
        if relax:  # on the driver's connection, before any transaction begins, or it is ignored
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        session = Session(bind=conn, expire_on_commit=False)
        session.info["settings"] = settings  # omnibank.audit.service.SETTINGS: whose keys sign its entries
        after: list[Callable[[Connection, Settings], None]] = []
        try:
            yield session
            for hook in list(session.info.get(COMMIT_HOOKS, {}).values()):
                done = hook.before(session) if hook.before is not None else False
                if hook.after is not None and not done:
                    after.append(hook.after)
            session.info.pop(COMMIT_HOOKS, None)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
            if relax:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
        for run in after:
            run(conn, settings)
