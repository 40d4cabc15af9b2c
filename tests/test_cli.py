from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omnibank import db


def test_db_upgrade_and_current(cli, env) -> None:
    res = cli("db", "upgrade")
    assert res.exit_code == 0
    head = db.head_revision()
    assert head is not None and res.last_line == f"database at revision {head}"
    assert cli("db", "current").last_line == head


def test_migrations_apply_themselves_on_first_use(cli, env, tmp_path: Path) -> None:
    # a brand-new home: the first command that needs the store creates and migrates it
    res = cli("customer", "show", "C1")
    assert res.exit_code == 1 and "no customer C1" in res.stderr
    assert db.current_revision() == db.head_revision()


def test_python_dash_m_and_bad_configuration(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OMNIBANK_")}
    environ["OMNIBANK_HOME"] = str(tmp_path / "h")
    ok = subprocess.run(
        [sys.executable, "-m", "omnibank", "version"], env=environ, capture_output=True, text=True
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "0.1.0"
    environ["OMNIBANK_TIMEZONE"] = "Mars/Olympus"
    bad = subprocess.run(
        [sys.executable, "-m", "omnibank", "customer", "show", "C1"],
        env=environ,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "unknown time zone 'Mars/Olympus'" in bad.stderr
    assert "Traceback" not in bad.stderr
    environ.pop("OMNIBANK_TIMEZONE")
    environ["OMNIBANK_DATABASE_URL"] = "mysql://x/y"
    bad_db = subprocess.run(
        [sys.executable, "-m", "omnibank", "customer", "show", "C1"],
        env=environ,
        capture_output=True,
        text=True,
    )
    assert bad_db.returncode == 1 and "unsupported database 'mysql'" in bad_db.stderr
    assert "Traceback" not in bad_db.stderr


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OMNIBANK_")}
    environ["OMNIBANK_HOME"] = str(tmp_path / "h")
    environ["OMNIBANK_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:9/omnibank?connect_timeout=2"
    res = subprocess.run(
        [sys.executable, "-m", "omnibank", "customer", "show", "C1"],
        env=environ,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert "the database cannot be used" in res.stderr and "OMNIBANK_DATABASE_URL" in res.stderr
    assert "Traceback" not in res.stderr
