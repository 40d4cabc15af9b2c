"""Given a bank's files with personal data (good and bad rows), when everything is loaded and looked at,
then no name, phone number or ID number is found in plaintext anywhere under the data home, nor in the
store's tables."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import select

from omnibank.db import get_engine
from omnibank.db.base import Base
from omnibank.models import import_all_models
from tests.conftest import write
from tests.factories import ORGS, customer_row, customers_csv, id_number

NAMES = ["司马懿然", "欧阳修远", "诸葛青云", "上官婉清"]
PHONES = ["13712340001", "13712340002", "13712340003", "13712340004"]
IDS = [id_number("131102", f"19{60 + i}0102", f"{100 + 2 * i + 1}") for i in range(4)]
STAFF_NAME, STAFF_PHONE = "慕容复兴", "15987654321"


def _secrets() -> list[str]:
    return NAMES + PHONES + IDS + [STAFF_NAME, STAFF_PHONE]


def _values_in_sqlite(path: Path) -> list[str]:
    out: list[str] = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for v in row:
                    if isinstance(v, bytes):
                        out.append(v.decode("utf-8", errors="ignore"))
                    elif v is not None:
                        out.append(str(v))
    finally:
        conn.close()
    return out


def _values_in_parquet(path: Path) -> list[str]:
    table = pq.read_table(path)
    return [str(v) for col in table.columns for v in col.to_pylist() if v is not None]


def test_no_personal_data_in_plaintext_under_the_home(cli, env, tmp_path: Path) -> None:
    src = tmp_path / "in"
    write(src / "orgs.csv", ORGS)
    write(
        src / "staff.csv",
        f"staff_id,org_id,name,role,phone\nE00001,S0101,{STAFF_NAME},rm,{STAFF_PHONE}\n"
        f"E00002,B404,{NAMES[3]},rm,{PHONES[3]}\n",  # rejected: unknown org
    )
    rows = [
        customer_row(
            f"C00000{i + 1}", name=NAMES[i], phone=PHONES[i], id_no=IDS[i], birth_date=f"19{60 + i}-01-02"
        )
        for i in range(3)
    ]
    rows.append(customer_row("C000009", name=NAMES[3], phone=PHONES[3], id_no=IDS[3], occupation="pilot"))
    customers_csv(src / "customers.csv", rows)
    with (src / "customers.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"C000010,{NAMES[3]},{PHONES[3]},{IDS[3]}\n")  # wrong field count
    events = [
        {"event_id": "E1", "type": "app.login", "customer_id": "C000001", "ts": "2026-03-01T09:00:00+08:00"},
        {
            "event_id": "E2",
            "type": "identity.linked",
            "customer_id": "C000002",
            "ts": "2026-03-01T09:00:00Z",
            "phone": PHONES[1],
            "name": NAMES[1],
            "id_number": IDS[1],
            "wechat_openid": "wx-1",  # identity.linked binds it to C000002
        },
        {
            "event_id": "E3",
            "type": "card.transaction",
            "customer_id": "C000003",
            "ts": "2026-03-01T09:00:00",
            "card_id": "K1",
            "amount": "-5",
            "note": f"{NAMES[2]} {PHONES[2]} {IDS[2]}",
        },
    ]
    write(src / "events.jsonl", "\n".join(json.dumps(e, ensure_ascii=False) for e in events) + "\n")

    assert cli("load", "orgs", str(src / "orgs.csv")).exit_code == 0
    assert cli("load", "staff", str(src / "staff.csv")).exit_code == 3
    loaded = cli("load", "customers", str(src / "customers.csv"))
    assert loaded.last_line.startswith("loaded 3, rejected 2")
    assert cli("load", "events", str(src / "events.jsonl")).last_line.startswith("loaded 2, rejected 1")
    shown = cli("customer", "show", "C000002")
    assert shown.exit_code == 0 and NAMES[1] not in shown.stdout and PHONES[1] not in shown.stdout
    assert cli("customer", "find", "--phone", PHONES[0]).exit_code == 0
    assert cli("customer", "find", "--id-number", IDS[2]).exit_code == 0

    files = [p for p in env.home.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert ".parquet" in kinds and ".csv" in kinds and ".json" in kinds
    if env.database_url is None:
        assert ".db" in kinds
    secrets = _secrets()
    for path in files:
        data = path.read_bytes()
        for s in secrets:
            assert s.encode() not in data, f"{s} in plaintext in {path}"
        values: list[str] = []
        if path.suffix == ".db":
            values = _values_in_sqlite(path)
        elif path.suffix == ".parquet":
            values = _values_in_parquet(path)
        for v in values:
            for s in secrets:
                assert s not in v, f"{s} in {path}"

    # the store itself (PostgreSQL lives outside the home): every column of every table
    import_all_models()
    with get_engine().connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for v in row:
                    text = v.decode("utf-8", errors="ignore") if isinstance(v, bytes) else str(v)
                    for s in secrets:
                        assert s not in text, f"{s} in table {table.name}"
