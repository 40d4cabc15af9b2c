"""A bank's past tickets: `omnibank tickets import` applies their history through the status flow (bad lines
rejected with their numbers, the rest loaded, a second import changes nothing), and `omnibank tickets sla`
computes the clocks of that known data: the 15-day complaint limit across 国庆节, a waiting pause that moves
the due time, and a policy edit that changes the answer without touching the store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from omnibank.config import reset_settings
from omnibank.db import unit_of_work
from omnibank.service.models import Ticket, TicketHistory
from tests.leads.helpers import PLAINTEXT, load_bank

pytestmark = pytest.mark.usefixtures("pinned_clock")  # the commands read the wall clock
EXAMPLE_SLA = Path(__file__).parents[2] / "examples" / "service" / "sla.yaml"


@pytest.fixture
def settings(env, tmp_path: Path):
    load_bank(env.settings, tmp_path / "bank")
    return env.settings


def _line(ticket: str, action: str, at: str, **kw) -> str:
    return json.dumps({"ticket": ticket, "action": action, "at": at, **kw}, ensure_ascii=False)


OPEN = {
    "kind": "complaint",
    "category": "benefit",
    "customer_id": "CA3",
    "channel": "regulator",
    "subject": "权益未到账",
    "description": "王五岳称积分没到账",
}
HISTORY = [
    _line("HX-1", "opened", "2026-09-16T10:00:00+08:00", **OPEN),
    _line("HX-1", "assigned", "2026-09-16T10:30:00+08:00", staff_id="E00006"),
    _line("HX-1", "responded", "2026-09-16T11:00:00+08:00", by="E00006", note="已联系客户 13800000003"),
    _line("HX-1", "resolved", "2026-10-09T10:00:00+08:00"),
    _line("HX-2", "opened", "2026-09-16T10:00:00+08:00", **OPEN),
    _line("HX-2", "waiting_customer", "2026-09-20T10:00:00+08:00"),
    _line("HX-2", "in_progress", "2026-09-22T10:00:00+08:00"),
    _line("HX-2", "resolved", "2026-10-09T10:00:00+08:00"),
    "not json at all",
    _line("HX-2", "teleported", "2026-10-09T11:00:00+08:00"),
    _line("HX-2", "waiting_supplier", "2026-10-09T12:00:00+08:00"),  # resolved → waiting_supplier: no
    _line("HX-3", "responded", "2026-10-01T10:00:00+08:00"),  # no opened line
    _line("HX-4", "opened", "2026-10-01T10:00", **OPEN),  # no offset
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_loads_the_good_lines_rejects_the_bad_and_changes_nothing_twice(
    cli, settings, tmp_path
) -> None:
    path = _write(tmp_path / "history.jsonl", HISTORY)
    first = cli("tickets", "import", str(path))
    assert first.exit_code == 0, first.stderr
    assert "tickets opened 2; loaded 8, rejected 5, duplicates 0" in first.stdout
    rejects_path = first.stdout.split("rejects: ")[1].split(")")[0]
    rejects = {
        int(r["line"]): r["reason"]
        for r in csv.DictReader(Path(rejects_path).read_text(encoding="utf-8-sig").splitlines())
    }
    assert sorted(rejects) == [9, 10, 11, 12, 13]
    assert rejects[9] == "not valid JSON" and "teleported" in rejects[10]
    assert "it may move to closed, reopened, not waiting_supplier" in rejects[11]
    assert "first line must be 'opened'" in rejects[12] and "offset" in rejects[13]
    raw = Path(rejects_path).read_text(encoding="utf-8-sig")
    assert not [p for p in PLAINTEXT if p in raw]
    second = cli("tickets", "import", str(path))
    assert "tickets opened 0; loaded 0, rejected 5, duplicates 8" in second.stdout
    with unit_of_work(settings) as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 2
        assert session.scalar(select(func.count()).select_from(TicketHistory)) == 8
        owner = session.scalar(select(Ticket.owner_staff_id).where(Ticket.ticket_id == "HX-1"))
        note = session.scalar(select(TicketHistory.note).where(TicketHistory.action == "responded"))
    assert owner == "E00006" and note == "已联系客户 138****0003"
    # a later file with more of a ticket's history adds what is new; an older change is refused
    more = _write(
        tmp_path / "more.jsonl",
        [
            _line("HX-1", "closed", "2026-10-10T09:00:00+08:00"),
            _line("HX-2", "closed", "2026-10-01T09:00:00+08:00"),
        ],
    )
    third = cli("tickets", "import", str(more))
    assert "loaded 1, rejected 1" in third.stdout


def _sla(cli, tmp_path: Path, name: str) -> dict[tuple[str, str], dict[str, str]]:
    out = tmp_path / name
    result = cli("tickets", "sla", "--as-of", "2026-10-20", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    return {
        (r["ticket_id"], r["target"]): r for r in csv.DictReader(out.read_text(encoding="utf-8").splitlines())
    }


def test_sla_of_imported_history_counts_days_as_the_law_and_pauses(
    cli, settings, tmp_path, monkeypatch
) -> None:
    cli("tickets", "import", str(_write(tmp_path / "history.jsonl", HISTORY)))
    rows = _sla(cli, tmp_path, "sla.csv")
    # received on 16 September: the 15th day is 1 October (国庆节), so it is due at 24:00 on 8 October
    one = rows[("HX-1", "resolution")]
    assert (one["due_at"], one["state"], one["breached"]) == ("2026-10-09T00:00:00+08:00", "breached", "true")
    assert one["clock"] == "calendar" and one["spec"] == "15 calendar days"
    # two days waiting for the customer move the due time by two days: resolved in time
    two = rows[("HX-2", "resolution")]
    assert (two["due_at"], two["state"], two["paused_minutes"]) == (
        "2026-10-11T00:00:00+08:00",
        "met",
        "2880",
    )
    assert ("HX-1", "first_response") not in rows  # the default policy has no first-response target
    # a policy with a 4-business-hour first response: computed from the same history, nothing stored changes
    monkeypatch.setenv("OMNIBANK_SLA_FILE", str(EXAMPLE_SLA))
    reset_settings()
    edited = _sla(cli, tmp_path, "sla2.csv")
    first = edited[("HX-1", "first_response")]
    assert (first["state"], first["used_minutes"], first["clock"]) == ("met", "60", "business")
    assert edited[("HX-2", "first_response")]["state"] == "breached"  # never answered within 4 hours
    result = cli("tickets", "sla", "--as-of", "not a time")
    assert result.exit_code != 0 and "--as-of" in result.stderr


def test_open_show_and_move_from_the_command_line(cli, settings) -> None:
    opened = cli(
        "tickets",
        "open",
        "--customer",
        "CA3",
        "--category",
        "card",
        "--kind",
        "inquiry",
        "--subject",
        "年费怎么收",
        "--key",
        "call-1",
    )
    assert opened.exit_code == 0, opened.stderr
    ticket_id = opened.stdout.split("opened: ")[1].split()[0]
    again = cli(
        "tickets",
        "open",
        "--customer",
        "CA3",
        "--category",
        "card",
        "--kind",
        "inquiry",
        "--subject",
        "年费怎么收",
        "--key",
        "call-1",
    )
    assert "already open (same key)" in again.stdout and ticket_id in again.stdout
    assert cli("tickets", "respond", ticket_id, "--note", "已答复").exit_code == 0
    bad = cli("tickets", "status", ticket_id, "reopened")
    assert bad.exit_code == 1 and "may move to" in bad.stderr
    assert cli("tickets", "status", ticket_id, "resolved").exit_code == 0
    shown = cli("tickets", "show", ticket_id)
    assert "resolved" in shown.stdout and "王**" in shown.stdout and "王五岳" not in shown.stdout
    assert "SLA first_response" in shown.stdout
    listed = cli("tickets", "list", "--all", "--format", "csv")
    assert ticket_id in listed.stdout and "王五岳" not in listed.stdout
    refused = cli("tickets", "open", "--customer", "CA3", "--category", "Card!", "--subject", "x")
    assert refused.exit_code == 1 and "category" in refused.stderr
