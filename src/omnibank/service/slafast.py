"""SLA state of very many tickets: columnar input (:class:`ClockBatch`), flat lines out (:class:`SlaLine`).

The same clocks as :func:`omnibank.service.sla.evaluate`, walked in plain integers (UTC microseconds) with
no per-entry objects: a batch's arrays are turned into lists once, each ticket's targets are looked up once
per (kind, category, priority). Working time comes from the calendar's integer index: the working time
before every entry of a batch at once (:meth:`BusinessCalendar.worked_windows`, numpy), so a span costs a
subtraction (:meth:`BusinessCalendar.between_us` where the index cannot answer); moments from
:meth:`BusinessCalendar.add_us`; calendar-day periods from :meth:`BusinessCalendar.calendar_days_due_us`
(remembered per local day of receipt). Every call that can fail is made where ``evaluate`` makes it (a
level's moment, the due time, the next level's moment of a running clock), so a ticket gets an error line
exactly when ``evaluate`` raises, with its message; only the warn/breach2 moments inside a span the index
answered are skipped, as they cannot fail there. ``tests/service/test_slafast.py`` proves the equality on
random histories.

Input contract: each ticket's entries in time order (a ticket that is not is sorted, stably, as
``sla.history_of`` sorts); entries after ``as_of`` are ignored and a ticket received after it has no line; a
ticket without entries, with an unknown code, a refused kind or priority, or for which the calendar has no
data (NoHolidayData) is one error line and the batch goes on.

Event codes (``ClockBatch.codes``) index :data:`EVENTS` = ``sla.STATUSES + sla.ACTIONS``::

    0 new  1 assigned  2 in_progress  3 waiting_customer  4 waiting_supplier  5 resolved  6 closed
    7 reopened  8 responded  9 updated

With ``processes`` > 1, :func:`evaluate_batches` hands whole batches to a spawn pool whose workers receive
the policy, the calendar and ``as_of`` once each (the pool's initializer); lines come back batch by batch in
input order.
"""

from __future__ import annotations

import gc
import multiprocessing
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from multiprocessing.pool import AsyncResult
from typing import Any

import numpy as np

from omnibank.errors import AppError
from omnibank.service.calendar import MAX_SEARCH_DAYS, BusinessCalendar, utc_micros
from omnibank.service.sla import _LEVELS, ACTIONS, PAUSING, STATUSES, TARGETS, SlaPolicy, _share

EVENTS: tuple[str, ...] = STATUSES + ACTIONS
CODE_OF: dict[str, int] = {name: code for code, name in enumerate(EVENTS)}

_N_STATUSES = len(STATUSES)
_PAUSING_CODES = frozenset(CODE_OF[s] for s in PAUSING)
_CLOSING_CODES = frozenset({CODE_OF["resolved"], CODE_OF["closed"]})
_REOPENED = CODE_OF["reopened"]
_RESPONDED = CODE_OF["responded"]
_ROUND_CODES = frozenset({CODE_OF["responded"], CODE_OF["updated"], CODE_OF["reopened"]})
_ACTING_CODES = _CLOSING_CODES | _ROUND_CODES
_FIRST_RESPONSE, _RESOLUTION = TARGETS.index("first_response"), TARGETS.index("resolution")
_LEVEL_NAMES = tuple(level for level, _, _ in _LEVELS)
_PERCENTS = tuple(percent for _, percent, _ in _LEVELS)
_STRICT = tuple(strict for _, _, strict in _LEVELS)
_BREACH = _LEVEL_NAMES.index("breach")
# a level is reached when the time used is past its limit minus its slack (0 when strictly past it)
_SLACK = tuple(0 if strict else 1 for strict in _STRICT)
_NEVER = 1 << 100
_MINUTE_US = 60_000_000
# A level reached within a span whose working time the index answered, shorter than this, has a moment the
# index answers too (inside the span, in indexed years, well within MAX_SEARCH_DAYS): it cannot raise, so
# the walk computes only the moment it keeps (the breach).
_SURE_SPAN_US = (MAX_SEARCH_DAYS - 100) * 86_400_000_000
_US = timedelta(microseconds=1)
# Levels are reached in order (a later one never before an earlier one), so "which levels are reached" is a
# count: the walk below relies on it.
assert list(_PERCENTS) == sorted(_PERCENTS), "levels out of order"
assert tuple(sorted(_STRICT)) == _STRICT, "levels out of order"
assert TARGETS == ("first_response", "next_update", "resolution")


