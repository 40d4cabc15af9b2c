"""`omnibank leads …`: an RM's list (own leads plus the unit's queue; a team member serves the sub-branch
above the team), a branch manager's (plus escalated), masked always; set, add, escalate, emit, and errors
that say what is wrong where."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnibank.db import unit_of_work
from omnibank.leads import service
from omnibank.leads.cli import parse_duration
from omnibank.leads.models import Lead
from omnibank.leads.service import LeadRead
from tests.leads.helpers import PLAINTEXT, create, logged, request

pytestmark = pytest.mark.usefixtures("pinned_clock")  # the commands read the wall clock


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def leads(settings) -> dict[str, LeadRead]:
    """One lead per customer, due tomorrow; CA3's is overdue (due an hour ago)."""
    now = _now()
    made = create(
        settings,
        request("CA1", product_id="fund_a", due_at=now + timedelta(days=1)),
        request("CA4", due_at=now + timedelta(days=1), note="浏览理财页面"),
        request("CA5", due_at=now + timedelta(days=1)),
        request("CA3", due_at=now - timedelta(hours=1)),
        request("CB2", due_at=now + timedelta(days=1)),
        now=now - timedelta(days=2),
    )
    return {x.customer_id: x for x in made}


def _shown(result) -> set[str]:
    return {cid for cid in ("CA1", "CA2", "CA3", "CA4", "CA5", "CB1", "CB2") if cid in result.stdout}


def test_an_rm_in_a_team_sees_the_queue_of_the_sub_branch_masked(cli, leads) -> None:
    # when the RM of team T010101 lists their leads
    result = cli("leads", "list", "--staff", "E00009")
    # then they see the queue of sub-branch S0101 (CA4 held by S0101, CA5 by the team), not another RM's
    # lead (CA1), not the queue of the other sub-branch (CA3) or branch (CB2)
    assert result.exit_code == 0, result.stderr
    assert _shown(result) == {"CA4", "CA5"}
    assert leads["CA4"].lead_id in result.stdout and "(queue S0101)" in result.stdout
    # names and phones masked, never in plaintext
    assert "孙**" in result.stdout and "138****0006" in result.stdout
    assert not [p for p in PLAINTEXT if p in result.stdout]
    assert result.last_line == "2 leads"


def test_an_rm_sees_own_leads_and_the_queue_and_a_branch_manager_also_escalated_ones(
    cli, settings, leads
) -> None:
    assert _shown(cli("leads", "list", "--staff", "E00001")) == {"CA1", "CA4", "CA5"}
    # the branch manager of B001 sees the whole branch's queue, not the RM's own lead …
    assert _shown(cli("leads", "list", "--staff", "E00003")) == {"CA3", "CA4", "CA5"}
    # … until it escalates to them
    with unit_of_work(settings) as session:
        session.execute(Lead.__table__.update().where(Lead.lead_id == leads["CA1"].lead_id)
                        .values(due_at=_now() - timedelta(minutes=5)))  # fmt: skip
    escalated = cli("leads", "escalate")
    assert escalated.exit_code == 0, escalated.stderr
    assert "E00003: 2 leads" in escalated.stdout and escalated.last_line == "escalated 2 leads"
    shown = cli("leads", "list", "--staff", "E00003")
    assert _shown(shown) == {"CA1", "CA3", "CA4", "CA5"} and "escalated→E00003" in shown.stdout
    # and the filters narrow the list: overdue = still new and past due
    overdue = cli("leads", "list", "--staff", "E00003", "--overdue")
    assert _shown(overdue) == {"CA1", "CA3"} and "overdue" in overdue.stdout
    assert cli("leads", "list", "--staff", "E00001", "--status", "won").stdout.strip() == (
        "no leads for E00001 with status won"
    )
    # the escalation events are in the event log
    assert {f"lead:{leads[c].lead_id}:escalated" for c in ("CA1", "CA3")} <= set(logged(settings))


