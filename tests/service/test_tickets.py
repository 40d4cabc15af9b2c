"""Tickets: routing to the agent on shift, the status flow and its refusals, one owner, events in the log,
escalation up the org tree exactly once, surges, tickets from the log, and the scoped, masked reading."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from omnibank.audit.models import AuditEntry
from omnibank.config import Settings
from omnibank.customers.repository import Scope, subtree_scope
from omnibank.db import unit_of_work
from omnibank.errors import Conflict, InputRefused, NotFound
from omnibank.events.reader import read_events
from omnibank.ingest.service import load_file
from omnibank.security import get_cipher
from omnibank.service import escalation, intake, tickets, views
from omnibank.service.calendar import BusinessCalendar
from omnibank.service.models import SurgeAlert, Ticket, TicketEscalation, TicketHistory
from omnibank.service.routing import default_routing, parse_routing
from omnibank.service.sla import DEFAULT_POLICY
from omnibank.service.tickets import Desk, TicketRequest
from tests.leads.helpers import PLAINTEXT, load_bank

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)  # a working Monday
NIGHT = datetime(2026, 3, 2, 23, 30, tzinfo=TZ)
CAL = BusinessCalendar(tz=TZ)


@pytest.fixture
def settings(env, tmp_path: Path) -> Settings:
    s: Settings = env.settings
    load_bank(s, tmp_path / "bank")
    return s


def _desk(routing_text: str | None = None) -> Desk:
    routing = parse_routing(routing_text) if routing_text else default_routing("HQ", ["E00006"])
    return Desk(DEFAULT_POLICY, CAL, routing)


def _open(settings: Settings, desk: Desk, customer: str = "CA1", *, now: datetime = MONDAY, **kw) -> str:
    fields = dict(
        kind="complaint",
        category="benefit",
        customer_id=customer,
        channel="phone_hotline",
        subject="瑞幸券无法核销 13800000001",
    )
    fields.update(kw)
    with unit_of_work(settings) as session:
        opened = tickets.open_ticket(
            session, desk, get_cipher(settings), TicketRequest(**fields), by="test", now=now
        )
    return opened.ticket.ticket_id


def _ticket(settings: Settings, ticket_id: str) -> tickets.TicketRead:
    with unit_of_work(settings) as session:
        found = session.get(Ticket, ticket_id)
        assert found is not None
        return tickets.ticket_read(found)


def _do(settings: Settings, fn, *args, **kw):
    with unit_of_work(settings) as session:
        return fn(session, *args, **kw)


# ------------------------------------------------------------------------------------------- routing


def test_a_ticket_goes_to_the_agent_on_shift_and_waits_in_the_queue_at_night(settings) -> None:
    desk = _desk()
    day = _ticket(settings, _open(settings, desk, now=MONDAY))
    assert (day.owner_staff_id, day.owner_queue, day.status, day.queue) == (
        "E00006",
        None,
        "assigned",
        "desk",
    )
    assert day.subject == "瑞幸券无法核销 138****0001"  # digit runs masked
    night = _ticket(settings, _open(settings, desk, "CA2", now=NIGHT))
    assert (night.owner_staff_id, night.owner_queue, night.status) == (None, "desk", "new")
    # when the desk opens the next morning, the worker hands it out
    morning = NIGHT + timedelta(hours=9, minutes=45)
    handed = _do(settings, tickets.assign_waiting, desk, now=morning)
    assert [t.ticket_id for t in handed] == [night.ticket_id]
    assert _ticket(settings, night.ticket_id).owner_staff_id == "E00006"


ROUTING = """
queues:
  - {id: benefits, name: 权益服务组, org: B001, agents: [E00006, E00001]}
  - {id: weekend, name: 周末值班, org: B002, agents: [{staff: E00002, hours: {sat: ["09:00-17:00"]}}]}
  - {id: general, name: 综合, org: HQ}
rules:
  - {category: benefit, queue: benefits}
  - {branch: B002, queue: weekend}
  - {queue: general}
