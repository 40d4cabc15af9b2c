"""A small bank for the contact tests: eight customers (consent, channel preference and RM mixed) and
helpers to build sends and read the outbox."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.contact.models import ContactCap, ContactDnd, ContactMessage
from omnibank.contact.policy import Send
from omnibank.ingest.service import load_file
from tests.factories import ORGS, STAFF, customer_row, customers_csv

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=TZ)  # a Monday, bank-local

# C01..C06 consent to marketing by the customer file, C07 and C08 do not
PREFS = {"C01": "app", "C02": "wechat", "C03": "sms", "C04": "phone", "C05": "branch", "C06": "app",
         "C07": "sms", "C08": "wechat"}  # fmt: skip
CONSENTING = {"C01", "C02", "C03", "C04", "C05", "C06"}
CUSTOMERS = sorted(PREFS)
NAMES = ["张三丰", "李四光", "王五岳", "赵六合", "钱七星", "孙八戒", "周九龄", "吴十方"]


def load_bank(settings: Settings, tmp: Path) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    rows = [
        customer_row(
            cid,
            name=NAMES[i],
            phone=f"1380000{i:04d}",
            channel_pref=PREFS[cid],
            marketing_consent="true" if cid in CONSENTING else "false",
            rm_id="E00001" if i % 2 == 0 else "",
        )
        for i, cid in enumerate(CUSTOMERS)
    ]
    customers_csv(tmp / "customers.csv", rows)
    for kind in ("orgs", "staff", "customers"):
        report = load_file(kind, tmp / f"{kind}.csv", settings=settings, progress=False)
        assert report.rejected == 0, kind


def send(
    key: str,
    customer: str = "C01",
    channel: str = "sms",
    purpose: str = "marketing",
    at: datetime = MONDAY,
    **kw: str,
) -> Send:
    return Send(key, customer, channel, purpose, at, **kw)  # type: ignore[arg-type]


def clear_contact(session: Session) -> None:
    """Empty the contact tables (between hypothesis examples sharing one store)."""
    for table in (ContactMessage, ContactCap, ContactDnd):
        session.execute(delete(table))
