"""The values the data contract's coded fields may take (the customer file's, and the channels and card
tiers its events name), and the one ``age``. Plain constants, apart from the ORM models: the expression
parser checks literals against them in commands that never open a session, and other modules import them
from here rather than keep their own copies."""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args

GENDERS = ("M", "F")
OCCUPATIONS = (
    "employee",
    "civil_servant",
    "business_owner",
    "self_employed",
    "retired",
    "student",
    "farmer",
    "other",
)
RISK_LEVELS = ("C1", "C2", "C3", "C4", "C5")
#: the channels an event of the contract may come through (``channel``)
EVENT_CHANNELS = ("app", "wechat", "sms", "phone", "branch", "wecom", "web", "partner")
#: the channels a customer may prefer (``channel_pref``): the first five of them
CHANNEL_PREFS = EVENT_CHANNELS[:5]
#: a card's tier (``card.issued`` events' ``tier``; a benefit's face value may differ by it)
CardTier = Literal["classic", "gold", "platinum"]
CARD_TIERS: tuple[CardTier, ...] = get_args(CardTier)


def age_on(birth: date, as_of: date) -> int:
    """Full years at ``as_of``; a birthday on ``as_of`` counts (29 Feb birthdays turn on 1 Mar). The
    expression compiler's SQL computes the same (a property test checks it)."""
    return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
