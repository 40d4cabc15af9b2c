"""A tour of the console on a small demo bank, as each role sees it, in Chinese and in English: every page
answers, draws its charts, runs no failing script and has no serious accessibility violation (axe-core);
screenshots of each are written for people to look at."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import DemoSite

pytestmark = pytest.mark.e2e


def _visit(site: DemoSite, page: Any, path: str, name: str, *, charts: int = 0, axe: bool = True) -> None:
    response = page.goto(site.url + path)
    assert response is not None and response.status == 200, f"{path}: {response and response.status}"
    if charts:
        # (a selector, not a script: the page's content security policy refuses evaluated strings)
        page.locator("[data-drawn] canvas").nth(charts - 1).wait_for()
    if axe:  # once per page (in Chinese): the English page is the same markup
        violations = site_axe(page)
        assert violations == [], f"{path}: {violations}"
    shot(page, name)


def site_axe(page: Any) -> list[dict[str, Any]]:
    from tests.e2e.conftest import Site

    return Site.axe(None, page)  # type: ignore[arg-type]  # axe needs only the page


def shot(page: Any, name: str) -> None:
    from tests.e2e.conftest import OUT

    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)


def _first_link(page: Any, pattern: str) -> str:
    hrefs = page.eval_on_selector_all("main a[href]", "els => els.map(e => e.getAttribute('href'))")
    found = [h for h in hrefs if re.fullmatch(pattern, h)]
    assert found, f"no link like {pattern} in {hrefs[:20]}"
    return str(found[0])


def test_every_role_tours_its_pages_in_both_languages(demo_site: DemoSite) -> None:
    """One test (the demo bank is built once): a campaign manager's pages and the branch staff's and the
    auditor's in Chinese, each checked with axe; the main pages again in English (screenshots); a
    simulation."""
    _campaign_manager(demo_site, "zh")
    _branch_staff_and_auditor(demo_site, "zh")
    _campaign_manager(demo_site, "en", main_only=True)
    _simulates_a_campaign(demo_site)
    assert demo_site.errors == []


def _campaign_manager(demo_site: DemoSite, lang: str, *, main_only: bool = False) -> None:
    axe = lang == "zh"
    page = demo_site.page("demo_campaigns", lang=lang)
    if main_only:  # home, customers and the 360, segments and the heat map, benefits, campaigns, journeys
        main = (
            ("/console", "home-cm", 0),
            ("/console/customers", "customers-cm", 0),
            ("/console/customers/C000001", "customer-360-cm", 1),
            ("/console/segments", "segments", 0),
            ("/console/segments/matrix", "segments-matrix", 1),
            ("/console/benefits", "benefits", 1),
            ("/console/campaigns", "campaigns", 0),
            ("/console/journeys", "journeys", 1),
        )
        for path, name, charts in main:
            _visit(demo_site, page, path, f"{name}-{lang}", charts=charts, axe=axe)
        page.context.close()
        return
    _visit(demo_site, page, "/console", f"home-cm-{lang}", axe=axe)
    _visit(demo_site, page, "/console/customers", f"customers-cm-{lang}", axe=axe)
    customer = _first_link(page, r"/console/customers/C\d+")
    _visit(demo_site, page, customer, f"customer-360-cm-{lang}", charts=1, axe=axe)
    _visit(demo_site, page, "/console/segments", f"segments-{lang}", axe=axe)
    segment = _first_link(page, r"/console/segments/(?!matrix)\w+")
    _visit(demo_site, page, segment, f"segment-detail-{lang}", charts=1, axe=axe)
    _visit(demo_site, page, "/console/segments/matrix", f"segments-matrix-{lang}", charts=1, axe=axe)
    _visit(demo_site, page, "/console/benefits", f"benefits-{lang}", charts=1, axe=axe)
    _visit(demo_site, page, "/console/benefits/suppliers", f"suppliers-{lang}", axe=axe)
    _visit(demo_site, page, "/console/campaigns", f"campaigns-{lang}", axe=axe)
    campaign = _first_link(page, r"/console/campaigns/\w+")
    _visit(demo_site, page, campaign, f"campaign-detail-{lang}", axe=axe)
    _visit(demo_site, page, "/console/journeys", f"journeys-{lang}", charts=1, axe=axe)
    journey = _first_link(page, r"/console/journeys/\w+")
    _visit(demo_site, page, journey, f"journey-report-{lang}", charts=2, axe=axe)
    _visit(demo_site, page, "/console/marketing", f"marketing-{lang}", axe=axe)
    _visit(demo_site, page, "/console/contact", f"contact-{lang}", charts=1, axe=axe)
    year = "/console/invites?from=2026-01-01&to=2026-12-31"
    _visit(demo_site, page, year, f"invites-{lang}", charts=1, axe=axe)
    _visit(demo_site, page, year + "&by=staff&metric=amount", f"invites-staff-{lang}", charts=1, axe=axe)
    _visit(demo_site, page, "/console/invites/codes", f"invites-codes-{lang}", axe=axe)
    page.context.close()


def _simulates_a_campaign(demo_site: DemoSite) -> None:
    page = demo_site.page("demo_campaigns")
    page.goto(demo_site.url + "/console/campaigns")
    page.goto(demo_site.url + _first_link(page, r"/console/campaigns/\w+"))
    page.click("button:has-text('模拟测算')")
    page.locator("[data-drawn] canvas").first.wait_for(timeout=60_000)
    grants = page.locator("#total-grants").inner_text()
    assert int(grants.replace(",", "")) > 0
    assert page.locator("tr.month").count() >= 1
    shot(page, "campaign-simulated-zh")
    assert site_axe(page) == []
    page.context.close()


def _branch_staff_and_auditor(demo_site: DemoSite, lang: str) -> None:
    axe = lang == "zh"
    tours = (("demo_rm", ("", "/leads", "/invites/mine")), ("demo_branch", ("", "/leads", "/tickets")),
             ("demo_audit", ("/audit",)))  # fmt: skip
    for user, paths in tours:
        page = demo_site.page(user, lang=lang)
        for path in paths:
            name = f"{(path or '/home').strip('/').replace('/', '-')}-{user.removeprefix('demo_')}-{lang}"
            _visit(demo_site, page, "/console" + path, name, axe=axe)
        page.context.close()
