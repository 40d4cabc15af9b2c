"""What the demo bank holds after its year, read from the store: the figures ``omnibank demo`` prints
(compactly, for a bank operations manager), the counts the tests compare, and commands worth trying."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.benefits.suppliers import ScoreLine
from omnibank.config import Settings
from omnibank.demo.loans import REENGINEERED
from omnibank.demo.loans import STEPS as LOAN_STEPS
from omnibank.kit.console import out
from omnibank.kit.money import format_cny

COUPON_ORDER = ("granted", "claimed", "active", "redeemed", "expired", "revoked")
LEAD_ORDER = ("new", "contacted", "won", "lost")
ENTRY_ORDER = ("active", "control", "done", "converted", "exited")


@dataclass(frozen=True)
class CampaignLine:
    campaign: str
    status: str
    events: int
    grants: int
    issued: int
    face_value_fen: int
    refused: dict[str, int]


@dataclass(frozen=True)
class BudgetLine:
    budget: str
    count_used: int
    count_limit: int | None
    money_used_fen: int
    money_limit_fen: int | None


@dataclass
class BankState:
    """The demo bank's figures (see :func:`read`)."""

    campaigns: list[CampaignLine] = field(default_factory=list)
    coupons: Counter[str] = field(default_factory=Counter)
    budgets: list[BudgetLine] = field(default_factory=list)
    stock_outs: int = 0  # benefit-days that refused grants for want of stock
    lots: int = 0
    postings: Counter[str] = field(default_factory=Counter)
    points_holders: int = 0
    points_total: int = 0
    entries: dict[str, Counter[str]] = field(default_factory=dict)  # journey → status → entries
    outbox: Counter[str] = field(default_factory=Counter)  # status → messages
    suppressed: Counter[str] = field(default_factory=Counter)  # reason → messages
    receipts: int = 0  # messages with a delivery or failure receipt
    leads: Counter[str] = field(default_factory=Counter)
    escalated: int = 0
    scorecard: list[ScoreLine] = field(default_factory=list)
    surveys: Counter[str] = field(default_factory=Counter)  # survey → responses in the event log
    branch_visits: int = 0
    # examples for the "try:" list
    points_customer: str | None = None
    coupon_customer: str | None = None
    manager: str | None = None

    def counts(self) -> dict[str, int]:
        """Every figure as one flat mapping (two demo runs with the same seed give the same)."""
        flat: dict[str, int] = {}
        for c in self.campaigns:
            flat.update(
                {
                    f"campaign.{c.campaign}.events": c.events,
                    f"campaign.{c.campaign}.grants": c.grants,
                    f"campaign.{c.campaign}.issued": c.issued,
                    f"campaign.{c.campaign}.face_value_fen": c.face_value_fen,
                }
            )
            flat.update({f"campaign.{c.campaign}.refused.{k}": v for k, v in c.refused.items()})
        flat.update({f"coupons.{k}": v for k, v in self.coupons.items()})
        for b in self.budgets:
            flat.update(
                {f"budget.{b.budget}.count": b.count_used, f"budget.{b.budget}.money": b.money_used_fen}
            )
        flat.update({f"points.{k}": v for k, v in self.postings.items()})
        flat.update(
            points_holders=self.points_holders,
            points_total=self.points_total,
            stock_outs=self.stock_outs,
            lots=self.lots,
            receipts=self.receipts,
            escalated=self.escalated,
        )
        for j, statuses in self.entries.items():
            flat.update({f"journey.{j}.{k}": v for k, v in statuses.items()})
        flat.update({f"outbox.{k}": v for k, v in self.outbox.items()})
        flat.update({f"suppressed.{k}": v for k, v in self.suppressed.items()})
        flat.update({f"leads.{k}": v for k, v in self.leads.items()})
        flat.update({f"supplier.{s.supplier_id}.score": s.score for s in self.scorecard})
        return flat


