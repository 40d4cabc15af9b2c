"""The read layer of campaigns: the live campaigns with their windows and budgets used, one campaign's
details, and a backtest summarised by rule and month — as the CLI, the API and the console show them.

A campaign's definition holds no personal data; a backtest's eligibility is computed over the caller's
customers (``within``: the org subtree; None: the whole bank), so its figures count only those."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.benefits.views import BudgetLine, budgets_view
from omnibank.campaigns import audience, live
from omnibank.campaigns.models import Campaign, CampaignGrant
from omnibank.campaigns.simulate import SimulationReport, simulate
from omnibank.campaigns.spec import CampaignSpec, parse_campaign
from omnibank.config import Settings
from omnibank.customers.repository import Within
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused, NotFound
from omnibank.events.schemas import MAX_BATCH, Event


@dataclass(frozen=True)
class CampaignLine:
    id: str
    name: str
    status: str
    start: date
    end: date
    events: int  # events applied by the live runs
    grants: int  # grants made by the live runs
    budget_count: int | None  # the campaign-wide budget (None: no limit)
    budget_face_value: Decimal | None
    used_count: int  # what the campaign-wide budget has counted
    used_face_value: Decimal
    started_at: datetime

    @property
    def used_share(self) -> Decimal | None:
        """The larger share used of the campaign's limits (0..1), None without limits."""
        shares = []
        if self.budget_count:
            shares.append(Decimal(self.used_count) / self.budget_count)
        if self.budget_face_value:
            shares.append(self.used_face_value / self.budget_face_value)
        return max(shares) if shares else None


@dataclass(frozen=True)
class RuleLine:
    id: str
    name: str
    benefit: str | None
    budget_count: int | None
    budget_face_value: Decimal | None
    used_count: int
    used_face_value: Decimal


@dataclass(frozen=True)
class CampaignDetail:
    line: CampaignLine
    description: str
    eligibility: str | None
    rules: list[RuleLine]
    budgets: list[BudgetLine]  # the ledger's budgets of the campaign (campaign, rule, branch)


def _line(row: Campaign, spec: CampaignSpec, grants: int) -> CampaignLine:
    totals = json.loads(row.totals or "{}")
    budget = spec.budget
    return CampaignLine(
        id=row.id, name=row.name, status=row.status, start=spec.period.start, end=spec.period.end,
        events=row.events, grants=grants, budget_count=budget.count if budget else None,
        budget_face_value=budget.face_value if budget else None,
        used_count=int(totals.get("campaign_items", 0)),
        used_face_value=Decimal(str(totals.get("campaign_value", "0"))), started_at=row.started_at,
    )  # fmt: skip


def campaign_list(session: Session) -> list[CampaignLine]:
    """The live campaigns (active and stopped) by id: window, events applied, grants, budget used."""
    rows = list(session.scalars(select(Campaign).order_by(Campaign.id)))
    grants = dict(
        session.execute(select(CampaignGrant.campaign, func.count()).group_by(CampaignGrant.campaign)).all()
    )
    return [_line(r, live.spec_of(r), int(grants.get(r.id, 0))) for r in rows]


def find_campaign(session: Session, campaign_id: str) -> tuple[Campaign, CampaignSpec]:
    row = session.get(Campaign, campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}")
    return row, live.spec_of(row)


