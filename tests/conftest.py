"""Test harness: every test gets a fresh data home and a real, migrated database.

By default the store is a SQLite file in the test's data home. With ``OMNIBANK_TEST_DATABASE_URL`` set to a
PostgreSQL URL (``.ci/run`` and ``make test`` do this when PostgreSQL is installed) the same tests run on
PostgreSQL: one database per pytest-xdist worker, migrated once, emptied between tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from omnibank import config, db
from omnibank.cli import app
from omnibank.db.base import Base
from omnibank.db.databases import fresh_database
from omnibank.models import import_all_models
from omnibank.security import reset_ciphers
from omnibank.segments.engine import close_shared_engines

PG_URL = os.environ.get("OMNIBANK_TEST_DATABASE_URL")
ON_POSTGRES = bool(PG_URL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.postgres_only`` tests are skipped unless the suite runs on PostgreSQL."""
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="PostgreSQL only (scripts/with-postgres sets OMNIBANK_TEST_DATABASE_URL)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def pytest_report_header() -> str:
    store = "PostgreSQL " + make_url(PG_URL).render_as_string(hide_password=True) if PG_URL else "SQLite"
    return f"omnibank store: {store}"


@pytest.fixture(scope="session")
def pg_database_url(worker_id: str) -> str | None:
    if not PG_URL:
        return None
    return fresh_database(PG_URL, f"{make_url(PG_URL).database or 'omnibank'}_test_{worker_id}")


@dataclass
class Env:
    home: Path
    database_url: str | None

    @property
    def settings(self) -> config.Settings:
        return config.get_settings()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_database_url: str | None) -> Iterator[Env]:
    home = tmp_path / "home"
    for key in list(os.environ):
        if key.startswith("OMNIBANK_") and key != "OMNIBANK_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("OMNIBANK_HOME", str(home))
    monkeypatch.setenv("OMNIBANK_ACTOR", "test:pytest")
    monkeypatch.setenv("OMNIBANK_API_TUNE_GC", "false")  # not in the test process: it outlives many apps
    if pg_database_url:
        monkeypatch.setenv("OMNIBANK_DATABASE_URL", pg_database_url)
    config.reset_settings()
    reset_ciphers()
    db.dispose_engines()
    if pg_database_url:
        db.upgrade()
        import_all_models()
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with db.get_engine().begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
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