@dataclass(frozen=True)
class ClockBatch:
    """Tickets in columns: ticket ``i``'s entries are ``[offsets[i], offsets[i + 1])`` of ``at_us`` (int64 UTC
    epoch microseconds, in time order, ties in their order) and ``codes`` (int8, an index into
    :data:`EVENTS`)."""

    ticket_ids: list[str]
    kinds: list[str]
    categories: list[str | None]
    priorities: list[str | None]
    offsets: np.ndarray
    at_us: np.ndarray
    codes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.ticket_ids)
        if not (len(self.kinds) == len(self.categories) == len(self.priorities) == n):
            raise ValueError("ticket_ids, kinds, categories and priorities must have one item per ticket")
        if self.offsets.ndim != 1 or len(self.offsets) != n + 1:
            raise ValueError(f"offsets must have tickets + 1 = {n + 1} items, not {len(self.offsets)}")
        if self.at_us.ndim != 1 or len(self.at_us) != len(self.codes):
            raise ValueError("at_us and codes must be one-dimensional and of the same length")
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.at_us) or np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must start at 0, never decrease and end at the number of entries")

    def __len__(self) -> int:
        return len(self.ticket_ids)


@dataclass(frozen=True)
class SlaLine:
    """One ticket × one target at ``as_of`` (as :class:`omnibank.service.sla.TargetState` has it), or the
    ticket's error: target, spec, clock and percent ``"-"``, state ``"error"``, figures None, ``error`` the
    message. ``due_us`` is UTC epoch microseconds; minutes are working minutes for a business target,
    elapsed ones for a calendar-day target, of the current round for ``next_update``."""

    ticket_index: int
    target: str
    spec: str
    clock: str
    due_us: int | None
    used_minutes: int | None
    paused_minutes: int | None
    percent_used: str
    state: str  # met / running / breached / error
    level: str | None
    error: str | None


# A line's fields, in SlaLine's order
_Row = tuple[int, str, str, str, int | None, int | None, int | None, str, str, str | None, str | None]

# One target of a ticket shape: (target index, calendar days or None, business budget µs, name, spec text,
# clock, the business budget's level limits)
_Spec = tuple[int, int | None, int, str, str, str, tuple[int, ...]]


