"""The customer-experience pages in a real browser, on the small bank with a month of survey answers and
alerts: the experience index loads its table after the page (htmx) in Chinese, axe-checked, screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console.test_cx_pages import MARCH, experience
from tests.e2e.conftest import Site

pytestmark = pytest.mark.e2e


def test_the_experience_index_in_chinese(site: Site, tmp_path: Path) -> None:
    experience(site.bank, tmp_path)
    page = site.page("admin")
    page.goto(f"{site.url}/console/cx?map=credit_card&by=branch&period={MARCH}")
    assert page.locator("h1").inner_text() == "体验指数"
    page.wait_for_selector("#cx-index")  # the table the page loads after itself
    assert page.locator("#cx-index tbody tr").count() >= 2  # every branch with data
    assert "桃城支行" in page.locator("#group-S0101").inner_text()
    bands = "#cx-index td.map.score-good, #cx-index td.map.score-fair, #cx-index td.map.score-poor"
    assert page.locator(bands).count() == page.locator("#cx-index tbody tr").count()  # one each, a class
    assert site.axe(page) == []
    site.shot(page, "cx-index-zh")
    page.goto(f"{site.url}/console/cx/alerts?state=all")
    assert page.locator("#alerts tbody tr").count() == 4
    site.shot(page, "cx-alerts-zh")
    assert site.errors == []
