"""The precision-marketing page (精准营销) in a real browser: empty, then on the small bank with two models
(one with an old retired version) and a call list: both tables drawn, axe-checked, screenshots in Chinese
and English."""

from __future__ import annotations

import pytest

from omnibank.marketing import calllist
from tests.console.test_marketing_pages import RANKED, VERSION, a_call_list, trained
from tests.e2e.conftest import Site

pytestmark = pytest.mark.e2e


def test_the_marketing_page_in_both_languages(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        calllist, "ranking", lambda *_a, **_kw: [(c, 0.9 - i / 10) for i, c in enumerate(RANKED)]
    )
    monkeypatch.setattr(calllist, "_live_version", lambda _s, _n, v: v or VERSION)
    page = site.page("cm")
    page.goto(f"{site.url}/console/marketing")  # empty: says how to begin
    assert "还没有模型" in page.locator("#no-models").inner_text()
    assert site.axe(page) == []
    site.shot(page, "marketing-empty-zh")
    trained(site.bank)
    a_call_list(site.bank)
    page.goto(f"{site.url}/console/marketing")
    assert page.locator("h1").inner_text() == "精准营销"
    assert page.locator("#models tbody tr").count() == 3
    assert page.locator("#call-lists tbody tr").count() == 1
    assert "未授权营销" in page.locator("#call-lists").inner_text()
    assert page.locator("nav.side a[aria-current=page]").inner_text() == "精准营销"
    assert site.axe(page) == []
    site.shot(page, "marketing-zh")
    page.context.close()
    page = site.page("cm", lang="en")
    page.goto(f"{site.url}/console/marketing")
    assert page.locator("h1").inner_text() == "Precision marketing"
    site.shot(page, "marketing-en")
    assert site.errors == []
