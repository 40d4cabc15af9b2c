"""Customer experience (体验): the experience index of a journey map per branch or channel, a survey's results
with the negative feedback topics, the alerts and who owns them (责任落实), and the journeys' reach and
conversion funnels. Every figure comes from the CX read layers (:mod:`omnibank.cx.index`,
:mod:`omnibank.cx.survey_report`, :mod:`omnibank.cx.feedback`, :mod:`omnibank.cx.views`,
:mod:`omnibank.cx.funnel`); nothing is cached.

Reading needs ``customers:read``, as the tickets pages. The index, the survey results and the topics are
aggregates without personal data; the alerts (they name customers) and the funnel are scoped to the customers
the signed-in person sees, and a member of staff also sees the alerts they own.

The index reads the whole event log for a map (about 3 s on the demo bank), so its page answers at once with
the form and loads the table after itself (htmx, with a loading note); ``/console/cx/index`` is also a page
of its own without htmx. A query the read layers refuse (a map not in the maps folder, a period that is not a
month) is shown on the page with its message, with the form to correct it."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from omnibank.api.auth import Principal, now_of, settings_of
from omnibank.config import Settings
from omnibank.console.i18n import N_
from omnibank.console.labels import CHANNELS
from omnibank.console.web import CONSOLE, needs, render
from omnibank.cx import views
from omnibank.cx.feedback import TopicRow, negative_topics
from omnibank.cx.funnel import FunnelRow, funnel
from omnibank.cx.index import IndexResult, compute_index
from omnibank.cx.maps import load_map
from omnibank.cx.reading import log_types
from omnibank.cx.survey_report import SurveyRow, survey_report
from omnibank.db import unit_of_work
from omnibank.errors import AppError, InputRefused, NotFound
from omnibank.leads.repository import staff_member
from omnibank.leads.views import staff_of
from omnibank.orgs.repository import all_orgs
from omnibank.segments.engine import vocabulary
from omnibank.surveys.spec import surveys_of

router = APIRouter(prefix=CONSOLE)
Reader = Annotated[Principal, Depends(needs("customers:read"))]
Text = Annotated[str, Query(max_length=64)]
MapName = Annotated[str, Query(alias="map", max_length=64)]

GOOD, POOR = Decimal(80), Decimal(60)  # a score at or above GOOD is good, below POOR poor
MAP_SUFFIX = "_map.yaml"
#: the demo's surveys, offered when the bank has no surveys file (OMNIBANK_SURVEYS_FILE)
DEMO_SURVEYS = ("nps_card", "csat_branch", "ces_service")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_JOURNEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_TENTH = Decimal("0.1")
MONTHS_SHOWN = 12

GROUPINGS: dict[str, str] = {"branch": N_("Branch"), "channel": N_("Channel"), "all": N_("Whole bank")}
FUNNEL_BY: dict[str, str] = {"": N_("Journey step only"), "channel": N_("Channel"), "branch": N_("Branch")}
STATES: dict[str, str] = {"open": N_("Open alerts"), "closed": N_("Closed alerts"), "all": N_("All alerts")}
RULE_KINDS: dict[str, str] = {
    "response": N_("Survey answer"),
    "event": N_("Event"),
    "index_drop": N_("Index drop"),
    "inflow": N_("Inflow surge"),
}
SUBJECTS: dict[str, str] = {"customer": N_("A customer"), "branch": N_("A branch"), "bank": N_("Whole bank")}


# ------------------------------------------------------------------------------------------------ shared


def score_class(score: Decimal | None) -> str:
    """The CSS class of a score: good (≥ 80), poor (< 60), fair between, none without data."""
    if score is None:
        return "score-none"
    return "score-good" if score >= GOOD else "score-poor" if score < POOR else "score-fair"


def tenth(value: Decimal | None) -> str:
    """A score or figure to one decimal (half up); '—' for none."""
    return "—" if value is None else str(value.quantize(_TENTH, rounding=ROUND_HALF_UP))


def months(now: datetime, settings: Settings, chosen: str = "") -> list[str]:
    """The last :data:`MONTHS_SHOWN` bank-local months, newest first (and the chosen one if older)."""
    local = now.astimezone(settings.tz)
    year, month = local.year, local.month
    out = []
    for _ in range(MONTHS_SHOWN):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    if chosen and chosen not in out:
        out.append(chosen)
    return out


def _period(period: str) -> str | None:
    """A month ``YYYY-MM`` or nothing (the whole log), or refused naming the field."""
    value = period.strip()
    if not value:
        return None
    if not _MONTH.match(value):
        raise InputRefused(f"period: {value!r} is not a month: choose one, or write YYYY-MM (e.g. 2026-11)")
    return value


def _one_of(name: str, value: str, allowed: dict[str, str]) -> str:
    if value not in allowed:
        raise InputRefused(f"{name}: {value!r} is not one of {', '.join(k or '(none)' for k in allowed)}")
    return value


def org_names(session: Session) -> dict[str, str]:
    """Org id → its name (a few hundred rows at most: cheap)."""
    return {org_id: org.name for org_id, org in all_orgs(session).items()}


def _viewer(session: Session, principal: Principal, *, own: bool) -> views.Viewer:
    """The customers the caller sees (the tickets pages' rule); with ``own`` also what they own."""
    staff_id = staff_of(session, principal.actor, principal.kind) if own else None
    return views.Viewer(scope=principal.customer_scope(session), staff_id=staff_id)


def _labels() -> dict[str, Any]:
    return {"groupings": GROUPINGS, "channels": CHANNELS, "score_class": score_class, "tenth": tenth}


# ----------------------------------------------------------------------------------------- index (体验指数)


def maps_of(settings: Settings) -> tuple[Path | None, dict[str, Path]]:
    """The maps folder and its maps: id (the file name without ``_map.yaml``) → path."""
    folder = settings.cx_maps_folder()
    if folder is None or not folder.is_dir():
        return folder, {}
    found = {p.name.removesuffix(MAP_SUFFIX): p for p in sorted(folder.glob(f"*{MAP_SUFFIX}")) if p.is_file()}
    return folder, found


@dataclasses.dataclass(frozen=True)
class IndexQuery:
    map: str
    by: str
    period: str | None

    @property
    def query(self) -> str:
        return urlencode({"map": self.map, "by": self.by, "period": self.period or ""})


def _index_query(settings: Settings, map_: str, by: str, period: str) -> tuple[IndexQuery, dict[str, Path]]:
    folder, maps = maps_of(settings)
    if not maps:
        where = f" (its folder has no *{MAP_SUFFIX})" if folder is not None else ""
        raise NotFound(f"no maps configured: OMNIBANK_CX_MAPS_DIR{where}")
    chosen = map_ or next(iter(maps))
    if chosen not in maps:  # the folder's path is the server's business, not the page's
        raise NotFound(f"map: no map {chosen!r} in the maps folder (maps: {', '.join(maps)})")
    return IndexQuery(chosen, _one_of("by", by, GROUPINGS), _period(period)), maps


def map_names(maps: dict[str, Path]) -> dict[str, str]:
    """Map id → the map's name (its file's id when the file does not load: the table then says why)."""
    found = {}
    for map_id, path in maps.items():
        try:
            found[map_id] = load_map(path).name
        except AppError:
            found[map_id] = map_id
    return found


def _index_form(request: Request, map_: str, by: str, period: str) -> dict[str, Any]:
    settings = settings_of(request)
    _, maps = maps_of(settings)
    form = {"map": map_ or next(iter(maps), ""), "by": by, "period": period}
    return {
        "maps": map_names(maps),
        "form": form,
        "months": months(now_of(request), settings, period.strip()),
    }


@dataclasses.dataclass(frozen=True)
class IndexCell:
    score: Decimal | None
    coverage: Decimal


@dataclasses.dataclass(frozen=True)
class IndexLine:
    group: str
    name: str  # the branch's org name, a channel's label id, or ''
    cells: list[IndexCell]  # the map's, then each stage's


def index_table(result: IndexResult, orgs: dict[str, str]) -> tuple[list[tuple[str, str]], list[IndexLine]]:
    """The columns (path, name: the map first, then its stages) and one line per group."""
    columns = [("", result.map_name)]
    columns += [(r.path, r.name) for r in result.rows if r.level == "stage" and r.group == result.groups[0]] \
        if result.groups else []  # fmt: skip
    lines = []
    for group in result.groups:
        by_path = {r.path: r for r in result.rows if r.group == group and r.level in ("map", "stage")}
        none = IndexCell(None, Decimal(0))
        cells = [
            IndexCell(by_path[p].score, by_path[p].coverage) if p in by_path else none for p, _ in columns
        ]
        name = orgs.get(group, "") if result.by == "branch" else ""
        lines.append(IndexLine(group, name, cells))
    return columns, lines


@router.get("/cx")
def index_page(
    request: Request, principal: Reader, map_: MapName = "", by: Text = "branch", period: Text = ""
) -> HTMLResponse:
    """体验指数: the form (map, grouping, month) and the table, loaded after the page."""
    error, status, query = None, 200, None
    try:
        query, _ = _index_query(settings_of(request), map_, by, period)
    except AppError as exc:
        error, status = exc.message, exc.status
    return render(request, "cx/index.html", {
        "error": error, "q": query, "result": None, "deferred": query is not None,
        **_index_form(request, map_, by, period), **_labels(),
    }, status=status)  # fmt: skip


@router.get("/cx/index")
def index_table_page(
    request: Request, principal: Reader, map_: MapName = "", by: Text = "branch", period: Text = ""
) -> HTMLResponse:
    """The index table: a fragment for the page's htmx request, or the whole page without htmx."""
    settings = settings_of(request)
    fragment = bool(request.headers.get("hx-request"))
    context: dict[str, Any] = {"error": None, "q": None, "result": None, "deferred": False, **_labels()}
    status = 200
    try:
        query, maps = _index_query(settings, map_, by, period)
        context["q"] = query
        with unit_of_work(settings) as session:
            spec = load_map(maps[query.map], vocabulary=vocabulary(session), known_types=log_types(settings))
            result = compute_index(session, settings, spec, by=None if query.by == "all" else query.by,
                                   period=query.period)  # fmt: skip
            orgs = org_names(session) if query.by == "branch" else {}
        columns, lines = index_table(result, orgs)
        context.update(result=result, columns=columns, lines=lines)
    except AppError as exc:
        context["error"], status = exc.message, exc.status
    if fragment:
        return render(request, "cx/_index_table.html", context, status=status)
    return render(
        request, "cx/index.html", {**context, **_index_form(request, map_, by, period)}, status=status
    )


# ------------------------------------------------------------------------------------ surveys (满意度调查)


def survey_choices(settings: Settings) -> dict[str, str]:
    """Survey id → name: the bank's surveys file, else the demo's ids."""
    found = {s.id: s.name for s in surveys_of(settings).values()}
    return found or {sid: "" for sid in DEMO_SURVEYS}


@router.get("/cx/surveys")
def surveys_page(
    request: Request, principal: Reader, survey: Text = "", by: Text = "branch", period: Text = ""
) -> HTMLResponse:
    """满意度调查: a survey's NPS, CSAT and CES per group with their intervals, and the top topics among
    negative comments per branch for the month."""
    settings = settings_of(request)
    error, status, empty = None, 200, None
    rows: list[SurveyRow] = []
    topics: list[TopicRow] = []
    orgs: dict[str, str] = {}
    choices: dict[str, str] = {}
    chosen = survey
    try:
        choices = survey_choices(settings)
        chosen = survey or next(iter(choices))
        if not _ID.match(chosen):
            raise InputRefused(f"survey: {chosen!r} is not a survey id (lower-case letters, digits and _)")
        _one_of("by", by, GROUPINGS)
        month = _period(period)
        with unit_of_work(settings) as session:
            try:
                rows = survey_report(session, settings, chosen, by=None if by == "all" else by, period=month)
            except NotFound as exc:  # no answers: a fact about the data, said on the page
                empty = exc.message
            topics = negative_topics(session, settings, period=month, by="branch")
            orgs = org_names(session)
    except AppError as exc:
        error, status = exc.message, exc.status
    if chosen and chosen not in choices:
        choices[chosen] = ""
    return render(request, "cx/surveys.html", {
        "error": error, "empty": empty, "rows": rows, "topics": topics, "orgs": orgs,
        "choices": choices, "form": {"survey": chosen, "by": by, "period": period},
        "months": months(now_of(request), settings, period.strip()), **_labels(),
    }, status=status)  # fmt: skip


# ------------------------------------------------------------------------------------- alerts (体验预警)


@dataclasses.dataclass(frozen=True)
class Owner:
    staff_id: str | None
    queue: str | None
    role: str | None
    org: str | None


def owners_of(session: Session, alerts: list[views.AlertRead], orgs: dict[str, str]) -> dict[str, Owner]:
    """Each owner of the alerts: a member of staff with their role and unit (not their name: personal data,
    stored encrypted), or the desk's queue."""
    found: dict[str, Owner] = {}
    for owner in {a.owner for a in alerts}:
        if owner.startswith("queue:"):
            found[owner] = Owner(None, owner.removeprefix("queue:"), None, None)
            continue
        try:
            staff = staff_member(session, owner)
        except NotFound:
            found[owner] = Owner(owner, None, None, None)
            continue
        found[owner] = Owner(owner, None, staff.role, orgs.get(staff.org_id, staff.org_id))
    return found


#: why an alert has its owner, as the read layer words it → the message shown (a queue's reason ends with
#: ": the service desk's default queue Q")
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^the customer's RM$"), N_("the customer's relationship manager")),
    (
        re.compile(r"^no active RM: the manager of the customer's branch (?P<org>\S+)$"),
        N_("no active relationship manager: the manager of the customer's branch %(org)s"),
    ),
    (re.compile(r"^the manager of branch (?P<org>\S+)$"), N_("the manager of branch %(org)s")),
    (
        re.compile(r"^the manager of the service desk's org (?P<org>\S+)$"),
        N_("the manager of the service desk's org %(org)s"),
    ),
    (
        re.compile(r"^.*: the service desk's default queue (?P<queue>\S+)$"),
        N_("nobody found up the org tree: the service desk's queue %(queue)s"),
    ),
)


