"""A survey invitation as its answer page reads it: the outbox row that invited the customer, and whether
they answered it already.

The invitation's text carries a signed link (``/c/surveys/<survey>?i=<outbox id>&k=<token>``, put there by
:func:`omnibank.contact.outbox.submit`); the page answers only for an outbox row that is an invitation to
that survey of the customer the token names. An answer given on the page is the ``survey.response`` event
``survey:<survey>:inv-<outbox id>`` (:func:`answer_key`): one answer an invitation, kept once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.benefits.self_service import ELDER_AGE
from omnibank.config import Settings
from omnibank.contact.models import ContactMessage
from omnibank.customers.models import Customer
from omnibank.customers.values import age_on
from omnibank.events.log import EventLog

_REF = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ANSWER_CHANNELS = frozenset({"app", "wechat", "sms", "phone", "branch", "wecom", "web", "partner"})


@dataclass(frozen=True)
class Invitation:
    """``channel`` how the invitation went (the answer's channel when it is one an answer may have, else
    ``web``); ``journey`` the journey that sent it, if one did; ``senior`` whether the customer is 60 or
    more (the page's elder mode); ``answered`` whether the log holds this invitation's answer."""

    message_id: int
    customer_id: str
    survey_id: str
    channel: str
    journey: str | None
    senior: bool
    answered: bool

    @property
    def answer_key(self) -> str:
        return answer_key(self.message_id)

    @property
    def answer_channel(self) -> str:
        return self.channel if self.channel in _ANSWER_CHANNELS else "web"


def answer_key(message_id: int) -> str:
    """The answer key (:class:`omnibank.surveys.responses.SurveyAnswer`) of an invitation's answer."""
    return f"inv-{message_id}"


def answered(settings: Settings, survey_id: str, message_id: int) -> bool:
    """Whether the log holds the answer to this invitation."""
    event_id = f"survey:{survey_id}:{answer_key(message_id)}"
    return event_id in EventLog(settings).known_ids([event_id])


def invitation(
    session: Session,
    settings: Settings,
    message_id: int,
    customer_id: str,
    survey_id: str,
    *,
    now: datetime,
) -> Invitation | None:
    """The outbox row ``message_id`` if it is an invitation to ``survey_id`` of ``customer_id`` (a customer
    not erased); None for anything else, without saying what did not match."""
    row = session.get(ContactMessage, message_id)
    if row is None or row.purpose != "survey" or row.customer_id != customer_id:
        return None
    try:
        payload = json.loads(row.payload or "{}")
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("survey") != survey_id:
        return None
    person = session.execute(
        select(Customer.birth_date, Customer.erased_at).where(Customer.customer_id == customer_id)
    ).first()
    if person is None or person.erased_at is not None:
        return None
    senior = age_on(person.birth_date, now.astimezone(settings.tz).date()) >= ELDER_AGE
    return Invitation(
        message_id=row.id,
        customer_id=customer_id,
        survey_id=survey_id,
        channel=row.channel,
        journey=row.journey if row.journey and _REF.match(row.journey) else None,
        senior=senior,
        answered=answered(settings, survey_id, row.id),
    )


__all__ = ["Invitation", "answer_key", "answered", "invitation"]
