"""Given a fresh data home, when `omnibank demo` runs, then the whole bank is loaded with nothing
rejected, the example journeys run live, no contract file is left under the data home, running it again
changes nothing, and a customer's 360 shows masked data and events. (One demo run for all of it: each costs
tens of seconds of the suite.)"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from omnibank.contact.models import ContactMessage
from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.events.log import EventLog
from omnibank.journeys.models import Journey, JourneyEntry
from omnibank.kit.console import out
from omnibank.leads.models import Lead
from omnibank.orgs.models import Org, Staff

CONTRACT = {"orgs.csv", "staff.csv", "customers.csv", "events.jsonl"}


@pytest.fixture(autouse=True)
def pipe_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared console as a pipe sees it: tables at their natural width, whatever an earlier test set."""
    monkeypatch.setattr(out, "_width", None)


def journeys_ran_live(cli: Any, env: Any, stdout: str) -> None:
    """The example journeys started on the launch day and the worker ran over the last days: entries, sends
    with receipts (deferrals in the quiet hours), leads for branch staff; printed as live journeys."""
    assert "live journeys, launched 2026-04-21" in stdout  # the last 10 of the 120 days
    for journey in ("card_activation_nudge", "product_view_lead", "silver_digital_help"):
        assert re.search(rf"│ {journey}\s*│", stdout), journey
    with unit_of_work(env.settings) as session:
        assert set(session.scalars(select(Journey.status))) == {"active"}
        assert session.scalar(select(func.count()).select_from(JourneyEntry)) > 0
        statuses = dict(
            session.execute(select(ContactMessage.status, func.count()).group_by(ContactMessage.status)).all()
        )
        assert statuses.get("delivered", 0) > 0 and statuses.get("deferred", 0) > 0, statuses
        channels = set(session.scalars(select(ContactMessage.channel).distinct()))
        assert {"branch_task", "sms"} <= channels
        assert session.scalar(select(func.count()).select_from(Lead)) > 0
    report = cli("journey", "report", "silver_digital_help")
    assert report.exit_code == 0 and "branch_task" in report.stdout


def no_contract_file_left(home: Path, stderr: str) -> None:
    """The contract files (synthetic names, phones, ID numbers in plain text) were written to a private
    temporary folder outside the data home and removed; what is left is its owner's only (0600 / 0700)."""
    files = [p for p in home.rglob("*") if p.is_file()]
    # the generated files, the feed and the suppliers' files; reports the loads write under loads/ (rejects
    # masked, discrepancies) are not contract files
    contract = [
        p for p in files
        if p.suffix in (".csv", ".jsonl") and (home / "loads" not in p.parents or p.name in CONTRACT)
    ]  # fmt: skip
    assert contract == [], contract
    assert not (home / "demo").exists()
    found = re.search(r"into (\S+) \(removed", stderr.replace("\n", " "))
    assert found, stderr
    scratch = Path(found.group(1))
    assert not scratch.exists() and not scratch.parent.exists()
    assert not scratch.is_relative_to(home)
    for path in [home, *home.rglob("*")]:
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def _table_rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0].endswith((".csv", ".jsonl")):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.embedded_only  # repeatability is the generator's; the demo on PostgreSQL is tests/demo's
def test_demo_loads_a_whole_bank_runs_its_journeys_and_is_repeatable(cli, env) -> None:
    first = cli("demo", "--customers", "400", "--days", "120")
    assert first.exit_code == 0, first.stderr
    journeys_ran_live(cli, env, first.stdout)
    no_contract_file_left(env.home, first.stderr)
    rows = _table_rows(first.stdout)
    # the events up to the journeys' launch load with the bank; the last days arrive as its year is lived
    history = next(name for name in rows if name.startswith("events-until-"))
    assert set(rows) == {"orgs.csv", "staff.csv", "customers.csv", history}
    for name, (loaded, rejected, duplicates, _secs) in rows.items():
        assert rejected == "0", name
        assert duplicates == "0", name
        assert int(loaded.replace(",", "")) > 0, name
    invited = re.search(r"([\d,]+) new customers came through them \(([\d,]+) bound", first.stdout)
    assert invited is not None, first.stdout
    newcomers, bound = int(invited.group(1)), int(invited.group(2))
    assert newcomers == 25 and 0 < bound <= newcomers  # one for every 16 of the bank's customers
    with unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 400 + newcomers
        assert s.scalar(select(func.count()).select_from(Org).where(Org.level == "hq")) == 1
        assert s.scalar(select(func.count()).select_from(Staff)) > 0
    events = EventLog(env.settings).count()
    ready = re.search(r"customers, ([\d,]+) events", first.stdout)
    assert ready is not None
    generated = int(ready.group(1).replace(",", ""))
    log = EventLog(env.settings)
    con = log.connect()
    try:  # every generated event is in the log, besides the platform's own (lead changes, receipts, tickets)
        # and the demo's later phases (customers invited by staff, loan applications, complaints, the answers
        # to the effort survey after resolved tickets)
        platform = (
            "type LIKE 'lead.%' OR type LIKE 'message.%' OR event_id LIKE 'inv-%' OR type LIKE 'loan%' "
            "OR type LIKE 'ticket.%' OR type IN ('complaint.filed', 'service.request') "
            "OR event_id LIKE 'ces-%'"
        )
        row = con.execute(f"SELECT count(*) FROM {log.scan_sql()} WHERE NOT ({platform})").fetchone()
    finally:
        con.close()
    assert row is not None and row[0] == generated > int(rows[history][0].replace(",", ""))

    again = cli("demo", "--customers", "400", "--days", "120")
    assert again.exit_code == 0
    assert "lived its year already" in again.stdout
    for name, (loaded, rejected, duplicates, _secs) in _table_rows(again.stdout).items():
        assert loaded == "0" and rejected == "0", name
        assert duplicates == rows[name][0], name
    assert EventLog(env.settings).count() == events

    show = cli("customer", "show", "C000001")
    assert show.exit_code == 0
    assert re.search(r"1[3-9]\d\*{4}\d{4}", show.stdout)  # masked phone
    tree = cli("org", "tree")
    assert tree.exit_code == 0 and "衡水银行" in tree.stdout and "customers 425" in tree.stdout
    board = cli("invites", "leaderboard", "--by", "branch", "--format", "csv")
    assert board.exit_code == 0 and sum(int(r.split(",")[5]) for r in board.stdout.splitlines()[1:]) == bound