def read(session: Session, settings: Settings, *, last: date, days: int = 90) -> BankState:
    """The bank's figures as they stand; the suppliers scored over ``days`` up to ``last``."""
    from omnibank.benefits.models import Budget, Coupon, InventoryLot, PointsBalance, PointsPosting, StockOut
    from omnibank.benefits.suppliers import scorecard
    from omnibank.campaigns.models import Campaign, CampaignGrant
    from omnibank.contact.models import ContactMessage
    from omnibank.journeys.models import Journey, JourneyEntry
    from omnibank.leads.models import Lead
    from omnibank.service.suppliers import scorecard_tickets

    state = BankState()
    grants = Counter[tuple[str, str]]()
    value: Counter[str] = Counter()
    for campaign, ledger, n, fen in session.execute(
        select(
            CampaignGrant.campaign, CampaignGrant.ledger, func.count(), func.sum(CampaignGrant.face_value_fen)
        ).group_by(CampaignGrant.campaign, CampaignGrant.ledger)
    ):
        grants[(campaign, ledger)] += int(n)
        if ledger == "issued":
            value[campaign] += int(fen or 0)
    for c in session.scalars(select(Campaign).order_by(Campaign.id)):
        mine = {ledger: n for (cid, ledger), n in grants.items() if cid == c.id}
        refused = {k.removeprefix("refused:"): n for k, n in mine.items() if k.startswith("refused:")}
        state.campaigns.append(
            CampaignLine(
                c.id, c.status, c.events, sum(mine.values()), mine.get("issued", 0), value[c.id], refused
            )
        )
    state.coupons.update(
        {s: int(n) for s, n in session.execute(select(Coupon.status, func.count()).group_by(Coupon.status))}
    )
    state.budgets = [
        BudgetLine(b.id, b.count_used, b.count_limit, b.money_used_fen, b.money_limit_fen)
        for b in session.scalars(select(Budget).order_by(Budget.id))
    ]
    state.stock_outs = int(session.scalar(select(func.count()).select_from(StockOut)) or 0)
    state.lots = int(session.scalar(select(func.count()).select_from(InventoryLot)) or 0)
    state.postings.update(
        {
            k: int(n)
            for k, n in session.execute(select(PointsPosting.kind, func.count()).group_by(PointsPosting.kind))
        }
    )
    held = select(func.count(), func.sum(PointsBalance.balance)).where(PointsBalance.balance > 0)
    holders, total = session.execute(held).one()
    state.points_holders, state.points_total = int(holders), int(total or 0)
    for journey in session.scalars(select(Journey.id).order_by(Journey.id)):
        state.entries[journey] = Counter()
    for journey, status, n in session.execute(
        select(JourneyEntry.journey, JourneyEntry.status, func.count())
        .group_by(JourneyEntry.journey, JourneyEntry.status)
        .order_by(JourneyEntry.journey)
    ):
        state.entries.setdefault(journey, Counter())[status] = int(n)
    for status, reason, n in session.execute(
        select(ContactMessage.status, ContactMessage.reason, func.count()).group_by(
            ContactMessage.status, ContactMessage.reason
        )
    ):
        state.outbox[status] += int(n)
        if status == "suppressed":
            state.suppressed[reason or "?"] += int(n)
    state.receipts = int(
        session.scalar(
            select(func.count())
            .select_from(ContactMessage)
            .where(ContactMessage.delivered_at.is_not(None) | ContactMessage.failed_at.is_not(None))
        )
        or 0
    )
    state.leads.update(
        {s: int(n) for s, n in session.execute(select(Lead.status, func.count()).group_by(Lead.status))}
    )
    state.escalated = int(
        session.scalar(select(func.count()).select_from(Lead).where(Lead.escalated_at.is_not(None))) or 0
    )
    tickets = scorecard_tickets(session, until=last, days=days, tz=settings.tz)
    state.scorecard = scorecard(session, until=last, days=days, tz=settings.tz, tickets=tickets)
    state.points_customer = session.scalar(
        select(PointsBalance.customer_id)
        .where(PointsBalance.balance > 0)
        .order_by(PointsBalance.balance.desc(), PointsBalance.customer_id)
        .limit(1)
    )
    state.coupon_customer = session.scalar(
        select(Coupon.customer_id)
        .group_by(Coupon.customer_id)
        .order_by(func.count(func.distinct(Coupon.status)).desc(), func.count().desc(), Coupon.customer_id)
        .limit(1)
    )
    state.surveys, state.branch_visits = experience_counts(settings)
    state.manager = session.scalar(
        select(Lead.escalated_to)
        .where(Lead.escalated_to.is_not(None))
        .group_by(Lead.escalated_to)
        .order_by(func.count().desc(), Lead.escalated_to)
        .limit(1)
    )
    return state


def experience_counts(settings: Settings) -> tuple[Counter[str], int]:
    """Survey responses (by survey) and branch visits in the event log (issue 17's experience data)."""
    from omnibank.events.log import duck
    from omnibank.events.reader import event_sql

    surveys: Counter[str] = Counter()
    visits = 0
    con = duck(settings)
    try:
        event_sql(con, settings, fields=[], ordered=False)  # defines the view ``src`` of the log's events
        rows = con.sql(
            "SELECT type, json_extract_string(payload, '$.survey'), count(*) FROM src "
            "WHERE type IN ('survey.response', 'branch.visit') GROUP BY ALL"
        ).fetchall()
    finally:
        con.close()
    for kind, survey, n in rows:
        if kind == "branch.visit":
            visits += int(n)
        else:
            surveys[str(survey)] += int(n)
    return surveys, visits


# ------------------------------------------------------------------------------------------------ printing


def _n(value: int) -> str:
    return f"{value:,}"


def _of(used: int, limit: int | None, money: bool = False) -> str:
    text = format_cny(used) if money else _n(used)
    if limit is None:
        return text
    return f"{text} of {format_cny(limit) if money else _n(limit)} ({used * 100 // max(limit, 1)}%)"