def test_set_moves_a_lead_and_refuses_what_it_cannot_do(cli, settings, leads) -> None:
    lead_id = leads["CA4"].lead_id
    # a queue lead contacted by the team RM becomes theirs; the event goes to the log
    done = cli("leads", "set", lead_id, "contacted", "--staff", "E00009", "--note", "已电话联系，客户有兴趣")
    assert done.exit_code == 0, done.stderr
    assert done.last_line == f"lead {lead_id}: new → contacted (by E00009)"
    assert logged(settings)[f"lead:{lead_id}:contacted"]["staff_id"] == "E00009"
    shown = cli("leads", "show", lead_id, "--staff", "E00009")
    assert "已电话联系，客户有兴趣" in shown.stdout and "owner E00009" in shown.stdout
    # the same move again, a closed lead, a bad status, a lead out of the staff member's view: refused
    again = cli("leads", "set", lead_id, "contacted", "--staff", "E00009")
    assert again.exit_code == 1 and f"lead {lead_id} is contacted already" in again.stderr
    assert cli("leads", "set", lead_id, "won", "--staff", "E00009").exit_code == 0
    closed = cli("leads", "set", lead_id, "lost", "--staff", "E00009")
    assert closed.exit_code == 1 and "a closed lead cannot change" in closed.stderr
    bad = cli("leads", "set", lead_id, "done", "--staff", "E00009")
    assert bad.exit_code == 1 and "'done' is not a move; use contacted, won or lost" in bad.stderr
    other = cli("leads", "set", leads["CA5"].lead_id, "won", "--staff", "E00002")  # an RM of branch B002
    assert other.exit_code == 1 and f"no lead {leads['CA5'].lead_id}" in other.stderr
    nobody = cli("leads", "list", "--staff", "E99999")
    assert nobody.exit_code == 1 and "no staff member E99999" in nobody.stderr
    with unit_of_work(settings) as session:
        assert session.get(Lead, leads["CA5"].lead_id).status == "new"  # type: ignore[union-attr]


def test_add_creates_a_manual_lead_once_per_key_with_chinese_notes(cli, settings) -> None:
    before = _now()
    first = cli("leads", "add", "--customer", "CA1", "--due-in", "1d12h", "--product", "fund_a",
                "--note", "客户来电咨询基金定投", "--key", "walk-in-1")  # fmt: skip
    assert first.exit_code == 0, first.stderr
    assert "added lead" in first.stdout and "→ E00001" in first.stdout
    again = cli("leads", "add", "--customer", "CA1", "--key", "walk-in-1")
    assert "exists already" in again.stdout
    queued = cli("leads", "add", "--customer", "CB2", "--due-in", "4h")
    assert "the queue of B002" in queued.stdout
    with unit_of_work(settings) as session:
        rows = {x.customer_id: x for x in session.query(Lead)}
    assert len(rows) == 2
    assert rows["CA1"].note == "客户来电咨询基金定投" and rows["CA1"].source == "manual"
    assert timedelta(hours=35, minutes=59) < rows["CA1"].due_at - before < timedelta(hours=36, minutes=1)
    assert f"lead:{rows['CB2'].lead_id}:created" in logged(settings)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customer", "CA1", "--due-in", "2x"], "--due-in: '2x' is not a duration; write e.g. 2d, 4h"),
        (["--customer", "CA1", "--due-in", "0h"], "--due-in: '0h' must be longer than zero"),
        (["--customer", "NOPE", "--due-in", "2d"], "no customer NOPE"),
        (["--customer", "CA1", "--product", "基金 A"], "product_id '基金 A' must be"),
    ],
)
def test_add_errors_name_what_is_wrong(cli, settings, args, message) -> None:
    result = cli("leads", "add", *args)
    assert result.exit_code == 1 and message in result.stderr
    with unit_of_work(settings) as session:
        assert session.query(Lead).count() == 0


def test_durations() -> None:
    assert parse_duration("2d", "--x") == timedelta(days=2)
    assert parse_duration(" 4H ", "--x") == timedelta(hours=4)
    assert parse_duration("1d12h30m", "--x") == timedelta(days=1, hours=12, minutes=30)
    for bad in ("", "2", "d", "2d x", "-2d", "1w"):
        with pytest.raises(Exception, match="is not a duration"):
            parse_duration(bad, "--x")


def test_emit_sends_what_a_crash_left_behind(cli, settings) -> None:
    (lead,) = create(settings, request("CA1"))  # committed, never emitted
    first = cli("leads", "emit")
    assert first.last_line == "emitted 1 lead events (0 already in the log)"
    assert cli("leads", "emit").last_line == "emitted 0 lead events (0 already in the log)"
    assert f"lead:{lead.lead_id}:created" in logged(settings)
    with unit_of_work(settings) as session:
        assert service.pending_events(session) == []
