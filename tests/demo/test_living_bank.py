"""Given a fresh data home, when `omnibank demo` runs, then the bank has lived its year through the product's
own services: live campaigns with grants, coupons claimed, redeemed and expired, budgets used, points on the
ledger, journeys whose sends carry receipts, leads in several statuses and escalated, suppliers graded
apart; and the same seed gives the same bank (on the demo's own clock, whatever the hour)."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from omnibank import config, db
from omnibank.benefits import ledger
from omnibank.benefits.models import Budget, Coupon, CouponEvent, PointsPosting
from omnibank.campaigns.models import CampaignGrant
from omnibank.contact.models import ContactMessage
from omnibank.db import unit_of_work
from omnibank.db.base import Base
from omnibank.demo import summary
from omnibank.events.log import EventLog
from omnibank.kit.console import out
from omnibank.leads.models import Lead
from omnibank.models import import_all_models
from omnibank.security import reset_ciphers
from omnibank.segments.duck import close_shared_engines
from omnibank.service.models import Ticket

LAST = date(2026, 5, 30)  # the last of 150 days from 2026-01-01
CAMPAIGNS = ("luckin2026", "red_friday_2026", "video_9yuan_2026")


@pytest.fixture(autouse=True)
def pipe_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared console as a pipe sees it: tables at their natural width, whatever an earlier test set."""
    monkeypatch.setattr(out, "_width", None)


