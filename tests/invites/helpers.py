"""A small bank for the invite-code tests: the API tests' org tree and staff, and new customers who
registered on 1 November 2026 (so a code used in November is inside the 30-day window)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.invites import binding, codes
from omnibank.invites.models import InviteBinding, InviteRefusal, InviteWaiting
from tests.api.bank import STAFF
from tests.factories import ORGS, customer_row, customers_csv

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
# N1..N6: new customers (registered 2026-11-01); N1-N3 in S0101 (RM E00001's unit), N4 in S0201;
# N5 has the phone of RM E00001 (a member of staff inviting themself); OLD registered in 2015
NEW = [
    customer_row(
        "N1",
        birth_date="1981-01-01",
        name="陈一",
        phone="13700000001",
        branch_id="S0101",
        rm_id="",
        registered_at="2026-11-01",
    ),
    customer_row(
        "N2",
        birth_date="1982-02-02",
        name="陈二",
        phone="13700000002",
        branch_id="S0101",
        rm_id="",
        registered_at="2026-11-01",
    ),
    customer_row(
        "N3",
        birth_date="1983-03-03",
        name="陈三",
        phone="13700000003",
        branch_id="S0101",
        rm_id="",
        registered_at="2026-11-01",
    ),
    customer_row(
        "N4",
        birth_date="1984-04-04",
        name="陈四",
        phone="13700000004",
        branch_id="S0201",
        rm_id="",
        registered_at="2026-11-01",
    ),
    customer_row(
        "N5",
        birth_date="1985-05-05",
        name="周慧",
        phone="13911112222",
        branch_id="S0101",
        rm_id="",
        registered_at="2026-11-01",
    ),
    customer_row(
        "OLD",
        birth_date="1960-06-06",
        name="老客",
        phone="13700000009",
        branch_id="S0201",
        rm_id="",
        registered_at="2015-03-02",
    ),
]


def load_bank(settings: Settings, tmp: Path, customers: list[dict[str, str]] | None = None) -> dict[str, str]:
    """Orgs, staff and customers loaded, a code issued to every member of staff: the codes by staff id."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    customers_csv(tmp / "customers.csv", NEW if customers is None else customers)
    for kind in ("orgs", "staff", "customers"):
        report = load_file(kind, tmp / f"{kind}.csv", settings=settings, progress=False)
        assert report.rejected == 0, kind
    with unit_of_work(settings) as session:
        codes.issue(session, now=NOW, actor="test")
        return {s: c.code for s, c in codes.live_codes(session).items()}


_n = 0


def event(
    customer: str, ts: str, code: str | None = None, *, type_: str = "app.login", **fields: Any
) -> dict:
    global _n
    _n += 1
    e: dict[str, Any] = {
        "event_id": fields.pop("event_id", f"ev{_n}"),
        "type": type_,
        "customer_id": customer,
        "ts": ts,
        **fields,
    }
    if code is not None:
        e["invite_code"] = code
    return e


def load_events(settings: Settings, path: Path, events: list[dict]) -> None:
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    report = load_file("events", path, settings=settings, progress=False)
    assert report.rejected == 0


def bind(settings: Settings, now: datetime = NOW) -> binding.BindReport:
    with unit_of_work(settings) as session:
        return binding.bind_pass(session, settings, now=now)


def state(settings: Settings) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]], set[str]]:
    """Bindings (customer → (code, event)), refusals (event → (customer, reason)), waiting event ids."""
    with unit_of_work(settings) as session:
        bound = {b.customer_id: (b.code, b.event_id) for b in session.scalars(select(InviteBinding))}
        refused = {r.event_id: (r.customer_id, r.reason) for r in session.scalars(select(InviteRefusal))}
        waiting = set(session.scalars(select(InviteWaiting.event_id)))
    return bound, refused, waiting
