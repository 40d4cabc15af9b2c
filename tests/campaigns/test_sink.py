"""A backtest's grants reach its writer as values (``Decider.sink``), not as ``Grant`` objects: the lines it
writes, the merge keys before them and the report it counts are those of the ``Grant`` objects the decision
function returns without a sink (``orjson.dumps(grant.to_contract())``), byte for byte and in order, for
random streams, every example campaign, budgets and caps that bite, and zones with summer time. An
event's instant (``Event.at``, made from whole seconds) is the epoch arithmetic's."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omnibank.benefits.grant import Grant
from omnibank.campaigns import simulate as simulation
from omnibank.campaigns.engine import CampaignState, Decider, Event, Refusal
from omnibank.campaigns.spec import Budget, CampaignSpec, Cap, compile_campaign, load_campaign
from omnibank.events.reader import read_rows
from omnibank.kit.money import from_fen
from tests.campaigns.helpers import LUCKIN, card, exchange, points, spend
from tests.campaigns.test_properties import EVERY_RULE, streams
from tests.events.helpers import jsonl

EXAMPLES = LUCKIN.parent
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _specs() -> list[CampaignSpec]:
    luckin = load_campaign(LUCKIN)
    rules = [
        r.model_copy(update={"caps": [Cap(per="year", max=2)]})
        if r.id == "weekly"
        else r.model_copy(update={"caps": [Cap(per="month", max=3)], "budget": Budget(count=8)})
        if r.id == "welcome"
        else r
        for r in luckin.rules
    ]
    tight = luckin.model_copy(update={"rules": rules, "budget": Budget(face_value=Decimal("300.00"))})
    return [luckin, load_campaign(EXAMPLES / "red_friday.yaml"), load_campaign(EXAMPLES / "video_9yuan.yaml"),
            tight]  # fmt: skip


SPECS = _specs()
# a year of three spends a week, points and exchanges: every stage of the check-in map unlocks
YEAR = [card("card-A", "A", "2026-01-02T10:00:00+08:00", tier="platinum"),
        points("p", "A", "2026-01-02T11:00:00+08:00", 40_000)]  # fmt: skip
for _week in range(52):
    _monday = date(2026, 1, 5) + timedelta(weeks=_week)
    YEAR += [
        spend(f"w{_week:02d}-{i}", "A", f"{_monday + timedelta(days=i)}T09:30:00+08:00") for i in range(3)
    ]
    if _week % 2:
        YEAR.append(exchange(f"x{_week:02d}", "A", f"{_monday}T20:00:00+08:00", 2))


class _Counter:
    """Adds grants to a report's totals, one ``Grant`` object at a time (as the backtest did before its
    sink): the reference the sink's integer counts are held to."""

    def __init__(self, report: simulation.SimulationReport) -> None:
        self.report = report
        self.values: dict[int | None, Decimal] = {}
        self.cells: dict[tuple[str, int, int], list[Any]] = {}

    def count(self, g: Grant) -> None:
        report = self.report
        fen = g.face_value_fen
        value = self.values.get(fen)
        if value is None:
            value = self.values[fen] = from_fen(fen) if fen is not None else Decimal(0)
        report.grants += 1
        report.face_value += value
        at = g.granted_at
        cell = self.cells.get((g.rule, at.year, at.month))
        if cell is None:
            key = (g.rule, f"{at:%Y-%m}")
            cell = self.cells[(g.rule, at.year, at.month)] = report.by_rule_month.setdefault(
                key, [0, Decimal(0)]
            )
        cell[0] += 1
        cell[1] += value


def reference(
    spec: CampaignSpec, tz: ZoneInfo, events: list[Event]
) -> tuple[bytes, bytes, simulation.SimulationReport]:
    """The grants as ``Grant`` objects (no sink): their lines, keyed lines and report."""
    decider = Decider(compile_campaign(spec), tz)
    report = simulation.SimulationReport(campaign=spec.id)
    counter = _Counter(report)
    state = CampaignState()
    lines, keyed, granted = [], [], set()
    for event in events:
        position = 0
        for d in decider.decide(state, event):
            if isinstance(d, Refusal):
                report.refusals[(d.rule, d.reason)] += d.items
                continue
            counter.count(d)
            granted.add(d.customer_id)
            line = orjson.dumps(d.to_contract()) + b"\n"
            lines.append(line)
            keyed.append(orjson.dumps([event.ts_us, event.event_id, position]) + b"\n" + line)
            position += 1
    report.events = len(events)
    report.customers = len(granted)
    report.unfired = decider.unfired
    return b"".join(lines), b"".join(keyed), report


def through_sink(
    spec: CampaignSpec, tz: ZoneInfo, events: list[Event], *, keyed: bool
) -> tuple[bytes, simulation.SimulationReport]:
    decider = Decider(compile_campaign(spec), tz)
    report = simulation.SimulationReport(campaign=spec.id)
    buf = io.BytesIO()
    report.unfired = simulation._run(decider, iter(events), report, buf, None, keyed=keyed)
    assert decider.sink is None  # put back as it was
    return buf.getvalue(), report


