"""Properties over random streams of triggers (hypothesis), several marketing and service journeys run
together through the one contact policy: no customer ever exceeds a cap, no marketing reaches a customer
without consent, nothing is sent in quiet hours (bank-local), do-not-disturb stops service too."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnibank.config import Settings
from omnibank.contact.policy import PolicyConfig, quiet_until
from omnibank.journeys.machine import JourneyEvent
from omnibank.journeys.simulate import Simulator
from omnibank.journeys.spec import Compiled, parse_journey
from omnibank.segments.facts import Profile

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 2, 0, 0, tzinfo=TZ)  # a Monday
CONSENT = {"A": True, "B": True, "C": False, "D": True}
DND = {"D"}  # under do-not-disturb for every channel

JOURNEYS = [
    """
id: login_push
name: 登录推送
trigger: {event: app.login}
reentry: 1h
steps:
  - {id: push, send: {channel: app_push, template: 欢迎回来}}
  - {id: wait, wait: 2h}
  - {id: sms, send: {channel: sms, template: 理财推荐}}
""",
    """
id: view_route
name: 浏览后多渠道
trigger: {event: app.product_view, where: duration_s >= 30}
reentry: 4h
steps:
  - id: routed
    send: {route: {fallback: [wechat, sms, ai_call]}, template: 产品推荐, until: clicked, fallback_after: 3h}
""",
    """
id: card_service
name: 卡片服务通知
purpose: service
trigger: {event: card.issued}
reentry: 1h
steps:
  - {id: notice, send: {channel: sms, template: 您的卡片已寄出}}
""",
]
COMPILED = [Compiled(parse_journey(text)) for text in JOURNEYS]


def profiles() -> dict[str, Profile]:
    out = {}
    for cid, consent in CONSENT.items():
        attributes: dict[str, Any] = {
            "customer_id": cid, "gender": "F", "birth_date": date(1970, 1, 1), "branch_id": "S0101",
            "rm_id": "E00001", "aum": 0, "occupation": "employee", "risk_tolerance": "C3",
            "channel_pref": "wechat", "marketing_consent": consent, "registered_at": date(2015, 1, 1),
        }  # fmt: skip
        out[cid] = Profile(attributes, frozenset(), "/HQ/B001/S0101/", "S0101", "E00001")
    return out


@st.composite
def streams(draw: st.DrawFn) -> list[JourneyEvent]:
    n = draw(st.integers(1, 60))
    events = []
    for i in range(n):
        cid = draw(st.sampled_from(sorted(CONSENT)))
        at = START + timedelta(minutes=draw(st.integers(0, 60 * 24 * 20)))
        kind = draw(st.sampled_from(["app.login", "app.product_view", "card.issued"]))
        fields: dict[str, Any] = {"local_date": at.date()}
        if kind == "app.product_view":
            fields.update(product_id="WM2026A01", duration_s=float(draw(st.integers(0, 120))))
        events.append(JourneyEvent(f"e{i}", kind, cid, at, fields))
    return sorted(events, key=lambda e: (e.ts, e.event_id))


def simulate(events: list[JourneyEvent]) -> list[dict[str, Any]]:
    buf = io.BytesIO()
    sim = Simulator(COMPILED, Settings(), profiles(), dnd=lambda cid, _ch, _at: cid in DND, out=buf)
    sim.run_stream(iter(events))
    return [json.loads(line) for line in buf.getvalue().splitlines()]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_caps_consent_quiet_hours_and_dnd_hold(events: list[JourneyEvent]) -> None:
    actions = simulate(events)
    config = PolicyConfig()
    sent = [a for a in actions if a["action"] == "send"]
    day: Counter[tuple[str, str, date]] = Counter()
    week: Counter[tuple[str, int, int]] = Counter()
    for a in sent:
        t = datetime.fromisoformat(a["time"]).astimezone(TZ)
        assert quiet_until(t, config) is None, a  # never inside 21:00–08:00 bank-local
        assert a["customer_id"] not in DND, a  # do-not-disturb: service included
        if a["purpose"] == "marketing":
            assert CONSENT[a["customer_id"]], a  # no marketing without consent
            day[(a["customer_id"], a["channel"], t.date())] += 1
            iso = t.isocalendar()
            week[(a["customer_id"], iso.year, iso.week)] += 1
    assert max(day.values(), default=0) <= 1
    assert max(week.values(), default=0) <= 3
    # every deferral is decided again at the end of the quiet hours
    deferred = [a for a in actions if a["action"] == "defer"]
    for d in deferred:
        assert datetime.fromisoformat(d["until"]).astimezone(TZ).hour == 8


def test_the_same_stream_gives_the_same_actions() -> None:
    events = [
        JourneyEvent(
            f"e{i}", "app.login", "AB"[i % 2], START + timedelta(hours=7 * i), {"local_date": START.date()}
        )
        for i in range(30)
    ]
    assert simulate(events) == simulate(events)
    assert any(a["action"] == "defer" for a in simulate(events))
