"""Resident ID numbers (GB 11643-1999): check character and validation."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnibank.kit.idcard import id_birth_date, id_check_digit, id_gender, valid_id_number

# Worked by hand, weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, check table "10X98765432":
#   11010519491231002: 7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167, 167 mod 11 = 2 -> "X"
#   44052418800101001: 28+36+0+25+16+16+2+8+48+0+0+9+0+5+0+0+2 = 195, 195 mod 11 = 8 -> "4"
#   13110219900101001: 7+27+10+5+0+8+2+9+54+0+0+9+0+5+0+0+2 = 138, 138 mod 11 = 6 -> "6"
KNOWN_GOOD = {
    "11010519491231002X": ("X", date(1949, 12, 31), "F"),
    "440524188001010014": ("4", date(1880, 1, 1), "M"),
    "131102199001010016": ("6", date(1990, 1, 1), "M"),
}


@pytest.mark.parametrize(("id_number", "expected"), KNOWN_GOOD.items())
def test_known_good_numbers(id_number: str, expected: tuple[str, date, str]) -> None:
    check, birth, gender = expected
    assert id_check_digit(id_number[:17]) == check
    assert valid_id_number(id_number)
    assert id_birth_date(id_number) == birth
    assert id_gender(id_number) == gender


@pytest.mark.parametrize(
    "bad",
    [
        "110105194912310021",  # wrong check character (should be X)
        "11010519491231002x",  # lower-case x is not the contract's "X"
        "131102199001010017",  # wrong check digit
        "13110219900101001",  # 17 characters
        "1311021990010100166",  # 19 characters
        "131102900101001",  # an old 15-digit number
        "13110219900230001X",  # 30 February
        "131102199013010010",  # month 13
        "13110A199001010016",  # a letter in the body
        "１31102199001010016",  # full-width digit
        " 131102199001010016",
        "131102199001010016 ",
        "",
    ],
)
def test_bad_numbers(bad: str) -> None:
    assert not valid_id_number(bad)


def test_check_digit_rejects_wrong_input() -> None:
    for text in ("1311021990010100", "131102199001010016", "13110219900101001a", "１3110219900101001"):
        with pytest.raises(ValueError, match="17 ASCII digits"):
            id_check_digit(text)


def test_birth_date_of_an_impossible_date_is_none() -> None:
    assert id_birth_date("131102199002300017") is None


bodies = st.builds(
    lambda region, born, seq: f"{region:06d}{born:%Y%m%d}{seq:03d}",
    st.integers(100_000, 999_999),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(0, 999),
)


@given(bodies)
def test_any_body_with_its_check_digit_is_valid(body: str) -> None:
    check = id_check_digit(body)
    assert check in "0123456789X"
    assert valid_id_number(body + check)


@given(bodies, st.integers(0, 17), st.integers(1, 10))
def test_changing_any_one_character_makes_it_invalid(body: str, position: int, shift: int) -> None:
    good = body + id_check_digit(body)
    alphabet = "0123456789X" if position == 17 else "0123456789"
    old = good[position]
    new = alphabet[(alphabet.index(old) + shift) % len(alphabet)]
    if new == old:  # shift wrapped around to the same character (only possible for the 10-digit alphabet)
        new = alphabet[(alphabet.index(old) + 1) % len(alphabet)]
    changed = good[:position] + new + good[position + 1 :]
    assert changed != good
    assert not valid_id_number(changed)
