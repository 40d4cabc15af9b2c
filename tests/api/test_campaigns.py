"""Campaigns over the API: validate (field errors named), simulate over posted events with eligibility
limited to the caller's customers, start and stop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from omnibank.campaigns.models import Campaign
from omnibank.db import unit_of_work
from tests.api.bank import Bank
from tests.events.helpers import txn

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaigns" / "video_9yuan.yaml"


def _definition() -> dict[str, Any]:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    as_json: dict[str, Any] = json.loads(json.dumps(raw, default=str))  # dates as ISO text
    return as_json


def _events(customer: str) -> list[dict[str, Any]]:
    return [
        txn(f"t{i}", "20.00", customer_id=customer, ts=f"2026-03-0{i}T12:00:00+08:00") for i in range(1, 4)
    ]


def test_validate_names_the_bad_field(bank: Bank) -> None:
    ok = bank.post("cm", "/api/v1/campaigns/validate", json={"definition": _definition()})
    assert ok.status_code == 200 and ok.json()["id"] == "video_9yuan_2026"
    bad = _definition()
    bad["period"]["end"] = "not a date"
    r = bank.post("cm", "/api/v1/campaigns/validate", json={"definition": bad})
    assert r.status_code == 422
    assert ["body", "definition", "period", "end"] in [d["loc"] for d in r.json()["details"]]
    bad_expr = {**_definition(), "eligibility": "salary > 1"}
    r = bank.post("cm", "/api/v1/campaigns/validate", json={"definition": bad_expr})
    assert r.status_code == 422 and "eligibility" in r.json()["message"]


def test_simulate_counts_grants_among_the_callers_customers(bank: Bank) -> None:
    # only CB1 (35) is within the eligibility age; it is in branch B
    body = {"definition": _definition(), "events": _events("CB1")}
    whole_bank = bank.post("cm", "/api/v1/campaigns/simulate", json=body).json()
    assert whole_bank["events"] == 3 and whole_bank["grants"] == 1 and whole_bank["customers"] == 1
    assert whole_bank["by_rule_month"][0]["face_value"] == "25.00"
    branch_a = bank.post("bm_a", "/api/v1/campaigns/simulate", json=body).json()
    assert branch_a["grants"] == 0
    assert bank.post("rm_a", "/api/v1/campaigns/simulate", json=body).status_code == 403


def test_start_and_stop(bank: Bank) -> None:
    r = bank.post("cm", "/api/v1/campaigns", json={"definition": _definition()})
    assert r.status_code == 201 and r.json() == {"id": "video_9yuan_2026", "status": "active"}
    assert bank.post("bm_a", "/api/v1/campaigns", json={"definition": _definition()}).status_code == 403
    stopped = bank.post("cm", "/api/v1/campaigns/video_9yuan_2026/stop")
    assert stopped.json() == {"id": "video_9yuan_2026", "status": "stopped"}
    with unit_of_work(bank.settings) as session:
        row = session.scalars(select(Campaign)).one()
    assert row.status == "stopped" and "video_9yuan_2026" in row.definition
    assert bank.post("cm", "/api/v1/campaigns/nope/stop").status_code == 404