class _Evaluator:
    """Evaluates batches against one policy, calendar and ``as_of``, remembering each ticket shape's
    targets."""

    def __init__(self, policy: SlaPolicy, calendar: BusinessCalendar, as_of: datetime) -> None:
        if as_of.utcoffset() is None:
            raise ValueError("as_of must be an aware datetime")
        self.policy = policy
        self.calendar = calendar
        self.as_of_us = utc_micros(as_of)
        self.as_of_worked = calendar.worked_us(self.as_of_us)
        self.shapes: dict[tuple[str, str | None, str | None], tuple[_Spec, ...] | str] = {}
        self.percents: dict[int, str] = {}

    def specs(self, kind: str, category: str | None, priority: str | None) -> tuple[_Spec, ...] | str:
        key = (kind, category, priority)
        known = self.shapes.get(key)
        if known is None:
            try:
                targets = self.policy.targets_for(kind, category, priority)
            except AppError as exc:
                known = exc.message
            else:
                shape = []
                for name, spec in sorted(targets.items(), key=lambda item: TARGETS.index(item[0])):
                    budget = 0 if spec.calendar_days is not None else spec.business_time // _US
                    limits = tuple(_share(budget, percent) for percent in _PERCENTS)
                    index = TARGETS.index(name)
                    shape.append((index, spec.calendar_days, budget, name, str(spec), spec.clock, limits))
                known = tuple(shape)
            self.shapes[key] = known
        return known

    def percent(self, used: int, allowed: int) -> str:
        """``used / allowed`` in percent floored to 0.1, as text (``str`` of ``sla``'s Decimal)."""
        tenths = used * 1000 // allowed
        text = self.percents.get(tenths)
        if text is None:
            text = str(Decimal(tenths).scaleb(-1))
            if len(self.percents) < 100_000:
                self.percents[tenths] = text
        return text

    def batch(self, batch: ClockBatch) -> list[_Row]:
        """The batch's lines, as rows (the fields of :class:`SlaLine` in order: cheap to pickle)."""
        with _no_gc():
            return self._batch(batch)

    def _batch(self, batch: ClockBatch) -> list[_Row]:
        offsets: list[int] = batch.offsets.tolist()
        at: list[int] = batch.at_us.tolist()
        codes: list[int] = batch.codes.tolist()
        n_events = len(EVENTS)
        bad = bool(len(codes)) and bool(np.any((batch.codes < 0) | (batch.codes >= n_events)))
        unsorted = _unsorted_tickets(batch)
        worked = self.worked(batch.at_us, at)
        as_of_us = self.as_of_us
        lines: list[_Row] = []
        kinds, categories, priorities = batch.kinds, batch.categories, batch.priorities
        for i in range(len(offsets) - 1):
            lo, hi = offsets[i], offsets[i + 1]
            if lo == hi:
                lines.append(_error(i, "the ticket has no history: its first entry is its receipt"))
                continue
            t_at, t_codes, t_worked, first = at, codes, worked, lo
            if bad:
                wrong = next((k for k in range(lo, hi) if not 0 <= codes[k] < n_events), None)
                if wrong is not None:
                    message = (f"history[{wrong - lo}]: code {codes[wrong]} is neither a status nor an "
                               f"action (0–{n_events - 1}: {', '.join(EVENTS)})")  # fmt: skip
                    lines.append(_error(i, message))
                    continue
            if i in unsorted:  # put in time order, ties keeping their order (as sla.history_of sorts)
                order = sorted(range(lo, hi), key=at.__getitem__)
                t_at, t_codes, first = [at[k] for k in order], [codes[k] for k in order], 0
                t_worked = [worked[k] for k in order]
                hi, lo = len(order), 0
            if t_at[first] > as_of_us:
                continue
            specs = self.specs(kinds[i], categories[i], priorities[i])
            if isinstance(specs, str):
                lines.append(_error(i, specs))
                continue
            cut = bisect_right(t_at, as_of_us, lo, hi)
            try:
                lines.extend(self.ticket(i, t_at, t_codes, t_worked, first, cut, specs))
            except AppError as exc:
                lines.append(_error(i, exc.message))
        return lines

    def worked(self, at_us: np.ndarray, at: list[int]) -> list[int | None]:
        """:meth:`BusinessCalendar.worked_us` of each moment, at once from the calendar's windows."""
        calendar = self.calendar
        if not at:
            return []
        table = calendar.worked_windows(int(at_us.min()), int(at_us.max()))
        if table is None:  # some moment the index cannot answer: each is asked (then the walk falls back)
            return [calendar.worked_us(t) for t in at]
        floor, opens, closes, before = table
        if not opens:
            return [floor] * len(at)
        t = at_us.astype(np.int64)
        k = np.searchsorted(np.array(opens, dtype=np.int64), t, side="right") - 1
        kk = np.maximum(k, 0)
        opened = np.array(opens, dtype=np.int64)[kk]
        closed = np.array(closes, dtype=np.int64)[kk]
        base = np.array(before, dtype=np.int64)[kk]
        answer = np.where(k < 0, floor, base + np.minimum(t, closed) - opened)
        values: list[int | None] = answer.tolist()
        return values

    def ticket(
        self,
        index: int,
        at: list[int],
        codes: list[int],
        worked_at: list[int | None],
        lo: int,
        cut: int,
        specs: tuple[_Spec, ...],
    ) -> list[_Row]:
        """The clocks of one ticket along entries ``[lo, cut)`` (in time order, none after ``as_of``);
        ``worked_at``: :meth:`BusinessCalendar.worked_us` of each entry's moment.

        A clock is a list: [0 target, 1 days, 2 budget, 3 active, 4 stopped_us, 5 breached in an earlier
        round, 6 levels reached, 7 breach moment, 8 allowed, 9 used, 10 paused, 11 level limits, 12 spec,
        13 the used time past which the next level is reached]."""
        calendar = self.calendar
        as_of_us = self.as_of_us
        start = at[lo]
        clocks: list[list[Any]] = []
        for spec in specs:
            budget = spec[2]
            if spec[1] is None:  # a business clock's first round, as round() would start it
                limits = spec[6]
                clock: list[Any] = [spec[0], None, budget, True, None, False, 0, None, budget, 0, 0, limits,
                                    spec, limits[0] - _SLACK[0]]  # fmt: skip
            else:
                clock = [spec[0], spec[1], budget, True, None, False, 0, None, 0, 0, 0, (), spec, 0]
                self.round(clock, start)
            clocks.append(clock)
        pausing = False  # the status ("new" at receipt) pauses the clocks
        previous = start
        previous_worked = worked_at[lo]
        moments = at[lo:cut]
        moments.append(as_of_us)  # the last span runs to as_of (code -1: no entry)
        events = codes[lo:cut]
        events.append(-1)
        worked_then = worked_at[lo:cut]
        worked_then.append(self.as_of_worked)
        for t, code, t_worked in zip(moments, events, worked_then, strict=True):
            if t > previous:  # a span of the history: each running clock counts it (or pauses through it)
                worked = -1
                exact = False  # whether the span's working time came from the index (see below)
                for clock in clocks:
                    if not clock[3]:
                        continue
                    days = clock[1]
                    if days is None:
                        if worked < 0:
                            if previous_worked is None or t_worked is None:
                                worked = calendar.between_us(previous, t)
                            else:  # the same sum between_us makes (BusinessCalendar.worked_us)
                                worked = t_worked - previous_worked
                                exact = t - previous < _SURE_SPAN_US
                        m = worked
                    else:
                        m = t - previous
                    if pausing:
                        clock[10] += m
                        continue
                    used = clock[9]
                    total = used + m
                    clock[9] = total
                    if total <= clock[13]:  # the next level is not reached
                        continue
                    reached = clock[6]
                    limits = clock[11]
                    while reached < 3:
                        limit = limits[reached]
                        if not (total > limit if _STRICT[reached] else total >= limit):
                            break
                        to_go = limit - used if limit > used else 0
                        if reached == _BREACH:
                            clock[7] = (
                                previous + to_go if days is not None else calendar.add_us(previous, to_go)
                            )
                        elif days is None and not exact:  # evaluate computes it: it may raise
                            calendar.add_us(previous, to_go)
                        reached += 1
                    clock[6] = reached
                    clock[13] = limits[reached] - _SLACK[reached] if reached < 3 else _NEVER
            if code < 0:
                break
            if code < _N_STATUSES:
                pausing = code in _PAUSING_CODES
            previous, previous_worked = t, t_worked
            if code not in _ACTING_CODES:  # nothing a clock reacts to (it only entered a status)
                continue
            closing = code in _CLOSING_CODES
            for clock in clocks:
                target, active = clock[0], clock[3]
                if target == _FIRST_RESPONSE:
                    if active and (code == _RESPONDED or closing):
                        clock[3], clock[4] = False, t
                elif target == _RESOLUTION:
                    if active and closing:
                        clock[3], clock[4] = False, t
                    elif not active and code == _REOPENED:
                        clock[3], clock[4] = True, None
                elif active and closing:  # next_update
                    clock[3], clock[4] = False, t
                elif code == _REOPENED and not active:
                    clock[3], clock[4] = True, None
                    self.round(clock, t)
                elif active and code in _ROUND_CODES:
                    self.round(clock, t)
        return [self.result(index, clock, as_of_us, pausing) for clock in clocks]

    def round(self, clock: list[Any], start: int) -> None:
        """A new round of a clock (at its start, and for next_update at each response, update, reopening)."""
        if clock[6] > _BREACH:
            clock[5] = True
        days = clock[1]
        if days is None:  # the same budget and limits every round
            limits = clock[11]
            clock[6], clock[7], clock[9], clock[10], clock[13] = 0, None, 0, 0, limits[0] - _SLACK[0]
            return
        allowed = self.calendar.calendar_days_due_us(start, days) - start
        limits = tuple(_share(allowed, percent) for percent in _PERCENTS)
        clock[6], clock[7], clock[8], clock[9], clock[10], clock[11] = 0, None, allowed, 0, 0, limits
        clock[13] = limits[0] - _SLACK[0]

    def result(self, index: int, clock: list[Any], as_of_us: int, paused_now: bool) -> _Row:
        stopped = clock[4]
        reached, allowed, used = clock[6], clock[8], clock[9]
        breach_now = clock[7] if reached > _BREACH else None
        if breach_now is not None:
            due = breach_now
        elif clock[1] is not None:
            due = (as_of_us if stopped is None else stopped) + allowed - used
        else:
            due = self.calendar.add_us(as_of_us if stopped is None else stopped, allowed - used)
        if clock[5] or breach_now is not None:
            state = "breached"
        else:
            state = "met" if stopped is not None else "running"
        if reached < 3 and stopped is None and not paused_now and clock[1] is None:
            limit = clock[11][reached]  # sla.evaluate computes the next level's moment: it may raise
            self.calendar.add_us(as_of_us, limit - used if limit > used else 0)
        spec = clock[12]
        tenths = used * 1000 // allowed
        percent = self.percents.get(tenths)
        if percent is None:
            percent = self.percent(used, allowed)
        return (
            index, spec[3], spec[4], spec[5], due, used // _MINUTE_US, clock[10] // _MINUTE_US,
            percent, state, _LEVEL_NAMES[reached - 1] if reached else None, None,
        )  # fmt: skip


