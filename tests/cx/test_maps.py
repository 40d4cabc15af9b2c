"""Journey map files: the examples load; weights not summing to 1, bad types, fields and expressions are
refused naming the file, the line and the field; scoring is linear and clamped."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnibank.cx.maps import Indicator, load_map, parse_map, unseen_types
from omnibank.errors import InputRefused
from omnibank.segments.expr import Vocabulary
from tests.cx.test_index import MAP

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "cx"


def refused(text: str, vocabulary: Vocabulary | None = None) -> str:
    with pytest.raises(InputRefused) as info:
        parse_map(text, source="card.yaml", vocabulary=vocabulary)
    return info.value.message


def test_the_examples_load() -> None:
    card = load_map(EXAMPLES / "credit_card_map.yaml")
    assert [s.name for s in card.stages] == ["申卡", "激活", "用卡", "还款", "服务"]
    indicators = [i for _, i in card.indicators()]
    assert len(indicators) >= 18
    assert {i.kind for i in indicators} == {"survey", "events", "within", "customers", "tickets"}
    wealth = load_map(EXAMPLES / "wealth_map.yaml")
    assert len(list(wealth.indicators())) >= 8
    surveys = {i.survey.id for m in (card, wealth) for _, i in m.indicators() if i.survey is not None}
    assert surveys == {"nps_card", "csat_branch", "ces_service"}


def test_weights_not_summing_to_one_are_refused_with_line_and_field() -> None:
    message = refused(MAP.replace("weight: 0.4", "weight: 0.3"))
    assert message.startswith("card.yaml: journey map refused:")
    assert "stages (line 4): the weights of the stages sum to 0.9, not 1" in message
    # two levels down, and the exact decimal sum 0.1 + 0.2 + 0.7 = 1 is accepted
    message = refused(MAP.replace("weight: 0.25\n", "weight: 0.3\n", 1))
    assert "stages.1.touchpoints.0.experience_points.0.indicators (line 53): " in message
    assert "the weights of the indicators of experience point p3 sum to 1.05, not 1" in message
    head, tail = MAP.split("id: approved_3d")
    tail = tail.replace("weight: 0.5", "weight: 0.7").replace("weight: 0.25", "weight: 0.1", 1)
    ok = head + "id: approved_3d" + tail.replace("weight: 0.25", "weight: 0.2")
    assert parse_map(ok).id == "test_map"  # 0.7 + 0.1 + 0.2 is exactly 1 as decimals


def test_bad_types_fields_and_expressions_are_refused() -> None:
    message = refused(MAP.replace("count: app.login_failed", "count: applogin"))
    assert "events.count (line 29): 'applogin' is not an event type" in message
    message = refused(MAP.replace("mean: wait_min", "mean: Wait-Min"))
    assert "events.mean (line 40): 'Wait-Min' is not a field name" in message
    message = refused(MAP.replace('share: "aum >= 100000"', 'share: "aumm >= 100000"'))
    assert "indicators.1.customers.share (line 66): unknown field `aumm`" in message
    message = refused(MAP.replace('of: "true"', "of: \"has_tag('nobody')\""), Vocabulary(tags=frozenset()))
    assert "customers.of (line 66)" in message
    message = refused(MAP.replace("tickets: {metric: complaints_per_1000}", "tickets: {metric: nps}"))
    assert "tickets.metric (line 73)" in message
    message = refused(MAP.replace("floor: -50", "floor: 60"))
    assert "higher_better: target (scoring 100) must be above floor" in message
    message = refused(MAP.replace("                survey: {id: nps_card, metric: nps}\n", ""))
    assert "give exactly one source" in message
    assert "not valid YAML at line 2" in refused("id: [\nname: x: y\n")
    assert "a journey map is a mapping" in refused("- 1\n")


def test_unseen_types_are_warned_about() -> None:
    spec = parse_map(MAP.replace("per: app.login", "per: app.logon"))
    warnings = unseen_types(spec, {"survey.response", "app.login_failed", "branch.visit"})
    assert "app.logon: no such event in the log yet (not a contract type either)" in warnings
    assert "card.application_submitted: no such event in the log yet" in warnings


@given(st.decimals(-1000, 1000, places=2))
def test_scores_are_linear_and_clamped(raw: Decimal) -> None:
    up = Indicator(id="x", name="甲", weight=Decimal(1), direction="higher_better", target=Decimal(90),
                   floor=Decimal(50), events={"count": "a.b", "per": "a.c"})  # fmt: skip
    down = Indicator(id="y", name="乙", weight=Decimal(1), direction="lower_better", target=Decimal(5),
                     floor=Decimal(25), events={"mean": "wait_min", "of": "branch.visit"})  # fmt: skip
    for ind in (up, down):
        s = ind.score(raw)
        assert Decimal(0) <= s <= Decimal(100)
    assert up.score(Decimal(70)) == Decimal(50)
    assert down.score(Decimal(10)) == Decimal(75)
    assert up.score(Decimal(95)) == Decimal(100)
    assert down.score(Decimal(30)) == Decimal(0)
