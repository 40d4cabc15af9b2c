"""A small bank for the leads tests (the API tests' bank plus two customers without an RM in sub-branch
S0101, one of them held by its team), and helpers to create leads and read the event log back."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.events.log import EventLog
from omnibank.ingest.service import load_file
from omnibank.leads import service
from omnibank.leads.service import LeadRead, LeadRequest
from tests.api.bank import CUSTOMERS, STAFF
from tests.benefits.helpers import NOW
from tests.factories import ORGS, customer_row, customers_csv

# HQ > B001 (branch manager E00003) > S0101 (RM E00001) > T010101 (RM E00009); B001 > S0102 (no RM)
# HQ > B002 (branch manager E00008) > S0201 (RM E00002)
# CA1 (S0101, RM E00001), CA2 (T010101, RM E00001), CA3 (S0102, no RM), CB1 (S0201, RM E00002),
# CB2 (B002, no RM), CA4 (S0101, no RM), CA5 (T010101, no RM)
EXTRA = [
    customer_row(
        "CA4", name="孙悟空", birth_date="1975-06-06", branch_id="S0101", rm_id="", phone="13800000006"
    ),
    customer_row(
        "CA5", name="猪八戒", birth_date="1978-07-07", branch_id="T010101", rm_id="", phone="13800000007"
    ),
]
PLAINTEXT = ["张三丰", "李四光", "王五岳", "赵六合", "钱七星", "孙悟空", "猪八戒"] + [
    f"1380000000{i}" for i in range(1, 8)
]
__all__ = ["NOW"]


def load_bank(settings: Settings, tmp: Path) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    customers_csv(tmp / "customers.csv", [*CUSTOMERS, *EXTRA])
    for kind in ("orgs", "staff", "customers"):
        report = load_file(kind, tmp / f"{kind}.csv", settings=settings, progress=False)
        assert report.rejected == 0, kind


def request(customer_id: str, key: str | None = None, **kw: Any) -> LeadRequest:
    return LeadRequest(key=key or f"test:{customer_id}", customer_id=customer_id, **kw)


def create(settings: Settings, *requests: LeadRequest, now: datetime = NOW) -> list[LeadRead]:
    with unit_of_work(settings) as session:
        created = service.create_leads(session, list(requests), now=now)
    return list(created)


def overdue(
    settings: Settings, customer_id: str, key: str, *, late: timedelta = timedelta(hours=1)
) -> LeadRead:
    """A lead that was due ``late`` before NOW."""
    return create(settings, request(customer_id, key, due_at=NOW - late), now=NOW - timedelta(days=3))[0]


def logged(settings: Settings) -> dict[str, dict[str, Any]]:
    """The event log read back, by event_id: each event as its payload (the object as emitted)."""
    import json

    log = EventLog(settings)
    con = log.connect()
    try:
        rows = con.execute(f"SELECT event_id, payload FROM {log.scan_sql()}").fetchall()
    finally:
        con.close()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "an event_id is stored twice"
    return {event_id: json.loads(payload) for event_id, payload in rows}
