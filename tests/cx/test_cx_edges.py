"""The CX commands and endpoints over one small bank: the index, survey results, feedback topics and a
backtest from the command line; alerts scoped by the customers rule over the API (an RM sees their
customers' alerts, not another branch's), survey results and the map's index over HTTP, bad input named."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from omnibank.cx.models import CxAlert
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank

EXAMPLES = Path(__file__).parents[2] / "examples" / "cx"
MAP = """
id: mini
name: 迷你旅程
stages:
  - id: visit
    name: 到访
    weight: 1
    touchpoints:
      - id: counter
        name: 柜台
        weight: 1
        experience_points:
          - id: service
            name: 服务
            weight: 1
            indicators:
              - {id: csat, name: 满意度, weight: 0.5, direction: higher_better, target: 100, floor: 0,
                 survey: {id: csat_branch, metric: csat}}
              - {id: wait, name: 等候, weight: 0.5, direction: lower_better, target: 10, floor: 50,
                 events: {mean: wait_min, of: branch.visit}}
"""


def _events() -> list[dict]:
    out = []
    for i, (cid, branch, csat, wait, comment) in enumerate(
        [
            ("CA1", "S0101", 5, 10, "柜员很耐心，服务很好"),
            ("CA2", "S0101", 4, 30, "网点环境不错，办理很快"),
            ("CA3", "S0102", 1, 50, "排队排了一个小时，太慢了，没人管"),
            ("CB1", "S0201", 2, 40, "手机银行老是闪退，排队又久"),
        ]
    ):
        ts = f"2026-03-0{i + 2}T10:00:00+08:00"
        out.append({"event_id": f"v{i}", "type": "branch.visit", "customer_id": cid, "ts": ts,
                    "channel": "branch", "branch_id": branch, "wait_min": wait})  # fmt: skip
        out.append({"event_id": f"r{i}", "type": "survey.response", "customer_id": cid, "ts": ts,
                    "channel": "wechat", "survey": "csat_branch", "csat": csat, "comment": comment,
                    "branch_id": branch})  # fmt: skip
    return out


@pytest.fixture
def bank(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "mini_map.yaml").write_text(MAP, encoding="utf-8")
    monkeypatch.setenv("OMNIBANK_CX_MAPS_DIR", str(maps))
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000, "cx_maps_dir": maps})
    built = build_bank(settings, tmp_path / "api-bank")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in _events()) + "\n", encoding="utf-8")
    assert load_file("events", path, settings=settings, progress=False).loaded == 8
    with built.client:
        yield built


def test_the_commands_show_index_survey_feedback_and_a_backtest(bank: Bank, cli, tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MAP, encoding="utf-8")
    map_file = str(tmp_path / "m.yaml")
    index = cli("cx", "index", map_file, "--by", "branch", "--level", "map", "--format", "csv")
    assert index.exit_code == 0, index.stderr
    scores = {row["group"]: row["score"] for row in csv.DictReader(io.StringIO(index.stdout))}
    # S0101: CSAT 100% → 100; mean wait 20 → (50-20)/40 = 75; (100 + 75) / 2
    assert scores["S0101"] == "87.5"
    assert scores["S0102"] == "0.0"  # CSAT 0%, wait 50: the floor of both
    survey = cli("cx", "survey", "csat_branch", "--format", "json")
    assert json.loads(survey.stdout)["csat"] == "50.0"  # 2 of 4 answered 4–5
    feedback = cli("cx", "feedback", "--by", "branch", "--format", "json")
    by_branch = {row["branch"]: row for row in map(json.loads, feedback.stdout.splitlines())}
    assert by_branch["S0102"]["negative"] == 1 and by_branch["S0102"]["topic_1"] == "排队等候"
    assert by_branch["S0101"]["negative"] == 0
    events = tmp_path / "more.jsonl"
    lines = [json.dumps(e, ensure_ascii=False) for e in _events()]
    events.write_text("\n".join(lines) + "\nnot json\n", "utf-8")
    backtest = cli("cx", "alerts", "test", str(EXAMPLES / "alerts.yaml"), str(events), "--format", "csv")
    assert backtest.exit_code == 0, backtest.stderr
    per_rule = dict(line.split(",") for line in backtest.stdout.splitlines()[1:])
    assert per_rule["long_branch_wait"] == "1"  # only CA3's 50-minute wait is over 45
    assert "line 9" in backtest.stderr  # the bad line, named
    bad = cli("cx", "index", str(EXAMPLES / "surveys.yaml"))
    assert bad.exit_code != 0 and "journey map refused" in bad.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text(MAP.replace("of: branch.visit", "of: branch.vist"), encoding="utf-8")
    refused = cli("cx", "index", str(typo))
    assert refused.exit_code != 0
    assert "events.of (line 20): 'branch.vist' is not a contract event type nor in the log" in refused.stderr
    assert "did you mean branch.visit" in refused.stderr


def test_alerts_and_results_over_the_api_are_scoped_and_named(bank: Bank) -> None:
    at = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    with unit_of_work(bank.settings) as session:
        for cid, branch, owner in (("CA1", "S0101", "E00001"), ("CB1", "S0201", "E00002")):
            session.add(
                CxAlert(key=f"cx:detractor:{cid}", rule_id="detractor", rule_kind="response",
                        subject_kind="customer", subject_id=cid, customer_id=cid, branch_id=branch,
                        owner_staff_id=owner, owner_queue=None, reason="the customer's RM",
                        event_id=f"r-{cid}", context="nps 3", raised_at=at, window_start=at, recorded_at=at)
            )  # fmt: skip
    mine = bank.get("rm_a", "/api/v1/cx/alerts")
    assert mine.status_code == 200, mine.text
    assert [a["subject_id"] for a in mine.json()] == ["CA1"]
    assert {a["subject_id"] for a in bank.get("admin", "/api/v1/cx/alerts").json()} == {"CA1", "CB1"}
    results = bank.get("admin", "/api/v1/cx/surveys/csat_branch?by=branch")
    assert {r["group"]: r["responses"] for r in results.json()} == {"S0101": 2, "S0102": 1, "S0201": 1}
    index = bank.get("admin", "/api/v1/cx/index/mini?by=branch")
    assert index.status_code == 200, index.text
    top = {r["group"]: r["score"] for r in index.json()["rows"] if r["level"] == "map"}
    assert top["S0101"] == "87.5"
    assert bank.get("admin", "/api/v1/cx/index/nope").status_code == 404
    assert bank.get("admin", "/api/v1/cx/surveys/csat_branch?period=2026-13").status_code == 422
    assert bank.get("auditor", "/api/v1/cx/alerts").status_code == 403
