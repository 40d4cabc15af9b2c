"""The console's contact page: the outbox by status, the latest messages (customer numbers only) and the
do-not-disturb entries, of the customers the caller sees; for readers of campaigns only."""

from __future__ import annotations

from datetime import timedelta

from omnibank.contact import dnd, outbox, views
from omnibank.contact.policy import Send
from omnibank.db import unit_of_work
from tests.benefits.helpers import NOW
from tests.console.conftest import Console
from tests.leads.helpers import PLAINTEXT


def fill(console: Console) -> None:
    settings = console.bank.settings
    sends = [Send(f"t:{c}", c, "sms", "service", NOW - timedelta(hours=1), template="notice")
             for c in ("CA1", "CA3", "CB1")]  # fmt: skip
    with unit_of_work(settings) as session:
        outbox.submit(session, settings, sends, now=NOW - timedelta(hours=1))
        dnd.add_dnd(session, "CB2", reason="asked by phone", actor="test", now=NOW - timedelta(days=1))
        dnd.add_dnd(session, "CA3", reason="complaint", actor="test", now=NOW - timedelta(days=1))


def test_the_outbox_and_dnd_of_the_whole_bank(console: Console) -> None:
    fill(console)
    console.signin("cm")
    page = console.get("/console/contact")
    assert page.status_code == 200, page.text
    with unit_of_work(console.bank.settings) as session:
        counts = views.status_counts(session)
    assert sum(counts.values()) == 3
    assert 'data-chart="outbox-status-data"' in page.text
    messages = page.text.split('id="messages"', 1)[1].split("</table>", 1)[0]
    assert all(c in messages for c in ("CA1", "CA3", "CB1"))
    dnd_table = page.text.split('id="dnd"', 1)[1].split("</table>", 1)[0]
    assert "CB2" in dnd_table and "CA3" in dnd_table and "asked by phone" in dnd_table
    assert not [p for p in PLAINTEXT if p in page.text]
    only = console.get(f"/console/contact?status={next(iter(counts))}")
    assert only.status_code == 200
    assert console.get("/console/contact?status=bogus").status_code == 422


def test_a_branch_manager_sees_the_branch_only(console: Console) -> None:
    fill(console)
    console.signin("bm_a")
    page = console.get("/console/contact")
    assert page.status_code == 200
    messages = page.text.split('id="messages"', 1)[1].split("</table>", 1)[0]
    assert "CA1" in messages and "CA3" in messages and "CB1" not in messages
    dnd_table = page.text.split('id="dnd"', 1)[1].split("</table>", 1)[0]
    assert "CA3" in dnd_table and "CB2" not in dnd_table
    total = page.text.split('id="status-counts"', 1)[1].split("<tfoot>", 1)[1]
    assert '<td class="num">2</td>' in total


def test_readers_need_campaigns_read_and_chinese_heading(console: Console) -> None:
    console.signin("rm_a")
    assert console.get("/console/contact").status_code == 403
    console.client.cookies.clear()
    console.signin("cm", lang="zh")
    page = console.get("/console/contact")
    assert page.status_code == 200 and "<h1>触达</h1>" in page.text
