"""The customer's benefit page in a real browser, on a phone-sized screen: 长辈版 (elder mode) for a customer
of 60 or more, measured as the browser renders it (computed font sizes, line heights, WCAG contrast ratios
and touch target heights), not read from the CSS; screenshots in Chinese and English, elder and standard."""

from __future__ import annotations

from typing import Any

import pytest

from omnibank.console.links import customer_link_token
from tests.e2e.conftest import Site, follow

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}

# Every visible text element: its computed colour against the nearest opaque background behind it (WCAG 2
# relative luminance), and its font size; every visible link and button: its box height.
MEASURE = """() => {
  const parse = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c || "");
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a >= 1) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0 && cs.visibility !== "hidden";
  };
  const texts = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || seen.has(el) || !visible(el)) continue;
    seen.add(el);
    const cs = getComputedStyle(el);
    texts.push({text: node.textContent.trim().slice(0, 40), tag: el.tagName,
                ratio: ratio(parse(cs.color), background(el)), size: parseFloat(cs.fontSize)});
  }
  const targets = [...document.querySelectorAll("a[href], button")].filter(visible).map((el) => ({
    text: el.textContent.trim().slice(0, 40), height: el.getBoundingClientRect().height}));
  const body = getComputedStyle(document.body);
  return {fontSize: parseFloat(body.fontSize), lineHeight: parseFloat(body.lineHeight), texts, targets,
          elder: document.documentElement.classList.contains("elder"),
          primary: document.querySelectorAll(".button").length};
}"""


def measure(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(MEASURE)
    return result


def assert_elder(page: Any) -> None:
    """The figures of 长辈版, as the browser computed them."""
    m = measure(page)
    assert m["elder"]
    assert m["fontSize"] >= 20, m["fontSize"]
    assert m["lineHeight"] / m["fontSize"] >= 1.5, (m["lineHeight"], m["fontSize"])
    assert m["texts"], "no text measured"
    low = [t for t in m["texts"] if t["ratio"] < 7]
    assert not low, f"contrast below 7:1 (AAA): {low}"
    small = [t for t in m["texts"] if t["size"] < 20]
    assert not small, f"small print: {small}"
    tiny = [t for t in m["targets"] if t["height"] < 48]
    assert not tiny, f"touch targets under 48 px: {tiny}"
    assert m["primary"] <= 1, "one action per screen"


def open_page(site: Site, lang: str) -> Any:
    return site.page(lang=lang, width=PHONE["width"], height=PHONE["height"])


def test_elder_mode_for_a_customer_of_60_or_more_measured_in_the_browser(site: Site) -> None:
    now = site.bank.clock()
    older = customer_link_token(site.settings, "CA1", now=now)  # born 1960
    page = open_page(site, "zh")
    page.goto(f"{site.url}/c/benefits/voucher?k={older}")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert_elder(page)
    assert site.axe(page) == []
    site.shot(page, "public-benefit-elder-zh")

    page.click("button:has-text('立即领取')")  # the claim is its own screen
    page.wait_for_url("**/claimed?**")
    assert "领取成功" in page.locator("h1").inner_text()
    assert_elder(page)
    site.shot(page, "public-claimed-elder-zh")

    follow(page, "text=查看图解使用步骤")  # then the guide, a step a screen, each with its picture
    assert "第1步" in page.locator("h2").inner_text()
    assert page.locator("figure img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert_elder(page)
    assert site.axe(page) == []
    site.shot(page, "public-guide-elder-zh")
    follow(page, "text=下一步")
    assert "第2步" in page.locator("h2").inner_text()
    assert_elder(page)

    english = open_page(site, "en")
    english.goto(f"{site.url}/c/benefits/voucher?k={older}")
    assert english.locator("html").get_attribute("lang") == "en"
    assert "You have claimed this benefit." in english.content()
    assert_elder(english)
    assert site.axe(english) == []
    site.shot(english, "public-benefit-elder-en")
    english.goto(f"{site.url}/c/benefits/voucher/guide?k={older}&step=1")
    assert_elder(english)
    site.shot(english, "public-guide-elder-en")
    assert site.errors == []


def test_standard_view_and_the_switch(site: Site) -> None:
    younger = customer_link_token(site.settings, "CA2", now=site.bank.clock())  # born 1970
    for lang in ("zh", "en"):
        page = open_page(site, lang)
        page.goto(f"{site.url}/c/benefits/voucher?k={younger}")
        m = measure(page)
        assert not m["elder"]
        assert all(t["height"] >= 48 for t in m["targets"]), m["targets"]
        assert all(t["ratio"] >= 4.5 for t in m["texts"]), [t for t in m["texts"] if t["ratio"] < 4.5]
        assert site.axe(page) == []
        site.shot(page, f"public-benefit-standard-{lang}")
        # the switch: on, remembered across pages, then off again
        follow(page, "text=长辈版（大字）" if lang == "zh" else "text=Large text (elder mode)")
        assert_elder(page)
        page.goto(f"{site.url}/c/benefits/voucher")  # without the link: the page still works, no claim
        assert measure(page)["elder"]
        assert page.locator("form[action$='/claim']").count() == 0
        site.shot(page, f"public-benefit-nolink-elder-{lang}")
        follow(page, "text=标准版" if lang == "zh" else "text=Standard view")
        assert not measure(page)["elder"]
    assert site.errors == []
