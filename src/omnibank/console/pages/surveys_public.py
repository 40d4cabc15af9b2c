"""The customer-facing survey page (``/c/surveys/<survey>?i=<invitation>&k=<token>``): a customer invited to
a survey answers it from the link in the invitation (put there by :func:`omnibank.contact.outbox.submit`).

The page shows only the questions the survey asks: NPS as buttons 0–10, CSAT 1–5, CES 1–7 and a comment of
at most 1,000 characters. The answer is the ``survey.response`` event ``survey:<survey>:inv-<invitation>``
(:func:`omnibank.surveys.responses.record`): one answer an invitation, a second one changes nothing. A link
that is bad, expired or tampered with, an unknown survey, or an invitation that is not this customer's all
show the same page not found, without saying which part was wrong. Nothing personal on the page.

Elder mode (长辈版) and the double-submit CSRF token as on the benefit pages (:mod:`.public`): on by default
for a customer of 60 or more, unless the ``ob_elder`` cookie says otherwise."""

from __future__ import annotations

import hmac
import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from omnibank.api.auth import now_of, settings_of
from omnibank.console.i18n import N_
from omnibank.console.links import read_link_token
from omnibank.console.pages.public import (
    CSRF_COOKIE,
    ELDER_COOKIE,
    PUBLIC,
    _csrf_value,
    _same_origin,
    _with_csrf,
)
from omnibank.console.web import render
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.surveys.invitations import Invitation, invitation
from omnibank.surveys.responses import MAX_COMMENT, SurveyAnswer, record
from omnibank.surveys.spec import SCALES, SurveySpec, surveys_of

router = APIRouter()
_SURVEY_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MESSAGE_ID = re.compile(r"^[1-9][0-9]{0,17}$")

#: each scored question: what it asks, and what its lowest and highest scores mean
SCORED: dict[str, tuple[str, str, str]] = {
    "nps": (
        N_("How likely are you to recommend us to your friends and family?"),
        N_("Not at all likely"),
        N_("Extremely likely"),
    ),
    "csat": (N_("How satisfied are you with our service?"), N_("Very dissatisfied"), N_("Very satisfied")),
    "ces": (N_("How easy was it to get this done?"), N_("Very hard"), N_("Very easy")),
}
BAD_SCORE = N_("Please choose a score with the buttons.")
NOTHING = N_("Please answer at least one question.")
TOO_LONG = N_("Your comment is too long: at most 1,000 characters, please.")
NOT_SAVED = N_("Sorry, your answer could not be saved. Please try again later.")


def _elder(request: Request, found: Invitation | None) -> bool:
    chosen = request.cookies.get(ELDER_COOKIE)
    if chosen in ("1", "0"):
        return chosen == "1"
    return bool(found and found.senior)


def _find(request: Request, survey_id: str, i: str, k: str) -> tuple[SurveySpec, Invitation] | None:
    """The survey and the invitation a link names, or None for any link that is not a good one."""
    settings, now = settings_of(request), now_of(request)
    customer_id = read_link_token(settings, k, now)
    if customer_id is None or not _SURVEY_ID.match(survey_id) or not _MESSAGE_ID.match(i):
        return None
    survey = surveys_of(settings).get(survey_id)
    if survey is None:
        return None
    with unit_of_work(settings) as session:
        found = invitation(session, settings, int(i), customer_id, survey_id, now=now)
    return None if found is None else (survey, found)


def _not_found(request: Request) -> Response:
    context = {"elder": _elder(request, None), "public": PUBLIC, "here": request.url.path}
    return render(request, "public/survey_notfound.html", context, status=404)


