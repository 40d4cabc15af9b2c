"""What the configuration must know of contact delivery: the delivery channels and the quiet-hours
syntax. They live below ``config`` so that settings are checked when read (a webhook for an unknown
channel, quiet hours written wrong) without the configuration importing the contact domain: layers point
down (``docs/architecture.md``). :mod:`omnibank.contact.policy` is where the rest of the policy lives."""

from __future__ import annotations

import re
from datetime import time
from typing import Literal, get_args

#: a channel a message may go out on (journey and route files are checked against it)
Channel = Literal["app_push", "sms", "wechat", "wecom", "ai_call", "human_call", "branch_task"]
#: the same channels, in the order routing tries them when nothing else decides
CHANNELS: tuple[str, ...] = get_args(Channel)

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """``"21:00-08:00"`` → (21:00, 08:00); ``"off"`` (or empty) → None, no quiet hours. A window may wrap
    midnight. Raises ValueError saying what is wrong."""
    value = text.strip()
    if value.lower() in ("", "off", "none"):
        return None
    parts = [p.strip() for p in value.split("-")]
    if len(parts) != 2:
        raise ValueError(f"quiet hours {text!r}: write them as HH:MM-HH:MM, e.g. 21:00-08:00, or off")
    bounds = []
    for p in parts:
        m = _HHMM.match(p)
        if m is None:
            raise ValueError(f"quiet hours {text!r}: {p!r} is not a time HH:MM (00:00 to 23:59)")
        bounds.append(time(int(m.group(1)), int(m.group(2))))
    if bounds[0] == bounds[1]:
        raise ValueError(f"quiet hours {text!r}: start and end are the same (write off for none)")
    return bounds[0], bounds[1]
