"""The console's languages: Chinese by default, English on request (the switch, remembered in a cookie, or
the browser's ``Accept-Language``). Every text is an English message id translated by the gettext catalogues
under ``locale/<lang>/*.po`` (one file per area of the console, read with Babel and merged); dates, times,
money and numbers in the locale's conventions (¥1,234.50, 2026年12月4日)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
LANG_COOKIE = "ob_lang"
LOCALE_DIR = Path(__file__).parent / "locale"
_BABEL = {"zh": "zh_Hans_CN", "en": "en_US"}


def N_(message: str) -> str:  # noqa: N802 (gettext's name for "mark for translation, translate later")
    """Marks a message id for the catalogues where it is written; it is translated where it is shown."""
    return message


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid → translation for ``lang`` (English is the source language: empty). Fuzzy and empty entries
    are left out, so an untranslated text shows in English rather than blank."""
    found: dict[str, str] = {}
    folder = LOCALE_DIR / lang
    if lang == "en" or not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.po")):
        with path.open("rb") as fh:
            cat = read_po(fh, locale=_BABEL[lang])
        for message in cat:
            if not message.id or message.fuzzy:
                continue
            ids = [str(i) for i in message.id] if isinstance(message.id, tuple | list) else [str(message.id)]
            raw = message.string
            forms = [str(f or "") for f in raw] if isinstance(raw, tuple | list) else [str(raw or "")]
            if all(forms):  # a plural's msgid takes the first form, its msgid_plural the last
                found[ids[0]] = forms[0]
                if len(ids) > 1:
                    found[ids[1]] = forms[-1]
    return found


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language of a request: the remembered choice, else the first of the browser's preferences (by
    their q-values) we speak, else Chinese."""
    if cookie in LANGS:
        return str(cookie)
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and q > 0:
            ranked.append((-q, i, primary))
    return sorted(ranked)[0][2] if ranked else DEFAULT_LANG


@dataclass(frozen=True)
class Speaker:
    """The texts and formats of one language, for one request."""

    lang: str
    tz: tzinfo

    @property
    def locale(self) -> Locale:
        return Locale.parse(_BABEL[self.lang])

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.lang == "zh" else "en"

    def gettext(self, message: str, **values: Any) -> str:
        text = catalogue(self.lang).get(message, message)
        return text % values if values else text

    def plural(self, singular: str, plural: str, n: int) -> str:
        """The untranslated-form text for ``n`` (a ``%(num)s`` in it takes ``n``)."""
        chosen = singular if n == 1 else plural
        return catalogue(self.lang).get(chosen, chosen)

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        return self.plural(singular, plural, n) % {"num": n, **values}

    def money(self, amount: Decimal | int | str | None) -> str:
        """¥1,234.50 (Chinese) or CN¥1,234.50 (English); '—' for nothing."""
        if amount is None or amount == "":
            return "—"
        return str(format_currency(Decimal(str(amount)), "CNY", locale=_BABEL[self.lang]))

    def number(self, value: int | Decimal | float | None) -> str:
        return "—" if value is None else str(format_decimal(value, locale=_BABEL[self.lang]))

    def percent(self, value: Decimal | float | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        return str(format_percent(value, format="#,##0." + "0" * digits + "%", locale=_BABEL[self.lang]))

    def date(self, day: date | datetime | None) -> str:
        """2026年12月4日 / Dec 4, 2026 (a date-time is shown on the bank's day)."""
        if day is None:
            return "—"
        if isinstance(day, datetime):
            day = day.astimezone(self.tz).date()
        return str(format_date(day, "long" if self.lang == "zh" else "medium", locale=_BABEL[self.lang]))

    def datetime(self, moment: datetime | None) -> str:
        """2026年12月4日 09:05 / Dec 4, 2026, 09:05, in bank time."""
        if moment is None:
            return "—"
        pattern = "yyyy年M月d日 HH:mm" if self.lang == "zh" else "MMM d, yyyy, HH:mm"
        return str(format_datetime(moment, pattern, tzinfo=self.tz, locale=_BABEL[self.lang]))

    def jinja_globals(self) -> dict[str, Callable[..., Any]]:
        """``_``/``gettext``/``ngettext`` for templates (their values are escaped when formatted into a
        translated text), and the formats as functions."""
        return {
            "_": _escaping(self.gettext),
            "gettext": _escaping(self.gettext),
            "ngettext": _escaping_plural(self.plural),
            "money": self.money,
            "number": self.number,
            "percent": self.percent,
            "fmt_date": self.date,
            "fmt_datetime": self.datetime,
        }


def _escaping(translate: Callable[..., str]) -> Callable[..., str]:
    @pass_context
    def gettext(ctx: Context, message: str, **values: Any) -> str:
        text = translate(message)
        if ctx.eval_ctx.autoescape:
            return Markup(text) % values if values else Markup(text)
        return text % values if values else text

    return gettext


def _escaping_plural(plural: Callable[[str, str, int], str]) -> Callable[..., str]:
    @pass_context
    def ngettext(ctx: Context, singular: str, plural_: str, n: int, **values: Any) -> str:
        text = plural(singular, plural_, n)
        if ctx.eval_ctx.autoescape:
            return Markup(text) % {"num": n, **values}
        return text % {"num": n, **values}

    return ngettext
