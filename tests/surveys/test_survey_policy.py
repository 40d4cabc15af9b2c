"""Surveys under the one contact policy, pure: the order of the checks for purpose ``survey`` (no marketing
consent needed, a hold — an open complaint — then do-not-disturb, then fatigue, then quiet hours), a survey's
own gap, and a property over random streams: no customer is asked twice within the gap, by any survey."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from omnibank.contact.policy import MemoryCounters, PolicyConfig, Send, decide, plan

SH = ZoneInfo("Asia/Shanghai")
CFG = PolicyConfig(tz=SH)
MON = datetime(2026, 11, 30, 10, 0, tzinfo=SH)


def survey(key: str, when: datetime = MON, customer: str = "C01", gap: int | None = None) -> Send:
    return Send(key, customer, "sms", "survey", when, payload={"survey": "csat_branch"}, gap_days=gap)


def one(s: Send, **kw) -> tuple[str, str | None]:
    args = {"consent": False, "dnd": False, "counters": MemoryCounters(), **kw}
    d = decide(s, CFG, **args)
    return d.action, d.reason


def test_a_survey_needs_no_marketing_consent_and_takes_no_marketing_cap() -> None:
    counters = MemoryCounters()
    assert one(survey("a"), counters=counters) == ("send", None)
    assert counters.counts == {}


def test_an_open_complaint_holds_surveys_before_anything_else_but_reachability() -> None:
    assert one(survey("a"), held="open_complaint", dnd=True) == ("suppress", "open_complaint")
    assert one(survey("a"), held="open_complaint", reachable=False) == ("suppress", "unreachable")


def test_do_not_disturb_then_fatigue_then_quiet_hours() -> None:
    recent = MON - timedelta(days=29, hours=23)
    assert one(survey("a"), dnd=True, surveyed_at=recent) == ("suppress", "dnd")
    assert one(survey("a"), surveyed_at=recent) == ("suppress", "survey_fatigue")
    late = MON.replace(hour=22)
    assert one(survey("a", late), surveyed_at=late - timedelta(days=29)) == ("suppress", "survey_fatigue")
    action, _ = one(survey("a", late), surveyed_at=late - timedelta(days=30))
    assert action == "defer"  # 30 days on: no longer fatigued, but 22:00 is in the quiet hours


def test_a_surveys_own_gap_overrides_the_policys() -> None:
    ten_days = MON - timedelta(days=10)
    assert one(survey("a", gap=7), surveyed_at=ten_days) == ("send", None)
    assert one(survey("a", gap=14), surveyed_at=ten_days) == ("suppress", "survey_fatigue")
    assert one(survey("a"), surveyed_at=ten_days) == ("suppress", "survey_fatigue")


def test_marketing_and_service_ignore_survey_fatigue() -> None:
    s = Send("m", "C01", "sms", "service", MON)
    assert (
        decide(s, CFG, consent=False, dnd=False, counters=MemoryCounters(), surveyed_at=MON).action == "send"
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 90 * 24), st.sampled_from([None, 7, 30])),
        min_size=1,
        max_size=40,
    )
)
def test_no_customer_is_surveyed_twice_within_the_gap(raw: list[tuple[int, int, int | None]]) -> None:
    sends = sorted(
        (survey(f"k{i}", MON + timedelta(hours=h), f"C{c}", gap) for i, (c, h, gap) in enumerate(raw)),
        key=lambda s: s.at,
    )
    went: dict[str, list[Send]] = {}
    for s, d in plan(sends, CFG, consent=lambda s: False, dnd=lambda s: False, counters=MemoryCounters()):
        if d.action in ("send", "defer") and s.key not in {x.key for x in went.get(s.customer_id, [])}:
            went.setdefault(s.customer_id, []).append(s)
    for asked in went.values():
        for before, after in zip(asked, asked[1:], strict=False):
            gap = after.gap_days if after.gap_days is not None else CFG.survey_gap_days
            assert after.at - before.at >= timedelta(days=gap)
