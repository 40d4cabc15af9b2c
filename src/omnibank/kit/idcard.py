"""Mainland China resident identity numbers (居民身份证号码), GB 11643-1999.

An 18-character number is a 6-digit address code, an 8-digit birth date ``YYYYMMDD``, a 3-digit sequence
(odd for men, even for women) and a check character computed with ISO 7064 MOD 11-2 over the first 17
digits; the check character is ``0``-``9`` or ``X`` (standing for 10). Pure functions, no I/O.
"""

from __future__ import annotations

from datetime import date

__all__ = ["id_birth_date", "id_check_digit", "id_gender", "valid_id_number"]

# Weight of position i (1-based from the left, 18 positions) is 2**(18 - i) mod 11.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Check character for (sum of weighted digits) mod 11 = 0, 1, ..., 10.
_CHECK_CHARS = "10X98765432"


def _is_digits(text: str) -> bool:
    # str.isdigit() alone also accepts e.g. full-width and superscript digits; with isascii() only 0-9 count.
    return text.isascii() and text.isdigit()


def id_check_digit(first17: str) -> str:
    """The check character (``0``-``9`` or ``X``) for the first 17 digits of a resident ID number."""
    if len(first17) != 17 or not _is_digits(first17):
        raise ValueError(f"expected 17 ASCII digits, got {len(first17)} characters")
    total = sum(map(int.__mul__, map(int, first17), _WEIGHTS))
    return _CHECK_CHARS[total % 11]


def id_birth_date(id_number: str) -> date | None:
    """The birth date encoded in an 18-character ID number, or ``None`` if it is not a real date."""
    part = id_number[6:14]
    if len(part) != 8 or not _is_digits(part):
        return None
    try:
        return date(int(part[:4]), int(part[4:6]), int(part[6:]))
    except ValueError:
        return None


def id_gender(id_number: str) -> str:
    """``M`` or ``F`` from the parity of the sequence code (the 17th digit): odd is male."""
    if len(id_number) < 17 or not _is_digits(id_number[16]):
        raise ValueError("not an 18-character resident ID number")
    return "M" if int(id_number[16]) % 2 == 1 else "F"


def valid_id_number(s: str) -> bool:
    """True when ``s`` is exactly 17 ASCII digits plus the matching check character (``X`` upper case)
    and its birth-date part is a real calendar date."""
    if len(s) != 18:
        return False
    body, check = s[:17], s[17]
    if not _is_digits(body):
        return False
    if id_birth_date(s) is None:
        return False
    return id_check_digit(body) == check
