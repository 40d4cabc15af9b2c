"""Leads: who owns a new lead, one lead per key, every status move (and the refused ones), escalation to
the nearest branch manager exactly once, the history and the audit trail."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from omnibank.errors import AppError, CustomerErased
from omnibank.leads import service
from omnibank.leads.models import Lead, LeadHistory
from omnibank.leads.service import LeadKeyReused, TransitionRefused, UnknownCustomers
from omnibank.orgs.models import Staff
from tests.leads.helpers import NOW, create, overdue, request


def _count(settings, model) -> int:
    with unit_of_work(settings) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _move(settings, lead_id: str, status: str, *, staff: str | None = None, note: str | None = None):
    with unit_of_work(settings) as session:
        return service.set_status(
            session,
            lead_id,
            status,
            by=staff or "test",
            now=NOW + timedelta(hours=1),
            note=note,
            staff_id=staff,
        )


# ------------------------------------------------------------------------------------------- create


def test_a_lead_goes_to_the_customers_rm_else_to_the_branch_queue(settings) -> None:
    # given CA1 with RM E00001 in S0101, CA5 without an RM held by team T010101, CB2 without one at B002
    leads = create(
        settings,
        request("CA1", source="journey:fund_view", journey="fund_view", step="hand_off", product_id="fund_a"),
        request("CA5"),
        request("CB2", due_in=timedelta(hours=4)),
    )
    # then the RM owns the first; the others wait in the queue of the customer's own branch
    assert [(x.customer_id, x.owner_staff_id, x.org_id) for x in leads] == [
        ("CA1", "E00001", "S0101"),
        ("CA5", None, "T010101"),
        ("CB2", None, "B002"),
    ]
    first = leads[0]
    assert (first.status, first.source, first.journey, first.step, first.product_id) == (
        "new", "journey:fund_view", "fund_view", "hand_off", "fund_a"
    )  # fmt: skip
    # due: the default two days, or what the request says
    assert first.due_at == NOW + service.DEFAULT_DUE_IN
    assert leads[2].due_at == NOW + timedelta(hours=4)
    with unit_of_work(settings) as session:
        stored = session.get(Lead, first.lead_id)
        assert stored is not None and stored.created_at == NOW and stored.owner_staff_id == "E00001"


def test_the_same_key_creates_one_lead_in_a_batch_and_across_calls(settings) -> None:
    with unit_of_work(settings) as session:
        created = service.create_leads(
            session, [request("CA1", "k1"), request("CA1", "k1"), request("CA3", "k2")], now=NOW
        )
    # one lead per key, the same lead returned for both requests of k1, events only for new leads
    assert len(created) == 3 and created[0] == created[1] and created[0].lead_id != created[2].lead_id
    assert [x.key for x in created.new] == ["k1", "k2"]
    assert [e["event_id"] for e in created.events] == [f"lead:{x.lead_id}:created" for x in created.new]
    # when the keys come again (a retried journey step), nothing new is created
    with unit_of_work(settings) as session:
        again = service.create_leads(session, [request("CA3", "k2"), request("CA1", "k1")], now=NOW)
    assert [x.lead_id for x in again] == [created[2].lead_id, created[0].lead_id]
    assert again.new == [] and again.events == []
    assert _count(settings, Lead) == 2 and _count(settings, LeadHistory) == 2
    assert service.lead_id_for("k1") == created[0].lead_id


def test_a_key_reused_for_another_customer_is_refused_and_nothing_is_written(settings) -> None:
    create(settings, request("CA1", "k1"))
    with (
        pytest.raises(LeadKeyReused, match="names lead .* of customer CA1, not of CA3"),
        unit_of_work(settings) as session,
    ):
        service.create_leads(session, [request("CA4", "fresh"), request("CA3", "k1")], now=NOW)
    assert _count(settings, Lead) == 1


def test_unknown_customers_are_named_and_nothing_is_written(settings) -> None:
    with pytest.raises(UnknownCustomers) as caught, unit_of_work(settings) as session:
        service.create_leads(session, [request("CA1"), request("NOPE2"), request("NOPE1")], now=NOW)
    assert caught.value.details == {"customer_ids": ["NOPE1", "NOPE2"]}
    assert "no customer NOPE1, NOPE2" in caught.value.message
    assert _count(settings, Lead) == 0


def test_an_erased_customer_gets_no_lead(settings) -> None:
    from omnibank.customers.models import Customer

    with unit_of_work(settings) as session:
        customer = session.get(Customer, "CA4")
        assert customer is not None
        customer.erased_at = NOW
    with pytest.raises(CustomerErased), unit_of_work(settings) as session:
        service.create_leads(session, [request("CA4")], now=NOW)
    assert _count(settings, Lead) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": ""}, "key must have 1 to 200"),
        ({"source": "Journey X"}, "source 'Journey X' must look like"),
        ({"product_id": "基金 A"}, "product_id"),
        ({"due_in": timedelta(0)}, "due_in must be positive"),
        ({"due_at": NOW.replace(tzinfo=None)}, "naive datetime"),
        ({"note": "长" * 501}, "at most 500"),
    ],
)
def test_bad_requests_are_refused_with_what_is_wrong(settings, change, message) -> None:
    fields = {"key": "k", "customer_id": "CA1", **change}
    with pytest.raises(AppError, match=message), unit_of_work(settings) as session:
        service.create_leads(session, [service.LeadRequest(**fields)], now=NOW)


def test_notes_keep_chinese_text_and_mask_phone_numbers(settings) -> None:
    (lead,) = create(settings, request("CA1", note="客户浏览基金页面 120 秒，回电 13912345678"))
    assert lead.note == "客户浏览基金页面 120 秒，回电 139****5678"


def test_creation_is_audited_once_per_batch_with_the_new_leads(settings) -> None:
    leads = create(settings, request("CA1"), request("CA3"))
    create(settings, request("CA1"))  # a duplicate: nothing to audit
    with unit_of_work(settings) as session:
        entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "lead.create")))
    assert len(entries) == 1
    assert json.loads(entries[0].detail) == {"count": 2, "leads": [x.lead_id for x in leads]}


# ------------------------------------------------------------------------------------------- status

LEGAL = {("new", "contacted"), ("new", "won"), ("new", "lost"), ("contacted", "won"), ("contacted", "lost")}
PATHS = {"new": [], "contacted": ["contacted"], "won": ["won"], "lost": ["lost"]}


@pytest.mark.parametrize("start", ["new", "contacted", "won", "lost"])
@pytest.mark.parametrize("target", ["contacted", "won", "lost"])
def test_every_move_is_allowed_or_refused_as_the_status_machine_says(settings, start, target) -> None:
    (lead,) = create(settings, request("CA1"))
    for step in PATHS[start]:
        _move(settings, lead.lead_id, step)
    if (start, target) in LEGAL:
        change = _move(settings, lead.lead_id, target, staff="E00001")
        assert change.lead.status == target
        assert [e["type"] for e in change.events] == [f"lead.{target}"]
        assert (change.lead.closed_at is not None) == (target in ("won", "lost"))
    else:
        with pytest.raises(TransitionRefused) as refused:
            _move(settings, lead.lead_id, target)
        expected = "a closed lead cannot change" if start in ("won", "lost") else "already"
        assert expected in refused.value.message and lead.lead_id in refused.value.message
        with unit_of_work(settings) as session:
            assert session.get(Lead, lead.lead_id).status == start  # type: ignore[union-attr]


def test_moving_to_new_or_an_unknown_status_or_an_unknown_lead_is_refused(settings) -> None:
    (lead,) = create(settings, request("CA1"))
    with pytest.raises(AppError, match="use contacted, won or lost"):
        _move(settings, lead.lead_id, "new")
    with pytest.raises(AppError, match="'closed' is not a status"):
        _move(settings, lead.lead_id, "closed")
    with pytest.raises(AppError, match="no lead LNOPE"):
        _move(settings, "LNOPE", "won")


def test_a_status_move_records_history_times_and_an_audit_entry(settings) -> None:
    (lead,) = create(settings, request("CA1"))
    contacted = _move(settings, lead.lead_id, "contacted", staff="E00001", note="已电话联系")
    won = _move(settings, lead.lead_id, "won", staff="E00001")
    assert contacted.lead.contacted_at == NOW + timedelta(hours=1) and contacted.lead.closed_at is None
    assert won.lead.closed_at == NOW + timedelta(hours=1) and won.lead.contacted_at is not None
    with unit_of_work(settings) as session:
        rows = service.history(session, lead.lead_id)
        audited = list(
            session.scalars(select(AuditEntry.action).where(AuditEntry.subject_id == lead.lead_id))
        )
    assert [(h.action, h.from_status, h.to_status, h.by, h.note) for h in rows] == [
        ("created", None, "new", "system:leads", None),
        ("contacted", "new", "contacted", "E00001", "已电话联系"),
        ("won", "contacted", "won", "E00001", None),
    ]
    assert audited == ["lead.create", "lead.contacted", "lead.won"]


def test_a_queue_lead_worked_by_a_staff_member_becomes_theirs(settings) -> None:
    (lead,) = create(settings, request("CA4"))
    assert lead.owner_staff_id is None
    change = _move(settings, lead.lead_id, "contacted", staff="E00009")
    assert change.lead.owner_staff_id == "E00009"
    assert change.events[0]["staff_id"] == "E00009"
    # an owned lead keeps its owner whoever works on it
    (owned,) = create(settings, request("CA1"))
    assert _move(settings, owned.lead_id, "lost", staff="E00009").lead.owner_staff_id == "E00001"


# ----------------------------------------------------------------------------------------- escalate


def _escalate(settings, *, at=NOW):
    with unit_of_work(settings) as session:
        return service.escalate_overdue(session, now=at)


def test_overdue_new_leads_go_to_the_nearest_branch_manager_once(settings) -> None:
    # given overdue leads in a team (T010101), a sub-branch (S0102) and a branch (B002)
    team = overdue(settings, "CA5", "team")
    sub = overdue(settings, "CA3", "sub")
    branch = overdue(settings, "CB2", "branch")
    later = create(settings, request("CA1", "later", due_at=NOW + timedelta(minutes=1)))[0]
    contacted = overdue(settings, "CA4", "contacted")
    _move(settings, contacted.lead_id, "contacted")
    # when escalation runs
    result = _escalate(settings)
    # then each goes to the branch manager above it (E00003 of B001, E00008 of B002)
    assert {x.lead_id: x.escalated_to for x in result.escalated} == {
        team.lead_id: "E00003",
        sub.lead_id: "E00003",
        branch.lead_id: "E00008",
    }
    assert all(x.escalated_at == NOW and x.owner_staff_id is None for x in result.escalated)
    assert {e["event_id"] for e in result.events} == {f"lead:{x.lead_id}:escalated" for x in result.escalated}
    assert {e["staff_id"] for e in result.events} == {"E00003", "E00008"}
    # the lead not yet due and the contacted one are left alone; a second run escalates nothing again
    again = _escalate(settings, at=NOW + timedelta(seconds=30))
    assert again.escalated == [] and again.events == []
    with unit_of_work(settings) as session:
        assert session.get(Lead, later.lead_id).escalated_at is None  # type: ignore[union-attr]
        assert session.get(Lead, contacted.lead_id).escalated_at is None  # type: ignore[union-attr]
        escalations = session.scalar(
            select(func.count()).select_from(LeadHistory).where(LeadHistory.action == "escalated")
        )
    assert escalations == 3
    # once due, the later one escalates too, to the branch manager of B001 (its RM's team sits under it)
    last = _escalate(settings, at=NOW + timedelta(minutes=2))
    assert [(x.lead_id, x.escalated_to, x.owner_staff_id) for x in last.escalated] == [
        (later.lead_id, "E00003", "E00001")
    ]


def test_a_manager_at_the_leads_own_org_wins_over_one_above_and_none_means_unassigned(settings) -> None:
    from omnibank.orgs.models import Org

    with unit_of_work(settings) as session:
        bm_b001 = session.get(Staff, "E00003")
        assert bm_b001 is not None
        session.add(Staff(staff_id="E00010", org_id="S0102", role="branch_manager", name_enc=b"x",
                          fingerprint="x", updated_at=NOW))  # fmt: skip
        session.add(Org(org_id="B003", parent_id="HQ", name="保定分行", level="branch", path="/HQ/B003/",
                        depth=1, updated_at=NOW))  # fmt: skip
        managers = service.branch_managers(session)
    assert managers["S0102"] == "E00010" and managers["S0101"] == "E00003" and managers["T010101"] == "E00003"
    assert "B003" not in managers and "HQ" not in managers
    overdue(settings, "CA3", "sub")
    assert [x.escalated_to for x in _escalate(settings).escalated] == ["E00010"]


def test_leads_with_no_branch_manager_above_are_reported_and_retried(settings) -> None:
    with unit_of_work(settings) as session:
        session.execute(Staff.__table__.update().values(role="rm").where(Staff.role == "branch_manager"))
    lead = overdue(settings, "CA3", "sub")
    first = _escalate(settings)
    assert first.escalated == [] and [x.lead_id for x in first.unassigned] == [lead.lead_id]
    with unit_of_work(settings) as session:
        session.execute(
            Staff.__table__.update().values(role="branch_manager").where(Staff.staff_id == "E00003")
        )
    assert [x.escalated_to for x in _escalate(settings).escalated] == ["E00003"]
