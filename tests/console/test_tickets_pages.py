"""The console's service desk pages: the tickets of the customers the signed-in person sees (masked, audited,
filtered, the desk's figures), one ticket with its clocks and history, and the forms that answer, move and
assign it (the desk's rules: only the flow's moves, out of sight 404, refusals shown on the page, CSRF)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from omnibank.security import get_cipher
from omnibank.service import tickets
from omnibank.service.models import Ticket, TicketHistory
from omnibank.service.tickets import TicketRead, TicketRequest
from tests.api.bank import Bank
from tests.benefits.helpers import NOW
from tests.console.conftest import Console
from tests.leads.helpers import PLAINTEXT


def open_tickets(bank: Bank) -> dict[str, TicketRead]:
    """A complaint of CA1 (RM A's customer, sub-branch S0101) opened an hour ago, an inquiry of CB1 (branch
    B) and an old complaint of CA3 (sub-branch S0102) past its targets now."""
    settings = bank.settings
    with unit_of_work(settings) as session:
        desk = tickets.desk_of(session, settings)
        cipher = get_cipher(settings)

        def make(customer: str, kind: str, at_: timedelta) -> TicketRead:
            request = TicketRequest(kind=kind, category="benefit", customer_id=customer, channel="app",
                                    subject="瑞幸券无法核销")  # fmt: skip
            return tickets.open_ticket(session, desk, cipher, request, by="test", now=NOW - at_).ticket

        made = {"CA1": make("CA1", "complaint", timedelta(hours=1)),
                "CB1": make("CB1", "inquiry", timedelta(hours=2))}  # fmt: skip
        old = make("CA3", "complaint", timedelta(days=20))
        row = session.get(Ticket, old.ticket_id)
        assert row is not None
        tickets.refresh_sla(session, desk, row, now=NOW)  # what the worker's pass does
        made["CA3"] = tickets.ticket_read(row)
    assert made["CA3"].sla_breached and not made["CA1"].sla_breached
    return made


def _status(bank: Bank, ticket_id: str) -> str:
    with unit_of_work(bank.settings) as session:
        row = session.get(Ticket, ticket_id)
        assert row is not None
        return row.status


def test_the_list_shows_the_tickets_in_scope_masked_in_chinese_and_is_audited(console: Console) -> None:
    made = open_tickets(console.bank)
    console.signin("bm_a", lang="zh")  # branch A: CA1 and CA3, not CB1
    page = console.get("/console/tickets")
    assert page.status_code == 200, page.text
    assert "<h1>工单</h1>" in page.text and "投诉" in page.text and "未结工单" in page.text
    rows = page.text.split('id="tickets"', 1)[1]
    assert f'id="ticket-{made["CA1"].ticket_id}"' in rows and f'id="ticket-{made["CA3"].ticket_id}"' in rows
    assert made["CB1"].ticket_id not in page.text
    assert "张**" in rows and "王**" in rows
    assert not [p for p in PLAINTEXT if p in page.text]
    # the red mark on the ticket past its targets only
    late = rows.split(f'id="ticket-{made["CA3"].ticket_id}"', 1)[1].split("</tr>", 1)[0]
    early = rows.split(f'id="ticket-{made["CA1"].ticket_id}"', 1)[1].split("</tr>", 1)[0]
    assert "breached" in late and "breached" not in early
    counts = page.text.split('id="desk-counts"', 1)[1].split("</div>\n</div>", 1)[0]
    assert re.findall(r'class="value[^"]*">(\d+)<', counts) == ["2", "0", "1"]
    with unit_of_work(console.bank.settings) as session:
        entry = session.scalar(
            select(AuditEntry).where(AuditEntry.actor == "user:bm_a", AuditEntry.action == "ticket.list")
        )
    assert entry is not None and entry.source.startswith("console:")
    assert sorted(json.loads(entry.detail)["shown"]) == ["CA1", "CA3"]


def test_english_on_request_and_the_filters(console: Console) -> None:
    made = open_tickets(console.bank)
    console.signin("bm_a", lang="en")
    page = console.get("/console/tickets")
    assert "<h1>Tickets</h1>" in page.text and "Complaint" in page.text and "投诉" not in page.text
    late = console.get("/console/tickets?breached=yes&status=&kind=&owner=").text
    assert made["CA3"].ticket_id in late and made["CA1"].ticket_id not in late
    assert made["CA1"].ticket_id not in console.get("/console/tickets?kind=inquiry").text
    assert console.get("/console/tickets?status=bogus").status_code == 422


def test_a_ticket_out_of_scope_is_404_and_cannot_be_changed(console: Console) -> None:
    made = open_tickets(console.bank)
    ticket_id = made["CA1"].ticket_id
    console.signin("rm_b")
    assert console.get(f"/console/tickets/{ticket_id}").status_code == 404
    assert console.post(f"/console/tickets/{ticket_id}/status", {"status": "in_progress"}).status_code == 404
    assert _status(console.bank, ticket_id) == "assigned"


def test_the_detail_shows_the_clocks_and_the_history_masked_and_is_audited(console: Console) -> None:
    made = open_tickets(console.bank)
    ticket_id = made["CA1"].ticket_id
    console.signin("rm_a", lang="zh")
    page = console.get(f"/console/tickets/{ticket_id}")
    assert page.status_code == 200, page.text
    assert "瑞幸券无法核销" in page.text and "张**" in page.text
    assert not [p for p in PLAINTEXT if p in page.text]
    sla = page.text.split('id="sla"', 1)[1].split("</table>", 1)[0]
    assert "解决" in sla and "15 个自然日" in sla and "计时中" in sla  # a complaint: 15 days (the law's)
    history = page.text.split('id="history"', 1)[1].split("</table>", 1)[0]
    assert "受理" in history and "分派给" in history and "E00006" in history
    with unit_of_work(console.bank.settings) as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "ticket.view"))
    assert entry is not None and entry.actor == "user:rm_a" and entry.subject_id == ticket_id


def test_a_status_move_through_the_form_changes_the_status_writes_history_and_emits(console: Console) -> None:
    made = open_tickets(console.bank)
    ticket_id = made["CA1"].ticket_id
    console.signin("rm_a", lang="zh")
    form = (
        console.get(f"/console/tickets/{ticket_id}")
        .text.split('id="move-status"', 1)[1]
        .split("</select>")[0]
    )
    assert re.findall(r'value="(\w+)"', form) == list(tickets.TRANSITIONS["assigned"])
    done = console.post(
        f"/console/tickets/{ticket_id}/status", {"status": "in_progress", "note": "已联系商户"}
    )
    assert done.status_code == 303 and done.headers["location"] == f"/console/tickets/{ticket_id}?done=status"
    assert _status(console.bank, ticket_id) == "in_progress"
    with unit_of_work(console.bank.settings) as session:
        rows = session.scalars(
            select(TicketHistory).where(TicketHistory.ticket_id == ticket_id).order_by(TicketHistory.seq)
        ).all()
        assert [r.action for r in rows] == ["opened", "assigned", "status"]
        last = rows[-1]
        assert (last.from_status, last.to_status, last.by, last.note) == (
            "assigned", "in_progress", "user:rm_a", "已联系商户"
        )  # fmt: skip
        assert all(r.emitted_at is not None for r in rows)  # emitted after the commit
        change = session.scalar(select(AuditEntry).where(AuditEntry.action == "ticket.change"))
        assert change is not None and change.actor == "user:rm_a" and change.subject_id == ticket_id
        assert json.loads(change.detail) == {"status": "in_progress"}  # the note is not audited
    page = console.get(done.headers["location"]).text
    assert "状态已变更。" in page and "处理中" in page.split('id="history"', 1)[1]


def test_an_illegal_move_shows_the_message_and_changes_nothing(console: Console) -> None:
    made = open_tickets(console.bank)
    ticket_id = made["CA1"].ticket_id
    console.signin("rm_a", lang="zh")
    refused = console.post(f"/console/tickets/{ticket_id}/status", {"status": "reopened"})
    assert refused.status_code == 409
    assert 'id="ticket-error"' in refused.text and "it may move to" in refused.text
    assert "<h1>工单" in refused.text  # the ticket's page, not an error page
    assert _status(console.bank, ticket_id) == "assigned"
    with unit_of_work(console.bank.settings) as session:  # refused: rolled back, its audit row too
        assert session.scalar(select(AuditEntry).where(AuditEntry.action == "ticket.change")) is None
    unknown = console.post(f"/console/tickets/{ticket_id}/assign", {"staff_id": "E99999"})
    assert unknown.status_code == 404 and "no active member of staff E99999" in unknown.text
    both = console.post(f"/console/tickets/{ticket_id}/assign", {"staff_id": "E00001", "queue": "desk"})
    assert both.status_code == 422 and 'id="ticket-error"' in both.text


def test_answering_and_assigning_to_a_queue(console: Console) -> None:
    made = open_tickets(console.bank)
    ticket_id = made["CA1"].ticket_id
    console.signin("rm_a")
    answered = console.post(
        f"/console/tickets/{ticket_id}/answer", {"action": "responded", "note": "已致电客户"}
    )
    assert answered.status_code == 303
    queue = console.get(f"/console/tickets/{ticket_id}").text.split('id="assign-queue"', 1)[1]
    queue_id = re.findall(r'<option value="([\w-]+)">', queue)[0]
    moved = console.post(f"/console/tickets/{ticket_id}/assign", {"queue": queue_id})
    assert moved.status_code == 303
    with unit_of_work(console.bank.settings) as session:
        row = session.get(Ticket, ticket_id)
        assert row is not None and row.first_response_at == console.bank.clock.now
        assert (row.owner_staff_id, row.owner_queue, row.status) == (None, queue_id, "assigned")
    mine = console.get("/console/tickets?owner=" + f"queue:{queue_id}").text
    assert ticket_id in mine


def test_csrf_and_permissions(console: Console) -> None:
    made = open_tickets(console.bank)
    ticket_id = made["CA1"].ticket_id
    console.signin("rm_a")
    bare = console.client.post(f"/console/tickets/{ticket_id}/status", data={"status": "in_progress"},
                               follow_redirects=False)  # fmt: skip
    assert bare.status_code == 403
    assert _status(console.bank, ticket_id) == "assigned"
    console.client.cookies.clear()
    console.signin("auditor")
    assert console.get("/console/tickets").status_code == 403
    assert 'href="/console/tickets"' not in console.get("/console").text


def test_the_home_page_counts_the_open_tickets(console: Console) -> None:
    open_tickets(console.bank)
    console.signin("agent", lang="zh")  # sub-branch S0102: CA3's ticket only
    home = console.get("/console").text
    card = home.split('id="kpi-tickets"', 1)[1].split("</div></div>", 1)[0]
    assert 'href="/console/tickets"' in card and "未结工单" in card and card.endswith(">1")
    mine = console.get("/console/tickets?owner=me").text  # E00006 owns the tickets the desk handed out
    assert made_ids_in(mine) == 1


def made_ids_in(page: str) -> int:
    return len(re.findall(r'<tr id="ticket-', page))
