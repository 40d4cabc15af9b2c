"""slafast: the same due times, minutes, percent, state and level as sla.evaluate for every ticket and target
(random histories: pauses, answers, rounds of next_update, reopening, ties, as_of inside and after, business
and calendar targets, 2025–2026 with the Spring Festival and its 调休 days), the same error where evaluate
raises, and the same lines from a pool of workers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnibank.errors import AppError
from omnibank.service.calendar import BusinessCalendar, NoHolidayData, YearDays, utc_micros
from omnibank.service.sla import Entry, SlaPolicy, evaluate, load_policy, parse_policy
from omnibank.service.slafast import (
    CODE_OF,
    EVENTS,
    ClockBatch,
    SlaLine,
    evaluate_batch,
    evaluate_batches,
)

TZ = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar(tz=TZ)
# 2026 only, from the bank's own file: 2025 (and 2027) have no data
ONLY_2026 = BusinessCalendar(
    tz=TZ,
    use_package=False,
    years={2026: YearDays(holidays={date(2026, 2, 16 + i): "春节" for i in range(7)},
                          workdays={date(2026, 2, 14): "春节调休", date(2026, 2, 28): "春节调休"})},
    source="holidays.yaml",
)  # fmt: skip
EXAMPLE = load_policy(Path(__file__).resolve().parents[2] / "examples" / "service" / "sla.yaml")
# calendar-day next_update and short business targets: many rounds, levels and breaches
TIGHT = parse_policy(
    """
rules:
  - kind: complaint
    targets:
      first_response: {business_minutes: 45}
      next_update: {calendar_days: 1}
      resolution: {business_hours: 30}
  - kind: inquiry
    targets:
      next_update: {business_minutes: 90}
      resolution: {calendar_days: 3}
  - kind: request
    category: card
    targets:
      first_response: {calendar_days: 2}
