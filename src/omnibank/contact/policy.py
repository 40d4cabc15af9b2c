"""The one contact policy, pure (no database): consent, do-not-disturb, quiet hours and caps.

Every send is decided here — by :func:`omnibank.contact.outbox.submit` over the store, by ``journey
simulate`` and by the benchmark over :class:`MemoryCounters` — so all of them give the same answers.

The order of the checks (docs/journeys.md):

1. **reachable** — a send to a customer we do not know (or who was erased) is suppressed ``unreachable``;
2. **consent** — marketing only: without marketing consent, suppressed ``no_consent``;
   **holds** — a survey while the customer has a complaint open (the service desk holds surveys then):
   suppressed ``open_complaint``;
3. **do-not-disturb** — marketing, service and surveys: suppressed ``dnd``;
   **survey fatigue** — surveys only: a customer asked to take a survey less than the gap ago (30 days by
   default, ``OMNIBANK_SURVEY_GAP_DAYS``, or the survey's own ``gap``), by any survey, is not asked again:
   suppressed ``survey_fatigue``;
4. **quiet hours** (default 21:00–08:00 bank-local) — a send asked for inside them is deferred to their end
   (``defer``, reason ``quiet_hours``), never dropped; it is decided again when it goes. ``branch_task`` is
   a task for staff at the branch, not a contact at that moment, so it is exempt. ``wecom`` is sent by
   staff but lands on the customer's phone (WeChat), so it is *not* exempt: a relationship manager's
   message at 23:00 disturbs like any other;
5. **caps** — marketing only (service bypasses them): at most ``channel_day_cap`` per customer per channel
   per bank-local day and ``week_cap`` per customer per natural Monday–Sunday week across all channels.
   Both counters are taken together or neither. Caps are taken when the message goes: a deferred send
   takes them on the day it goes (at the end of the quiet hours), not the day it was asked for.
   ``branch_task`` marketing counts too (it ends in a person contacting the customer).

:func:`plan` drives :func:`decide` over a time-ordered stream with deferred sends decided again when their
time comes, exactly as ``submit`` + ``dispatch`` do over the store.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal, Protocol
from zoneinfo import ZoneInfo

from omnibank.kit.delivery import CHANNELS as CHANNELS
from omnibank.kit.delivery import parse_quiet_hours as parse_quiet_hours

if TYPE_CHECKING:
    from omnibank.config import Settings

PURPOSES: tuple[str, ...] = ("marketing", "service", "survey")
REASONS: tuple[str, ...] = (
    "no_consent",
    "dnd",
    "quiet_hours",
    "cap_channel_day",
    "cap_week",
    "unreachable",
    "duplicate",
    "survey_fatigue",
    "open_complaint",
)
#: channels not subject to quiet hours (a task for staff, done in working hours anyway)
QUIET_EXEMPT: frozenset[str] = frozenset({"branch_task"})

_CHANNEL_SET = frozenset(CHANNELS)
_PURPOSE_SET = frozenset(PURPOSES)

Action = Literal["send", "defer", "suppress"]
Purpose = Literal["marketing", "service", "survey"]


# ------------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class PolicyConfig:
    """The policy's parameters; :meth:`from_settings` builds it from ``OMNIBANK_QUIET_HOURS``,
    ``OMNIBANK_CAP_CHANNEL_DAY``, ``OMNIBANK_CAP_WEEK`` and ``OMNIBANK_TIMEZONE``."""

    quiet_start: time | None = time(21, 0)  # None: no quiet hours
    quiet_end: time | None = time(8, 0)
    channel_day_cap: int = 1
    week_cap: int = 3
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    quiet_exempt: frozenset[str] = QUIET_EXEMPT
    survey_gap_days: int = 30  # at most one survey per customer in this many days, across all surveys
    quiet_seconds: tuple[int, int] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet hours need both a start and an end (or neither)")
        if self.quiet_start is not None and self.quiet_start == self.quiet_end:
            raise ValueError("quiet hours: start and end are the same")
        if self.channel_day_cap < 0 or self.week_cap < 0:
            raise ValueError("caps cannot be negative")
        if self.survey_gap_days < 0:
            raise ValueError("survey gap cannot be negative")
        unknown = set(self.quiet_exempt) - _CHANNEL_SET
        if unknown:
            raise ValueError(f"quiet_exempt: unknown channel(s) {', '.join(sorted(unknown))}")
        if self.quiet_start is not None and self.quiet_end is not None:
            s, e = self.quiet_start, self.quiet_end
            bounds = (s.hour * 3600 + s.minute * 60, e.hour * 3600 + e.minute * 60)
            object.__setattr__(self, "quiet_seconds", bounds)  # seconds of the day, for the hot path

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyConfig:
        quiet = parse_quiet_hours(settings.quiet_hours)
        return cls(
            quiet_start=quiet[0] if quiet else None,
            quiet_end=quiet[1] if quiet else None,
            channel_day_cap=settings.cap_channel_day,
            week_cap=settings.cap_week,
            survey_gap_days=settings.survey_gap_days,
            tz=settings.tz,
        )


# ------------------------------------------------------------------------------------------------ values


@dataclass(frozen=True, slots=True)
class Send:
    """One intended send. ``key`` is unique per intended send (submitting it again changes nothing);
    ``payload`` holds template variables, never personal data."""

    key: str
    customer_id: str
    channel: str
    purpose: Purpose
    at: datetime  # when the send is asked for (aware)
    journey: str | None = None
    step: str | None = None
    template: str | None = None
    payload: Mapping[str, str] = field(default_factory=dict)
    gap_days: int | None = None  # a survey's own fatigue window (None: the policy's survey_gap_days)

    def __post_init__(self) -> None:
        if self.channel not in _CHANNEL_SET:
            raise ValueError(f"send {self.key}: channel {self.channel!r} is not one of {', '.join(CHANNELS)}")
        if self.purpose not in _PURPOSE_SET:
            raise ValueError(f"send {self.key}: purpose {self.purpose!r} is not one of {', '.join(PURPOSES)}")
        if self.at.tzinfo is None:
            raise ValueError(f"send {self.key}: naive datetime refused; every time must carry a zone")


@dataclass(frozen=True, slots=True)
class Decision:
    """``send`` (at ``at``), ``defer`` (until ``at``, the end of the quiet hours) or ``suppress`` (with a
    reason). ``message_id`` is the outbox row (set by the store path only)."""

    action: Action
    reason: str | None
    at: datetime
    message_id: int | None = None


# ---------------------------------------------------------------------------------------------- counters


def day_scope(channel: str, local_day: date) -> str:
    """Counter key of a channel's bank-local day, e.g. ``d:sms:2026-11-30``."""
    return f"d:{channel}:{local_day.isoformat()}"


