"""The demo bank's service desk (seed 000 权益服务响应, seed 002 智能客服): a year of tickets and a desk
that is live at the year's end.

* **The past**: about one ticket a year per 100 customers (complaints, inquiries, requests about benefits,
  cards, the app, branches and wealth products), with three times the usual benefit complaints in the week
  after the journeys' launch (a benefit campaign going live). Each has its history — assigned to a service
  agent, answered, sometimes waiting for the customer or the supplier, resolved, closed — written as the
  data contract's ``tickets.jsonl`` and loaded with the same import a bank uses for its own past tickets. A
  few take too long: the SLA report shows them breached.
* **The present**: complaints and inquiries of the last two days arrive as ``complaint.filed`` and
  ``service.request`` events; the desk's worker pass opens them, hands them to agents on shift and warns and
  escalates the late ones, as it would live. (A complaint received in late December has its 15-day limit in
  January: its clock waits for the next year's holiday data, and the demo says so.)

Deterministic for a seed (its own random stream: the rest of the demo is unchanged).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select

from omnibank.config import Settings
from omnibank.demo.experience import resolved_tickets, service_responses
from omnibank.demo.year import Calendar

TICKETS_PER_CUSTOMER = 0.01
SUBJECTS: dict[str, tuple[str, ...]] = {
    "benefit": ("瑞幸券无法核销", "权益未到账", "积分兑换的券过期了", "盲盒礼品未发货", "立减金未到账"),
    "card": ("信用卡年费疑问", "分期手续费投诉", "卡片被冻结", "账单金额有误"),
    "app": ("手机银行登录失败", "App转账报错", "人脸识别总是失败"),
    "branch": ("网点排队时间太长", "柜员服务态度差", "网点预约无法使用"),
    "wealth": ("理财产品收益与宣传不符", "基金赎回到账慢"),
}
CATEGORY_WEIGHTS = {"benefit": 30, "card": 25, "app": 20, "branch": 15, "wealth": 10}
KINDS = (("complaint", 50), ("inquiry", 35), ("request", 15))
CHANNELS = (("phone_hotline", 45), ("app", 25), ("wechat", 12), ("branch", 13), ("regulator", 5))
LIVE_DAYS = 2


@dataclass(frozen=True)
class DeskYear:
    imported: int
    rejected: int
    live: int
    open_now: int
    escalated: int
    no_holiday_data: int  # open tickets whose clocks need a year the calendar does not have

    def line(self) -> str:
        return (
            f"service desk: {self.imported:,} past tickets imported ({self.rejected} lines rejected); "
            f"{self.live} complaints and inquiries of the last {LIVE_DAYS} days opened live, "
            f"{self.open_now} tickets open, {self.escalated} escalations"
            + (
                f"; {self.no_holiday_data} open tickets need the next year's holidays "
                "(OMNIBANK_HOLIDAYS_FILE, see docs/service.md)"
                if self.no_holiday_data
                else ""
            )
        )


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...] | dict[str, int]) -> str:
    items = list(weighted.items()) if isinstance(weighted, dict) else list(weighted)
    return rng.choices([k for k, _ in items], weights=[w for _, w in items])[0]


def _customer_id(n: int, customers: int) -> str:
    return f"C{n:0{max(6, len(str(customers)))}d}"


def _working_moment(rng: random.Random, day: date, tz: object) -> datetime:
    minute = rng.randrange(8 * 60, 20 * 60)
    return datetime.combine(day, time(minute // 60, minute % 60), tz)  # type: ignore[arg-type]


def history_lines(
    *, seed: int, cal: Calendar, customers: int, agents: list[str], benefits: list[str]
) -> list[dict[str, object]]:
    """The year's past tickets (received before the live days), as ticket-history lines."""
    rng = random.Random(f"{seed}:desk")
    tz = cal.tz
    last_past = cal.last - timedelta(days=LIVE_DAYS)
    days = (last_past - cal.first).days + 1
    n = max(20, round(customers * TICKETS_PER_CUSTOMER * days / 365))
    spike = {cal.launch + timedelta(days=d) for d in range(7)}
    received: list[tuple[date, str]] = []
    while len(received) < n:
        day = cal.first + timedelta(days=rng.randrange(days))
        category = _pick(rng, CATEGORY_WEIGHTS)
        if category != "benefit" and day in spike and rng.random() < 0.5:
            category = "benefit"  # the week after a benefit campaign goes live
        received.append((day, category))
    received.sort()
    end = cal.end
    lines: list[dict[str, object]] = []
    for i, (day, category) in enumerate(received):
        ticket = f"HIS-{day:%y%m}-{i + 1:05d}"
        kind = _pick(rng, KINDS)
        at = _working_moment(rng, day, tz)
        opened: dict[str, object] = {
            "ticket": ticket, "action": "opened", "at": at.isoformat(), "kind": kind, "category": category,
            "customer_id": _customer_id(rng.randrange(1, customers + 1), customers),
            "channel": _pick(rng, CHANNELS), "subject": rng.choice(SUBJECTS[category]),
            "priority": "high" if rng.random() < 0.1 else "normal",
        }  # fmt: skip
        if category == "benefit" and benefits and rng.random() < 0.7:
            opened["benefit_id"] = rng.choice(benefits)
        lines.append(opened)
        agent = rng.choice(agents)

        def step(
            action: str, after: timedelta, ticket: str = ticket, agent: str = agent, **fields: object
        ) -> bool:
            nonlocal at
            at = at + after
            if at >= end:
                return False
            lines.append({"ticket": ticket, "action": action, "at": at.isoformat(), "by": agent, **fields})
            return True

        if not step("assigned", timedelta(minutes=rng.randrange(5, 90)), staff_id=agent):
            continue
        if not step("responded", timedelta(minutes=rng.randrange(10, 8 * 60)), note="已联系客户, 正在核实"):
            continue
        if not step("in_progress", timedelta(minutes=5)):
            continue
        if rng.random() < 0.25:
            waiting = "waiting_supplier" if category == "benefit" else "waiting_customer"
            if not step(waiting, timedelta(hours=rng.randrange(2, 30))):
                continue
            if not step("in_progress", timedelta(hours=rng.randrange(12, 72))):
                continue
        late = rng.random() < 0.06  # the few that take too long
        days_to_resolve = (
            rng.uniform(16, 25) if late else rng.gammavariate(2.0, 1.5 if kind != "complaint" else 2.5)
        )
        if not step("resolved", timedelta(days=days_to_resolve), note="已处理完毕, 客户认可"):
            continue
        step("closed", timedelta(days=rng.uniform(0.5, 3)))
    return lines