def _row(stdout: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{stdout}")


def _number(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_the_demo_leaves_a_bank_that_has_lived_its_year(cli, env) -> None:
    res = cli("demo", "--customers", "1000", "--days", "150")
    assert res.exit_code == 0, res.stderr
    assert "try:" in res.stdout

    # campaigns started live, with the year's events applied and grants made
    listing = cli("campaign", "list")
    for campaign in CAMPAIGNS:
        cells = _row(listing.stdout, campaign)
        numbers = [_number(c) for c in cells if re.fullmatch(r"[\d,]+", c)]
        assert "active" in cells and len(numbers) == 2 and min(numbers) > 0  # events applied, grants

    with unit_of_work(env.settings) as session:
        # budgets: set per campaign and per rule, each used
        budgets = list(session.scalars(select(Budget).order_by(Budget.id)))
        assert len(budgets) == 4
        assert all(b.count_used > 0 and b.money_used_fen > 0 for b in budgets)
        # coupons: issued, then claimed, redeemed, left to expire by the sweep
        statuses = dict(session.execute(select(Coupon.status, func.count()).group_by(Coupon.status)).all())
        # (a claimed coupon is "claimed" until it takes effect, "active" from then on)
        assert {"granted", "redeemed", "expired"} <= set(statuses), statuses
        held = statuses.get("claimed", 0) + statuses.get("active", 0)
        assert held > 0, statuses
        issued = session.scalar(
            select(func.count()).select_from(CampaignGrant).where(CampaignGrant.ledger == "issued")
        )
        assert sum(statuses.values()) == issued
        claims = session.scalar(
            select(func.count()).select_from(CouponEvent).where(CouponEvent.action == "claim")
        )
        assert claims == held + statuses["redeemed"] + session.scalar(
            select(func.count())
            .select_from(CouponEvent)
            .where(CouponEvent.action == "expire", CouponEvent.from_status.in_(("claimed", "active")))
        )
        # points: earned, spent and corrected on the ledger, every balance equal to its postings
        kinds = dict(
            session.execute(select(PointsPosting.kind, func.count()).group_by(PointsPosting.kind)).all()
        )
        assert kinds.get("earn", 0) > 0 and kinds.get("redeem", 0) > 0, kinds
        checked, differences = ledger.verify_points(session)
        assert checked > 0 and differences == []
        # the outbox: messages delivered (receipts recorded, clicks among them), some deferred by quiet hours
        outbox = dict(
            session.execute(select(ContactMessage.status, func.count()).group_by(ContactMessage.status)).all()
        )
        assert (
            outbox.get("delivered", 0) > 0 and outbox.get("clicked", 0) > 0 and outbox.get("deferred", 0) > 0
        )
        receipts = session.scalar(
            select(func.count()).select_from(ContactMessage).where(ContactMessage.delivered_at.is_not(None))
        )
        assert receipts == outbox["delivered"] + outbox["clicked"]
        # leads: followed up into several statuses, the overdue ones escalated to a branch manager
        leads = dict(session.execute(select(Lead.status, func.count()).group_by(Lead.status)).all())
        assert set(leads) == {"new", "contacted", "won", "lost"}, leads
        escalated = session.scalar(
            select(func.count()).select_from(Lead).where(Lead.escalated_to.is_not(None))
        )
        assert escalated and escalated > 0
        state = summary.read(session, env.settings, last=LAST)

    # the receipts reached the event log, where journeys wait for them
    con = EventLog(env.settings).connect()
    try:
        scan = EventLog(env.settings).scan_sql()
        logged = con.execute(f"SELECT count(*) FROM {scan} WHERE type = 'message.delivered'").fetchone()
    finally:
        con.close()
    assert logged is not None and logged[0] == receipts

    # what the commands of the "try:" list show
    assert state.points_customer is not None
    balance = cli("points", "balance", state.points_customer)
    points = re.search(rf"{state.points_customer}: ([\d,]+) points", balance.stdout)
    assert points and _number(points.group(1)) > 0
    assert f"omnibank points balance {state.points_customer}" in res.stdout
    grades = {line.supplier_id: line.grade for line in state.scorecard}
    assert set(grades) == {"luckin", "quanyi"} and len(set(grades.values())) == 2, grades
    card = cli("suppliers", "scorecard", "--as-of", str(LAST))
    for supplier, grade in grades.items():
        assert grade in _row(card.stdout, supplier), card.stdout
    assert state.manager is not None
    queue = cli("leads", "list", "--staff", state.manager)
    assert queue.exit_code == 0 and f"escalated→{state.manager}" in queue.stdout
    outbox_view = cli("contact", "outbox")
    assert outbox_view.exit_code == 0 and "delivered" in outbox_view.stdout


def _fresh_store(env, monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Point the run at a new data home and an empty store (PostgreSQL: the same database, emptied)."""
    close_shared_engines()
    db.dispose_engines()
    monkeypatch.setenv("OMNIBANK_HOME", str(home))
    config.reset_settings()
    reset_ciphers()
    if env.database_url:
        db.upgrade()
        import_all_models()
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with db.get_engine().begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def _fingerprint(env, last: date) -> dict[str, object]:
    """Every figure of the bank, and a digest of each ledger's rows (keys, statuses, amounts)."""
    with unit_of_work(env.settings) as session:
        figures: dict[str, object] = dict(summary.read(session, env.settings, last=last).counts())
        tables = {
            "coupons": select(Coupon.grant_key, Coupon.status, Coupon.status_at).order_by(Coupon.grant_key),
            "grants": select(CampaignGrant.key, CampaignGrant.ledger).order_by(CampaignGrant.key),
            "postings": select(PointsPosting.idempotency_key, PointsPosting.amount).order_by(
                PointsPosting.idempotency_key
            ),
            "messages": select(
                ContactMessage.key, ContactMessage.status, ContactMessage.scheduled_for
            ).order_by(ContactMessage.key),
            "leads": select(Lead.lead_id, Lead.status, Lead.escalated_to).order_by(Lead.lead_id),
            "tickets": select(
                Ticket.ticket_id, Ticket.status, Ticket.owner_staff_id, Ticket.sla_due_at
            ).order_by(Ticket.ticket_id),
        }
        for name, query in tables.items():
            rows = repr([tuple(r) for r in session.execute(query)]).encode()
            figures[name] = hashlib.sha256(rows).hexdigest()
    return figures


@pytest.mark.embedded_only  # the demo on PostgreSQL: test_the_demo_leaves_a_bank_that_has_lived_its_year
def test_the_same_seed_gives_the_same_bank(cli, env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cli("demo", "--customers", "400", "--days", "100", "--seed", "7")
    assert first.exit_code == 0, first.stderr
    one = _fingerprint(env, date(2026, 12, 31))
    _fresh_store(env, monkeypatch, tmp_path / "again")
    second = cli("demo", "--customers", "400", "--days", "100", "--seed", "7")
    assert second.exit_code == 0, second.stderr
    assert _fingerprint(env, date(2026, 12, 31)) == one
    assert isinstance(one["coupons.redeemed"], int) and one["coupons.redeemed"] > 0
