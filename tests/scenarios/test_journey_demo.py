"""`omnibank demo` runs the example journeys over the demo bank (simulated, nothing sent or stored) and
prints the sends, the suppressions by reason and the leads per branch."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from omnibank.contact.models import ContactMessage
from omnibank.db import unit_of_work
from omnibank.journeys.models import JourneyEntry
from omnibank.leads.models import Lead


def test_demo_prints_the_example_journeys(cli, env) -> None:
    res = cli("demo", "--customers", "400", "--days", "120")
    assert res.exit_code == 0, res.stderr
    text = res.stdout
    assert "journeys launched 2026-01-31" in text
    for journey in ("card_activation_nudge", "product_view_lead", "silver_digital_help"):
        assert journey in text
    assert "sends by channel" in text and "branch_task" in text
    assert re.search(r"product_view_lead\s*│\s*no_consent", text)  # suppressions by reason
    assert re.search(r"leads per branch", text) and re.search(r"│ B0\d\d\s*│", text)
    with unit_of_work(env.settings) as session:  # a simulation: nothing was sent or stored
        for model in (ContactMessage, Lead, JourneyEntry):
            assert session.scalar(select(func.count()).select_from(model)) == 0
