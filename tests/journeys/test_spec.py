"""Journey files: the schema, durations, and errors that name the field and its line."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from omnibank.errors import InputRefused
from omnibank.journeys.spec import Compiled, json_schema, parse_duration, parse_journey
from tests.journeys.helpers import EXAMPLES, example

GOOD = """\
id: t
name: 测试旅程
trigger:
  event: app.login
steps:
  - id: a
    wait: 2d
  - id: b
    send: {channel: sms, template: 您好}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2d", timedelta(days=2)), ("90d", timedelta(days=90)), ("4h", timedelta(hours=4)),
     ("30m", timedelta(minutes=30)), ("2w", timedelta(days=14))],
)  # fmt: skip
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["2", "d", "-1d", "0d", "1.5d", "3x", "9999d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_examples_are_valid_and_the_schema_is_published() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert example(path.stem).id == path.stem
    schema = json.loads(json_schema())
    assert {"id", "trigger", "steps", "reentry", "control_percent", "conversion"} <= set(schema["properties"])
    assert "if" in schema["$defs"]["Branch"]["properties"]


def refused(text: str) -> str:
    with pytest.raises(InputRefused) as info:
        parse_journey(text, source="j.yaml")
    return info.value.message


def test_errors_name_the_field_and_the_line() -> None:
    text = GOOD.replace("wait: 2d", "wait: 3x").replace("channel: sms", "channel: fax")
    message = refused(text)
    assert "steps.0.wait (line 7): '3x' is not a duration" in message
    assert "steps.1.send.channel (line 9)" in message


def test_a_step_does_exactly_one_thing_and_targets_must_exist() -> None:
    assert "exactly one of" in refused(GOOD.replace("wait: 2d", "wait: 2d\n    exit: true"))
    assert "unknown step 'nowhere'" in refused(GOOD.replace("wait: 2d", "wait: 2d\n    next: nowhere"))
    assert "step ids repeated: a" in refused(GOOD.replace("id: b", "id: a"))


def test_trigger_shapes() -> None:
    assert "exactly one of event" in refused(GOOD.replace("event: app.login", "schedule: daily 09:00"))
    segment = GOOD.replace("event: app.login", "segment: age >= 60\n  schedule: fortnightly")
    assert "not a schedule" in refused(segment)
    assert "'applogin' is not an event type" in refused(GOOD.replace("app.login", "applogin"))


def test_expressions_are_checked_with_their_place() -> None:
    assert "audience: unknown field `agee`" in refused(GOOD + "audience: agee > 3\n")
    bad_where = GOOD.replace("event: app.login", "event: app.login\n  where: amount >>= 3")
    assert "trigger.where: syntax error" in refused(bad_where)


def test_not_yaml_and_not_a_mapping() -> None:
    assert "not valid YAML at line 2" in refused("id: [\nname: x: y\n")
    assert "a journey is a mapping" in refused("- 1\n- 2\n")


def test_control_group_is_deterministic_and_about_its_share() -> None:
    c = Compiled(example("card_activation_nudge"))
    held = [c.in_control(f"C{i:06d}") for i in range(10_000)]
    assert held == [c.in_control(f"C{i:06d}") for i in range(10_000)]
    assert 900 <= sum(held) <= 1100  # 10%
