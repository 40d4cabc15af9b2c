"""Funnels of the journeys' sends (X5) against hand-computed figures: outbox rows and journey entries in
the real store, five customers in three branches."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from omnibank.config import get_settings
from omnibank.contact.models import ContactMessage
from omnibank.customers.repository import Scope
from omnibank.cx.funnel import COLUMNS, FunnelRow, funnel, rate
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused, NotFound
from omnibank.ingest.service import load_file
from omnibank.journeys.models import Journey, JourneyEntry
from omnibank.leads.repository import Viewer
from tests.factories import ORGS, STAFF, customer_row, customers_csv

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=TZ)
BRANCH = {"C01": "S0101", "C02": "S0101", "C03": "S0102", "C04": "S0201", "C05": "S0201"}


def _load_bank(tmp: Path) -> None:
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    rows = [
        customer_row(cid, phone=f"1380000{i:04d}", branch_id=BRANCH[cid], rm_id="")
        for i, cid in enumerate(sorted(BRANCH))
    ]
    customers_csv(tmp / "customers.csv", rows)
    settings = get_settings()
    for kind in ("orgs", "staff", "customers"):
        assert load_file(kind, tmp / f"{kind}.csv", settings=settings, progress=False).rejected == 0


def _journey(session: Session, jid: str) -> None:
    session.add(Journey(id=jid, name=jid, definition="{}", status="active", started_at=T0, updated_at=T0))


def _entry(
    session: Session,
    jid: str,
    cid: str,
    *,
    no: int = 1,
    entered: datetime = T0 - timedelta(hours=1),
    converted: datetime | None = None,
    control: bool = False,
) -> None:
    session.add(
        JourneyEntry(
            journey=jid, customer_id=cid, entry_no=no, status="converted" if converted else "active",
            step=None, control=control, state="{}", next_due_at=None, entered_at=entered,
            converted_at=converted, updated_at=T0,
        )
    )  # fmt: skip


def _message(
    session: Session,
    key: str,
    jid: str,
    step: str,
    cid: str,
    channel: str,
    status: str,
    *,
    at: datetime = T0,
    reason: str | None = None,
    delivered: bool = False,
    clicked: bool = False,
    failed: bool = False,
) -> None:
    went = status in ("sent", "delivered", "failed", "clicked")
    session.add(
        ContactMessage(
            key=key, customer_id=cid, channel=channel, purpose="marketing", journey=jid, step=step,
            template="t", payload="{}", status=status, reason=reason, asked_at=at, submitted_at=at,
            scheduled_for=at, decided_at=at, sent_at=at if went else None,
            delivered_at=at + timedelta(minutes=1) if delivered else None,
            clicked_at=at + timedelta(minutes=5) if clicked else None,
            failed_at=at + timedelta(minutes=1) if failed else None,
            attempts=1 if went else 0, events_pending=False, updated_at=at,
        )
    )  # fmt: skip


@pytest.fixture
def bank(env: Any, tmp_path: Path) -> None:
    _load_bank(tmp_path)
    later = T0 + timedelta(days=2)
    with unit_of_work(get_settings()) as s:
        _journey(s, "welcome")
        _journey(s, "winback")
        _journey(s, "quiet")  # started, nothing sent yet
        s.flush()
        # welcome: C01 converts a day after step s1's send (and before s2's); C02 does not, but re-enters
        # after the send and converts then (not the send's doing); C03 converted before its send; C05 is
        # in the control group
        _entry(s, "welcome", "C01", converted=T0 + timedelta(days=1))
        _entry(s, "welcome", "C02")
        _entry(s, "welcome", "C02", no=2, entered=T0 + timedelta(hours=3), converted=T0 + timedelta(hours=5))
        _entry(s, "welcome", "C03", converted=T0 - timedelta(minutes=30))
        _entry(s, "welcome", "C04")
        _entry(s, "welcome", "C05", control=True, converted=T0 + timedelta(days=1))
        _message(s, "w1", "welcome", "s1", "C01", "sms", "clicked", delivered=True, clicked=True)
        _message(s, "w2", "welcome", "s1", "C02", "sms", "delivered", delivered=True)
        _message(s, "w3", "welcome", "s1", "C03", "app_push", "failed", failed=True)
        _message(s, "w4", "welcome", "s1", "C04", "sms", "suppressed", reason="dnd")
        _message(s, "w5", "welcome", "s1", "C01", "wechat", "deferred", reason="quiet_hours")
        _message(s, "w6", "welcome", "s2", "C01", "sms", "delivered", at=later, delivered=True)
        _message(s, "w7", "welcome", "s2", "C04", "app_push", "queued", at=later)
        # winback: nothing went out
        _entry(s, "winback", "C04")
        _message(s, "b1", "winback", "nudge", "C04", "sms", "suppressed", reason="caps")
        _message(s, "b2", "winback", "nudge", "C05", "sms", "suppressed", reason="caps")
        _message(s, "b3", "winback", "nudge", "C02", "sms", "suppressed", reason="dnd")
        # a send outside any journey is no funnel's
        s.add(
            ContactMessage(
                key="x1", customer_id="C01", channel="sms", purpose="service", journey=None, step=None,
                payload="{}", status="delivered", asked_at=T0, submitted_at=T0, scheduled_for=T0,
                decided_at=T0, sent_at=T0, delivered_at=T0, attempts=1, updated_at=T0,
            )
        )  # fmt: skip


def _rows(**kw: Any) -> list[FunnelRow]:
    with unit_of_work(get_settings()) as s:
        return funnel(s, **kw)


def _key(r: FunnelRow) -> tuple[str, str, str | None]:
    return (r.journey, r.step, r.channel or r.branch)


def test_rate_rounds_to_a_tenth_of_a_percent_and_is_none_without_a_denominator() -> None:
    assert rate(2, 3) == Decimal("0.667")
    assert rate(1, 3) == Decimal("0.333")
    assert rate(1, 8) == Decimal("0.125")
    assert rate(1, 16) == Decimal("0.063")  # 0.0625 rounds half up
    assert rate(0, 5) == Decimal("0.000")
    assert rate(0, 0) is None


def test_funnel_per_step(bank: None) -> None:
    rows = _rows()
    assert [(r.journey, r.step) for r in rows] == [("welcome", "s1"), ("welcome", "s2"), ("winback", "nudge")]
    s1, s2, nudge = (r.as_dict() for r in rows)
    assert list(s1) == list(COLUMNS)
    assert s1 == {
        "journey": "welcome", "step": "s1", "channel": None, "branch": None,
        "sent": 3, "delivered": 2, "reach_rate": Decimal("0.667"),
        "clicked": 1, "click_rate": Decimal("0.500"),
        "converted": 1, "conversion_rate": Decimal("0.333"), "failed": 1, "queued": 0,
        "deferred": 1, "deferred_by": "quiet_hours 1", "suppressed": 1, "suppressed_by": "dnd 1",
    }  # fmt: skip
    # C01 converted before s2 was sent: not s2's conversion
    assert (s2["sent"], s2["delivered"], s2["reach_rate"], s2["clicked"], s2["click_rate"]) == (
        1, 1, Decimal("1.000"), 0, Decimal("0.000"),
    )  # fmt: skip
    assert (s2["converted"], s2["conversion_rate"], s2["queued"]) == (0, Decimal("0.000"), 1)
    # nothing sent: no rates, the suppressions by reason (most first)
    assert (nudge["sent"], nudge["delivered"], nudge["converted"]) == (0, 0, 0)
    assert nudge["reach_rate"] is None and nudge["click_rate"] is None and nudge["conversion_rate"] is None
    assert (nudge["suppressed"], nudge["suppressed_by"]) == (3, "caps 2, dnd 1")


def test_funnel_of_one_journey_by_channel(bank: None) -> None:
    rows = {_key(r): r for r in _rows(journey="welcome", by="channel")}
    assert set(rows) == {
        ("welcome", "s1", "sms"), ("welcome", "s1", "app_push"), ("welcome", "s1", "wechat"),
        ("welcome", "s2", "sms"), ("welcome", "s2", "app_push"),
    }  # fmt: skip
    sms = rows[("welcome", "s1", "sms")]
    assert (sms.sent, sms.delivered, sms.clicked, sms.converted) == (2, 2, 1, 1)
    assert (sms.reach_rate, sms.click_rate, sms.conversion_rate) == (
        Decimal("1.000"),
        Decimal("0.500"),
        Decimal("0.500"),
    )
    assert sms.suppressed == {"dnd": 1} and not sms.deferred
    push = rows[("welcome", "s1", "app_push")]
    assert (push.sent, push.delivered, push.failed, push.converted) == (1, 0, 1, 0)  # C03 converted before
    assert (push.reach_rate, push.click_rate) == (Decimal("0.000"), None)
    wechat = rows[("welcome", "s1", "wechat")]
    assert (wechat.sent, wechat.deferred, wechat.conversion_rate) == (0, {"quiet_hours": 1}, None)


def test_funnel_by_home_branch(bank: None) -> None:
    rows = {_key(r): r for r in _rows(journey="welcome", by="branch")}
    s0101 = rows[("welcome", "s1", "S0101")]
    assert (s0101.sent, s0101.delivered, s0101.clicked, s0101.converted, s0101.conversion_rate) == (
        2, 2, 1, 1, Decimal("0.500"),
    )  # fmt: skip
    assert s0101.deferred == {"quiet_hours": 1}  # C01's wechat send, deferred
    s0102 = rows[("welcome", "s1", "S0102")]
    assert (s0102.sent, s0102.failed, s0102.reach_rate) == (1, 1, Decimal("0.000"))
    s0201 = rows[("welcome", "s1", "S0201")]
    assert (s0201.sent, s0201.suppressed, s0201.reach_rate) == (0, {"dnd": 1}, None)
    assert rows[("welcome", "s2", "S0201")].queued == 1


@pytest.mark.parametrize("by", ["channel", "branch"])
def test_groups_add_up_to_the_step(bank: None, by: str) -> None:
    whole = {(r.journey, r.step): r.as_dict() for r in _rows()}
    summed: dict[tuple[str, str], dict[str, int]] = {}
    for r in _rows(by=by):
        d = r.as_dict()
        acc = summed.setdefault((r.journey, r.step), {})
        for k in ("sent", "delivered", "clicked", "converted", "failed", "queued", "deferred", "suppressed"):
            acc[k] = acc.get(k, 0) + d[k]
    assert summed == {k: {c: v[c] for c in summed[k]} for k, v in whole.items()}


def test_scoped_to_what_the_viewer_sees(bank: None) -> None:
    # a scope of S0101's subtree: C01 and C02 only
    sees = Viewer(scope=Scope(frozenset({"S0101", "T010101"}), root="S0101"))
    s1 = _rows(journey="welcome", viewer=sees)[0]
    assert (s1.step, s1.sent, s1.delivered, s1.converted, s1.failed) == ("s1", 2, 2, 1, 0)
    assert not s1.suppressed
    # the branch manager of B001 sees its subtree: C01, C02, C03
    manager = {r.step: r for r in _rows(journey="welcome", viewer=Viewer(staff_id="E00003"))}
    assert (manager["s1"].sent, manager["s1"].failed) == (3, 1)
    assert not manager["s1"].suppressed  # C04's, in B002
    assert "s2" in manager and manager["s2"].queued == 0
    assert _rows(viewer=Viewer(scope=Scope.nothing())) == []
    with pytest.raises(NotFound, match="E99999"):
        _rows(viewer=Viewer(staff_id="E99999"))


def test_refusals(bank: None) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        _rows(journey="nope")
    with pytest.raises(InputRefused, match="segment"):
        _rows(by="segment")
    assert _rows(journey="quiet") == []
