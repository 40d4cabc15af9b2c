"""Who may take part in a campaign: its eligibility, an optional extra segment, the caller's org subtree,
and the consent its ``purpose`` needs — one answer for ``campaign simulate``, ``campaign run`` and the API.

A campaign with ``purpose: marketing`` (or ``profiling``, ``data_sharing``) takes part only customers whose
consent for that purpose holds when the audience is computed: each simulation and each live run computes it
again, so a revocation stops the campaign for that customer at its next run without the author having to
remember ``marketing_consent = true`` in the eligibility.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from omnibank.campaigns.spec import CampaignSpec
from omnibank.config import Settings
from omnibank.consent.service import allowed_set
from omnibank.db import unit_of_work
from omnibank.kit.clock import local_today
from omnibank.segments import service as segments

if TYPE_CHECKING:
    from omnibank.customers.repository import Within


def eligible(
    session: Session,
    settings: Settings,
    spec: CampaignSpec,
    *,
    as_of: date,
    segment: str | None = None,
    within: str | Within | None = None,
) -> frozenset[str] | None:
    """The ids of the customers who may take part, or None for "anyone" (no condition at all)."""
    texts = [t for t in (spec.eligibility, segment) if t]
    members: frozenset[str] | None = None
    if texts or within is not None:
        text = " AND ".join(f"({t})" for t in texts) or "TRUE"
        expression = segments.parse_within(session, text, within)
        members = frozenset(segments.member_ids(session, settings, expression, as_of).to_pylist())
    if spec.purpose is not None:
        members = allowed_set(session, spec.purpose, members)
    return members


def eligible_today(
    settings: Settings, spec: CampaignSpec, *, segment: str | None = None
) -> frozenset[str] | None:
    """:func:`eligible` as of the bank-local today, in a unit of work of its own (the CLI and the demo)."""
    with unit_of_work(settings) as session:
        return eligible(session, settings, spec, as_of=local_today(settings.tz), segment=segment)