def week_scope(local_day: date) -> str:
    """Counter key of the natural week (Monday–Sunday) holding ``local_day``: ``w:<its Monday>``."""
    return f"w:{(local_day - timedelta(days=local_day.weekday())).isoformat()}"


def cap_scopes(channel: str, at: datetime, config: PolicyConfig) -> tuple[str, str]:
    """The (day, week) counter keys a marketing send at ``at`` counts against."""
    local_day = at.astimezone(config.tz).date()
    return day_scope(channel, local_day), week_scope(local_day)


class Counters(Protocol):
    """Caps: check and take both counters of a marketing send atomically, or neither."""

    def take(self, customer_id: str, channel: str, at: datetime, config: PolicyConfig) -> str | None:
        """None when taken; else the reason (``cap_channel_day`` or ``cap_week``) and nothing taken."""
        ...


class MemoryCounters:
    """Counters in a dict, for simulation, tests and the benchmark (one process)."""

    __slots__ = ("_days", "counts")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}  # (customer, scope) → count
        self._days: dict[date, tuple[str, str]] = {}  # day → (its ISO text, its week's scope)

    def take(self, customer_id: str, channel: str, at: datetime, config: PolicyConfig) -> str | None:
        local_day = at.astimezone(config.tz).date()  # at in config.tz already (decide passes it): no work
        keys = self._days.get(local_day)
        if keys is None:
            keys = self._days[local_day] = (local_day.isoformat(), week_scope(local_day))
        day_key = (customer_id, f"d:{channel}:{keys[0]}")
        week_key = (customer_id, keys[1])
        counts = self.counts
        day_n = counts.get(day_key, 0)
        if day_n >= config.channel_day_cap:
            return "cap_channel_day"
        week_n = counts.get(week_key, 0)
        if week_n >= config.week_cap:
            return "cap_week"
        counts[day_key] = day_n + 1
        counts[week_key] = week_n + 1
        return None

    def release(self, customer_id: str, channel: str, at: datetime, config: PolicyConfig) -> None:
        """Give back what :meth:`take` took (a queued send refused before it went)."""
        day, week = cap_scopes(channel, at, config)
        for key in ((customer_id, day), (customer_id, week)):
            if self.counts.get(key, 0) > 0:
                self.counts[key] -= 1


# ------------------------------------------------------------------------------------------------ decide


def quiet_until(at: datetime, config: PolicyConfig) -> datetime | None:
    """When the quiet hours holding ``at`` end (bank-local, an aware datetime in ``config.tz``); None when
    ``at`` is outside them."""
    bounds = config.quiet_seconds
    if bounds is None:
        return None
    start, end = bounds
    local = at.astimezone(config.tz)  # no work when ``at`` is in config.tz already
    s = local.hour * 3600 + local.minute * 60 + local.second
    if start > end:  # wraps midnight, e.g. 21:00-08:00
        if s >= start:
            day = local.date() + timedelta(days=1)
        elif s < end:
            day = local.date()
        else:
            return None
    elif start <= s < end:
        day = local.date()
    else:
        return None
    assert config.quiet_end is not None
    moment = datetime.combine(day, config.quiet_end, tzinfo=config.tz)
    # normalise through UTC: a wall time skipped by a DST change becomes the instant after it
    return moment.astimezone(UTC).astimezone(config.tz)


