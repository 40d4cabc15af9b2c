"""The worker's ``cx.alerts`` job: nothing to do without rules; index drops read once a week, for the branch
manager, recorded without a ticket (a branch is no customer)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from omnibank.config import Settings
from omnibank.cx import alerting
from omnibank.cx.alerts import parse_rules
from omnibank.cx.models import CxAlert, CxAlertWeek
from omnibank.db import unit_of_work
from omnibank.worker.registry import REGISTRY, Limits
from tests.leads.helpers import load_bank

TZ = ZoneInfo("Asia/Shanghai")
WEDNESDAY = datetime(2026, 3, 4, 10, 0, tzinfo=TZ)
MAPS = Path(__file__).parents[2] / "examples" / "cx"


@pytest.fixture
def settings(env, tmp_path: Path) -> Settings:
    s: Settings = env.settings
    load_bank(s, tmp_path / "bank")
    return s


def test_the_job_does_nothing_without_rules(settings: Settings) -> None:
    import omnibank.cx.jobs

    (job,) = [j for j in REGISTRY if j.name == "cx.alerts"]
    assert job.run is omnibank.cx.jobs.run
    assert dict(job.run(settings, WEDNESDAY, Limits()).counts) == {}


def test_index_drops_are_read_once_a_week_for_the_branch_manager(settings, monkeypatch) -> None:
    if not (MAPS / "credit_card_map.yaml").is_file():
        pytest.skip("examples/cx/credit_card_map.yaml is not written yet")
    import omnibank.cx.index

    calls: list[tuple[date, date]] = []

    def index_values(session: Any, settings: Any, spec: Any, *, by: str, start: date, end: date) -> dict:
        calls.append((start, end))
        if start == date(2026, 2, 23):  # the last full week
            return {"S0101": Decimal("70"), "S0201": Decimal("79"), "HQ": Decimal("10")}
        return {"S0101": Decimal("80"), "S0201": Decimal("80"), "HQ": Decimal("90")}

    monkeypatch.setattr(omnibank.cx.index, "index_values", index_values)
    rules = parse_rules(
        "rules:\n  - {id: drop, name: 体验指数下降, kind: index_drop, map: credit_card_map.yaml, points: 5,"
        " category: cx_index}\n",
        base=MAPS,
    )
    with unit_of_work(settings) as session:
        run = alerting.run_alerts(session, settings, now=WEDNESDAY, rules=rules)
    assert calls == [(date(2026, 2, 23), date(2026, 3, 2)), (date(2026, 2, 16), date(2026, 2, 23))]
    assert (run.alerts, run.tickets, run.recorded_only) == (2, 0, 2)
    with unit_of_work(settings) as session:
        found = {
            (a.subject_id, a.owner_staff_id, a.owner_queue, a.ticket_id)
            for a in session.scalars(select(CxAlert))
        }
        week = session.scalars(select(CxAlertWeek)).one()
        assert (week.week, week.branches, week.alerts) == (date(2026, 2, 23), 3, 2)
    assert found == {("S0101", "E00003", None, None), ("HQ", None, "desk", None)}  # nobody above HQ: the desk
    with unit_of_work(settings) as session:  # later the same week: not read again
        again = alerting.run_alerts(session, settings, now=WEDNESDAY + timedelta(days=2), rules=rules)
    assert (len(calls), again.alerts) == (2, 0)