def reason_of(reason: str) -> tuple[str, dict[str, str]]:
    """The message id and its values for an owner's reason (as it is when not one of the known ones)."""
    for pattern, message in _REASONS:
        m = pattern.match(reason)
        if m:
            return message, m.groupdict()
    return reason, {}


@router.get("/cx/alerts")
def alerts_page(request: Request, principal: Reader, state: Text = "open", rule: Text = "") -> HTMLResponse:
    """体验预警: the alerts the caller sees (open, closed or all), each with its one owner, its ticket and,
    once acted on, the action taken."""
    settings, now = settings_of(request), now_of(request)
    error, status = None, 200
    rows: list[views.AlertRead] = []
    counts = {"open": 0, "closed": 0}
    owners: dict[str, Owner] = {}
    orgs: dict[str, str] = {}
    try:
        _one_of("state", state, STATES)
        if rule and not _ID.match(rule):
            raise InputRefused(f"rule: {rule!r} is not a rule id (lower-case letters, digits and _)")
        with unit_of_work(settings) as session:
            viewer = _viewer(session, principal, own=True)
            rows = views.alerts(session, viewer, state=cast(views.State, state), rule=rule or None)
            counts = views.alert_counts(session, viewer)
            orgs = org_names(session)
            owners = owners_of(session, rows, orgs)
    except AppError as exc:
        error, status = exc.message, exc.status
    return render(request, "cx/alerts.html", {
        "error": error, "rows": rows, "counts": counts, "owners": owners, "orgs": orgs, "now": now,
        "reason_of": reason_of,
        "form": {"state": state, "rule": rule}, "states": STATES, "rule_kinds": RULE_KINDS,
        "subjects": SUBJECTS, **_labels(),
    }, status=status)  # fmt: skip


