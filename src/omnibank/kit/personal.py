"""Personal values in their normal form: a mainland mobile number as its 11 digits, and the form a blind
index is taken of. Used by the customer store (identifiers, blind indexes) and by the event log's
protection (:mod:`omnibank.events.protect`), so it sits below both."""

from __future__ import annotations

import re

_SEPARATORS = str.maketrans("", "", " -+")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_CARD_SPACED = re.compile(r"[0-9]+(?:[ -][0-9]+)*")


def mobile_number(text: str) -> str | None:
    """The 11 digits of a mainland mobile number written plainly, in 3-4-4 groups or after +86/0086/86;
    None when ``text`` is not one."""
    digits = text.translate(_SEPARATORS)
    if len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    elif len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits if len(digits) == 11 and _MOBILE.fullmatch(digits) else None


def normalise(kind: str, value: str) -> str:
    """A personal value as its blind index is taken: trimmed; a mobile number as its 11 digits, an ID
    number in upper case, a card number without the spaces or hyphens between its digits."""
    text = value.strip()
    if kind == "phone":
        return mobile_number(text) or text
    if kind == "id_number":
        return text.upper()
    if kind == "card" and _CARD_SPACED.fullmatch(text):
        return text.replace(" ", "").replace("-", "")
    return text
