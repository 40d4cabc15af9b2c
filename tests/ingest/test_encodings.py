"""Files in the encodings of Chinese banking systems: a GBK/GB18030 file is refused with the hint to pass
``--encoding gb18030`` before any row loads, loads with it (every loader takes it), and bytes that cannot
be read reject their row with the personal columns masked in the rejects file whatever the bytes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from omnibank.customers.models import Customer
from omnibank.customers.service import CUSTOMER_COLUMNS
from omnibank.db import unit_of_work
from omnibank.orgs.models import Org, Staff
from omnibank.security import get_cipher
from tests.events.helpers import event, stored, txn
from tests.factories import ORGS, STAFF, customer_row

NAMES = ["张三丰", "李秀英", "王建国", "赵丽华", "石磊", "欧阳娜娜"]


def _csv_bytes(rows: list[dict[str, str]], encoding: str) -> bytes:
    lines = [",".join(CUSTOMER_COLUMNS)] + [",".join(r[c] for c in CUSTOMER_COLUMNS) for r in rows]
    return ("\n".join(lines) + "\n").encode(encoding)


def _customers(n: int = len(NAMES)) -> list[dict[str, str]]:
    return [
        customer_row(f"C{i:06d}", name=NAMES[i % len(NAMES)], phone=f"138{i:08d}", branch_id="S0101")
        for i in range(1, n + 1)
    ]


def _rejects(last_line: str) -> list[dict[str, str]]:
    path = Path(last_line.split("(rejects: ")[1].rstrip(")"))
    data = path.read_bytes()
    data.decode("utf-8")  # the rejects file is UTF-8 whatever the input
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _count(model: type) -> int:
    with unit_of_work() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def orgs_and_staff(cli, tmp_path: Path) -> None:
    for kind, text in (("orgs", ORGS), ("staff", STAFF)):
        path = tmp_path / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        assert cli("load", kind, str(path)).exit_code == 0


def test_a_gbk_customers_file_is_refused_with_the_hint_and_nothing_loads(
    cli, env, orgs_and_staff, tmp_path
) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(_csv_bytes(_customers(), "gbk"))
    r = cli("load", "customers", str(path))
    assert r.exit_code == 1, r.stdout
    assert "looks like GB18030" in r.stderr and "--encoding gb18030" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _count(Customer) == 0
    assert not list((env.home / "loads").glob("*customers*/rejects.csv"))


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "GB18030"])
def test_with_encoding_gb18030_the_file_loads_and_names_are_stored_encrypted(
    cli, env, orgs_and_staff, tmp_path, encoding: str
) -> None:
    rows = _customers()
    rows.append(customer_row("C000099", name="𠀀明", phone="13900000099"))  # a GB18030 four-byte character
    path = tmp_path / "customers.csv"
    path.write_bytes(_csv_bytes(rows, "gb18030"))
    r = cli("load", "customers", str(path), "--encoding", encoding)
    if encoding == "gbk":  # GBK has no 𠀀: that row cannot be read, the others load
        assert r.exit_code == 3, r.stderr
        (reject,) = _rejects(r.last_line)
        assert reject["reason"] == "not valid GBK" and "明" not in reject["raw"]
        expected = rows[:-1]
    else:
        assert r.exit_code == 0, r.stderr
        expected = rows
    assert r.last_line.startswith(f"loaded {len(expected)}, rejected {len(rows) - len(expected)}")
    cipher = get_cipher()
    with unit_of_work() as session:
        for row in expected:
            c = session.get(Customer, row["customer_id"])
            assert c is not None
            assert cipher.decrypt(c.name_enc, context=f"customers.name:{c.customer_id}") == row["name"]
            for plain in (row["name"].encode("utf-8"), row["name"].encode("gb18030")):
                assert plain not in c.name_enc


def test_every_loader_takes_the_encoding(cli, env, tmp_path) -> None:
    files = {
        "orgs": ORGS.encode("gb18030"),
        "staff": STAFF.encode("gb18030"),
        "customers": _csv_bytes(_customers(3), "gb18030"),
        "events": "\n".join(
            json.dumps(e, ensure_ascii=False)
            for e in (
                txn("g1", "25.00", customer_id="C000001", merchant="瑞幸咖啡"),
                event("g2", "branch.visit", customer_id="C000002", note="客户咨询理财产品"),
            )
        ).encode("gb18030"),
    }
    for kind, data in files.items():
        path = tmp_path / f"{kind}.{'jsonl' if kind == 'events' else 'csv'}"
        path.write_bytes(data)
        refused = cli("load", kind, str(path))
        assert refused.exit_code == 1 and "--encoding gb18030" in refused.stderr, kind
        r = cli("load", kind, str(path), "--encoding", "gb18030")
        assert r.exit_code == 0, (kind, r.stderr, r.stdout)
    with unit_of_work() as session:
        assert session.get(Org, "B002") is not None and session.get(Org, "B002").name == "石家庄分行"
        staff = session.get(Staff, "E00002")
        assert staff is not None
        assert get_cipher().decrypt(staff.name_enc, context="staff.name:E00002") == "吴承恩"
    log = stored(env.settings)
    assert log["g1"]["merchant"] == "瑞幸咖啡"
    assert "客户咨询理财产品" in log["g2"]["payload"]


def test_a_utf8_file_read_as_gb18030_is_refused(cli, orgs_and_staff, tmp_path) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(_csv_bytes(_customers(), "utf-8"))
    r = cli("load", "customers", str(path), "--encoding", "gb18030")
    assert r.exit_code == 1 and "is UTF-8" in r.stderr and "leave out --encoding" in r.stderr
    assert _count(Customer) == 0


def test_an_unknown_encoding_is_refused(cli, orgs_and_staff, tmp_path) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(_csv_bytes(_customers(), "utf-8"))
    r = cli("load", "customers", str(path), "--encoding", "latin-1")
    assert r.exit_code == 1
    assert "--encoding: 'latin-1' is not one of utf-8, gb18030, gbk" in r.stderr


def test_undecodable_bytes_in_a_name_reject_the_row_with_the_name_masked(
    cli, orgs_and_staff, tmp_path
) -> None:
    rows = _customers(4)
    data = _csv_bytes(rows, "utf-8")
    # line 2's name with a stray byte in it; line 3's in GBK (石磊: its first character reads as UTF-8 ʯ)
    data = data.replace("李秀英".encode(), "李秀".encode() + b"\xff" + "英".encode())
    data = data.replace("王建国".encode(), "石磊".encode("gbk"))
    path = tmp_path / "customers.csv"
    path.write_bytes(data)
    r = cli("load", "customers", str(path))
    assert r.exit_code == 3, r.stderr
    assert r.last_line.startswith("loaded 2, rejected 2")
    rejects = {row["line"]: row for row in _rejects(r.last_line)}
    assert set(rejects) == {"2", "3"}
    for row in rejects.values():
        fields = row["raw"].split(",")
        assert len(fields) == len(CUSTOMER_COLUMNS)
        name = fields[CUSTOMER_COLUMNS.index("name")]
        assert set(name[1:]) == {"*"}, name  # masked: one character kept, whatever the bytes
        assert "138****" in fields[CUSTOMER_COLUMNS.index("phone")]
    assert "秀" not in rejects["2"]["raw"] and "英" not in rejects["2"]["raw"]
    assert rejects["2"]["reason"] == "not valid UTF-8"
    assert rejects["3"]["reason"] == "not valid UTF-8 (it looks like GB18030: pass --encoding gb18030)"
