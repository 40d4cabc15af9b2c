"""The console's leads page: my leads and the branch queue, scoped and masked as the API, and the follow-up
form (the API's rules: allowed moves only, out of scope 404, recorded and audited, CSRF checked)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from omnibank.leads import service
from omnibank.leads.models import Lead, LeadHistory
from omnibank.leads.service import LeadRead
from tests.api.bank import Bank
from tests.benefits.helpers import NOW
from tests.console.conftest import Console
from tests.leads.helpers import PLAINTEXT, request


def make_leads(bank: Bank) -> dict[str, LeadRead]:
    """CA1 (RM E00001's), CA3 (the queue of S0102, overdue), CB1 (RM E00002's)."""
    with unit_of_work(bank.settings) as session:
        made = service.create_leads(
            session,
            [request("CA1", product_id="fund_a"), request("CA3", due_at=NOW - timedelta(hours=1)),
             request("CB1")],
            now=NOW - timedelta(days=1),
        )  # fmt: skip
    return {x.customer_id: x for x in made}


def test_an_rm_sees_their_own_leads_masked_and_the_view_is_audited(console: Console) -> None:
    leads = make_leads(console.bank)
    console.signin("rm_a")
    page = console.get("/console/leads")
    assert page.status_code == 200, page.text
    assert f'id="lead-{leads["CA1"].lead_id}"' in page.text
    assert leads["CB1"].lead_id not in page.text and leads["CA3"].lead_id not in page.text
    assert "张**" in page.text and "138****0001" in page.text
    assert not [p for p in PLAINTEXT if p in page.text]
    with unit_of_work(console.bank.settings) as session:
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "user:rm_a")))
    assert "lead.list" in actions


def test_a_branch_manager_sees_the_queue_of_the_branch(console: Console) -> None:
    leads = make_leads(console.bank)
    console.signin("bm_a")
    page = console.get("/console/leads")
    assert page.status_code == 200
    queue = page.text.split('id="queue"', 1)[1]
    assert f'id="lead-{leads["CA3"].lead_id}"' in queue and "Overdue" in queue
    assert leads["CA1"].lead_id not in queue and leads["CB1"].lead_id not in page.text


def test_setting_a_status_is_recorded_and_audited(console: Console) -> None:
    leads = make_leads(console.bank)
    lead_id = leads["CA1"].lead_id
    console.signin("rm_a")
    done = console.post(
        f"/console/leads/{lead_id}/status", {"status": "contacted", "note": "called, call back"}
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/console/leads?done=")
    with unit_of_work(console.bank.settings) as session:
        assert session.get(Lead, lead_id).status == "contacted"  # type: ignore[union-attr]
        history = session.scalars(select(LeadHistory).where(LeadHistory.lead_id == lead_id)).all()
        assert [h.action for h in history] == ["created", "contacted"]
        assert history[-1].by == "user:rm_a" and history[-1].staff_id == "E00001"
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "lead.contacted"))
        assert entry is not None and entry.actor == "user:rm_a" and entry.source.startswith("console:")
    # a move not allowed (contacted → contacted) is refused, as the API's 409
    again = console.post(f"/console/leads/{lead_id}/status", {"status": "contacted"})
    assert again.status_code == 409
    assert console.post(f"/console/leads/{lead_id}/status", {"status": "won"}).status_code == 303
    assert console.post(f"/console/leads/{lead_id}/status", {"status": "lost"}).status_code == 409
    assert console.post(f"/console/leads/{lead_id}/status", {"status": "new"}).status_code == 422


def test_another_rm_cannot_set_the_status_of_a_lead_they_do_not_see(console: Console) -> None:
    leads = make_leads(console.bank)
    lead_id = leads["CA1"].lead_id
    console.signin("rm_b")
    assert console.post(f"/console/leads/{lead_id}/status", {"status": "won"}).status_code == 404
    with unit_of_work(console.bank.settings) as session:
        assert session.get(Lead, lead_id).status == "new"  # type: ignore[union-attr]


def test_post_without_csrf_is_403_and_readers_without_leads_write_are_403(console: Console) -> None:
    leads = make_leads(console.bank)
    lead_id = leads["CA1"].lead_id
    console.signin("rm_a")
    bare = console.client.post(f"/console/leads/{lead_id}/status", data={"status": "won"},
                               follow_redirects=False)  # fmt: skip
    assert bare.status_code == 403
    with unit_of_work(console.bank.settings) as session:
        assert session.get(Lead, lead_id).status == "new"  # type: ignore[union-attr]
    console.client.cookies.clear()
    console.signin("auditor")
    assert console.get("/console/leads").status_code == 403


def test_chinese_heading(console: Console) -> None:
    console.signin("rm_a", lang="zh")
    page = console.get("/console/leads")
    assert "<h1>商机线索</h1>" in page.text and "我的线索" in page.text
