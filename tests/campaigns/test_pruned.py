"""A backtest that leaves out the events that change no decision (the default) writes the same grants, byte
for byte, and the same report as one that applies the decision function to every event; when a threshold
is reached and not granted (a cap, a budget, points), the pruning would not hold and the run is made again
over every event. Grant lines written without ``isoformat`` are ``Grant.to_contract``'s, byte for byte."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omnibank.benefits.grant import Grant
from omnibank.campaigns import simulate as simulation
from omnibank.campaigns.engine import Decider
from omnibank.campaigns.spec import Budget, CampaignSpec, Cap, compile_campaign, load_campaign
from omnibank.config import Settings
from tests.campaigns.helpers import LUCKIN, card, of, spend
from tests.campaigns.test_properties import EVERY_RULE, streams
from tests.events.helpers import jsonl

EXAMPLES = LUCKIN.parent


def both(settings: Settings, path: Path, spec: CampaignSpec, **options: object) -> tuple[bytes, bytes]:
    """The grants of a pruned and of a full run, after checking that their reports agree."""
    outputs, reports = [], []
    for prune in (True, False):
        buf = io.BytesIO()
        reports.append(simulation.simulate(spec, settings, events=path, out=buf, prune=prune, **options))
        outputs.append(buf.getvalue())
    pruned, full = reports
    assert (pruned.events, pruned.grants, pruned.face_value, pruned.customers) == (
        full.events, full.grants, full.face_value, full.customers,
    )  # fmt: skip
    assert pruned.by_rule_month == full.by_rule_month
    assert pruned.refusals == full.refusals
    return outputs[0], outputs[1]


def test_pruned_equals_full_for_random_streams(env, tmp_path_factory) -> None:
    specs = [
        load_campaign(LUCKIN),
        load_campaign(EXAMPLES / "red_friday.yaml"),
        load_campaign(EXAMPLES / "video_9yuan.yaml"),
    ]
    tight = specs[0]  # caps that bite: weekly at most 2 a year, welcome at most 3 (of 6)
    rules = [
        r.model_copy(update={"caps": [Cap(per="year", max=2)]})
        if r.id == "weekly"
        else r.model_copy(update={"caps": [Cap(per="month", max=3)]})
        if r.id == "welcome"
        else r
        for r in tight.rules
    ]
    specs.append(tight.model_copy(update={"rules": rules, "budget": Budget(face_value=Decimal("300.00"))}))
    granted: set[str] = set()

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(events=streams(), which=st.integers(0, len(specs) - 1))
    @example(events=EVERY_RULE, which=0)
    def check(events: list[dict], which: int) -> None:
        path = jsonl(tmp_path_factory.mktemp("stream") / "events.jsonl", *events)
        pruned, full = both(env.settings, path, specs[which])
        assert pruned == full
        granted.update(orjson.loads(line)["rule"] for line in full.splitlines())

    check()
    assert {"welcome", "weekly"} <= granted


def test_a_refused_threshold_runs_again_in_full(env, tmp_path, monkeypatch) -> None:
    """A weekly voucher refused by its yearly cap leaves the week's threshold reached: each later spend of
    that week is refused again, which only the full run sees."""
    spec = load_campaign(LUCKIN)
    rules = [r.model_copy(update={"caps": [Cap(per="year", max=1)]}) if r.id == "weekly" else r
             for r in spec.rules]  # fmt: skip
    spec = spec.model_copy(update={"rules": rules})
    events = [card("c", "A", "2026-01-05T10:00:00+08:00", tier="gold")]
    for week in range(2):  # 5 spends in each of two weeks: the second week's voucher is refused 3 times
        for i in range(5):
            at = datetime(2026, 1, 6, 9) + timedelta(weeks=week, hours=i)  # noqa: DTZ001 - written with +08:00
            events.append(spend(f"w{week}-{i}", "A", f"{at:%Y-%m-%dT%H:%M:%S}+08:00"))
    path = jsonl(tmp_path / "events.jsonl", *events)
    runs: list[bool] = []
    real = simulation._simulate

    def spy(*args: object, prune: bool) -> simulation.SimulationReport:
        runs.append(prune)
        return real(*args, prune=prune)  # type: ignore[arg-type]

    monkeypatch.setattr(simulation, "_simulate", spy)
    buf = io.BytesIO()
    report = simulation.simulate(spec, env.settings, events=path, out=buf)
    assert runs == [True, False]  # pruned first, then in full
    grants = [orjson.loads(line) for line in buf.getvalue().splitlines()]
    assert [g["granted_at"] for g in of(grants, "weekly")] == ["2026-01-06T11:00:00+08:00"]
    assert report.refusals[("weekly", "cap:year")] == 3
    assert report.events == 11


def test_pruning_leaves_out_what_cannot_count(env, tmp_path) -> None:
    """Spends before the card, and those after the third of a week, never reach the decision function;
    the third counts for all three, and the report still counts every event of the campaign's types."""
    events = [spend("early", "A", "2026-01-02T10:00:00+08:00"), card("c", "A", "2026-01-05T10:00:00+08:00")]
    events += [spend(f"s{i}", "A", f"2026-01-0{6 + i}T10:00:00+08:00") for i in range(4)]  # Tue–Fri
    path = jsonl(tmp_path / "events.jsonl", *events)
    seen: list[tuple[str, object]] = []
    decider = Decider(compile_campaign(load_campaign(LUCKIN)), env.settings.tz)
    real = Decider.decide

    def spy(self: Decider, state: object, event: object) -> object:
        seen.append((event.event_id, event.fields.get(decider.count_field("weekly"))))  # type: ignore[attr-defined]
        return real(self, state, event)  # type: ignore[arg-type]

    Decider.decide = spy  # type: ignore[method-assign]
    try:
        buf = io.BytesIO()
        report = simulation.simulate(load_campaign(LUCKIN), env.settings, events=path, out=buf)
    finally:
        Decider.decide = real  # type: ignore[method-assign]
    assert seen == [("c", None), ("s2", 3)]
    assert report.events == 6
    assert [orjson.loads(g)["rule"] for g in buf.getvalue().splitlines()] == ["weekly"]