def assert_same(spec: CampaignSpec, tz: ZoneInfo, events: list[Event]) -> bytes:
    lines, keyed, expected = reference(spec, tz, events)
    for want, flag in ((lines, False), (keyed, True)):
        got, report = through_sink(spec, tz, events, keyed=flag)
        assert got == want
        assert (report.events, report.grants, report.face_value, report.customers, report.unfired) == (
            expected.events, expected.grants, expected.face_value, expected.customers, expected.unfired,
        )  # fmt: skip
        assert list(report.by_rule_month.items()) == list(expected.by_rule_month.items())  # also the order
        assert report.refusals == expected.refusals
    return lines


def test_sink_writes_the_grant_objects_lines_for_random_streams(env, tmp_path_factory) -> None:
    rules: Counter[str] = Counter()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(events=streams(), which=st.integers(0, len(SPECS) - 1))
    @example(events=EVERY_RULE, which=0)
    @example(events=EVERY_RULE, which=3)
    @example(events=YEAR, which=0)
    @example(events=YEAR, which=3)
    def check(events: list[dict], which: int) -> None:
        spec = SPECS[which]
        decider = Decider(compile_campaign(spec), env.settings.tz)
        path = jsonl(tmp_path_factory.mktemp("stream") / "events.jsonl", *events)
        rows = list(read_rows(env.settings, Event, fields=decider.columns, types=decider.types, path=path))
        lines = assert_same(spec, env.settings.tz, rows)
        rules.update(orjson.loads(line)["rule"] for line in lines.splitlines())

    check()
    assert {"welcome", "weekly", "points_exchange", "checkin_map"} <= set(rules)


def _event(eid: str, etype: str, customer: str, ts_us: int, tz: ZoneInfo, **fields: object) -> Event:
    local = (_EPOCH + timedelta(microseconds=ts_us)).astimezone(tz).date()
    return Event(eid, etype, customer, ts_us, local, fields)


# 2026's summer time changes in New York (8 March, 1 November) and Dublin (29 March, 25 October), UTC
CHANGES = [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
           datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(["America/New_York", "Europe/Dublin", "Asia/Kolkata", "Asia/Shanghai"]),
    change=st.sampled_from(CHANGES),
    offsets=st.lists(st.integers(-3 * 86_400, 3 * 86_400), min_size=3, max_size=40),
    micros=st.sampled_from([0, 1, 999_999]),
    amounts=st.lists(st.sampled_from(["5.00", "99.00", "300.00"]), min_size=1, max_size=5),
    tier=st.sampled_from(["gold", "platinum"]),
    which=st.sampled_from([0, 3]),
)
def test_sink_lines_across_summer_time(
    zone: str, change: datetime, offsets: list[int], micros: int, amounts: list[str], tier: str, which: int
) -> None:
    """Spends and exchanges around a change of offset (an hour that happens twice, or not at all): the
    instants, the ends of days and the months written are those of the ``Grant`` objects."""
    tz = ZoneInfo(zone)
    base = int((change - _EPOCH).total_seconds()) * 1_000_000
    card_at = base - 20 * 86_400 * 1_000_000
    fields = {"product": "luckin_cobrand", "tier": tier, "is_primary": True, "new_customer": True}
    events = [_event("card", "card.issued", "A", card_at, tz, **fields)]
    events.append(_event("pts", "points.earned", "A", card_at + 1, tz, points=50_000))
    for i, offset in enumerate(sorted(offsets)):
        ts = base + offset * 1_000_000 + micros
        if i % 7 == 6:
            events.append(
                _event(f"x{i:03d}", "points.redeem", "A", ts, tz, reward="luckin_voucher", quantity=2)
            )
        else:
            amount = Decimal(amounts[i % len(amounts)])
            events.append(_event(f"s{i:03d}", "card.transaction", "A", ts, tz, amount=amount))
    events.sort(key=lambda e: (e.ts_us, e.event_id))
    assert_same(SPECS[which], tz, events)


@settings(max_examples=500, deadline=None)
@given(
    ts_us=st.integers(-62_000_000_000 * 1_000_000, 250_000_000_000 * 1_000_000)
    | st.integers(1_700_000_000_000_000, 1_800_000_000_000_000),
    zone=st.sampled_from(["Asia/Shanghai", "America/New_York", "Africa/Monrovia", "Europe/Dublin", "UTC"]),
)
def test_event_instant_is_the_epoch_arithmetic(ts_us: int, zone: str) -> None:
    tz = ZoneInfo(zone)
    try:
        want = (_EPOCH + timedelta(microseconds=ts_us)).astimezone(tz)
    except OverflowError:
        return  # beyond datetime's years
    got = Event("e", "card.transaction", "A", ts_us, date(2026, 1, 1), {}).at(tz)
    assert (got, got.fold, got.utcoffset(), got.isoformat()) == (
        want,
        want.fold,
        want.utcoffset(),
        want.isoformat(),
    )
