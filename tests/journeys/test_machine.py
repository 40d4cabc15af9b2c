"""The pure step machine: waits, waits for events with a timeout, branches, splits, fallback chains of a
send by route, conversions; the same inputs give the same actions."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from omnibank.contact.routing import Route
from omnibank.journeys.machine import (
    EntryState,
    JourneyEvent,
    Outcome,
    decided,
    enter,
    may_enter,
    on_event,
    run,
)
from omnibank.journeys.spec import Compiled, parse_journey
from omnibank.segments.expr import Expression

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)


class Facts:
    """Branch conditions answered by a set of customers who match; routes by a fixed chain."""

    def __init__(self, matching: set[str] = frozenset(), chain: tuple[str, ...] = ("app_push", "sms")):  # type: ignore[assignment]
        self.matching, self.chain = matching, chain

    def matches(self, expression: Expression, customer_id: str, at: datetime) -> bool:
        return customer_id in self.matching

    def route(self, route: Route, customer_id: str, at: datetime) -> tuple[str, ...]:
        return self.chain


def journey(steps: str, extra: str = "") -> Compiled:
    return Compiled(
        parse_journey(f"id: j\nname: 测试\ntrigger: {{event: app.login}}\n{extra}steps:\n{steps}")
    )


def drive(
    c: Compiled, state: EntryState, now: datetime, facts: Facts, answer: str = "send"
) -> tuple[list, EntryState]:
    """run() until it blocks, answering every send with ``answer``."""
    out = []
    while True:
        actions, state = run(c, state, now, facts)
        out += actions
        if state.awaiting != "decision":
            return out, state
        state = decided(c, state, Outcome(answer, None if answer == "send" else "no_consent", actions[-1].at))


def test_wait_then_send_at_the_logical_time() -> None:
    c = journey("  - {id: w, wait: 2d}\n  - {id: s, send: {channel: sms, template: t}}\n")
    actions, state = enter(c, "C1", 1, T0)
    acts, state = drive(c, state, T0, Facts())
    assert acts == [] and state.due == T0 + timedelta(days=2)
    acts, state = drive(c, state, T0 + timedelta(days=3), Facts())  # the worker looks a day late
    assert [(a.kind, a.at) for a in acts] == [
        ("send", T0 + timedelta(days=2)),
        ("exit", T0 + timedelta(days=2)),
    ]
    assert state.status == "done"


def test_wait_for_takes_the_event_or_times_out() -> None:
    c = journey(
        "  - {id: w, wait_for: {event: lead.contacted, timeout: 2d, on_event: end, on_timeout: s}}\n"
        "  - {id: s, send: {channel: sms, template: t}}\n"
    )
    _, state = enter(c, "C1", 1, T0)
    _, state = drive(c, state, T0, Facts())
    ev = JourneyEvent("e1", "lead.contacted", "C1", T0 + timedelta(days=1), {})
    _, moved = on_event(c, state, ev)
    acts, moved = drive(c, moved, T0 + timedelta(days=1), Facts())
    assert moved.status == "done" and [a.kind for a in acts] == ["exit"]
    late = JourneyEvent("e2", "lead.contacted", "C1", T0 + timedelta(days=3), {})
    _, same = on_event(c, state, late)
    acts, same = drive(c, same, T0 + timedelta(days=3), Facts())
    assert [a.kind for a in acts] == ["send", "exit"]  # timed out at 2 days: the event came too late


def test_branch_and_split() -> None:
    c = journey(
        "  - {id: b, branch: {if: 'age >= 60', then: old, else: ab}}\n"
        "  - {id: old, tag: {add: [silver]}, next: end}\n"
        "  - id: ab\n    split:\n      variants:\n"
        "        - {name: a, weight: 1, next: ta}\n        - {name: b, weight: 1, next: tb}\n"
        "  - {id: ta, tag: {add: [got_a]}, next: end}\n"
        "  - {id: tb, tag: {add: [got_b]}}\n"
    )
    facts = Facts(matching={"OLD"})
    _, s = enter(c, "OLD", 1, T0)
    acts, _ = drive(c, s, T0, facts)
    assert [a.detail.get("add") for a in acts if a.kind == "tag"] == [["silver"]]
    variants = {}
    for i in range(200):
        _, s = enter(c, f"C{i}", 1, T0)
        acts, s = drive(c, s, T0, facts)
        variants[f"C{i}"] = s.variant
        assert [a.detail["add"] for a in acts if a.kind == "tag"] == [[f"got_{s.variant}"]]
    assert 70 <= sum(v == "a" for v in variants.values()) <= 130
    _, s = enter(c, "C7", 1, T0)
    assert drive(c, s, T0, facts)[1].variant == variants["C7"]  # deterministic


def test_route_falls_back_on_suppression_failure_and_silence() -> None:
    c = journey(
        "  - id: r\n    send: {route: {fallback: [app_push, sms, ai_call]}, template: t, until: delivered,"
        " fallback_after: 1d}\n",
        extra="purpose: marketing\n",
    )
    facts = Facts(chain=("app_push", "sms", "ai_call"))
    _, s = enter(c, "C1", 1, T0)
    actions, s = run(c, s, T0, facts)
    assert actions[-1].channel == "app_push"
    s = decided(c, s, Outcome("suppress", "no_consent", T0))  # refused: the next channel at once
    actions, s = run(c, s, T0, facts)
    assert actions[-1].channel == "sms"
    s = decided(c, s, Outcome("send", None, T0))
    assert s.awaiting == "receipt" and s.due == T0 + timedelta(days=1)
    failed = JourneyEvent(
        "m1", "message.failed", "C1", T0 + timedelta(hours=1), {"journey": "j", "step": "r"}
    )
    _, s = on_event(c, s, failed)
    actions, s = run(c, s, T0 + timedelta(hours=1), facts)
    assert actions[-1].channel == "ai_call"
    s = decided(c, s, Outcome("send", None, T0 + timedelta(hours=1)))
    assert s.awaiting is None  # the last channel: nothing to fall back to, no wait
    acts, s = run(c, s, T0 + timedelta(hours=1), facts)
    assert [a.kind for a in acts] == ["exit"] and s.status == "done"


def test_delivered_receipt_ends_the_wait_and_silence_moves_on() -> None:
    c = journey(
        "  - id: r\n    send: {route: {fallback: [app_push, sms]}, template: t, until: clicked,"
        " fallback_after: 4h}\n"
        "  - {id: x, tag: {add: [done]}}\n"
    )
    facts = Facts()
    _, s = enter(c, "C1", 1, T0)
    _, s = run(c, s, T0, facts)
    s = decided(c, s, Outcome("send", None, T0))
    delivered = JourneyEvent("m1", "message.delivered", "C1", T0, {"journey": "j", "step": "r"})
    _, same = on_event(c, s, delivered)
    assert same.awaiting == "receipt"  # delivered is not enough: it waits for a click
    clicked = JourneyEvent(
        "m2", "message.clicked", "C1", T0 + timedelta(hours=1), {"journey": "j", "step": "r"}
    )
    _, clicked_state = on_event(c, s, clicked)
    assert clicked_state.step == "x"
    acts, silent = run(c, s, T0 + timedelta(hours=5), facts)
    assert acts[-1].channel == "sms"  # no click within 4 hours: the next channel


def test_conversion_exits_and_is_counted_once() -> None:
    c = journey("  - {id: w, wait: 7d}\n  - {id: s, send: {channel: sms, template: t}}\n",
                extra="conversion: {event: card.transaction, within: 30d}\n")  # fmt: skip
    _, s = enter(c, "C1", 1, T0)
    _, s = run(c, s, T0, Facts())
    acts, s2 = on_event(c, s, JourneyEvent("t", "card.transaction", "C1", T0 + timedelta(days=1), {}))
    assert [a.kind for a in acts] == ["convert", "exit"] and s2.status == "converted"
    acts, _ = on_event(c, s2, JourneyEvent("t2", "card.transaction", "C1", T0 + timedelta(days=2), {}))
    assert acts == []
    assert run(c, s2, T0 + timedelta(days=8), Facts())[0] == []


def test_reentry_rules() -> None:
    never = journey("  - {id: s, send: {channel: sms, template: t}}\n")
    after = journey("  - {id: s, send: {channel: sms, template: t}}\n", extra="reentry: 30d\n")
    _, s = enter(after, "C1", 1, T0)
    assert not may_enter(after, s, T0 + timedelta(days=40))  # still running
    _, s = drive(after, s, T0, Facts())
    assert s.status == "done"
    assert not may_enter(after, s, T0 + timedelta(days=29))
    assert may_enter(after, s, T0 + timedelta(days=30))
    assert not may_enter(never, s, T0 + timedelta(days=3000))
    assert may_enter(never, None, T0)


def test_a_loop_without_a_wait_is_stopped() -> None:
    c = journey("  - {id: a, tag: {add: [x]}, next: b}\n  - {id: b, tag: {add: [y]}, next: a}\n")
    _, s = enter(c, "C1", 1, T0)
    acts, s = run(c, s, T0, Facts())
    assert s.status == "exited" and acts[-1].reason == "loop"


def test_state_round_trips_as_json() -> None:
    c = journey("  - {id: w, wait: 2d}\n")
    _, s = enter(c, "C1", 3, T0, {"product_id": "WM1"})
    _, s = run(c, s, T0, Facts())
    assert EntryState.load(s.dump()) == s
