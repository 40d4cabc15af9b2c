"""/api/v1/journeys: the journeys started and their attribution, for those who may read campaigns."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.journeys import runtime
from omnibank.worker.loop import work_once
from tests.api.bank import build_bank
from tests.events.helpers import jsonl
from tests.journeys.helpers import EXAMPLES, card, example

TZ = ZoneInfo("Asia/Shanghai")


def test_list_and_report(env, tmp_path: Path) -> None:
    bank = build_bank(env.settings, tmp_path / "bank")
    text = (EXAMPLES / "card_activation_nudge.yaml").read_text(encoding="utf-8")
    with unit_of_work(env.settings) as session:
        runtime.start(session, env.settings, example("card_activation_nudge"), source_text=text,
                      now=datetime(2026, 3, 1, tzinfo=TZ))  # fmt: skip
    events = jsonl(tmp_path / "ev.jsonl", card("c1", "CA1", "2026-03-01T09:00:00+08:00"),
                   card("c2", "CB1", "2026-03-01T09:00:00+08:00"))  # fmt: skip
    load_file("events", events, settings=env.settings, progress=False)
    work_once(env.settings, now=datetime(2026, 3, 16, 10, tzinfo=TZ), dispatch=False)
    listing = bank.get("cm", "/api/v1/journeys")
    assert listing.status_code == 200
    assert listing.json()[0]["id"] == "card_activation_nudge"
    assert sum(listing.json()[0]["entries"].values()) == 2
    report = bank.get("cm", "/api/v1/journeys/card_activation_nudge/report").json()
    assert report["entered"] == 2
    push = next(s for s in report["steps"] if s["step"] == "push")
    assert push["sent"] + sum(push["suppressed"].values()) == 2 - report["control"]
    assert bank.get("cm", "/api/v1/journeys/nope/report").status_code == 404
    assert bank.get("agent", "/api/v1/journeys").status_code == 403