def _error(index: int, message: str) -> _Row:
    return (index, "-", "-", "-", None, None, None, "-", "error", None, message)


_new = object.__new__


def _lines(rows: list[_Row]) -> list[SlaLine]:
    """SlaLines of rows, filled in directly (a frozen dataclass's ``__init__`` costs four times as much: a
    million tickets give millions of lines)."""
    lines = []
    with _no_gc():
        for row in rows:
            line = _new(SlaLine)
            d = line.__dict__
            (d["ticket_index"], d["target"], d["spec"], d["clock"], d["due_us"], d["used_minutes"],
             d["paused_minutes"], d["percent_used"], d["state"], d["level"], d["error"]) = row  # fmt: skip
            lines.append(line)
    return lines


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: building millions of small acyclic objects (rows, lines) would
    otherwise trigger it over and over (it scans every live container) for nothing to collect."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _unsorted_tickets(batch: ClockBatch) -> set[int]:
    """Tickets whose entries are not in time order."""
    if len(batch.at_us) < 2:
        return set()
    falls = np.flatnonzero(np.diff(batch.at_us) < 0) + 1  # entry k is earlier than entry k - 1
    if not len(falls):
        return set()
    owners = np.searchsorted(batch.offsets, falls, side="right") - 1
    starts = batch.offsets[owners]
    return set(owners[falls != starts].tolist())  # a fall at a ticket's first entry is between tickets


