"""Masking of personal data for every output: screens, reports, rejects files, logs."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d{6,}[\dXx]?")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]{2,}")


def mask_phone(phone: str) -> str:
    if len(phone) >= 7:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return "*" * len(phone)


def mask_id_number(id_number: str) -> str:
    if len(id_number) >= 8:
        return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]
    return "*" * len(id_number)


def mask_name(name: str) -> str:
    name = name.strip()
    if not name:
        return ""
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_card_id(card_id: str) -> str:
    """``6225********1234``: the first and last four kept when longer than 8, else all masked."""
    if len(card_id) > 8:
        return card_id[:4] + "*" * (len(card_id) - 8) + card_id[-4:]
    return "*" * len(card_id)


def mask_numbers(text: str) -> str:
    """Mask every run of digits long enough to be a phone or an ID number (Chinese text is kept)."""
    return _DIGITS.sub(
        lambda m: mask_id_number(m.group()) if len(m.group()) > 11 else mask_phone(m.group()), text
    )


def mask_free_text(text: str) -> str:
    """Mask anything in unstructured text that could be a phone, an ID number or a Chinese name."""
    return _CJK.sub(lambda m: mask_name(m.group()), mask_numbers(text))