# ------------------------------------------------------------------------------------------- funnel (漏斗)


@router.get("/cx/funnel")
def funnel_page(
    request: Request, principal: Reader, journey: Text = "", by: Text = "channel"
) -> HTMLResponse:
    """The journeys' funnels per step (and channel or branch): sent, delivered (触达率), clicked, converted
    (转化率), of the customers the caller sees."""
    settings = settings_of(request)
    error, status = None, 200
    rows: list[FunnelRow] = []
    journeys: list[str] = []
    orgs: dict[str, str] = {}
    try:
        _one_of("by", by, FUNNEL_BY)
        if journey and not _JOURNEY.match(journey):
            raise InputRefused(f"journey: {journey!r} is not a journey id")
        with unit_of_work(settings) as session:
            viewer = _viewer(session, principal, own=False)
            every = funnel(session, by=by or None, viewer=viewer)
            journeys = sorted({r.journey for r in every})
            if (
                journey and journey not in journeys
            ):  # not a journey (refused by name) or nothing sent in sight
                every = funnel(session, journey=journey, by=by or None, viewer=viewer)
            rows = [r for r in every if not journey or r.journey == journey]
            orgs = org_names(session) if by == "branch" else {}
    except AppError as exc:
        error, status = exc.message, exc.status
    if journey and journey not in journeys:
        journeys.append(journey)
    return render(request, "cx/funnel.html", {
        "error": error, "rows": rows, "journeys": journeys, "orgs": orgs,
        "form": {"journey": journey, "by": by}, "funnel_by": FUNNEL_BY, **_labels(),
    }, status=status)  # fmt: skip