def _page(
    request: Request,
    survey: SurveySpec,
    found: Invitation,
    k: str,
    *,
    screen: str,
    status: int = 200,
    given: dict[str, str] | None = None,
    notice: str = "",
) -> Response:
    """``screen``: ``form``, ``thanks`` or ``answered``."""
    csrf = _csrf_value(request)
    page = f"{PUBLIC}/surveys/{survey.id}"
    scored = [q for q in survey.asks if q in SCORED]
    # one scored question: the survey's own words ask it; several: each its standard question
    scales = [
        {"name": q, "legend": survey.question if len(scored) == 1 else SCORED[q][0], "own": len(scored) == 1,
         "low": SCORED[q][1], "high": SCORED[q][2], "scores": list(range(SCALES[q][0], SCALES[q][1] + 1))}
        for q in scored
    ]  # fmt: skip
    context: dict[str, Any] = {
        "here": f"{page}?{urlencode({'i': found.message_id, 'k': k})}",
        "action": page,
        "survey": survey,
        "scales": scales,
        "intro": len(scored) != 1,
        "comment": "comment" in survey.asks,
        "max_comment": MAX_COMMENT,
        "i": found.message_id,
        "k": k,
        "csrf": csrf,
        "given": given or {},
        "notice": notice,
        "screen": screen,
        "elder": _elder(request, found),
        "public": PUBLIC,
    }
    response = render(request, "public/survey.html", context, status=status)
    return _with_csrf(request, response, csrf)


@router.get(PUBLIC + "/surveys/{survey_id}")
def survey_page(request: Request, survey_id: str, i: str = "", k: str = "") -> Response:
    found = _find(request, survey_id, i, k)
    if found is None:
        return _not_found(request)
    survey, inv = found
    return _page(request, survey, inv, k, screen="answered" if inv.answered else "form")


def _answer(survey: SurveySpec, form: dict[str, str]) -> tuple[dict[str, Any], str]:
    """The scores and comment of a posted form (only what the survey asks), or the message why not."""
    values: dict[str, Any] = {}
    for q, (low, high) in SCALES.items():
        text = form.get(q, "").strip()
        if not text:
            continue
        if q not in survey.asks or not re.fullmatch(r"[0-9]{1,2}", text) or not low <= int(text) <= high:
            return {}, BAD_SCORE
        values[q] = int(text)
    comment = form.get("comment", "").replace("\r\n", "\n").strip()
    if comment and "comment" in survey.asks:
        if len(comment) > MAX_COMMENT:
            return {}, TOO_LONG
        values["comment"] = comment
    return (values, "") if values else ({}, NOTHING)


@router.post(PUBLIC + "/surveys/{survey_id}")
def answer(
    request: Request,
    survey_id: str,
    i: Annotated[str, Form(max_length=20)] = "",
    k: Annotated[str, Form(max_length=300)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    nps: Annotated[str, Form(max_length=10)] = "",
    csat: Annotated[str, Form(max_length=10)] = "",
    ces: Annotated[str, Form(max_length=10)] = "",
    comment: Annotated[str, Form(max_length=20 * MAX_COMMENT)] = "",
) -> Response:
    found = _find(request, survey_id, i, k)
    if found is None:
        return _not_found(request)
    survey, inv = found
    given = {"nps": nps, "csat": csat, "ces": ces, "comment": comment}
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()) or not _same_origin(request):
        return _page(request, survey, inv, k, screen="form", status=403, given=given, notice=N_(
            "Your request could not be checked. Please press the button again."))  # fmt: skip
    if inv.answered:
        return _page(request, survey, inv, k, screen="answered")
    values, problem = _answer(survey, given)
    if problem:
        return _page(request, survey, inv, k, screen="form", status=422, given=given, notice=problem)
    settings, now = settings_of(request), now_of(request)
    reply = SurveyAnswer(
        customer_id=inv.customer_id, key=inv.answer_key, channel=inv.answer_channel,
        journey=inv.journey, **values,
    )  # fmt: skip
    try:
        emitted = record(settings, survey, [reply], now=now)
    except InputRefused:
        return _page(request, survey, inv, k, screen="form", status=422, given=given, notice=BAD_SCORE)
    if emitted.duplicates:  # answered meanwhile (another tab, a double tap)
        return _page(request, survey, inv, k, screen="answered")
    if emitted.loaded != 1:
        return _page(request, survey, inv, k, screen="form", status=409, given=given, notice=NOT_SAVED)
    return _page(request, survey, inv, k, screen="thanks")
