"""The service desk's pages in a real browser, on the small bank with three tickets: the list and one ticket
in Chinese and in English (axe-checked, screenshots), and a status move through the form."""

from __future__ import annotations

import pytest

from tests.console.test_tickets_pages import open_tickets
from tests.e2e.conftest import Site, follow

pytestmark = pytest.mark.e2e


def test_the_tickets_pages_in_both_languages_and_a_move(site: Site) -> None:
    made = open_tickets(site.bank)
    ticket_id = made["CA1"].ticket_id
    page = site.page("bm_a")
    page.goto(f"{site.url}/console/tickets")
    assert page.locator("h1").inner_text() == "工单"
    assert page.locator("#tickets tbody tr").count() == 2
    assert page.locator(f"#ticket-{made['CA3'].ticket_id} .breached").count() == 1
    assert site.axe(page) == []
    site.shot(page, "tickets-zh")
    follow(page, f"a[href='/console/tickets/{ticket_id}']")
    assert "张**" in page.locator("#ticket-customer").inner_text()
    assert site.axe(page) == []
    site.shot(page, "ticket-detail-zh")
    page.select_option("#move-status", "in_progress")
    page.fill("#move-note", "已联系商户核实")
    follow(page, "#move-status ~ button[type=submit]")
    assert page.locator("#ticket-status").inner_text() == "处理中"
    assert "已联系商户核实" in page.locator("#history").inner_text()
    site.shot(page, "ticket-moved-zh")
    follow(page, "text=English")
    assert page.locator("#ticket-status").inner_text() == "Being handled"
    site.shot(page, "ticket-detail-en")
    page.goto(f"{site.url}/console/tickets")
    site.shot(page, "tickets-en")
    assert site.errors == []
