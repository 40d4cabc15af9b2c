"""Precision marketing (精准营销): the trained models with their held-out metrics against the baseline
(a propensity model's AUC and lift at the top 10 % against its naive baseline feature's, an uplift model's
Qini coefficient and uplift at the top 10 % against random targeting), whether each version is live and its
scores stored for ``score('NAME')``, and the recent call lists with how many were listed, held out, deferred
and spared by reason. Everything comes from :mod:`omnibank.marketing.views`.

Reading needs ``campaigns:read``, as the campaigns and journeys pages. Nothing personal is shown: the models
are their cards, the call lists their counts (bank-wide aggregates, no customer ids)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from omnibank.api.auth import Principal, settings_of
from omnibank.console.i18n import N_
from omnibank.console.labels import CHANNELS
from omnibank.console.web import CONSOLE, needs, render
from omnibank.db import unit_of_work
from omnibank.marketing import views

router = APIRouter(prefix=CONSOLE)
Reader = Annotated[Principal, Depends(needs("campaigns:read"))]

KINDS = {"propensity": N_("Propensity model"), "uplift": N_("Uplift model")}
#: why a call list spared a customer (the contact policy's reasons, then the journey's)
SPARED = {
    "no_consent": N_("No marketing consent"),
    "dnd": N_("Do not disturb"),
    "unreachable": N_("Unreachable"),
    "cap_channel_day": N_("Frequency cap (channel, day)"),
    "cap_week": N_("Frequency cap (week)"),
    "in_journey": N_("Already in the journey"),
    "audience": N_("Outside the audience"),
}
LIST_CHANNELS = {**CHANNELS, "ai_call": N_("AI call")}


def fixed(value: Decimal | None, places: int) -> str:
    """A metric to ``places`` decimals (half up); '—' for none."""
    if value is None:
        return "—"
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def points(value: Decimal | None) -> str:
    """A difference of rates in percentage points, signed, to one decimal (0.042 → '+4.2'); '—' for none."""
    if value is None:
        return "—"
    shown = (value * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"+{shown}" if shown >= 0 else str(shown)


def better_class(better: bool | None) -> str:
    return "" if better is None else "ok" if better else "warn"


@router.get("/marketing")
def marketing_page(request: Request, principal: Reader) -> HTMLResponse:
    """精准营销: the models with their metrics against the baseline, and the recent call lists."""
    settings = settings_of(request)
    with unit_of_work(settings) as session:
        found = views.models_view(session, settings)
        lists = views.call_lists(session)
    return render(request, "marketing/page.html", {
        "models": found.lines, "problems": found.problems, "lists": lists, "kinds": KINDS,
        "spared_labels": SPARED, "channels": LIST_CHANNELS, "fixed": fixed, "points": points,
        "better_class": better_class,
    })  # fmt: skip