"""
)
ANCHORS = [datetime(2025, 1, 26, 9, tzinfo=TZ), datetime(2025, 2, 8, 16, tzinfo=TZ),  # Spring Festival 2025
           datetime(2026, 2, 13, 17, tzinfo=TZ), datetime(2026, 2, 28, 11, tzinfo=TZ),  # and 2026, 调休
           datetime(2025, 9, 30, 17, tzinfo=TZ), datetime(2026, 12, 20, 10, tzinfo=TZ),  # National Day, 2027
           datetime(2026, 12, 31, 15, tzinfo=TZ),
           datetime(2025, 6, 1, tzinfo=TZ)]  # fmt: skip
GAPS = st.one_of(
    st.just(0),  # a tie
    st.integers(1, 59 * 60_000_000),  # within the hour, to the microsecond
    st.integers(1, 48).map(lambda h: h * 3_600_000_000),
    st.integers(1, 20 * 86_400_000_000),
)


@dataclass
class Ticket:
    kind: str
    category: str | None
    priority: str | None
    at_us: list[int]
    codes: list[int]


@st.composite
def tickets(draw: st.DrawFn) -> Ticket:
    anchor = draw(st.sampled_from(ANCHORS))
    start = utc_micros(anchor) + draw(st.integers(-10 * 86_400_000_000, 10 * 86_400_000_000))
    if anchor.month == 6:  # anywhere in the two years
        start = utc_micros(anchor) + draw(st.integers(-150 * 86_400_000_000, 550 * 86_400_000_000))
    n = draw(st.integers(1, 12))
    moments = [start]
    for _ in range(n - 1):
        moments.append(moments[-1] + draw(GAPS))
    codes = [CODE_OF["new"]] + draw(st.lists(st.integers(0, len(EVENTS) - 1), min_size=n - 1, max_size=n - 1))
    return Ticket(
        draw(st.sampled_from(["complaint", "inquiry", "request"])),
        draw(st.sampled_from([None, "card", "benefit", "wealth"])),
        draw(st.sampled_from([None, "low", "urgent"])),
        moments,
        codes,
    )


def batch_of(given_tickets: list[Ticket]) -> ClockBatch:
    counts = [len(t.at_us) for t in given_tickets]
    return ClockBatch(
        ticket_ids=[f"T{i}" for i in range(len(given_tickets))],
        kinds=[t.kind for t in given_tickets],
        categories=[t.category for t in given_tickets],
        priorities=[t.priority for t in given_tickets],
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        at_us=np.array([m for t in given_tickets for m in t.at_us], dtype=np.int64),
        codes=np.array([c for t in given_tickets for c in t.codes], dtype=np.int8),
    )


def moment(micros: int) -> datetime:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)).astimezone(TZ)


def expected(
    index: int, ticket: Ticket, policy: SlaPolicy, calendar: BusinessCalendar, as_of: datetime
) -> Any:
    """What sla.evaluate says of the ticket, as the lines slafast should give (none for a ticket received
    after as_of, or one without targets)."""
    history = [Entry(moment(m), EVENTS[c]) for m, c in zip(ticket.at_us, ticket.codes, strict=True)]
    if min(e.at for e in history) > as_of:
        return []
    try:
        targets = policy.targets_for(ticket.kind, ticket.category, ticket.priority)
        states = evaluate(history, targets, calendar, as_of=as_of)
    except AppError as exc:
        return [(index, "-", "-", "-", None, None, None, "-", "error", None, exc.message)]
    return [(index, s.target, s.spec, s.clock, utc_micros(s.due_at), s.used_minutes, s.paused_minutes,
             str(s.percent_used), s.state, s.level, None) for s in states.values()]  # fmt: skip


def rows(lines: list[SlaLine]) -> dict[int, list[tuple[Any, ...]]]:
    out: dict[int, list[tuple[Any, ...]]] = {}
    for line in lines:
        out.setdefault(line.ticket_index, []).append(
            (line.ticket_index, line.target, line.spec, line.clock, line.due_us, line.used_minutes,
             line.paused_minutes, line.percent_used, line.state, line.level, line.error))  # fmt: skip
    return out


def check(
    given_tickets: list[Ticket], policy: SlaPolicy, calendar: BusinessCalendar, as_of: datetime
) -> None:
    got = rows(evaluate_batch(batch_of(given_tickets), policy=policy, calendar=calendar, as_of=as_of))
    for i, ticket in enumerate(given_tickets):
        assert got.get(i, []) == expected(i, ticket, policy, calendar, as_of), f"ticket {i}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(tickets(), min_size=1, max_size=6),
    st.sampled_from([EXAMPLE, TIGHT]),
    st.sampled_from(["after", "inside", "entry"]),
    st.integers(0, 40 * 86_400_000_000),
    st.data(),
)
def test_every_line_is_what_evaluate_says(
    given_tickets: list[Ticket], policy: SlaPolicy, where: str, shift: int, data: st.DataObject
) -> None:
    last = max(m for t in given_tickets for m in t.at_us)
    first = min(t.at_us[0] for t in given_tickets)
    if where == "after":
        as_of_us = last + shift
    elif where == "inside":
        as_of_us = first + shift % (last - first + 1)
    else:  # exactly at some entry (ties with as_of count)
        as_of_us = data.draw(st.sampled_from([m for t in given_tickets for m in t.at_us]))
    check(given_tickets, policy, CAL, moment(as_of_us))


@settings(max_examples=60, deadline=None)
@given(st.lists(tickets(), min_size=1, max_size=4), st.integers(0, 30 * 86_400_000_000))
def test_a_calendar_without_data_gives_the_error_evaluate_raises(
    given_tickets: list[Ticket], shift: int
) -> None:
    last = max(m for t in given_tickets for m in t.at_us)
    check(given_tickets, TIGHT, ONLY_2026, moment(last + shift))


def test_error_lines_name_the_year_and_the_batch_goes_on() -> None:
    def at(text: str) -> int:
        return utc_micros(datetime.fromisoformat(text).replace(tzinfo=TZ))

    given_tickets = [
        Ticket("complaint", None, None, [at("2025-03-03 10:00")], [CODE_OF["new"]]),  # 2025: no data
        Ticket("complaint", None, None, [at("2026-03-02 10:00")], [CODE_OF["new"]]),
        Ticket("compliment", None, None, [at("2026-03-02 10:00")], [CODE_OF["new"]]),  # a refused kind
        Ticket("complaint", None, None, [at("2026-12-05 10:00")], [CODE_OF["new"]]),  # after as_of: no line
        Ticket("inquiry", None, None, [], []),  # no history
    ]
    as_of = datetime(2026, 12, 1, 12, tzinfo=TZ)
    lines = evaluate_batch(batch_of(given_tickets), policy=TIGHT, calendar=ONLY_2026, as_of=as_of)
    by_ticket = rows(lines)
    assert set(by_ticket) == {0, 1, 2, 4}
    assert by_ticket[0][0][8] == "error"
    assert "no holiday data for 2025" in (by_ticket[0][0][10] or "")
    assert [r[1] for r in by_ticket[1]] == ["first_response", "next_update", "resolution"]
    assert "kind 'compliment'" in (by_ticket[2][0][10] or "")
    assert "no history" in (by_ticket[4][0][10] or "")
    for i in (0, 1, 2):
        assert by_ticket[i] == expected(i, given_tickets[i], TIGHT, ONLY_2026, as_of)
    with pytest.raises(NoHolidayData, match="no holiday data for 2025"):  # what evaluate raises for it
        evaluate([Entry(moment(given_tickets[0].at_us[0]), "new")], TIGHT.targets_for("complaint"), ONLY_2026,
                 as_of=as_of)  # fmt: skip


def test_a_next_level_in_a_year_without_data_is_the_error_evaluate_raises() -> None:
    """Breached at 17:15 on 31 December 2026, breach2 (67.5 minutes) would fall in 2027: evaluate computes
    that moment for a running clock and raises, so the ticket is an error line, not a due time."""
    received = utc_micros(datetime(2026, 12, 31, 16, 30, tzinfo=TZ))
    ticket = Ticket("complaint", None, None, [received], [CODE_OF["new"]])
    as_of = datetime(2026, 12, 31, 17, 25, tzinfo=TZ)
    policy = parse_policy("rules: [{kind: complaint, targets: {first_response: {business_minutes: 45}}}]")
    lines = evaluate_batch(batch_of([ticket]), policy=policy, calendar=CAL, as_of=as_of)
    assert rows(lines)[0] == expected(0, ticket, policy, CAL, as_of)
    assert [(line.state, line.target) for line in lines] == [("error", "-")]
    assert "no holiday data for 2027" in (lines[0].error or "")


def test_a_level_reached_exactly_at_an_entry_is_reached_there() -> None:
    """4 business hours used exactly at 14:30 (an entry): breach (strictly past 100 %) comes in the next span,
    at its very start."""
    received = utc_micros(datetime(2026, 3, 2, 9, tzinfo=TZ))
    hour = 3_600_000_000
    ticket = Ticket("inquiry", None, None, [received, received + 5 * hour + hour // 2],
                    [CODE_OF["new"], CODE_OF["in_progress"]])  # fmt: skip
    as_of = datetime(2026, 3, 2, 15, tzinfo=TZ)
    lines = evaluate_batch(batch_of([ticket]), policy=EXAMPLE, calendar=CAL, as_of=as_of)
    assert rows(lines)[0] == expected(0, ticket, EXAMPLE, CAL, as_of)
    assert (lines[0].target, lines[0].state, lines[0].level) == ("first_response", "breached", "breach")
    assert lines[0].due_us == received + 5 * hour + hour // 2


def test_entries_out_of_order_and_unknown_codes() -> None:
    base = utc_micros(datetime(2026, 3, 2, 10, tzinfo=TZ))
    hour = 3_600_000_000
    ordered = Ticket(
        "complaint",
        None,
        None,
        [base, base + hour, base + hour, base + 3 * hour],
        [CODE_OF["new"], CODE_OF["responded"], CODE_OF["waiting_customer"], CODE_OF["in_progress"]],
    )
    shuffled = Ticket(
        "complaint",
        None,
        None,
        [base + hour, base, base + 3 * hour, base + hour],
        [CODE_OF["responded"], CODE_OF["new"], CODE_OF["in_progress"], CODE_OF["waiting_customer"]],
    )
    wrong = Ticket("complaint", None, None, [base, base + hour], [CODE_OF["new"], 42])  # fmt: skip
    as_of = datetime(2026, 3, 5, 12, tzinfo=TZ)
    got = rows(
        evaluate_batch(batch_of([ordered, shuffled, wrong]), policy=EXAMPLE, calendar=CAL, as_of=as_of)
    )
    want = expected(0, ordered, EXAMPLE, CAL, as_of)
    assert [r[1:] for r in got[1]] == [r[1:] for r in got[0]] == [r[1:] for r in want]
    assert got[2][0][8] == "error"
    assert "history[1]: code 42" in (got[2][0][10] or "")


def test_a_batch_is_refused_when_its_columns_disagree() -> None:
    with pytest.raises(ValueError, match="offsets"):
        ClockBatch(["T1"], ["complaint"], [None], [None], np.array([0, 2]), np.zeros(1, np.int64),
                   np.zeros(1, np.int8))  # fmt: skip


def test_a_pool_of_workers_gives_the_same_lines_in_order() -> None:
    rng = np.random.default_rng(7)
    batches = []
    for b in range(5):
        given_tickets = []
        for i in range(40):
            start = (
                utc_micros(datetime(2025, 1, 20, 9, tzinfo=TZ)) + int(rng.integers(0, 600)) * 86_400_000_000
            )
            n = 1 + (b + i) % 9
            moments = np.cumsum(rng.integers(0, 30 * 3_600_000_000, n)) + start
            codes = [CODE_OF["new"], *rng.integers(0, len(EVENTS), n - 1).tolist()]
            kind, category = ["complaint", "inquiry", "request"][i % 3], [None, "wealth", "card"][b % 3]
            given_tickets.append(Ticket(kind, category, None, moments.tolist(), codes))
        batches.append(batch_of(given_tickets))
    as_of = datetime(2026, 9, 1, 12, tzinfo=TZ)
    alone = list(evaluate_batches(batches, policy=EXAMPLE, calendar=CAL, as_of=as_of))
    pooled = list(evaluate_batches(iter(batches), policy=EXAMPLE, calendar=CAL, as_of=as_of, processes=2))
    assert pooled == alone
    assert [len(lines) > 0 for lines in alone] == [True] * 5
    assert alone[2] == evaluate_batch(batches[2], policy=EXAMPLE, calendar=CAL, as_of=as_of)
    assert any(line.state == "breached" for lines in alone for line in lines)


def outcome(call: Any) -> Any:
    try:
        return call()
    except AppError as exc:
        return type(exc), exc.message


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from([CAL, ONLY_2026]),
    st.integers(utc_micros(datetime(2024, 12, 20, tzinfo=TZ)), utc_micros(datetime(2027, 1, 10, tzinfo=TZ))),
    st.integers(0, 40 * 86_400_000_000),
    st.integers(1, 15),
)
def test_the_calendars_microsecond_methods_answer_as_the_datetime_ones(
    calendar: BusinessCalendar, a: int, span: int, days: int
) -> None:
    b = a + span
    wa, wb = calendar.worked_us(a), calendar.worked_us(b)
    between = outcome(
        lambda: calendar.business_time_between(moment(a), moment(b)) // timedelta(microseconds=1)
    )
    assert outcome(lambda: calendar.between_us(a, b)) == between
    if wa is not None and wb is not None:
        assert wb - wa == between
    table = calendar.worked_windows(a, b)
    assert (table is None) == (wa is None or wb is None)
    added = outcome(lambda: utc_micros(calendar.add_business_time(moment(a), timedelta(microseconds=span))))
    assert outcome(lambda: calendar.add_us(a, span)) == added
    due = outcome(lambda: utc_micros(calendar.calendar_days_due(moment(a), days)))
    assert outcome(lambda: calendar.calendar_days_due_us(a, days)) == due
