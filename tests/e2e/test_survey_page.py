"""The survey page in a real browser on a phone-sized screen: the invitation's link opens it, a score is a tap
on a button, the answer is sent and thanked for; 长辈版 (elder mode) for a customer of 60 or more, measured as
the browser renders it. Screenshots in Chinese, standard and elder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omnibank.events.reader import read_events
from tests.api.bank import build_bank
from tests.api.server import serve
from tests.console.test_survey_page import EXAMPLE, invite, link_in, payload_of
from tests.e2e.conftest import Site, follow
from tests.e2e.test_elder import PHONE, assert_elder, measure

pytestmark = pytest.mark.e2e


@pytest.fixture
def survey_site(env: Any, tmp_path: Path, browser: Any) -> Iterator[Site]:
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000, "surveys_file": EXAMPLE})
    bank = build_bank(settings, tmp_path / "bank")
    with serve(bank.client.app) as url:
        yield Site(url=url, bank=bank, settings=settings, browser=browser)


def scale_heights(page: Any) -> list[float]:
    heights: list[float] = page.eval_on_selector_all(
        ".scale span", "els => els.map(e => e.getBoundingClientRect().height)"
    )
    return heights


def test_answering_a_survey_on_a_phone_standard_and_elder(survey_site: Site) -> None:
    site = survey_site
    _, text = invite(site.bank, customer="CA2", key="inv-std")
    page = site.page(width=PHONE["width"], height=PHONE["height"])
    page.goto(site.url + link_in(site.bank, text))
    assert page.locator("h1").inner_text() == "信用卡推荐意愿"
    assert page.locator(".scale input[name=nps]").count() == 11
    assert not measure(page)["elder"]
    assert min(scale_heights(page)) >= 48
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width  # nothing wider than the phone
    assert site.axe(page) == []
    page.click(".scale label:has(input[value='9'])")
    assert page.locator("input[name=nps][value='9']").is_checked()
    site.shot(page, "survey-standard-zh")
    page.fill("#comment", "办卡很顺利，客服耐心")
    follow(page, "button[type=submit]")
    assert page.locator("h1").inner_text() == "感谢您的反馈"
    site.shot(page, "survey-thanks-zh")
    (event,) = read_events(site.settings, types={"survey.response"})
    assert event.customer_id == "CA2" and payload_of(site.bank, event.event_id)["nps"] == 9

    _, elder_text = invite(site.bank, customer="CA1", key="inv-elder")  # born 1960
    elder = site.page(width=PHONE["width"], height=PHONE["height"])
    elder.goto(site.url + link_in(site.bank, elder_text))
    assert_elder(elder)
    assert min(scale_heights(elder)) >= 56
    assert elder.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert site.axe(elder) == []
    elder.click(".scale label:has(input[value='10'])")
    assert_elder(elder)  # the chosen score too: white on blue
    site.shot(elder, "survey-elder-zh")
    follow(elder, "button[type=submit]")
    assert elder.locator("h1").inner_text() == "感谢您的反馈"
    assert_elder(elder)
    site.shot(elder, "survey-thanks-elder-zh")
    assert site.errors == []
