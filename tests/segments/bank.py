"""A small bank for the segment tests: the org tree of tests.factories, a few customers chosen for
boundaries, and events written as contract files and loaded for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnibank.config import Settings
from omnibank.ingest.service import load_file
from tests.events.helpers import event, jsonl, txn
from tests.factories import ORGS, STAFF, customer_row, customers_csv

CUSTOMERS = [
    # id, birth, branch (org tree: HQ > B001 > S0101 > T010101; HQ > B001 > S0102; HQ > B002 > S0201), rm, aum
    customer_row("C01", birth_date="1966-03-01", branch_id="S0101", aum="49999.99", phone="13800000001"),
    customer_row("C02", birth_date="1966-03-02", branch_id="T010101", aum="50000.00", phone="13800000002"),
    customer_row("C03", birth_date="1951-07-09", branch_id="S0102", rm_id="", aum="6000000.00",
                 occupation="retired", channel_pref="branch", phone="13800000003"),
    customer_row("C04", birth_date="1995-11-30", branch_id="S0201", rm_id="E00002", aum="1200.50",
                 occupation="student", gender="F", marketing_consent="false", phone="13800000004"),
    customer_row("C05", birth_date="1964-02-29", branch_id="B002", rm_id="", aum="0.00",
                 occupation="farmer", gender="F", phone="13800000005", registered_at="2026-01-15"),
]  # fmt: skip


def events() -> list[dict[str, Any]]:
    return [
        # C01: a login at 00:30 bank-local on 1 March = 16:30 UTC on 28 February
        event("e1", "app.login", customer_id="C01", ts="2026-02-28T16:30:00Z"),
        # C01: card spend, exact decimals; one at a wealth-ish merchant
        txn("e2", "0.10", customer_id="C01", ts="2026-02-20T12:00:00+08:00", merchant="瑞幸咖啡"),
        txn("e3", "0.20", customer_id="C01", ts="2026-02-21T12:00:00+08:00", merchant="瑞幸咖啡"),
        txn("e4", "99.00", customer_id="C02", ts="2026-01-31T23:59:59+08:00", merchant="永辉超市"),
        # the same event twice (same id): counted once
        txn("e5", "10.00", customer_id="C02", ts="2026-02-10T09:00:00+08:00"),
        txn("e5", "10.00", customer_id="C02", ts="2026-02-10T09:00:00+08:00"),
        event("e6", "app.product_view", customer_id="C04", ts="2026-02-27T20:00:00+08:00",
              product_id="WM2026A01", duration_s=75, channel="app"),
        event("e7", "app.product_view", customer_id="C04", ts="2026-02-27T20:05:00+08:00",
              product_id="FUND000001", duration_s=300, channel="app"),
        event("e8", "card.issued", customer_id="C03", ts="2026-01-05T10:00:00+08:00",
              card_id="6222000000000003", product="luckin_cobrand", tier="gold", primary=True,
              new_customer=False, channel="branch"),
        event("e9", "app.login", customer_id="C05", ts="2025-12-01T08:00:00+08:00"),
        event("e10", "app.login", customer_id="C02", ts="2026-02-01T08:00:00+08:00"),
    ]  # fmt: skip


def load_bank(settings: Settings, tmp: Path, *, with_events: bool = True) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    customers_csv(tmp / "customers.csv", CUSTOMERS)
    for kind in ("orgs", "staff", "customers"):
        report = load_file(kind, tmp / f"{kind}.csv", settings=settings, progress=False)
        assert report.rejected == 0, kind
    if with_events:
        report = load_file(
            "events", jsonl(tmp / "events.jsonl", *events()), settings=settings, progress=False
        )
        assert report.rejected == 0