def print_state(state: BankState, *, first: date, last: date, launch: date) -> None:
    """The bank after its year, in a few tables and lines."""
    campaigns = Table(
        "campaign",
        "status",
        "events applied",
        "grants",
        "coupons issued",
        "face value (CNY)",
        "refused by the ledger",
        title=f"live campaigns, {first} – {last}",
        title_justify="left",
    )
    for c in state.campaigns:
        refused = ", ".join(f"{k} {_n(v)}" for k, v in sorted(c.refused.items())) or "—"
        campaigns.add_row(
            c.campaign,
            c.status,
            _n(c.events),
            _n(c.grants),
            _n(c.issued),
            format_cny(c.face_value_fen),
            refused,
        )
    out.print(campaigns)
    statuses = [s for s in COUPON_ORDER if state.coupons.get(s)] + sorted(
        set(state.coupons) - set(COUPON_ORDER)
    )
    coupons = Table(*statuses, title="coupons by status", title_justify="left")
    coupons.add_row(*(_n(state.coupons[s]) for s in statuses))
    out.print(coupons)
    budgets = Table("budget", "items used", "face value used (CNY)", title="budgets", title_justify="left")
    for b in state.budgets:
        budgets.add_row(
            b.budget, _of(b.count_used, b.count_limit), _of(b.money_used_fen, b.money_limit_fen, True)
        )
    out.print(budgets)
    journeys = Table("journey", *ENTRY_ORDER, title=f"live journeys, launched {launch}", title_justify="left")
    for journey, counts in state.entries.items():
        journeys.add_row(journey, *(_n(counts.get(s, 0)) for s in ENTRY_ORDER))
    out.print(journeys)
    outbox = ", ".join(f"{k} {_n(v)}" for k, v in sorted(state.outbox.items()))
    spared = ", ".join(f"{k} {_n(v)}" for k, v in sorted(state.suppressed.items()))
    out.print(f"outbox: {outbox} ({_n(state.receipts)} with receipts; suppressed by reason: {spared or '—'})")
    leads = ", ".join(f"{s} {_n(state.leads.get(s, 0))}" for s in LEAD_ORDER)
    out.print(f"leads: {leads}; {_n(state.escalated)} escalated to a branch manager")
    scores = Table(
        "supplier",
        "issued",
        "failed",
        "success",
        "stock-out days",
        "discrepancies",
        "score",
        "grade",
        "calls for",
        title=f"supplier scorecard, 90 days to {last}",
        title_justify="left",
    )
    for s in state.scorecard:
        scores.add_row(
            s.supplier_id,
            _n(s.issued),
            _n(s.failed),
            f"{s.success_rate * 100:.1f}%",
            _n(s.stock_outs),
            _n(s.discrepancies),
            str(s.score),
            s.grade,
            s.recommended,
        )
    out.print(scores)
    answers = ", ".join(f"{k} {_n(v)}" for k, v in sorted(state.surveys.items()))
    out.print(
        f"体验数据: {_n(sum(state.surveys.values()))} 份问卷回复 ({answers or '—'}), "
        f"{_n(state.branch_visits)} 次网点到访"
    )
    postings = ", ".join(f"{k} {_n(v)}" for k, v in sorted(state.postings.items())) or "none"
    out.print(
        f"points: postings {postings}; {_n(state.points_holders)} customers hold "
        f"{_n(state.points_total)} points; stock: {_n(state.lots)} lots received, "
        f"{_n(state.stock_outs)} stock-out days"
    )


def try_commands(state: BankState, *, last: date) -> list[str]:
    """Commands that now show something, with ids from this bank."""
    commands = [
        "omnibank campaign list",
        "omnibank budgets list",
        "omnibank benefits stock",
        f"omnibank suppliers scorecard --as-of {last}",
        "omnibank journey list",
        "omnibank journey report product_view_lead",
        "omnibank contact outbox",
        "omnibank invites leaderboard --by branch",
        "omnibank invites stats --by team --org B001",
        "omnibank process report --start loan.application_submitted --end loan.disbursed "
        f"--steps {','.join(LOAN_STEPS)} --to {REENGINEERED - timedelta(days=1)} "
        f"--compare {REENGINEERED}..{last}",
        "omnibank tickets list",
        f"omnibank tickets sla --out sla.csv --as-of {last}",
        "omnibank cx index examples/cx/credit_card_map.yaml --by branch",
        "omnibank cx survey csat_branch --by branch",
        "omnibank cx feedback --by branch",
        "omnibank cx alerts list",
    ]
    if state.coupon_customer:
        commands.append(f"omnibank coupons list --customer {state.coupon_customer}")
    if state.points_customer:
        commands.append(f"omnibank points balance {state.points_customer}")
    if state.manager:
        commands.append(f"omnibank leads list --staff {state.manager}")
    return [*commands, "omnibank org tree", "omnibank customer show C000001", "omnibank segment matrix"]
