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


HEAVY = ("sqlalchemy", "fastapi", "pyarrow", "numpy", "duckdb", "sqlglot", "pydantic", "uvicorn")


def _modules_after(*args: str) -> tuple[int, set[str]]:
    """Run ``omnibank ARGS`` in a fresh interpreter; its exit code and the top-level modules it imported."""
    probe = (
        "import sys\n"
        "from omnibank.cli import main\n"
        f"sys.argv = ['omnibank', *{list(args)!r}]\n"
        "try:\n    main()\n"
        "except SystemExit as e:\n    code = e.code or 0\nelse:\n    code = 0\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("MODULES "))
    return res.returncode, set(line.split()[1:])


def test_help_imports_no_domain_and_no_heavy_library() -> None:
    code, modules = _modules_after("--help")
    assert code == 0
    assert not [m for m in modules if m.split(".")[0] in HEAVY], sorted(m for m in modules if "." not in m)
    own = {"omnibank.cli", "omnibank.errors"}
    assert not [m for m in modules if m.startswith("omnibank.") and m not in own]


def test_a_command_imports_its_own_domain_only() -> None:
    code, modules = _modules_after("journey", "--help")
    assert code == 0 and "omnibank.journeys.cli" in modules
    assert not {"omnibank.campaigns.cli", "omnibank.benefits.cli", "omnibank.api.cli", "fastapi"} & modules


def test_every_root_command_loads_with_the_help_the_root_lists(cli) -> None:
    from omnibank.cli import COMMANDS, load_command

    for name, entry in COMMANDS.items():
        command = load_command(name, entry)
        assert command.name == name
        # a group's help is the root's; a command function's docstring begins with it
        assert (command.help or "").replace("\n", " ").startswith(entry.help.rstrip(".")), name
        res = cli(name, "--help")
        assert res.exit_code == 0 and f"omnibank {name}" in res.stdout, name


def test_a_typo_is_refused_with_a_suggestion(cli) -> None:
    res = cli("segmnt", "count", "age > 1")
    assert res.exit_code == 2 and "segment" in res.stderr
