"""Every text of the console is in the Chinese catalogue: the message ids extracted from the console's code
and templates (as ``pybabel extract`` does) each have a translation, and no catalogue keeps a text nothing
uses any more."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from omnibank.console import i18n

CONSOLE = Path(i18n.__file__).parent
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def extracted() -> dict[str, str]:
    """msgid → where it is first used."""
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        CONSOLE, METHODS, options_map=OPTIONS, keywords={"_": None, "gettext": None, "N_": None,
                                                         "ngettext": (1, 2)},
    ):  # fmt: skip
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def test_every_console_text_has_a_chinese_translation() -> None:
    used = extracted()
    assert len(used) > 50  # the extraction works (a broken one would find nothing and pass)
    zh = i18n.catalogue("zh")
    missing = sorted(f"{where}: {msgid!r}" for msgid, where in used.items() if msgid not in zh)
    assert not missing, "untranslated (add them to a catalogue under locale/zh/):\n" + "\n".join(missing)


def test_no_catalogue_keeps_unused_texts() -> None:
    used = extracted()
    unused = sorted(set(i18n.catalogue("zh")) - set(used))
    assert not unused, "no longer used (remove them from locale/zh/*.po):\n" + "\n".join(unused)
