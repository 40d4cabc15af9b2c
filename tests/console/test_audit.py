"""The console's audit page: the trail, newest first, filtered by GET parameters and paged, and verify (ok on
an intact trail); for auditors and administrators only; the POST needs the CSRF token."""

from __future__ import annotations

import re

from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from tests.console.conftest import Console


def _ids(html: str) -> list[int]:
    table = html.split('id="trail"', 1)[1].split("</table>", 1)[0]
    return [int(x) for x in re.findall(r"<tr>\s*<td>(\d+)</td>", table)]


def test_the_trail_newest_first_filtered_and_paged(console: Console) -> None:
    console.signin("rm_a")
    console.get("/console/leads")  # an audited view: lead.list by user:rm_a
    console.client.cookies.clear()
    console.signin("auditor")
    page = console.get("/console/audit")
    assert page.status_code == 200, page.text
    with unit_of_work(console.bank.settings) as session:
        newest = list(session.scalars(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(50)))
    assert _ids(page.text) == newest
    mine = console.get("/console/audit", params={"actor": "user:rm_a", "action": "lead.list"})
    rows = mine.text.split('id="trail"', 1)[1]
    assert len(_ids(mine.text)) == 2 and "lead.list" in rows and "user:rm_a" in rows  # my leads, the queue
    assert "No entries." in console.get("/console/audit", params={"actor": "nobody"}).text
    older = console.get("/console/audit", params={"before": newest[1]})
    assert _ids(older.text)[0] == newest[2]


def test_verify_reports_an_intact_trail(console: Console) -> None:
    console.signin("admin")
    done = console.post("/console/audit/verify")
    assert done.status_code == 200, done.text
    verdict = done.text.split('id="verdict"', 1)[1]
    assert "Intact:" in verdict and "Time taken" in verdict
    bare = console.client.post("/console/audit/verify", follow_redirects=False)
    assert bare.status_code == 403


def test_only_audit_readers_and_chinese_heading(console: Console) -> None:
    console.signin("rm_a")
    assert console.get("/console/audit").status_code == 403
    assert console.post("/console/audit/verify").status_code == 403
    console.client.cookies.clear()
    console.signin("auditor", lang="zh")
    page = console.get("/console/audit")
    assert page.status_code == 200 and "<h1>审计日志</h1>" in page.text
