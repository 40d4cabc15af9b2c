"""Lead events take the event log's typed append (issue 21): the events of one emit_events call land in one
Parquet file, and a retry adds none."""

from __future__ import annotations

from omnibank.db import unit_of_work
from omnibank.events.log import EventLog
from omnibank.leads import service
from tests.leads.helpers import NOW, logged, request


def test_the_events_of_many_leads_emitted_at_once_make_one_file(settings) -> None:
    # given 60 new leads made in one transaction
    with unit_of_work(settings) as session:
        created = service.create_leads(
            session, [request(("CA1", "CA2", "CA3")[i % 3], f"k{i}") for i in range(60)], now=NOW
        )
    log = EventLog(settings)
    before = log.files()
    # when their events are emitted after the commit
    done = service.emit_events(settings, created.events, now=NOW)
    # then all 60 are in the log, in one new file, and emitting them again adds nothing and no file
    assert (done.loaded, done.rejected, done.files) == (60, 0, 1)
    assert len(set(log.files()) - set(before)) == 1
    again = service.emit_events(settings, created.events, now=NOW)
    assert (again.loaded, again.duplicates, again.files) == (0, 60, 0)
    assert len(logged(settings)) == 60 and len(log.files()) == len(before) + 1
