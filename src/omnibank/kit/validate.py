"""Field checks shared by the loaders. Each returns the clean value or raises FieldError naming the field."""

from __future__ import annotations

import re
from datetime import date

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


class FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def code(field: str, value: str) -> str:
    if not value:
        raise FieldError(field, "missing")
    if not _CODE.match(value):
        raise FieldError(field, f"{value!r} is not a valid code (letters, digits, _ . -, at most 32)")
    return value


def text(field: str, value: str, *, max_len: int) -> str:
    if not value:
        raise FieldError(field, "missing")
    if len(value) > max_len:
        raise FieldError(field, f"longer than {max_len} characters")
    return value


def choice(field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        shown = repr(value) if value else "missing"
        raise FieldError(field, f"{shown} is not one of {', '.join(allowed)}")
    return value


def mobile(field: str, value: str) -> str:
    if not _MOBILE.match(value):
        raise FieldError(field, "not an 11-digit mobile number starting with 1")
    return value


def iso_date(field: str, value: str) -> date:
    if not _ISO_DATE.match(value):
        raise FieldError(field, "not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FieldError(field, f"{value} is not a real date") from None


def boolean(field: str, value: str) -> bool:
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise FieldError(field, "must be true or false")
