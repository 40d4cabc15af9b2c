"""A small bank built through the CLI, and ways to read back everything personal in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.orgs.models import Staff
from omnibank.security import get_cipher
from tests.conftest import write
from tests.events.helpers import event, jsonl, txn
from tests.factories import ORGS, STAFF, customer_row, customers_csv, id_number

NAMES = ("张三丰", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十")


def phone_of(i: int) -> str:
    return f"1380000{i:04d}"


def small_bank(cli: Any, tmp_path: Path, *, customers: int = 25) -> None:
    """Orgs, three staff (two with a phone), ``customers`` customers and a few events."""
    assert cli("load", "orgs", str(write(tmp_path / "in" / "orgs.csv", ORGS))).exit_code == 0
    assert cli("load", "staff", str(write(tmp_path / "in" / "staff.csv", STAFF))).exit_code == 0
    rows = [
        customer_row(
            f"C{i:06d}",
            name=NAMES[i % len(NAMES)],
            phone=phone_of(i),
            id_no=id_number("131102", "19800517", f"{i:03d}"),
        )
        for i in range(1, customers + 1)
    ]
    res = cli("load", "customers", str(customers_csv(tmp_path / "in" / "customers.csv", rows)))
    assert res.exit_code == 0, res.stderr
    events = jsonl(
        tmp_path / "in" / "events.jsonl",
        event("e1", customer_id="C000001"),
        event("e2", customer_id="C000002", ts="2026-04-02T09:00:00+08:00"),
        txn("e3", "88.00", customer_id="C000003"),
    )
    res = cli("load", "events", str(events))
    assert res.exit_code == 0, res.stderr


def plaintexts() -> dict[str, str]:
    """Every encrypted field of the store, decrypted with the home's key ring: ``table.field:id`` → value."""
    cipher = get_cipher()
    found: dict[str, str] = {}
    with unit_of_work() as s:
        for c in s.scalars(select(Customer)):
            for fld in ("name", "phone", "id_number"):
                ctx = f"customers.{fld}:{c.customer_id}"
                found[ctx] = cipher.decrypt(getattr(c, f"{fld}_enc"), context=ctx)
        for st in s.scalars(select(Staff)):
            for fld in ("name", "phone"):
                blob = getattr(st, f"{fld}_enc")
                if blob is not None:
                    ctx = f"staff.{fld}:{st.staff_id}"
                    found[ctx] = cipher.decrypt(blob, context=ctx)
    return found


def ciphertexts() -> list[bytes]:
    with unit_of_work() as s:
        blobs = [
            b
            for row in s.execute(select(Customer.name_enc, Customer.phone_enc, Customer.id_number_enc))
            for b in row
        ]
        blobs += [
            b for row in s.execute(select(Staff.name_enc, Staff.phone_enc)) for b in row if b is not None
        ]
    return blobs