def evaluate_batch(
    batch: ClockBatch, *, policy: SlaPolicy, calendar: BusinessCalendar, as_of: datetime
) -> list[SlaLine]:
    """The SLA lines of one batch at ``as_of``: per ticket (``ticket_index`` into the batch) one line per
    target in ``TARGETS`` order, or one error line; a ticket received after ``as_of`` has none."""
    return _lines(_Evaluator(policy, calendar, as_of).batch(batch))


_WORKER: _Evaluator | None = None


def _start_worker(policy: SlaPolicy, calendar: BusinessCalendar, as_of: datetime) -> None:
    global _WORKER
    _WORKER = _Evaluator(policy, calendar, as_of)


def _work(batch: ClockBatch) -> list[_Row]:
    assert _WORKER is not None, "the pool's initializer did not run"
    return _WORKER.batch(batch)


def evaluate_batches(
    batches: Iterable[ClockBatch],
    *,
    policy: SlaPolicy,
    calendar: BusinessCalendar,
    as_of: datetime,
    processes: int = 1,
) -> Iterator[list[SlaLine]]:
    """Each batch's lines (:func:`evaluate_batch`), in input order, lazily; with ``processes`` > 1 a spawn
    pool of that many workers, at most two batches per worker in flight."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    if processes == 1:
        evaluator = _Evaluator(policy, calendar, as_of)
        for batch in batches:
            yield _lines(evaluator.batch(batch))
        return
    if as_of.utcoffset() is None:
        raise ValueError("as_of must be an aware datetime")
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_start_worker, initargs=(policy, calendar, as_of)) as pool:
        pending: deque[AsyncResult[list[_Row]]] = deque()
        for batch in batches:
            pending.append(pool.apply_async(_work, (batch,)))
            while len(pending) >= 2 * processes:
                yield _lines(pending.popleft().get())
        while pending:
            yield _lines(pending.popleft().get())


__all__ = ["CODE_OF", "EVENTS", "ClockBatch", "SlaLine", "evaluate_batch", "evaluate_batches"]
