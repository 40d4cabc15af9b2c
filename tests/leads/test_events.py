"""Lead events reach the event log once, with deterministic ids and the fields journeys wait for; events a
crash kept from being emitted go out with the next ``emit_pending``."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from omnibank.db import unit_of_work
from omnibank.events.columns import TYPE_PATTERN
from omnibank.leads import service
from omnibank.leads.models import LeadHistory
from tests.leads.helpers import NOW, logged, overdue, request


def test_created_and_status_events_are_logged_once_with_deterministic_ids(settings) -> None:
    # given two new leads, their events emitted after the commit
    with unit_of_work(settings) as session:
        created = service.create_leads(
            session,
            [request("CA1", "k1", source="journey:fund_view", journey="fund_view", step="s1",
                     product_id="fund_a"),
             request("CA3", "k2")],
            now=NOW,
        )  # fmt: skip
    a, b = created
    first = service.emit_events(settings, created.events, now=NOW)
    assert (first.loaded, first.duplicates, first.rejected) == (2, 0, 0)
    # when the RM contacts the first and the events are emitted twice (a retry)
    with unit_of_work(settings) as session:
        change = service.set_status(session, a.lead_id, "contacted", by="E00001", staff_id="E00001",
                                    now=NOW + timedelta(hours=2))  # fmt: skip
    service.emit_events(settings, change.events)
    again = service.emit_events(settings, [*created.events, *change.events])
    assert (again.loaded, again.duplicates) == (0, 3)
    # then the log holds each event once, as journeys read it
    log = logged(settings)
    assert set(log) == {
        f"lead:{a.lead_id}:created",
        f"lead:{b.lead_id}:created",
        f"lead:{a.lead_id}:contacted",
    }
    contacted = log[f"lead:{a.lead_id}:contacted"]
    assert {
        k: contacted[k] for k in ("type", "customer_id", "lead_id", "staff_id", "product_id", "source")
    } == {
        "type": "lead.contacted",
        "customer_id": "CA1",
        "lead_id": a.lead_id,
        "staff_id": "E00001",
        "product_id": "fund_a",
        "source": "journey:fund_view",
    }
    assert contacted["ts"].startswith("2026-03-02T04:00:00")  # 12:00 bank-local, in UTC
    queued = log[f"lead:{b.lead_id}:created"]
    assert (queued["staff_id"], queued["product_id"], queued["org_id"]) == (None, None, "S0102")
    assert all(re.match(TYPE_PATTERN, e["type"]) for e in log.values())
    # and every history row is marked emitted: nothing is pending
    with unit_of_work(settings) as session:
        assert service.pending_events(session) == []


def test_events_lost_to_a_crash_go_out_with_emit_pending_once(settings) -> None:
    # given a won lead and an escalated one whose events were never emitted (the process died after commit)
    late = overdue(settings, "CA3", "late")
    (won,) = service_create(settings, "CA1")
    with unit_of_work(settings) as session:
        service.set_status(session, won.lead_id, "won", by="E00001", now=NOW)
        service.escalate_overdue(session, now=NOW)
    # when pending events are emitted (twice)
    first = service.emit_pending(settings, now=NOW)
    second = service.emit_pending(settings, now=NOW)
    # then all four went out the first time, nothing the second
    assert first.loaded == 4 and second.loaded == 0 and second.duplicates == 0
    log = logged(settings)
    assert set(log) == {
        f"lead:{late.lead_id}:created",
        f"lead:{late.lead_id}:escalated",
        f"lead:{won.lead_id}:created",
        f"lead:{won.lead_id}:won",
    }
    assert log[f"lead:{late.lead_id}:escalated"]["staff_id"] == "E00003"
    with unit_of_work(settings) as session:
        marks = set(session.scalars(select(LeadHistory.emitted_at)))
    assert marks == {NOW}


def service_create(settings, customer_id: str):
    with unit_of_work(settings) as session:
        return list(service.create_leads(session, [request(customer_id)], now=NOW))