def campaign_detail(session: Session, campaign_id: str) -> CampaignDetail:
    """One live campaign: its line, rules with their budgets and what they used, and the ledger's budgets."""
    row, spec = find_campaign(session, campaign_id)
    grants = session.scalar(select(func.count()).where(CampaignGrant.campaign == campaign_id)) or 0
    totals = json.loads(row.totals or "{}")
    rule_items, rule_value = totals.get("rule_items", {}), totals.get("rule_value", {})
    rules = [
        RuleLine(
            id=r.id, name=r.name or r.id, benefit=r.reward.benefit if r.reward else None,
            budget_count=r.budget.count if r.budget else None,
            budget_face_value=r.budget.face_value if r.budget else None,
            used_count=int(rule_items.get(r.id, 0)), used_face_value=Decimal(str(rule_value.get(r.id, "0"))),
        )
        for r in spec.rules
    ]  # fmt: skip
    return CampaignDetail(
        line=_line(row, spec, int(grants)), description=spec.description, eligibility=spec.eligibility,
        rules=rules, budgets=budgets_view(session, campaign=campaign_id),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------- backtest


@dataclass(frozen=True)
class MonthLine:
    month: str  # YYYY-MM
    grants: int
    face_value: Decimal


@dataclass(frozen=True)
class RuleMonthLine(MonthLine):
    rule: str


@dataclass(frozen=True)
class RefusalLine:
    rule: str
    reason: str
    items: int


@dataclass(frozen=True)
class Simulation:
    campaign: str
    events: int
    grants: int
    customers: int
    face_value: Decimal
    by_rule_month: list[RuleMonthLine]
    by_month: list[MonthLine]
    refusals: list[RefusalLine]
    unusable_lines: int


def summary(report: SimulationReport) -> Simulation:
    """A backtest's report by rule and month, by month (every rule) and its refusals."""
    by_rule_month = [
        RuleMonthLine(rule=rule, month=month, grants=int(items), face_value=Decimal(value))
        for (rule, month), (items, value) in sorted(report.by_rule_month.items())
    ]
    months: dict[str, tuple[int, Decimal]] = {}
    for line in by_rule_month:
        n, value = months.get(line.month, (0, Decimal(0)))
        months[line.month] = (n + line.grants, value + line.face_value)
    return Simulation(
        campaign=report.campaign, events=report.events, grants=report.grants, customers=report.customers,
        face_value=report.face_value, by_rule_month=by_rule_month,
        by_month=[MonthLine(month=m, grants=n, face_value=v) for m, (n, v) in sorted(months.items())],
        refusals=[RefusalLine(r, why, n) for (r, why), n in sorted(report.refusals.items())],
        unusable_lines=report.source.unusable,
    )  # fmt: skip


def simulate_campaign(
    settings: Settings,
    spec: CampaignSpec,
    *,
    events: Sequence[Event] | None,
    as_of: date,
    within: str | Within | None,
) -> Simulation:
    """Backtest ``spec`` from empty state, touching nothing: over ``events`` (None: the data home's event
    log), eligibility evaluated ``as_of`` over the customers ``within`` the caller's subtree (None: all)."""
    with unit_of_work(settings) as session:
        eligible = audience.eligible(session, settings, spec, as_of=as_of, within=within)
    if events is None:
        return summary(simulate(spec, settings, events=None, eligible=eligible))
    folder = settings.home_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"simulate-{secrets.token_hex(8)}.jsonl"
    try:
        with path.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events)
        return summary(simulate(spec, settings, events=path, eligible=eligible))
    finally:
        path.unlink(missing_ok=True)


def parse_definition(text: str) -> CampaignSpec:
    """A campaign definition given as YAML (or JSON) text, checked as ``campaign validate`` checks a file:
    every problem named with its place (InputRefused)."""
    return parse_campaign(text)


def parse_events(text: str) -> list[Event] | None:
    """Events given as JSON lines or a JSON array (at most MAX_BATCH, as the API takes); None for no text
    (the data home's event log)."""
    text = text.strip()
    if not text:
        return None
    found: object
    if text.startswith("["):
        try:
            found = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputRefused(f"events: not a JSON array ({exc.msg})") from None
    else:
        found = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputRefused(f"events: line {n} is not JSON ({exc.msg})") from None
    if not isinstance(found, list) or not all(isinstance(e, dict) for e in found):
        raise InputRefused("events: give one JSON object per line, or a JSON array of objects")
    if len(found) > MAX_BATCH:
        raise InputRefused(f"events: at most {MAX_BATCH:,} at a time")
    return found