def live_complaints(*, seed: int, cal: Calendar, customers: int) -> list[dict[str, object]]:
    """Complaints and inquiries of the last days, as ``complaint.filed`` and ``service.request`` events."""
    rng = random.Random(f"{seed}:desk-live")
    events: list[dict[str, object]] = []
    for i in range(max(8, customers // 1_000)):
        day = cal.last - timedelta(days=rng.randrange(LIVE_DAYS))
        category = _pick(rng, CATEGORY_WEIGHTS)
        inquiry = rng.random() < 0.4  # a question by the hotline: answered within 4 business hours, or late
        events.append({
            "event_id": f"{'inquiry' if inquiry else 'complaint'}-{day:%Y%m%d}-{i + 1:04d}",
            "type": "service.request" if inquiry else "complaint.filed", "kind": "inquiry",
            "customer_id": _customer_id(rng.randrange(1, customers + 1), customers),
            "ts": _working_moment(rng, day, cal.tz).isoformat(), "channel": rng.choice(("app", "wechat")),
            "category": category, "subject": rng.choice(SUBJECTS[category]),
            "via": _pick(rng, (("phone_hotline", 60), ("app", 30), ("regulator", 10))),
        })  # fmt: skip
    return events


def run_desk(settings: Settings, *, cal: Calendar, seed: int, customers: int, folder: Path) -> DeskYear:
    """Import the year's past tickets, file the last days' complaints as events and run the desk's pass."""
    from omnibank.benefits.models import Benefit
    from omnibank.db import unit_of_work
    from omnibank.ingest.service import load_file
    from omnibank.kit.loading import LoadRun
    from omnibank.orgs.models import Staff
    from omnibank.security import get_cipher
    from omnibank.service import intake, jobs, tickets
    from omnibank.service.models import OPEN_STATUSES, Ticket, TicketEscalation

    with unit_of_work(settings) as session:
        agents = list(
            session.scalars(
                select(Staff.staff_id).where(Staff.role == "service_agent").order_by(Staff.staff_id)
            )
        )
        benefits = list(
            session.scalars(select(Benefit.id).where(Benefit.supplier_id.is_not(None)).order_by(Benefit.id))
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tickets.jsonl"
    lines = history_lines(
        seed=seed, cal=cal, customers=customers, agents=agents or ["E00001"], benefits=benefits
    )
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    with LoadRun(settings.loads_dir, "tickets", path) as run:
        with unit_of_work(settings) as session:
            desk = tickets.desk_of(session, settings)
            report = intake.import_history(session, desk, get_cipher(settings), path, run, now=cal.end)
        run.finish()
    events = live_complaints(seed=seed, cal=cal, customers=customers)
    with unit_of_work(settings) as session:  # ces_service answers to some resolved tickets (issue 17)
        events += service_responses(resolved_tickets(session), seed=seed, cal=cal)
    feed = folder / "complaints.jsonl"
    feed.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    load_file("events", feed, settings=settings, progress=False)
    counts = jobs.desk_pass(settings, cal.end)
    with unit_of_work(settings) as session:
        open_now = session.query(Ticket).filter(Ticket.status.in_(OPEN_STATUSES)).count()
        escalated = session.query(TicketEscalation).count()
        waiting = (
            session.query(Ticket)
            .filter(Ticket.status.in_(OPEN_STATUSES), Ticket.sla_error.is_not(None))
            .count()
        )
    return DeskYear(
        report.tickets, run.report.rejected, counts.get("opened", 0), open_now, escalated, waiting
    )
