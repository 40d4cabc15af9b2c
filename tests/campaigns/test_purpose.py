"""A campaign's ``purpose``: only customers whose consent for it holds take part, in simulation and in live
runs, and a revocation stops the campaign for that customer at its next run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnibank.ingest.service import load_file
from tests.events.helpers import jsonl, txn
from tests.segments.bank import load_bank

CAMPAIGN = """
id: thanks_spend
name: 消费有礼
period: {start: 2026-01-01, end: 2026-12-31}
purpose: %s
rules:
  - id: each_spend
    name: 每笔消费得积分券
    trigger: {event: card.transaction}
    threshold: {count: 1, per: week}
    reward: {benefit: spend_thanks, face_value: "5.00", valid_days: 30}
"""


@pytest.fixture
def bank(env, tmp_path: Path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)


def campaign(tmp_path: Path, purpose: str) -> Path:
    path = tmp_path / f"thanks-{purpose}.yaml"
    path.write_text(CAMPAIGN % purpose, encoding="utf-8")
    return path


def week(n: int) -> list[dict]:
    """One spend by each of the five customers in week ``n`` of March 2026."""
    day = f"2026-03-{2 + 7 * n:02d}"
    return [txn(f"w{n}-{c}", "20.00", customer_id=c, ts=f"{day}T12:00:00+08:00") for c in
            ("C01", "C02", "C03", "C04", "C05")]  # fmt: skip


def granted(path: Path) -> list[str]:
    return sorted(json.loads(line)["customer_id"] for line in path.read_text(encoding="utf-8").splitlines())


def test_simulate_takes_only_consenting_customers_and_sees_a_revocation(cli, bank, tmp_path) -> None:
    events = jsonl(tmp_path / "events.jsonl", *week(0))
    out = tmp_path / "grants.jsonl"
    r = cli("campaign", "simulate", str(campaign(tmp_path, "marketing")), str(events), "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert granted(out) == ["C01", "C02", "C03", "C05"]  # C04's customer file says no
    assert cli("consent", "revoke", "C02", "marketing", "--channel", "app").exit_code == 0
    assert cli("consent", "grant", "C04", "marketing", "--channel", "branch").exit_code == 0
    r = cli("campaign", "simulate", str(campaign(tmp_path, "marketing")), str(events), "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert granted(out) == ["C01", "C03", "C04", "C05"]


def test_data_sharing_needs_a_grant_on_record(cli, bank, tmp_path) -> None:
    events = jsonl(tmp_path / "events.jsonl", *week(0))
    out = tmp_path / "grants.jsonl"
    path = campaign(tmp_path, "data_sharing")
    assert cli("campaign", "simulate", str(path), str(events), "--out", str(out)).exit_code == 0
    assert granted(out) == []  # nobody agreed to share data with a partner
    assert cli("consent", "grant", "C03", "data_sharing", "--channel", "branch").exit_code == 0
    assert cli("campaign", "simulate", str(path), str(events), "--out", str(out)).exit_code == 0
    assert granted(out) == ["C03"]


def test_a_live_campaign_stops_for_a_customer_who_revokes(cli, env, bank, tmp_path) -> None:
    assert cli("campaign", "start", str(campaign(tmp_path, "marketing"))).exit_code == 0
    load_file("events", jsonl(tmp_path / "w0.jsonl", *week(0)), settings=env.settings, progress=False)
    assert cli("campaign", "run").exit_code == 0
    assert cli("consent", "revoke", "C01", "marketing", "--channel", "phone").exit_code == 0
    load_file("events", jsonl(tmp_path / "w1.jsonl", *week(1)), settings=env.settings, progress=False)
    assert cli("campaign", "run").exit_code == 0
    out = tmp_path / "live.jsonl"
    r = cli("campaign", "grants", "--campaign", "thanks_spend", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    by_week: dict[str, list[str]] = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        g = json.loads(line)
        by_week.setdefault(g["granted_at"][:10], []).append(g["customer_id"])
    assert {d: sorted(c) for d, c in by_week.items()} == {
        "2026-03-02": ["C01", "C02", "C03", "C05"],
        "2026-03-09": ["C02", "C03", "C05"],
    }


def test_an_unknown_purpose_is_refused_with_its_field(cli, tmp_path) -> None:
    r = cli("campaign", "validate", str(campaign(tmp_path, "advertising")))
    assert r.exit_code != 0
    assert "purpose" in r.stderr
