"""The console's languages and formats."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from jinja2 import Environment

from omnibank.console.i18n import Speaker, catalogue, negotiate

TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("cookie", "header", "lang"),
    [
        (None, None, "zh"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "fr-FR, en;q=0.4, zh-CN;q=0.8", "zh"),
        (None, "zh-TW;q=0, en;q=0.1", "en"),  # q=0: not acceptable
        (None, "de, fr", "zh"),
        (None, "en;q=bad, zh;q=0.5", "zh"),  # a q that is no number counts as 0
        ("en", "zh-CN", "en"),  # the switch wins
        ("klingon", "en", "en"),  # an unknown cookie is ignored
    ],
)
def test_negotiate(cookie: str | None, header: str | None, lang: str) -> None:
    assert negotiate(cookie, header) == lang


def test_chinese_conventions_for_money_dates_and_numbers() -> None:
    zh, en = Speaker("zh", TZ), Speaker("en", TZ)
    assert zh.money(Decimal("1234.5")) == "¥1,234.50"
    assert en.money(Decimal("1234.5")) == "CN¥1,234.50"
    assert zh.money(None) == "—"
    assert zh.date(date(2026, 12, 4)) == "2026年12月4日"
    assert en.date(date(2026, 12, 4)) == "Dec 4, 2026"
    # a moment is shown on the bank's day: 20:30 UTC on the 3rd is 04:30 on the 4th in Shanghai
    late = datetime(2026, 12, 3, 20, 30, tzinfo=UTC)
    assert zh.date(late) == "2026年12月4日"
    assert zh.datetime(late) == "2026年12月4日 04:30"
    assert zh.number(1234567) == "1,234,567"
    assert zh.percent(Decimal("0.1234")) == "12.3%"


def test_translations_and_their_values_are_escaped() -> None:
    assert catalogue("zh")["Sign in"] == "登录"
    assert catalogue("en") == {}
    zh = Speaker("zh", TZ)
    assert zh.gettext("Sign in") == "登录"
    assert zh.gettext("An English text with no translation") == "An English text with no translation"
    env = Environment(autoescape=True)
    template = env.from_string('{{ _("Too many sign-in attempts; try again in %(s)s seconds.", s=v) }}')
    html = template.render(v="<b>5</b>", **zh.jinja_globals())
    assert html == "登录尝试过于频繁，请在 &lt;b&gt;5&lt;/b&gt; 秒后重试。"
