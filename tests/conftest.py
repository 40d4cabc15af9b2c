"""Test harness: every test gets a fresh data home and a real, migrated database.

By default the store is a SQLite file in the test's data home, a copy of one migrated once per worker (a test
marked ``empty_store`` starts without it, as a new user does). With ``OMNIBANK_TEST_DATABASE_URL`` set to a
PostgreSQL URL (``.ci/run`` and ``make test`` do this when PostgreSQL is installed) the same tests run on
PostgreSQL: one database per pytest-xdist worker, migrated once, emptied between tests.

With ``OMNIBANK_TEST_CLOCK`` (``HH:MM`` bank time, or an ISO date-time) the whole run reads a shifted wall
clock: ``make test`` runs SQLite at 23:30 (quiet hours) and PostgreSQL at 10:00, so a test that depends on
the hour fails in CI whenever it is written, not only at night.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from typer.testing import CliRunner

from omnibank import config, db
from omnibank.cli import app
from omnibank.db.base import Base
from omnibank.db.databases import fresh_database
from omnibank.models import import_all_models
from omnibank.security import reset_ciphers
from omnibank.segments.duck import close_shared_engines

CLOCK_DIR = Path(__file__).parent / "clock"


def _load_clock_module() -> ModuleType:
    """``tests/clock/sitecustomize.py`` under a name of its own (subprocesses import it as sitecustomize)."""
    spec = importlib.util.spec_from_file_location("omnibank_test_clock", CLOCK_DIR / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


clock = _load_clock_module()
PG_URL = os.environ.get("OMNIBANK_TEST_DATABASE_URL")
ON_POSTGRES = bool(PG_URL)
BANK_TZ = ZoneInfo("Asia/Shanghai")


def _clock_target(value: str, now: datetime) -> datetime:
    """``OMNIBANK_TEST_CLOCK``: ``HH:MM`` (today, bank time) or an ISO date-time with its offset."""
    try:
        if len(value) <= 5:
            hour, minute = (int(x) for x in value.split(":"))
            return datetime.combine(now.astimezone(BANK_TZ).date(), time(hour, minute), tzinfo=BANK_TZ)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise pytest.UsageError(
            f"OMNIBANK_TEST_CLOCK={value!r}: expected HH:MM or an ISO date-time"
        ) from None
    if moment.tzinfo is None:
        raise pytest.UsageError(
            f"OMNIBANK_TEST_CLOCK={value!r}: give the offset, e.g. 2026-12-04T23:30+08:00"
        )
    return moment


def pytest_configure(config: pytest.Config) -> None:
    """Shift the wall clock of the run (see ``tests/clock/sitecustomize.py``) when ``OMNIBANK_TEST_CLOCK``
    asks for it; the xdist workers and subprocesses inherit the offset through the environment."""
    wanted = os.environ.get("OMNIBANK_TEST_CLOCK")
    if wanted and not os.environ.get(clock.SHIFT_VAR):
        real = datetime.now(UTC)
        os.environ[clock.SHIFT_VAR] = str((_clock_target(wanted, real) - real).total_seconds())
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(CLOCK_DIR), os.environ.get("PYTHONPATH")) if p
        )
    clock.travel_if_shifted()


# the longest tests start first (pytest-xdist hands out the collected order): begun last, one of them would
# keep a worker busy after the others are done
SLOW_FIRST = (
    "tests/e2e/test_tour.py",
    "tests/demo/test_living_bank.py",
    "tests/campaigns/test_properties.py",
    "tests/campaigns/test_kill.py",
    "tests/scenarios/test_demo_bank.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest tests first; ``@pytest.mark.postgres_only`` tests are skipped unless the suite runs on
    PostgreSQL. On PostgreSQL, tests that use no store (no ``env``: pure decisions, parsers, properties of
    functions) are skipped: they ran on the embedded pass and run the same code whatever the store."""
    items.sort(key=lambda item: not item.nodeid.startswith(SLOW_FIRST))  # stable: the rest keep their order
    if ON_POSTGRES:
        embedded = pytest.mark.skip(
            reason="the embedded store only: the same run on PostgreSQL proves nothing more"
        )
        storeless = pytest.mark.skip(reason="touches no store: the embedded pass ran the same code")
        for item in items:
            if "embedded_only" in item.keywords:
                item.add_marker(embedded)
            elif not {"env", "pg_database_url"} & set(getattr(item, "fixturenames", ())):
                item.add_marker(storeless)
        return
    skip = pytest.mark.skip(reason="PostgreSQL only (scripts/with-postgres sets OMNIBANK_TEST_DATABASE_URL)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def pytest_report_header() -> list[str]:
    store = "PostgreSQL " + make_url(PG_URL).render_as_string(hide_password=True) if PG_URL else "SQLite"
    moment = datetime.now(UTC).astimezone(BANK_TZ).strftime("%Y-%m-%d %H:%M")
    shifted = " (shifted by OMNIBANK_TEST_CLOCK, ticking)" if os.environ.get(clock.SHIFT_VAR) else ""
    return [f"omnibank store: {store}", f"omnibank clock: {moment} Asia/Shanghai{shifted}"]


@pytest.fixture(scope="session", autouse=True)
def _spark_stopped_at_the_end() -> Iterator[None]:
    """The Spark tests share a worker's one Spark session (its JVM starts in ~10 s), stopped at the end."""
    yield
    spark = sys.modules.get("omnibank.segments.spark")
    if spark is not None:
        spark.stop_sessions()


@pytest.fixture(scope="session")
def pg_database_url(worker_id: str) -> str | None:
    if not PG_URL:
        return None
    return fresh_database(PG_URL, f"{make_url(PG_URL).database or 'omnibank'}_test_{worker_id}")


#: an ordinary moment: a Monday at 10:00 bank time, outside the quiet hours, mid-week, mid-month
ORDINARY_MOMENT = datetime(2026, 3, 2, 10, 0, tzinfo=BANK_TZ)


@pytest.fixture
def pinned_clock(time_machine: Any) -> datetime:
    """For tests of commands that read the wall clock themselves (the CLI's "now"): the clock moves to
    :data:`ORDINARY_MOMENT` and ticks on from there, whatever the hour the suite runs at."""
    time_machine.move_to(ORDINARY_MOMENT, tick=True)
    return ORDINARY_MOMENT


@dataclass
class Env:
    home: Path
    database_url: str | None

    @property
    def settings(self) -> config.Settings:
        return config.get_settings()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory, pg_database_url: str | None) -> Path | None:
    """A SQLite store migrated to the head, once per worker: each test's store starts as a copy of it
    (migrating a new store costs ~0.7 s, copying it ~1 ms)."""
    if pg_database_url:
        return None
    home = tmp_path_factory.mktemp("migrated") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMNIBANK_HOME", str(home))
        mp.delenv("OMNIBANK_DATABASE_URL", raising=False)
        config.reset_settings()
        db.upgrade()
        db.dispose_engines()
        config.reset_settings()
    return home / "omnibank.db"


