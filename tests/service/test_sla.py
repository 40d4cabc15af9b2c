"""SLA clocks from a ticket's history: due times, pauses, rounds of next_update, reopening, escalation levels,
policies as data; and SLA state as a pure function of (history, policy, calendar, as_of)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnibank.errors import InputRefused
from omnibank.service.calendar import BusinessCalendar, NoHolidayData, YearDays
from omnibank.service.sla import (
    ACTIONS,
    DEFAULT_POLICY,
    LEVELS,
    PAUSING,
    STATUSES,
    TARGETS,
    Entry,
    TargetSpec,
    TargetState,
    evaluate,
    load_policy,
    parse_policy,
    sla_state,
)

TZ = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar(tz=TZ)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "service" / "sla.yaml"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def history(*lines: tuple[str, str]) -> list[Entry]:
    return [Entry(at(when), what) for when, what in lines]


# -------------------------------------------------------------------------------------------- policies


def test_defaults_complaints_in_15_calendar_days_inquiries_answered_in_4_business_hours() -> None:
    assert DEFAULT_POLICY.targets_for("complaint") == {"resolution": TargetSpec(calendar_days=15)}
    assert DEFAULT_POLICY.targets_for("inquiry") == {"first_response": TargetSpec(business_hours=4)}
    assert DEFAULT_POLICY.targets_for("request") == {}
    assert load_policy(None) is DEFAULT_POLICY


def test_the_most_specific_rule_wins_target_by_target() -> None:
    policy = load_policy(EXAMPLE)
    plain = policy.targets_for("complaint", "card", "normal")
    assert plain == {
        "first_response": TargetSpec(business_hours=4),
        "next_update": TargetSpec(business_hours=16),
        "resolution": TargetSpec(calendar_days=15),
    }
    urgent = policy.targets_for("complaint", "benefit", "urgent")
    assert urgent["first_response"] == TargetSpec(business_minutes=30)  # kind + category + priority
    assert urgent["next_update"] == TargetSpec(business_hours=4)
    assert urgent["resolution"] == TargetSpec(calendar_days=15)  # kept from the kind's rule
    assert policy.targets_for("complaint", "wealth")["resolution"] == TargetSpec(calendar_days=10)
    assert policy.targets_for("inquiry")["first_response"] == TargetSpec(business_hours=4)
    with pytest.raises(InputRefused, match="kind 'compliment'"):
        policy.targets_for("compliment")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules:\n  - {kind: complaint, targets: {resolution: {calendar_days: 15, business_hours: 2}}}\n",
         "rules[0]: targets.resolution: give exactly one of"),
        ("rules:\n  - {name: 快, kind: complaint, targets: {resolution: {calendar_days: 0}}}\n",
         "rule '快' (rules[0]): targets.resolution.calendar_days: Input should be greater than or equal"),
        ("rules:\n  - {kind: complaint, targets: {resolve: {calendar_days: 3}}}\n",
         "rules[0]: targets.resolve: Extra inputs are not permitted"),
        ("rules:\n  - {kind: praise, targets: {resolution: {calendar_days: 3}}}\n",
         "rules[0]: kind: Input should be"),
        ("rules:\n  - {kind: inquiry, priority: p1, targets: {first_response: {business_hours: 1}}}\n",
         "rules[0]: priority: Input should be"),
        ("rules:\n  - {kind: inquiry, targets: {}}\n", "rules[0]: targets: set at least one of"),
        ("rules:\n  - {name: a, kind: inquiry, targets: {first_response: {business_hours: 1}}}\n"
         "  - {name: b, kind: inquiry, targets: {first_response: {business_hours: 2}}}\n",
         "rule 'b' (rules[1]) sets first_response for the same tickets as rule 'a' (rules[0])"),
        ("rules: [\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_refused_naming_file_rule_and_field(text: str, problem: str) -> None:
    with pytest.raises(InputRefused) as refused:
        parse_policy(text, source="sla.yaml")
    assert refused.value.message.startswith("sla.yaml: ")
    assert problem in refused.value.message


def test_history_is_checked() -> None:
    four_hours = {"first_response": TargetSpec(business_hours=4)}
    with pytest.raises(InputRefused, match=r"history\[1\]: 'escalated' is neither a status"):
        evaluate(history(("2026-03-02 09:00", "new"), ("2026-03-02 10:00", "escalated")), four_hours, CAL,
                 as_of=at("2026-03-02 11:00"))  # fmt: skip
    with pytest.raises(InputRefused, match="no history"):
        evaluate([], four_hours, CAL, as_of=at("2026-03-02 11:00"))
    with pytest.raises(InputRefused, match="before the ticket was received"):
        evaluate(history(("2026-03-02 09:00", "new")), four_hours, CAL, as_of=at("2026-03-01 11:00"))


# ------------------------------------------------------------------------------------- worked examples


def test_inquiry_answered_in_time_across_lunch() -> None:
    ticket = history(("2026-03-02 10:30", "new"), ("2026-03-02 10:40", "assigned"),
                     ("2026-03-02 14:00", "responded"))  # fmt: skip
    state = sla_state(
        ticket, policy=DEFAULT_POLICY, calendar=CAL, kind="inquiry", as_of=at("2026-03-03 09:00")
    )
    first = state["first_response"]
    assert first.due_at == at("2026-03-02 16:00")  # 90 minutes before lunch, 150 after
    assert (first.state, first.used_minutes, first.paused_minutes) == ("met", 120, 0)
    assert first.stopped_at == at("2026-03-02 14:00") and first.breached_at is None
    assert str(first.percent_used) == "50.0" and first.level is None


def test_pause_and_resume_extend_the_due_time_minute_for_minute() -> None:
    ticket = history(
        ("2026-03-02 09:00", "new"),
        ("2026-03-02 10:00", "waiting_customer"),
        ("2026-03-02 15:30", "in_progress"),
    )
    targets = {"first_response": TargetSpec(business_hours=4)}
    paused = evaluate(ticket, targets, CAL, as_of=at("2026-03-02 12:30"))["first_response"]
    assert paused.paused and paused.state == "running" and paused.next_level_at is None
    assert (paused.used_minutes, paused.paused_minutes) == (60, 120)
    running = evaluate(ticket, targets, CAL, as_of=at("2026-03-02 17:00"))["first_response"]
    # 60 minutes used before the pause, 240 working minutes paused, then 90 more: due Tuesday 10:00
    assert (running.used_minutes, running.paused_minutes) == (150, 240)
    assert running.due_at == at("2026-03-03 10:00")
    assert running.due_at == CAL.add_business_minutes(at("2026-03-02 14:30"), 240)  # the unpaused due + 240
    done = evaluate([*ticket, Entry(at("2026-03-03 09:30"), "responded")], targets, CAL,
                    as_of=at("2026-03-04 09:00"))["first_response"]  # fmt: skip
    assert (done.state, done.used_minutes, done.paused_minutes) == ("met", 210, 240)
    # the same reply without the pause would have been late
    late = evaluate(history(("2026-03-02 09:00", "new"), ("2026-03-03 09:30", "responded")), targets, CAL,
                    as_of=at("2026-03-04 09:00"))["first_response"]  # fmt: skip
    assert late.state == "breached" and late.breached_at == at("2026-03-02 14:30")


def test_the_15_day_complaint_limit_paused_while_waiting_for_the_supplier() -> None:
    ticket = history(
        ("2026-03-02 10:00", "new"),
        ("2026-03-05 10:00", "waiting_supplier"),
        ("2026-03-06 16:00", "in_progress"),
    )
    state = sla_state(
        ticket, policy=DEFAULT_POLICY, calendar=CAL, kind="complaint", as_of=at("2026-03-10 10:00")
    )
    resolution = state["resolution"]
    assert resolution.clock == "calendar" and resolution.state == "running"
    assert resolution.paused_minutes == 30 * 60
    assert resolution.due_at == at("2026-03-18 00:00") + timedelta(hours=30)  # 24:00 of 17 March + the wait
    assert resolution.allowed_minutes == (at("2026-03-18 00:00") - at("2026-03-02 10:00")) // timedelta(
        minutes=1
    )


def test_the_15_day_limit_ending_in_the_national_day_holiday() -> None:
    ticket = history(("2026-09-16 10:00", "new"), ("2026-10-08 18:00", "resolved"))
    resolution = sla_state(ticket, policy=DEFAULT_POLICY, calendar=CAL, kind="complaint",
                           as_of=at("2026-10-20 00:00"))["resolution"]  # fmt: skip
    assert resolution.due_at == at("2026-10-09 00:00") and resolution.state == "met"
    late = sla_state([*ticket[:1], Entry(at("2026-10-09 08:00"), "resolved")], policy=DEFAULT_POLICY,
                     calendar=CAL, kind="complaint", as_of=at("2026-10-20 00:00"))["resolution"]  # fmt: skip
    assert late.state == "breached" and late.breached_at == at("2026-10-09 00:00")


def test_a_due_time_in_a_year_without_data_is_an_error() -> None:
    ticket = history(("2026-12-28 10:00", "new"))
    with pytest.raises(NoHolidayData, match="2027"):
        sla_state(ticket, policy=DEFAULT_POLICY, calendar=CAL, kind="complaint", as_of=at("2026-12-28 11:00"))


def test_resolution_goes_on_after_reopening() -> None:
    targets = {"resolution": TargetSpec(business_hours=8)}
    ticket = history(
        ("2026-03-02 09:00", "new"), ("2026-03-02 10:00", "resolved"), ("2026-03-03 09:00", "reopened")
    )
    state = evaluate(ticket, targets, CAL, as_of=at("2026-03-03 10:00"))["resolution"]
    assert (state.state, state.used_minutes, state.stopped_at) == ("running", 120, None)
    assert state.due_at == at("2026-03-03 17:30")
    ended = [*ticket, Entry(at("2026-03-03 11:00"), "resolved"), Entry(at("2026-03-05 09:00"), "closed")]
    done = evaluate(ended, targets, CAL, as_of=at("2026-03-09 10:00"))["resolution"]
    assert (done.state, done.used_minutes, done.stopped_at) == ("met", 180, at("2026-03-03 11:00"))


def test_next_update_runs_in_rounds_and_a_late_round_stays_a_breach() -> None:
    targets = {"next_update": TargetSpec(business_minutes=60)}
    ticket = history(
        ("2026-03-02 09:00", "new"),
        ("2026-03-02 09:30", "responded"),
        ("2026-03-02 10:45", "updated"),  # 75 minutes after the last reply: late since 10:30
        ("2026-03-02 11:00", "updated"),
    )
    state = evaluate(ticket, targets, CAL, as_of=at("2026-03-02 11:30"))["next_update"]
    assert (state.state, state.breached_at, state.used_minutes) == ("breached", at("2026-03-02 10:30"), 30)
    assert state.due_at == at("2026-03-02 12:00") and state.level is None


# ------------------------------------------------------------------------------------ escalation levels


@pytest.mark.parametrize(
    ("as_of", "level", "state", "next_level", "next_at"),
    [
        ("2026-03-02 10:00", None, "running", "warn", "2026-03-02 13:42"),
        ("2026-03-02 13:41", None, "running", "warn", "2026-03-02 13:42"),
        ("2026-03-02 13:42", "warn", "running", "breach", "2026-03-02 14:30"),  # 80 % of 240 minutes
        ("2026-03-02 14:30", "warn", "running", "breach", "2026-03-02 14:30"),  # the due minute is in time
        ("2026-03-02 14:31", "breach", "breached", "breach2", "2026-03-02 16:30"),
        ("2026-03-02 16:31", "breach2", "breached", None, None),  # past 150 %
    ],
)
def test_escalation_levels(as_of: str, level: str | None, state: str, next_level: str | None,
                           next_at: str | None) -> None:  # fmt: skip
    ticket = history(("2026-03-02 09:00", "new"), ("2026-03-02 09:05", "assigned"))
    first = sla_state(ticket, policy=DEFAULT_POLICY, calendar=CAL, kind="inquiry", as_of=at(as_of))[
        "first_response"
    ]
    assert (first.level, first.state, first.next_level) == (level, state, next_level)
    assert first.next_level_at == (at(next_at) if next_at else None)
    expected = {
        "warn": at("2026-03-02 13:42"),
        "breach": at("2026-03-02 14:30"),
        "breach2": at("2026-03-02 16:30"),
    }
    assert first.reached == {k: v for k, v in expected.items() if k in first.reached}
    assert first.due_at == at("2026-03-02 14:30")


def test_a_pause_holds_the_escalation_back() -> None:
    ticket = history(("2026-03-02 09:00", "new"), ("2026-03-02 11:00", "waiting_customer"),
                     ("2026-03-03 09:00", "in_progress"))  # fmt: skip
    first = sla_state(ticket, policy=DEFAULT_POLICY, calendar=CAL, kind="inquiry",
                      as_of=at("2026-03-03 09:30"))["first_response"]  # fmt: skip
    assert first.level is None and first.used_minutes == 150 and first.next_level_at == at("2026-03-03 10:12")


# ----------------------------------------------------------------------------------------- properties

_EVENTS = st.sampled_from([*STATUSES, *ACTIONS])


@st.composite
def tickets(draw: st.DrawFn) -> tuple[list[Entry], datetime]:
    start = at("2026-03-02 08:00") + timedelta(minutes=draw(st.integers(0, 60 * 24 * 20)))
    entries = [Entry(start, "new")]
    moment = start
    for event in draw(st.lists(_EVENTS, max_size=12)):
        moment += timedelta(minutes=draw(st.integers(0, 60 * 24 * 3)))
        entries.append(Entry(moment, event))
    as_of = moment + timedelta(minutes=draw(st.integers(0, 60 * 24 * 5)))
    return entries, as_of


_POLICY = load_policy(EXAMPLE)
_SPOTS = st.dates(min_value=date(2026, 3, 2), max_value=date(2026, 5, 31))


@settings(max_examples=60, deadline=None)
@given(
    ticket=tickets(),
    kind=st.sampled_from(["complaint", "inquiry", "request"]),
    category=st.sampled_from([None, "benefit", "wealth"]),
    closures=st.lists(_SPOTS, min_size=1, max_size=3, unique=True),
    workdays=st.lists(_SPOTS, max_size=2, unique=True),
)
def test_recomputing_after_a_calendar_edit_equals_computing_fresh(
    ticket: tuple[list[Entry], datetime], kind: str, category: str | None, closures: list[date],
    workdays: list[date],
) -> None:  # fmt: skip
    entries, as_of = ticket
    workdays = [d for d in workdays if d not in closures]
    base = BusinessCalendar(tz=TZ)

    def state(calendar: BusinessCalendar) -> object:
        return sla_state(entries, policy=_POLICY, calendar=calendar, kind=kind, category=category,
                         priority="urgent", as_of=as_of)  # fmt: skip

    before = state(base)  # warms the base calendar's caches
    edited = base.edited(closures={d: "停业" for d in closures}, workdays={d: None for d in workdays})
    fresh = BusinessCalendar(tz=TZ, years={2026: YearDays(closures={d: "停业" for d in closures},
                                                          workdays={d: None for d in workdays})})  # fmt: skip
    assert state(edited) == state(fresh)
    assert state(base) == before  # the edit changed a new calendar, not the one it came from
    assert state(base) == state(BusinessCalendar(tz=TZ))


@settings(max_examples=60, deadline=None)
@given(ticket=tickets(), split=st.integers(0, 12))
def test_state_depends_only_on_history_up_to_as_of(ticket: tuple[list[Entry], datetime], split: int) -> None:
    entries, _ = ticket
    cut = entries[: split + 1]
    moment = cut[-1].at
    targets = _POLICY.targets_for("complaint", "benefit", "urgent")
    later = [Entry(e.at + timedelta(minutes=1), e.event) for e in entries[split + 1 :]]
    assert evaluate(cut + later, targets, CAL, as_of=moment) == evaluate(cut, targets, CAL, as_of=moment)


@settings(max_examples=80, deadline=None)
@given(
    start=st.integers(0, 60 * 24 * 30),
    wait_from=st.integers(1, 60 * 24 * 4),
    wait=st.integers(1, 60 * 24 * 4),
    business=st.booleans(),
)
def test_a_wait_moves_the_due_time_by_its_own_length(
    start: int, wait_from: int, wait: int, business: bool
) -> None:
    opened = at("2026-03-02 00:00") + timedelta(minutes=start)
    spec = TargetSpec(business_hours=16) if business else TargetSpec(calendar_days=15)
    targets = {"resolution": spec}
    plain = evaluate([Entry(opened, "new")], targets, CAL, as_of=opened)["resolution"]
    paused_at = opened + timedelta(minutes=wait_from)
    back = paused_at + timedelta(minutes=wait)
    waited = [Entry(opened, "new"), Entry(paused_at, "waiting_customer"), Entry(back, "in_progress")]
    state = evaluate(waited, targets, CAL, as_of=back)["resolution"]
    if paused_at >= plain.due_at:
        return  # a wait after the due time does not undo the breach
    if business:
        paused = CAL.business_time_between(paused_at, back)
        assert state.due_at == CAL.add_business_time(plain.due_at, paused)
    else:
        assert state.due_at == plain.due_at + timedelta(minutes=wait)
        assert state.paused_minutes == wait


# ------------------------------------------------------- the engine against its first, timedelta version

_MINUTE = timedelta(minutes=1)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class _Meter:
    measure: Callable[[datetime, datetime], timedelta]
    advance: Callable[[datetime, timedelta], datetime]
    allowed: Callable[[datetime], timedelta]


def _meter(spec: TargetSpec, calendar: BusinessCalendar) -> _Meter:
    if spec.calendar_days is not None:
        days = spec.calendar_days
        return _Meter(
            measure=lambda a, b: b - a,
            advance=lambda t, d: (t + d).astimezone(calendar.tz),
            allowed=lambda start: calendar.calendar_days_due(start, days) - start,
        )
    budget = spec.business_time
    return _Meter(
        measure=calendar.business_time_between, advance=calendar.add_business_time, allowed=lambda _: budget
    )


def _threshold(allowed: timedelta, level: str) -> timedelta:
    return allowed * LEVELS[level][0] / 100


def _reached(used: timedelta, allowed: timedelta, level: str) -> bool:
    limit = _threshold(allowed, level)
    return used > limit if LEVELS[level][1] else used >= limit


class _Clock:
    """One target's clock walked along the history."""

    def __init__(self, target: str, meter: _Meter, start: datetime) -> None:
        self.target = target
        self.meter = meter
        self.active = True
        self.stopped_at: datetime | None = None
        self.first_breach: datetime | None = None
        self.reached_now: dict[str, datetime] = {}
        self._round(start)

    def _round(self, start: datetime) -> None:
        """A new round (next_update): a breach of the round before stays on record."""
        if "breach" in self.reached_now and self.first_breach is None:
            self.first_breach = self.reached_now["breach"]
        self.allowed = self.meter.allowed(start)
        self.used = timedelta(0)
        self.paused = timedelta(0)
        self.reached_now = {}

    def span(self, a: datetime, b: datetime, pausing: bool) -> None:
        if not self.active or b <= a:
            return
        m = self.meter.measure(a, b)
        if pausing:
            self.paused += m
            return
        for level in LEVELS:
            if level not in self.reached_now and _reached(self.used + m, self.allowed, level):
                to_go = max(_threshold(self.allowed, level) - self.used, timedelta(0))
                self.reached_now[level] = self.meter.advance(a, to_go)
        self.used += m

    def on(self, event: str, at: datetime) -> None:
        closing = event in ("resolved", "closed")
        if self.target == "first_response":
            if self.active and (event == "responded" or closing):
                self.active, self.stopped_at = False, at
        elif self.target == "resolution":
            if self.active and closing:
                self.active, self.stopped_at = False, at
            elif not self.active and event == "reopened":
                self.active, self.stopped_at = True, None
        else:  # next_update
            if self.active and closing:
                self.active, self.stopped_at = False, at
            elif event == "reopened" and not self.active:
                self.active, self.stopped_at = True, None
                self._round(at)
            elif self.active and event in ("responded", "updated", "reopened"):
                self._round(at)

    def result(self, spec: TargetSpec, as_of: datetime, paused_now: bool) -> TargetState:
        end = self.stopped_at or as_of
        breach_now = self.reached_now.get("breach")
        due = self.reached_now.get("breach") or self.meter.advance(end, self.allowed - self.used)
        breached_at = self.first_breach or breach_now
        if breached_at is not None:
            state: Literal["met", "breached", "running"] = "breached"
        else:
            state = "met" if self.stopped_at is not None else "running"
        level = next((lv for lv in reversed(LEVELS) if lv in self.reached_now), None)
        next_level = next((lv for lv in LEVELS if lv not in self.reached_now), None)
        next_at = None
        if next_level is not None and self.stopped_at is None and not paused_now:
            to_go = max(_threshold(self.allowed, next_level) - self.used, timedelta(0))
            next_at = self.meter.advance(as_of, to_go)
        percent = (Decimal(self.used // _MICRO) * 100 / Decimal(self.allowed // _MICRO)).quantize(
            Decimal("0.1"), rounding=ROUND_FLOOR
        )
        return TargetState(
            target=self.target, spec=str(spec), clock=spec.clock, due_at=due,
            allowed_minutes=self.allowed // _MINUTE, used_minutes=self.used // _MINUTE,
            paused_minutes=self.paused // _MINUTE, state=state, breached_at=breached_at,
            stopped_at=self.stopped_at, paused=paused_now and self.stopped_at is None, percent_used=percent,
            level=level, reached=dict(self.reached_now), next_level=next_level, next_level_at=next_at,
        )  # fmt: skip


def ref_evaluate(
    history: Iterable[Entry | tuple[datetime, str]],
    targets: Mapping[str, TargetSpec],
    calendar: BusinessCalendar,
    *,
    as_of: datetime,
) -> dict[str, TargetState]:
    """Each target's state at ``as_of`` (entries after it are not known yet)."""
    if as_of.utcoffset() is None:
        raise AssertionError("as_of must be an aware datetime")
    entries = [e for e in sorted(history, key=lambda e: e.at) if e.at <= as_of]
    if not entries:
        raise AssertionError(f"as_of ({as_of.isoformat()}) is before the ticket was received")
    start = entries[0].at
    clocks = {name: _Clock(name, _meter(spec, calendar), start) for name, spec in targets.items()}
    status = "new"
    previous = start
    for entry in entries:
        for clock in clocks.values():
            clock.span(previous, entry.at, status in PAUSING)
        if entry.event in STATUSES:
            status = entry.event
        for clock in clocks.values():
            clock.on(entry.event, entry.at)
        previous = entry.at
    for clock in clocks.values():
        clock.span(previous, as_of, status in PAUSING)
    return {
        name: clocks[name].result(targets[name], as_of, status in PAUSING)
        for name in TARGETS
        if name in clocks
    }


@settings(max_examples=100, deadline=None)
@given(
    ticket=tickets(),
    kind=st.sampled_from(["complaint", "inquiry", "request"]),
    category=st.sampled_from([None, "benefit", "wealth"]),
    priority=st.sampled_from([None, "urgent"]),
    seconds=st.lists(st.integers(0, 59), min_size=14, max_size=14),
    in_utc=st.booleans(),
)
def test_the_engine_equals_its_timedelta_version(
    ticket: tuple[list[Entry], datetime], kind: str, category: str | None, priority: str | None,
    seconds: list[int], in_utc: bool,
) -> None:  # fmt: skip
    entries, as_of = ticket
    as_of += timedelta(seconds=60)
    entries = [
        Entry(e.at + timedelta(seconds=s, microseconds=7 * s), e.event)
        for e, s in zip(entries, seconds, strict=False)
    ]
    if in_utc:
        entries = [Entry(e.at.astimezone(UTC), e.event) for e in entries]
    targets = _POLICY.targets_for(kind, category, priority)
    mixed = {**targets, "next_update": TargetSpec(business_minutes=97)} if kind == "request" else targets

    def outcome(run: Callable[[], object]) -> object:
        try:
            return run()
        except NoHolidayData as exc:
            return exc.message

    for chosen in (targets, mixed):
        fast = outcome(lambda chosen=chosen: evaluate(entries, chosen, CAL, as_of=as_of))
        assert fast == outcome(lambda chosen=chosen: ref_evaluate(entries, chosen, CAL, as_of=as_of))
        if isinstance(fast, dict):
            reference = ref_evaluate(entries, chosen, CAL, as_of=as_of)
            assert [str(s.percent_used) for s in fast.values()] == [
                str(s.percent_used) for s in reference.values()
            ]
