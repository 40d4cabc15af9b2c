"""`omnibank campaign validate|schema|simulate` as a campaign manager uses them."""

from __future__ import annotations

import json

import pytest

from tests.campaigns.helpers import LUCKIN, card, spend
from tests.conftest import write
from tests.events.helpers import jsonl


def test_simulate_writes_grants_and_prints_the_cost(cli, env, tmp_path) -> None:
    events = jsonl(
        tmp_path / "events.jsonl",
        card("c1", "C000001", "2026-03-01T10:00:00+08:00"),
        spend("t1", "C000001", "2026-03-02T10:00:00+08:00", "99.00"),
        spend("t2", "C000001", "2026-03-03T10:00:00+08:00"),
        spend("t3", "C000001", "2026-03-04T10:00:00+08:00"),
        "this line is not JSON",
    )
    out = tmp_path / "grants.jsonl"
    r = cli("campaign", "simulate", str(LUCKIN), str(events), "--out", str(out))
    assert r.exit_code == 0, r.stderr
    grants = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [g["rule"] for g in grants] == ["welcome"] * 6 + ["weekly"]
    for g in grants:
        assert {"customer_id", "campaign", "rule", "benefit", "granted_at", "valid_from", "valid_to"} <= set(
            g
        )
        assert g["campaign"] == "luckin2026"
    assert "7 grants to 1 customers, face value 182.00 CNY" in r.stdout  # 6 × 26 + 26
    assert "welcome" in r.stdout and "2026-03" in r.stdout
    assert "ignored 1 of 5 lines" in r.stderr


def test_schema_is_published(cli) -> None:
    r = cli("campaign", "schema")
    schema = json.loads(r.stdout)
    assert schema["title"] == "CampaignSpec"
    assert "rules" in schema["properties"]


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("id: x\nname: x\nperiod: {start: 2026-01-01, end: 2025-01-01}\nrules: []", "end is before start"),
        (
            "id: x\nname: x\nperiod: {start: 2026-01-01, end: 2026-12-31}\nrules: []",
            "rules: List should have",
        ),
        (
            "id: x\nname: x\nperiod: {start: 2026-01-01, end: 2026-12-31}\nrules:\n"
            "  - {id: a, trigger: {event: card.transaction, where: colour = 'red'}, per_event: true,"
            " reward: {benefit: b}}",
            "rules.0.trigger.where: unknown event field `colour`",
        ),
        (
            "id: x\nname: x\nperiod: {start: 2026-01-01, end: 2026-12-31}\nrules:\n"
            "  - {id: a, trigger: {event: card.transaction}, reward: {benefit: b}}",
            "give a threshold, or per_event: true",
        ),
        (
            "id: x\nname: x\nperiod: {start: 2026-01-01, end: 2026-12-31}\nrules:\n"
            "  - {id: m, map: {counts: {zzz: 1}, stages: [{icons: 2, rewards: [{benefit: b}]}]}}",
            "map counts unknown rules zzz",
        ),
        ("id: x\nname: x\nperiod: {start: 2026-01-01, end: 2026-12-31}\nrules: [\n", "not valid YAML"),
        (
            "id: x\nname: x\nbudgett: 3\nperiod: {start: 2026-01-01, end: 2026-12-31}\nrules:\n"
            "  - {id: a, trigger: {event: card.transaction}, per_event: true, reward: {benefit: b}}",
            "budgett: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_campaign_is_refused_naming_the_place(cli, tmp_path, yaml_text, expected) -> None:
    path = write(tmp_path / "bad.yaml", yaml_text)
    r = cli("campaign", "validate", str(path))
    assert r.exit_code == 1
    assert expected in r.stderr, r.stderr


def test_the_example_campaign_is_valid(cli) -> None:
    r = cli("campaign", "validate", str(LUCKIN))
    assert r.exit_code == 0 and "luckin2026 is valid: 4 rules" in r.stdout
