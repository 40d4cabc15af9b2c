"""The one range of dates the platform accepts from people and programs: an as-of date, a ``--since``, a
``--until``, a campaign's period. Anything outside 1900-01-01..2199-12-31 is a typo or an attack (year 1
or 9999 overflows date arithmetic in Python, DuckDB and PostgreSQL alike), refused with a message naming
the field. :data:`BankDate` and :data:`BankDateTime` check it in Pydantic models (the API answers 422
naming the field); :func:`parse_date` and :func:`parse_moment` read a command-line option.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from omnibank.errors import AppError

EARLIEST = date(1900, 1, 1)
LATEST = date(2199, 12, 31)
RANGE = f"{EARLIEST.isoformat()} to {LATEST.isoformat()}"
_D = TypeVar("_D", date, datetime)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class DateOutOfRange(AppError):
    """A date outside :data:`EARLIEST`..:data:`LATEST`, or one that is not a date at all."""

    code = "invalid_date"
    status = 422


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def in_range(value: date | datetime) -> bool:
    """Whether a date (or a date-time's own calendar date) lies between 1900-01-01 and 2199-12-31."""
    return EARLIEST <= _day(value) <= LATEST


def check_date(field: str, value: _D) -> _D:
    """``value`` when it is in range, else :class:`DateOutOfRange` naming ``field``."""
    if not in_range(value):
        raise DateOutOfRange(f"{field}: {_day(value).isoformat()} is out of range; use a date from {RANGE}")
    return value


def parse_date(field: str, text: str) -> date:
    """A ``YYYY-MM-DD`` option (``--as-of``) read and range-checked; the message names the option."""
    value = text.strip()
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise DateOutOfRange(f"{field}: {text!r} is not a date in the form YYYY-MM-DD") from None
    return check_date(field, day)


def parse_moment(field: str, text: str, tz: ZoneInfo, *, day_means: str = "start") -> datetime:
    """A bank-local date or an ISO date-time (bank-local unless it names its offset), range-checked.
    A date alone is the start of that bank-local day, or with ``day_means="end"`` the start of the next
    (through the end of that day)."""
    value = text.strip()
    if len(value) == 10:
        day = parse_date(field, value)
        if day_means == "end":
            return datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
        return datetime.combine(day, time(), tzinfo=tz)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DateOutOfRange(
            f"{field}: {text!r} is neither a date (YYYY-MM-DD) nor a date-time (YYYY-MM-DDTHH:MM)"
        ) from None
    check_date(field, moment)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def _pydantic_check(value: Any) -> Any:
    if not in_range(value):
        raise PydanticCustomError(
            "date_range", "{value} is out of range; use a date from {range}",
            {"value": _day(value).isoformat(), "range": RANGE},
        )  # fmt: skip
    return value


#: a date field of a request or a definition, checked to lie in the platform's range
BankDate = Annotated[date, AfterValidator(_pydantic_check)]
#: a date-time field, whose calendar date (as written) must lie in the platform's range
BankDateTime = Annotated[datetime, AfterValidator(_pydantic_check)]