ZONES = ["Asia/Shanghai", "America/New_York", "Africa/Monrovia", "Asia/Kolkata", "Europe/Dublin"]


@settings(max_examples=300, deadline=None)
@given(
    seconds=st.integers(-2_500_000_000, 4_000_000_000),
    micros=st.sampled_from([0, 1, 500_000]),
    zone=st.sampled_from(ZONES),
    fen=st.none() | st.integers(0, 10**9),
    rate=st.none() | st.sampled_from([Decimal("0.75"), Decimal("0.5"), Decimal("1"), Decimal("0.650")]),
    stage=st.none() | st.integers(1, 5),
    valid=st.sampled_from(["none", "later", "same"]),
    claim=st.booleans(),
    rule=st.sampled_from(["weekly", '规则"x\\y', "welcome"]),
)
def test_grant_lines_are_to_contract_byte_for_byte(
    seconds: int, micros: int, zone: str, fen: int | None, rate: Decimal | None, stage: int | None,
    valid: str, claim: bool, rule: str,
) -> None:  # fmt: skip
    tz = ZoneInfo(zone)
    at = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros)).astimezone(tz)
    later = at + timedelta(days=31, hours=5)
    grant = Grant(
        key="k", campaign="c1", rule=rule, customer_id="C0000001", benefit_id="luckin_voucher", granted_at=at,
        valid_from=None if valid == "none" else at if valid == "same" else later,
        valid_to=None if valid == "none" else later, claim_by=later if claim else None,
        face_value_fen=fen, discount_rate=rate, stage=stage,
    )  # fmt: skip
    written: list[bytes] = []
    emit = simulation._Emit("c1", written.append, keyed=False)  # the backtest's writer of grant lines
    values = (grant.customer_id, grant.rule, grant.benefit_id, grant.granted_at,
              grant.valid_from or grant.granted_at, grant.valid_to, grant.claim_by, grant.face_value_fen,
              grant.discount_rate, grant.stage)  # fmt: skip
    emit(*values)
    emit(*values)  # again, from the caches
    assert written == [orjson.dumps(grant.to_contract()) + b"\n"] * 2
