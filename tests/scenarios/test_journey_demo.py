"""`omnibank demo` starts the example journeys on its launch day and runs the worker over the last days of
its events: the journeys hold entries, the outbox sends with receipts (and defers what falls in the quiet
hours), leads reach branch staff; it prints them as live journeys."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from omnibank.contact.models import ContactMessage
from omnibank.db import unit_of_work
from omnibank.journeys.models import Journey, JourneyEntry
from omnibank.kit.console import out
from omnibank.leads.models import Lead


@pytest.fixture(autouse=True)
def pipe_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared console as a pipe sees it: tables at their natural width, whatever an earlier test set."""
    monkeypatch.setattr(out, "_width", None)


@pytest.mark.embedded_only  # the demo on PostgreSQL, journeys included: tests/demo/test_living_bank.py
def test_demo_runs_the_example_journeys_live(cli, env) -> None:
    res = cli("demo", "--customers", "400", "--days", "120")
    assert res.exit_code == 0, res.stderr
    text = res.stdout
    assert "live journeys, launched 2026-04-21" in text  # the last 10 of the 120 days
    for journey in ("card_activation_nudge", "product_view_lead", "silver_digital_help"):
        assert re.search(rf"│ {journey}\s*│", text), journey
    with unit_of_work(env.settings) as session:
        assert set(session.scalars(select(Journey.status))) == {"active"}
        assert session.scalar(select(func.count()).select_from(JourneyEntry)) > 0
        statuses = dict(
            session.execute(select(ContactMessage.status, func.count()).group_by(ContactMessage.status)).all()
        )
        assert statuses.get("delivered", 0) > 0 and statuses.get("deferred", 0) > 0, statuses
        channels = set(session.scalars(select(ContactMessage.channel).distinct()))
        assert {"branch_task", "sms"} <= channels
        assert session.scalar(select(func.count()).select_from(Lead)) > 0
    report = cli("journey", "report", "silver_digital_help")
    assert report.exit_code == 0 and "branch_task" in report.stdout