"""


def test_rules_choose_the_queue_and_the_least_loaded_agent_takes_the_ticket(settings) -> None:
    desk = _desk(ROUTING)
    owners = [
        _ticket(settings, _open(settings, desk, c)).owner_staff_id for c in ("CA1", "CA2", "CA3", "CA4")
    ]
    assert owners == ["E00001", "E00006", "E00001", "E00006"]  # lowest id on a tie, then the least loaded
    # a card ticket of a B002 customer goes to the weekend desk; on a Monday its agent is off shift
    card = _ticket(settings, _open(settings, desk, "CB1", category="card"))
    assert (card.queue, card.owner_queue) == ("weekend", "weekend")
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=TZ)
    assert [t.owner_staff_id for t in _do(settings, tickets.assign_waiting, desk, now=saturday)] == ["E00002"]
    other = _ticket(settings, _open(settings, desk, "CA1", category="card"))
    assert (other.queue, other.owner_queue) == ("general", "general")  # nobody in that queue


def test_a_routing_file_with_mistakes_is_refused_naming_them() -> None:
    with pytest.raises(InputRefused) as caught:
        parse_routing(
            "queues:\n  - {id: a, name: A}\nrules:\n  - {category: benefit, queue: b}\n", source="r.yaml"
        )
    text = caught.value.message
    assert "r.yaml" in text and "no queue 'b'" in text
    with pytest.raises(InputRefused, match="last rule must match every ticket"):
        parse_routing("queues:\n  - {id: a, name: A}\nrules:\n  - {category: benefit, queue: a}\n")
    with pytest.raises(InputRefused, match="funday"):
        parse_routing(
            "queues:\n  - {id: a, name: A, agents: [{staff: E1, hours: {funday: []}}]}\n"
            "rules:\n  - {queue: a}\n"
        )


def test_bad_requests_are_refused_naming_the_field(settings) -> None:
    desk = _desk()
    for field, value, words in [
        ("kind", "praise", "kind"),
        ("category", "Bad Cat", "category"),
        ("priority", "asap", "priority"),
        ("channel", "fax", "channel"),
        ("subject", " ", "subject"),
    ]:
        with pytest.raises(InputRefused, match=words):
            _open(settings, desk, **{field: value})
    with pytest.raises(NotFound, match="benefit_id"):
        _open(settings, desk, benefit_id="NO-SUCH")
    assert _do(settings, lambda s: s.scalar(select(func.count()).select_from(Ticket))) == 0


def test_the_same_key_opens_one_ticket(settings) -> None:
    desk = _desk()
    first = _open(settings, desk, key="hotline:778")
    assert _open(settings, desk, key="hotline:778") == first
    with pytest.raises(Conflict, match="another ticket"):
        _open(settings, desk, "CA2", key="hotline:778")


# ------------------------------------------------------------------------------------------- the flow


def test_the_status_flow_its_refusals_and_one_owner(settings) -> None:
    desk = _desk()
    tid = _open(settings, desk)
    t1 = MONDAY + timedelta(minutes=30)
    _do(settings, tickets.answer, desk, tid, "responded", by="E00006", now=t1, note="已致电客户")
    assert _ticket(settings, tid).first_response_at == t1
    _do(settings, tickets.set_status, desk, tid, "waiting_supplier", by="E00006", now=t1)
    with pytest.raises(Conflict, match="may move to in_progress, resolved, closed, not reopened"):
        _do(settings, tickets.set_status, desk, tid, "reopened", by="E00006", now=t1)
    _do(settings, tickets.set_status, desk, tid, "resolved", by="E00006", now=t1 + timedelta(hours=2))
    with pytest.raises(Conflict, match="reopen it"):
        _do(settings, tickets.answer, desk, tid, "updated", by="E00006", now=t1 + timedelta(hours=3))
    _do(settings, tickets.set_status, desk, tid, "reopened", by="E00006", now=t1 + timedelta(hours=4))
    after = _ticket(settings, tid)
    assert (after.status, after.resolved_at) == ("reopened", None)
    _do(settings, tickets.assign, desk, tid, queue="desk", by="E00003", now=t1 + timedelta(hours=5))
    moved = _ticket(settings, tid)
    assert (moved.owner_staff_id, moved.owner_queue) == (None, "desk")
    with pytest.raises(Conflict, match="owned by a queue"):
        _do(settings, tickets.set_status, desk, tid, "assigned", by="E00003", now=t1 + timedelta(hours=5))
    with pytest.raises(NotFound, match="no active member of staff"):
        _do(settings, tickets.assign, desk, tid, staff_id="E99999", by="E00003", now=t1 + timedelta(hours=5))
    rows = _do(settings, tickets.history, tid)
    assert [(h.action, h.to_status) for h in rows] == [
        ("opened", "new"),
        ("assigned", "assigned"),
        ("responded", "assigned"),
        ("status", "waiting_supplier"),
        ("status", "resolved"),
        ("status", "reopened"),
        ("assigned", "reopened"),
    ]
    assert rows[2].note == "已致电客户" and rows[2].by == "E00006"


def test_a_change_made_meanwhile_is_refused_not_applied_on_top(settings) -> None:
    desk = _desk()
    tid = _open(settings, desk)
    with unit_of_work(settings) as session:
        stale = session.get(Ticket, tid)
        assert stale is not None and stale.status == "assigned"
        # someone else moves it (a Core UPDATE: the object read above still says "assigned")
        session.execute(tickets._TICKETS.update().values(status="in_progress"))
        with pytest.raises(Conflict, match="changed meanwhile"):
            tickets._guarded(session, stale, status="resolved")


def test_every_change_is_an_event_in_the_log_once(settings) -> None:
    desk = _desk()
    tid = _open(settings, desk)
    _do(settings, tickets.set_status, desk, tid, "resolved", by="E00006", now=MONDAY + timedelta(hours=1))
    first = tickets.emit_pending(settings, now=MONDAY)
    assert first.loaded == 3
    assert tickets.emit_pending(settings, now=MONDAY).loaded == 0  # marked emitted
    events = [e for e in read_events(settings, platform=True) if e.type.startswith("ticket.")]
    assert sorted(e.type for e in events) == ["ticket.assigned", "ticket.opened", "ticket.resolved"]
    assert {e.event_id for e in events} == {f"ticket:{tid}:{n}" for n in (1, 2, 3)}
    assert all(e.customer_id == "CA1" for e in events)


# ---------------------------------------------------------------------------------------- escalation


def test_warn_the_owner_then_escalate_to_the_manager_and_higher_once(settings) -> None:
    desk = _desk()
    # an inquiry has 4 business hours for its first answer: 10:00 → 15:30 (lunch 12:00-13:30)
    tid = _open(settings, desk, "CA3", kind="inquiry", category="card")
    t = _ticket(settings, tid)
    assert t.sla_next_at == datetime(2026, 3, 2, 14, 42, tzinfo=TZ)  # 80 % of 240 minutes
    assert (
        _do(settings, escalation.escalate_due, desk, now=datetime(2026, 3, 2, 14, 41, tzinfo=TZ)).checked == 0
    )
    warn = _do(settings, escalation.escalate_due, desk, now=datetime(2026, 3, 2, 14, 42, tzinfo=TZ))
    assert warn.escalated == {"warn": 1, "breach": 0, "breach2": 0}
    late = _do(settings, escalation.escalate_due, desk, now=datetime(2026, 3, 3, 9, 30, tzinfo=TZ))
    assert late.escalated == {"warn": 0, "breach": 1, "breach2": 1}
    assert late.unassigned == 1  # nobody manages above branch B001
    again = _do(settings, escalation.escalate_due, desk, now=datetime(2026, 3, 3, 11, 0, tzinfo=TZ))
    assert sum(again.escalated.values()) == 0
    rows = _do(
        settings,
        lambda s: [
            (e.level, e.to_staff_id)
            for e in s.scalars(select(TicketEscalation).order_by(TicketEscalation.id))
        ],
    )
    assert rows == [("warn", "E00006"), ("breach", "E00003"), ("breach2", None)]
    after = _ticket(settings, tid)
    assert (after.sla_level, after.sla_breached) == ("breach2", True)
    details = [h.detail for h in _do(settings, tickets.history, tid) if h.action == "escalated"]
    assert details == ["first_response 80%", "first_response breach", "first_response 150%"]


def test_a_paused_ticket_does_not_escalate_and_its_due_time_moves(settings) -> None:
    desk = _desk()
    tid = _open(settings, desk, "CA3", kind="inquiry", category="card")
    _do(
        settings,
        tickets.set_status,
        desk,
        tid,
        "waiting_customer",
        by="E00006",
        now=MONDAY + timedelta(hours=1),
    )
    paused = _ticket(settings, tid)
    assert paused.sla_next_at is None
    # a day later the customer answers: 60 minutes were used, so 180 remain from Tuesday 10:00
    back = MONDAY + timedelta(days=1)
    _do(settings, tickets.set_status, desk, tid, "in_progress", by="E00006", now=back)
    state = _do(
        settings,
        lambda s: views.ticket_detail(
            s, get_cipher(settings), desk, views.Viewer(), tid, now=back, actor="test", record=False
        ),
    )
    first = state.sla["first_response"]
    assert first.due_at == datetime(2026, 3, 3, 14, 30, tzinfo=TZ)
    assert first.paused_minutes == 60 + 4 * 60 + 60  # Monday 11:00-12:00 and 13:30-17:30, Tuesday 9-10


def test_a_surge_alerts_the_queues_manager_once_an_hour(settings) -> None:
    desk = _desk(ROUTING)
    for i in range(10):
        _open(settings, desk, "CA1", now=MONDAY + timedelta(minutes=i), key=f"s{i}")
    now = MONDAY + timedelta(minutes=30)
    found = _do(settings, escalation.check_surges, desk, now=now)
    assert [(s.queue, s.inflow, s.usual_per_hour, s.to_staff_id, s.created) for s in found] == [
        ("benefits", 10, "0.00", "E00003", True)
    ]
    assert [
        s.created for s in _do(settings, escalation.check_surges, desk, now=now + timedelta(minutes=5))
    ] == [False]
    assert _do(settings, lambda s: s.scalar(select(func.count()).select_from(SurgeAlert))) == 1


def test_nine_tickets_are_no_surge(settings) -> None:
    desk = _desk(ROUTING)
    for i in range(9):
        _open(settings, desk, "CA1", now=MONDAY + timedelta(minutes=i), key=f"s{i}")
    assert _do(settings, escalation.check_surges, desk, now=MONDAY + timedelta(minutes=30)) == []


# ----------------------------------------------------------------------------------- from the log


def test_complaints_in_the_event_log_become_tickets_once(settings, tmp_path: Path) -> None:
    lines = [
        {
            "event_id": "cf-1",
            "type": "complaint.filed",
            "customer_id": "CA1",
            "ts": "2026-03-02T09:00:00+08:00",
            "channel": "app",
            "category": "benefit",
            "description": "券过期了, 客服没人理",
            "priority": "high",
        },
        {
            "event_id": "sr-1",
            "type": "service.request",
            "customer_id": "CB1",
            "ts": "2026-03-02T09:05:00+08:00",
            "channel": "wechat",
            "category": "card",
            "kind": "inquiry",
            "via": "regulator",
        },
        {
            "event_id": "cf-2",
            "type": "complaint.filed",
            "customer_id": "CA2",
            "ts": "2026-03-02T09:10:00+08:00",
            "category": "benefit",
            "benefit_id": "NO-SUCH",
            "priority": "whenever",
        },
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    assert load_file("events", path, settings=settings, progress=False).loaded == 3
    desk = _desk()
    got = _do(settings, intake.intake_pass, settings, desk, get_cipher(settings), now=MONDAY)
    assert (got.events, got.opened, got.cleaned) == (3, 3, 1)
    assert _do(settings, intake.intake_pass, settings, desk, get_cipher(settings), now=MONDAY).events == 0
    found = _do(
        settings,
        lambda s: {
            t.customer_id: (t.kind, t.category, t.priority, t.channel, t.source)
            for t in s.scalars(select(Ticket))
        },
    )
    assert found == {
        "CA1": ("complaint", "benefit", "high", "app", "event:complaint.filed"),
        "CB1": ("inquiry", "card", "normal", "regulator", "event:service.request"),
        "CA2": ("complaint", "benefit", "normal", "app", "event:complaint.filed"),  # no channel: the app
    }
    # the customer's words are stored encrypted, never in plaintext
    blob = _do(
        settings, lambda s: s.scalar(select(Ticket.description_enc).where(Ticket.customer_id == "CA1"))
    )
    assert "客服".encode() not in blob


# ------------------------------------------------------------------------------------------- reading


def test_reading_is_scoped_masked_and_audited(settings) -> None:
    desk = _desk()
    a = _open(settings, desk, "CA1", description="张三丰说券用不了")
    b = _open(settings, desk, "CB1")
    with unit_of_work(settings) as session:
        b001 = subtree_scope(session, "B001")
        page = views.ticket_page(
            session, get_cipher(settings), desk, views.Viewer(scope=b001), now=MONDAY, actor="user:zheng"
        )
        assert [i.ticket.ticket_id for i in page.items] == [a]
        assert page.items[0].name != "张三丰" and page.items[0].phone == "138****0001"
        with pytest.raises(NotFound):
            views.ticket_detail(
                session,
                get_cipher(settings),
                desk,
                views.Viewer(scope=b001),
                b,
                now=MONDAY,
                actor="user:zheng",
            )
        mine = views.ticket_page(
            session, get_cipher(settings), desk, views.Viewer(staff_id="E00006"), now=MONDAY, actor="user:e6"
        )
        assert {i.ticket.ticket_id for i in mine.items} == {a, b}
        words = views.reveal_description(
            session,
            get_cipher(settings),
            desk,
            views.Viewer(scope=Scope.whole_bank()),
            a,
            actor="user:zheng",
            source="test",
            reason="核实投诉",
            now=MONDAY,
        )
        assert words == "张三丰说券用不了"
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert actions[-3:] == ["ticket.list", "ticket.list", "ticket.reveal"]
        counts = views.desk_counts(session, desk, views.Viewer(scope=Scope.whole_bank()))
        assert (counts.open, counts.by_status["assigned"]) == (2, 2)
        stored = " ".join(str(v) for t in session.scalars(select(TicketHistory)) for v in vars(t).values())
    assert not any(p in stored for p in PLAINTEXT)


def test_the_example_routing_file_loads_and_routes() -> None:
    from omnibank.service.routing import load_routing

    routing = load_routing(Path(__file__).parents[2] / "examples" / "service" / "routing.yaml")
    assert routing.route("complaint", "benefit", "/HQ/B001/S0101/").id == "benefits"
    assert routing.route("inquiry", "installment", None).id == "cards"
    assert routing.route("complaint", "branch", "/HQ/B001/S0101/").id == "b001"
    assert routing.route("complaint", "branch", "/HQ/B002/").id == "general"
    assert str(routing.supplier_target("luckin")) == "4 business hours"


MOVES = st.lists(
    st.one_of(
        st.tuples(st.just("status"), st.sampled_from(sorted(tickets.TRANSITIONS))),
        st.tuples(st.just("answer"), st.sampled_from(tickets.ANSWERS)),
        st.tuples(st.just("assign"), st.sampled_from(["E00006", "E00001", "queue:desk", "E99999"])),
    ),
    max_size=12,
)


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=MOVES)
def test_any_sequence_of_moves_keeps_one_owner_and_a_history_that_tells_the_status(settings, moves) -> None:
    desk = _desk()
    tid = _open(settings, desk, "CA1", key=f"prop:{len(moves)}:{hash(tuple(moves))}")
    at = MONDAY
    for what, value in moves:
        at += timedelta(minutes=17)
        before = len(_do(settings, tickets.history, tid))
        try:
            if what == "status":
                _do(settings, tickets.set_status, desk, tid, value, by="p", now=at)
            elif what == "answer":
                _do(settings, tickets.answer, desk, tid, value, by="p", now=at)
            elif value.startswith("queue:"):
                _do(settings, tickets.assign, desk, tid, queue=value[6:], by="p", now=at)
            else:
                _do(settings, tickets.assign, desk, tid, staff_id=value, by="p", now=at)
        except (Conflict, NotFound):
            assert len(_do(settings, tickets.history, tid)) == before  # a refusal changes nothing
        t = _ticket(settings, tid)
        assert (t.owner_staff_id is None) != (t.owner_queue is None)
        rows = _do(settings, tickets.history, tid)
        assert rows[-1].to_status == t.status and [h.seq for h in rows] == list(range(1, len(rows) + 1))
        assert (t.resolved_at is not None) == (t.status in ("resolved", "closed"))