_PG_HEAD: dict[str, str] = {}  # the revision this worker's database was upgraded to


def _pg_revision() -> str | None:
    try:
        with db.get_engine().connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def _upgrade_postgres(url: str) -> None:
    """Migrate the worker's database, unless it is still at the revision an earlier test left it at (a
    query instead of Alembic's ~0.1 s a test); a test that downgraded or dropped it is migrated again."""
    head = _PG_HEAD.get(url)
    if head is not None and _pg_revision() == head:
        return
    db.upgrade()
    revision = _pg_revision()
    if revision is not None:
        _PG_HEAD[url] = revision


def _empty_postgres() -> None:
    """Empty the worker's PostgreSQL database: truncate the tables an earlier test wrote to (truncating all
    51 took ~0.5 s a test) and restart every sequence."""
    import_all_models()
    tables = [t.name for t in Base.metadata.sorted_tables]
    probe = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in tables)
    with db.get_engine().begin() as conn:
        used = [row[0] for row in conn.execute(text(probe))]
        if used:
            quoted = ", ".join(f'"{name}"' for name in used)
            conn.execute(text(f"TRUNCATE {quoted} CASCADE"))
        conn.execute(text("SELECT setval(seqrelid, seqstart, false) FROM pg_sequence"))


@pytest.fixture
def env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pg_database_url: str | None,
    migrated_sqlite: Path | None,
) -> Iterator[Env]:
    home = tmp_path / "home"
    for key in list(os.environ):
        if key.startswith("OMNIBANK_") and key != "OMNIBANK_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("OMNIBANK_HOME", str(home))
    if migrated_sqlite is not None and request.node.get_closest_marker("empty_store") is None:
        home.mkdir(mode=0o700)
        shutil.copyfile(migrated_sqlite, home / "omnibank.db")
        (home / "omnibank.db").chmod(0o600)  # as the platform creates it
    monkeypatch.setenv("OMNIBANK_ACTOR", "test:pytest")
    monkeypatch.setenv("OMNIBANK_API_TUNE_GC", "false")  # not in the test process: it outlives many apps
    if pg_database_url:
        monkeypatch.setenv("OMNIBANK_DATABASE_URL", pg_database_url)
    config.reset_settings()
    reset_ciphers()
    db.dispose_engines()
    if pg_database_url:
        _upgrade_postgres(pg_database_url)
        _empty_postgres()
    yield Env(home=home, database_url=pg_database_url)
    close_shared_engines()
    db.dispose_engines()
    config.reset_settings()
    reset_ciphers()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = [ln for ln in self.stdout.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else ""


@pytest.fixture
def cli(env: Env) -> object:
    runner = CliRunner()

    def invoke(*args: str) -> CliResult:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


def write(path: Path, text_: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text_, encoding="utf-8")
    return path