def decide(
    send: Send,
    config: PolicyConfig,
    *,
    consent: bool,
    dnd: bool,
    counters: Counters,
    reachable: bool = True,
    held: str | None = None,
    surveyed_at: datetime | None = None,
) -> Decision:
    """Decide one send at ``send.at``: reachable → consent (marketing) → a hold (survey: an open
    complaint) → do-not-disturb → survey fatigue (survey: the customer's last survey ``surveyed_at`` less
    than the gap ago) → quiet hours → caps (marketing). Caps are taken (in ``counters``) only when the
    answer is ``send``."""
    at = send.at
    if not reachable:
        return Decision("suppress", "unreachable", at)
    marketing = send.purpose == "marketing"
    if marketing and not consent:
        return Decision("suppress", "no_consent", at)
    if held is not None:
        return Decision("suppress", held, at)
    if dnd:
        return Decision("suppress", "dnd", at)
    if send.purpose == "survey" and surveyed_at is not None:
        gap = send.gap_days if send.gap_days is not None else config.survey_gap_days
        if at - surveyed_at < timedelta(days=gap):
            return Decision("suppress", "survey_fatigue", at)
    local = at.astimezone(config.tz)  # once: the checks below reuse it
    if send.channel not in config.quiet_exempt:
        until = quiet_until(local, config)
        if until is not None:
            return Decision("defer", "quiet_hours", until)
    if marketing:
        refused = counters.take(send.customer_id, send.channel, local, config)
        if refused is not None:
            return Decision("suppress", refused, at)
    return Decision("send", None, at)


# -------------------------------------------------------------------------------------------------- plan

Lookup = Callable[[Send], bool]


def plan(
    sends: Iterable[Send],
    config: PolicyConfig,
    *,
    consent: Lookup,
    dnd: Lookup,
    counters: Counters,
    reachable: Lookup | None = None,
    held: Callable[[Send], str | None] | None = None,
) -> Iterator[tuple[Send, Decision]]:
    """Decide a stream of sends in time order (``sends`` sorted by ``at``), each deferred send again when
    its quiet hours end — before any send asked for at or after that moment — with ``at`` moved to then.
    Yields every decision made: a deferred send appears twice (``defer``, then its final decision, whose
    ``at`` is when it goes). ``consent``, ``dnd`` and ``reachable`` answer for a send at its time, ``held``
    (surveys) with the reason of a hold on it. Survey fatigue is reckoned from the surveys this plan let
    through. Repeated keys are suppressed ``duplicate`` (the first one stands)."""
    waiting: list[tuple[float, int, Send]] = []  # (POSIX time it goes, order, the send moved to then)
    seen: set[str] = set()
    surveyed: dict[str, datetime] = {}  # customer → their last survey that went or is going
    n = 0
    last = float("-inf")

    def one(s: Send) -> tuple[Send, Decision]:
        survey = s.purpose == "survey"
        d = decide(
            s,
            config,
            consent=consent(s) if s.purpose == "marketing" else True,
            dnd=dnd(s),
            counters=counters,
            reachable=True if reachable is None else reachable(s),
            held=held(s) if survey and held is not None else None,
            surveyed_at=surveyed.get(s.customer_id) if survey and s.key not in redecided else None,
        )
        if survey and d.action == "defer":
            redecided.add(s.key)  # decided again when it goes: its own first decision is not another survey
        if survey and d.action != "suppress" and s.key not in counted:
            counted.add(s.key)
            surveyed[s.customer_id] = s.at
        return s, d

    redecided: set[str] = set()
    counted: set[str] = set()

    for send in sends:
        moment = send.at.timestamp()  # instants, not wall times (a zone's repeated hour compares right)
        if moment < last:
            raise ValueError(
                f"plan: sends must come in time order ({send.key} is earlier than the one before)"
            )
        last = moment
        while waiting and waiting[0][0] <= moment:
            _, _, deferred = heapq.heappop(waiting)
            yield one(deferred)
        if send.key in seen:
            yield send, Decision("suppress", "duplicate", send.at)
            continue
        seen.add(send.key)
        s, d = one(send)
        yield s, d
        if d.action == "defer":
            n += 1
            heapq.heappush(waiting, (d.at.timestamp(), n, _moved(s, d.at)))
    while waiting:
        _, _, deferred = heapq.heappop(waiting)
        yield one(deferred)


def _moved(send: Send, at: datetime) -> Send:
    return Send(
        send.key, send.customer_id, send.channel, send.purpose, at,
        send.journey, send.step, send.template, send.payload, send.gap_days,
    )  # fmt: skip
