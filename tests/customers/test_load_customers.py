from __future__ import annotations

import csv
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from omnibank.audit.models import AuditEntry
from omnibank.customers.models import Customer
from omnibank.customers.service import CUSTOMER_COLUMNS
from omnibank.customers.values import age_on
from omnibank.db import unit_of_work
from omnibank.kit.money import from_fen
from omnibank.security import get_cipher
from tests.conftest import write
from tests.factories import ORGS, STAFF, customer_row, customers_csv, id_number


@pytest.fixture
def bank(cli, tmp_path: Path) -> None:
    assert cli("load", "orgs", str(write(tmp_path / "orgs.csv", ORGS))).exit_code == 0
    assert cli("load", "staff", str(write(tmp_path / "staff.csv", STAFF))).exit_code == 0


def rejects_of(last_line: str) -> dict[int, dict[str, str]]:
    path = last_line.split("(rejects: ")[1].rstrip(")")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return {int(r["line"]): r for r in csv.DictReader(fh)}


def test_load_stores_encrypted_fields_and_exact_money(cli, bank, tmp_path: Path) -> None:
    f = customers_csv(
        tmp_path / "c.csv",
        [
            customer_row(),
            customer_row("C000002", name="李秀英", gender="F", phone="13900001111", aum="0.10", rm_id=""),
        ],
    )
    res = cli("load", "customers", str(f))
    assert res.exit_code == 0, res.stderr
    assert res.last_line == "loaded 2, rejected 0, duplicates 0"
    cipher = get_cipher()
    with unit_of_work() as s:
        c1 = s.get(Customer, "C000001")
        c2 = s.get(Customer, "C000002")
        assert c1 is not None and c2 is not None
        assert b"\xe5\xbc\xa0" not in c1.name_enc  # 张 in UTF-8
        assert cipher.decrypt(c1.name_enc, context="customers.name:C000001") == "张三丰"
        assert cipher.decrypt(c1.phone_enc, context="customers.phone:C000001") == "13812345678"
        assert from_fen(c1.aum_fen) == Decimal("523000.00")
        assert from_fen(c2.aum_fen) == Decimal("0.10")
        assert c2.rm_id is None
        assert c1.phone_bidx == cipher.blind_index("phone", "13812345678")
        assert c1.phone_bidx != c2.phone_bidx
        # a ciphertext bound to one customer does not open as another's
        with pytest.raises(Exception, match="does not verify"):
            cipher.decrypt(c1.name_enc, context="customers.name:C000002")


def test_reload_is_idempotent_and_updates_apply(cli, bank, tmp_path: Path) -> None:
    f = customers_csv(tmp_path / "c.csv", [customer_row(), customer_row("C000002", phone="13900001111")])
    cli("load", "customers", str(f))
    with unit_of_work() as s:
        before = s.get(Customer, "C000001")
        assert before is not None
        stamp, enc = before.updated_at, before.name_enc
    again = cli("load", "customers", str(f))
    assert again.last_line == "loaded 0, rejected 0, duplicates 2"
    with unit_of_work() as s:
        same = s.get(Customer, "C000001")
        assert same is not None and same.updated_at == stamp and same.name_enc == enc
    upd = customers_csv(
        tmp_path / "u.csv", [customer_row(aum="1000.00"), customer_row("C000002", phone="13900001111")]
    )
    assert cli("load", "customers", str(upd)).last_line == "loaded 1, rejected 0, duplicates 1"
    with unit_of_work() as s:
        assert s.get(Customer, "C000001").aum_fen == 100000  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(Customer)) == 2


def test_same_customer_twice_in_one_file_later_row_wins(cli, bank, tmp_path: Path) -> None:
    f = customers_csv(tmp_path / "c.csv", [customer_row(aum="1.00"), customer_row(aum="2.00")])
    assert cli("load", "customers", str(f)).exit_code == 0
    with unit_of_work() as s:
        assert s.get(Customer, "C000001").aum_fen == 200  # type: ignore[union-attr]


BAD_ROWS: list[tuple[dict[str, str], str]] = [
    (customer_row("C1", phone="23812345678"), "phone: not an 11-digit mobile number starting with 1"),
    (customer_row("C2", phone="1381234567"), "phone: not an 11-digit mobile number starting with 1"),
    (customer_row("C3", id_no="13110219800517123" + "0"), "id_number: not an 18-character resident ID"),
    (customer_row("C4", id_no="1311021980051712"), "id_number: not an 18-character resident ID"),
    (customer_row("C5", birth_date="1980-02-30"), "birth_date: 1980-02-30 is not a real date"),
    (customer_row("C6", birth_date="17/05/1980"), "birth_date: not a date in the form YYYY-MM-DD"),
    (customer_row("C7", gender="X"), "gender: 'X' is not one of M, F"),
    (customer_row("C8", aum="-1.00"), "aum: '-1.00' must be >= 0"),
    (customer_row("C9", aum="12.345"), "aum: '12.345' has more than two decimals"),
    (customer_row("C10", aum="abc"), "aum: 'abc' is not a decimal amount"),
    (customer_row("C11", occupation="pilot"), "occupation: 'pilot' is not one of employee"),
    (customer_row("C12", risk_tolerance="C6"), "risk_tolerance: 'C6' is not one of C1"),
    (customer_row("C13", channel_pref="fax"), "channel_pref: 'fax' is not one of app"),
    (customer_row("C14", marketing_consent="yes"), "marketing_consent: must be true or false"),
    (customer_row("C15", registered_at="1970-01-01"), "registered_at: 1970-01-01 is not between birth_date"),
    (customer_row("C16", branch_id="B999"), "branch_id: unknown org B999"),
    (customer_row("C17", rm_id="E99999"), "rm_id: unknown staff E99999"),
    (customer_row("C18", name=""), "name: missing"),
    (customer_row("", name="无号"), "customer_id: missing"),
    (customer_row("C19", aum="NaN"), "aum: 'NaN' is not a finite amount"),
    (customer_row("C20", birth_date="2999-01-01"), "birth_date: 2999-01-01 is not between"),
]


def test_every_bad_field_is_rejected_with_line_and_reason_and_masked(cli, bank, tmp_path: Path) -> None:
    good = [customer_row("G1"), customer_row("G2", phone="13700001234")]
    rows = [good[0]] + [r for r, _ in BAD_ROWS] + [good[1]]
    res = cli("load", "customers", str(customers_csv(tmp_path / "c.csv", rows)))
    assert res.exit_code == 3
    assert res.last_line.startswith(f"loaded 2, rejected {len(BAD_ROWS)}, duplicates 0 (rejects: ")
    rej = rejects_of(res.last_line)
    for i, (row, reason) in enumerate(BAD_ROWS):
        line = i + 3  # header is line 1, the first good row line 2
        assert rej[line]["reason"].startswith(reason), (line, rej[line]["reason"])
        raw = rej[line]["raw"]
        if row["name"]:
            assert row["name"] not in raw
        assert row["phone"] not in raw and (len(row["id_number"]) < 8 or row["id_number"] not in raw)
    with unit_of_work() as s:
        assert set(s.scalars(select(Customer.customer_id))) == {"G1", "G2"}


def test_wrong_field_count_and_bad_utf8_rows_are_masked(cli, bank, tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    good = customer_row("G1")
    body = ",".join(CUSTOMER_COLUMNS) + "\n" + ",".join(good[c] for c in CUSTOMER_COLUMNS) + "\n"
    body_bytes = body.encode() + "C2,欧阳娜娜,F,1990-01-01,13812349999\n".encode() + b"C3,\xff\xfe,F\n"
    f.write_bytes(body_bytes)
    res = cli("load", "customers", str(f))
    assert res.exit_code == 3
    rej = rejects_of(res.last_line)
    assert rej[3]["reason"] == "expected 14 fields, found 5"
    assert "欧阳娜娜" not in rej[3]["raw"] and "13812349999" not in rej[3]["raw"]
    assert "欧***" in rej[3]["raw"] and "138****9999" in rej[3]["raw"]
    assert rej[4]["reason"] == "not valid UTF-8"


def test_refused_files_load_nothing(cli, bank, tmp_path: Path) -> None:
    hdr = [c for c in CUSTOMER_COLUMNS if c != "aum"] + ["assets"]
    res = cli("load", "customers", str(customers_csv(tmp_path / "c.csv", [customer_row()], header=hdr)))
    assert res.exit_code == 1
    assert "missing column(s) aum" in res.stderr and "unknown column(s) assets" in res.stderr
    with unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 0


def test_find_by_phone_and_id_number_is_audited(cli, bank, tmp_path: Path) -> None:
    idn = id_number("130102", "19550101", "222")
    f = customers_csv(
        tmp_path / "c.csv",
        [customer_row(), customer_row("C000002", phone="13900001111", id_no=idn.replace("X", "x"))],
    )
    cli("load", "customers", str(f))
    by_phone = cli("customer", "find", "--phone", "13812345678")
    assert by_phone.exit_code == 0 and "C000001" in by_phone.stdout and "C000002" not in by_phone.stdout
    by_id = cli("customer", "find", "--id-number", idn.lower())
    assert by_id.exit_code == 0 and "C000002" in by_id.stdout
    none = cli("customer", "find", "--phone", "13000000000")
    assert none.exit_code == 1 and "no customer matches" in none.stdout
    both = cli("customer", "find")
    assert both.exit_code == 1 and "exactly one of" in both.stderr
    with unit_of_work() as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "customer.find")))
        assert len(entries) == 3
        assert all("13812345678" not in e.detail for e in entries)
        assert entries[0].actor == "test:pytest"


def test_show_masks_personal_fields_and_is_audited(cli, bank, tmp_path: Path) -> None:
    idn = id_number("370102", "19800517", "123")
    cli("load", "customers", str(customers_csv(tmp_path / "c.csv", [customer_row(id_no=idn)])))
    res = cli("customer", "show", "C000001")
    assert res.exit_code == 0, res.stderr
    assert "张**" in res.stdout and "张三丰" not in res.stdout
    assert "138****5678" in res.stdout and "13812345678" not in res.stdout
    assert f"3701**********{idn[-4:]}" in res.stdout and idn not in res.stdout
    assert "523,000.00" in res.stdout and "桃城支行" in res.stdout
    # the age, never the birth date (it would leave a handful of candidates for the masked ID number)
    assert re.search(r"\bage\b\W+\d{2}\b", res.stdout) and "1980-05-17" not in res.stdout
    missing = cli("customer", "show", "C404")
    assert missing.exit_code == 1 and "no customer C404" in missing.stderr
    with unit_of_work() as s:
        views = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "customer.view")))
        assert [v.subject_id for v in views] == ["C000001"]


@pytest.mark.parametrize(
    ("birth", "as_of", "age"),
    [
        ("1966-11-23", "2026-11-23", 60),
        ("1966-11-24", "2026-11-23", 59),
        ("2000-02-29", "2026-02-28", 25),
        ("2000-02-29", "2026-03-01", 26),
    ],
)
def test_age_counts_a_birthday_on_the_day(birth: str, as_of: str, age: int) -> None:
    from datetime import date

    assert age_on(date.fromisoformat(birth), date.fromisoformat(as_of)) == age


def test_worker_process_path_gives_the_same_result(cli, bank, env, tmp_path: Path) -> None:
    """Large files validate and encrypt in a worker process; the outcome must not depend on it."""
    from omnibank.customers.service import load_customers
    from omnibank.kit.loading import LoadRun

    rows = [customer_row(f"C{i:06d}", phone=f"139{i:08d}") for i in range(1, 12_001)]
    rows[5] = customer_row("C000006", phone="bad")
    rows.append(customer_row("C000007", phone="13900000007", aum="7.77"))  # repeats C000007: later row wins
    f = customers_csv(tmp_path / "c.csv", rows)
    settings = env.settings
    with LoadRun(settings.loads_dir, "customers", f) as run, unit_of_work(bulk_load=True) as s:
        load_customers(
            s, f, run=run, cipher=get_cipher(), today=date(2026, 11, 23), progress=False, parallel=True
        )
    report = run.finish()
    assert (report.loaded, report.rejected) == (11_999 + 1, 1)
    assert report.duplicates == 0
    with unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 11_999
        assert s.get(Customer, "C000007").aum_fen == 777  # type: ignore[union-attr]
        c = s.get(Customer, "C011000")
        assert c is not None
        assert get_cipher().decrypt(c.phone_enc, context="customers.phone:C011000") == "13900011000"
    assert rejects_of(report.summary_line())[7]["reason"].startswith("phone: not an 11-digit")


def _customer_indexes() -> set[str]:
    from sqlalchemy import inspect

    from omnibank.db import get_engine

    return {i["name"] for i in inspect(get_engine()).get_indexes("customers") if i["name"]}


def test_large_load_rebuilds_indexes_and_a_refused_one_keeps_them(
    cli, bank, env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import omnibank.customers.service as service

    monkeypatch.setattr(service, "PARALLEL_MIN_BYTES", 0)  # treat every file as a large load
    expected = {
        "ix_customers_branch_id",
        "ix_customers_id_number_bidx",
        "ix_customers_phone_bidx",
        "ix_customers_rm_id",
    }
    assert _customer_indexes() == expected
    hdr = [c for c in CUSTOMER_COLUMNS if c != "aum"]
    refused = cli("load", "customers", str(customers_csv(tmp_path / "bad.csv", [customer_row()], header=hdr)))
    assert refused.exit_code == 1
    assert _customer_indexes() == expected
    rows = [customer_row(f"C{i:06d}", phone=f"137{i:08d}") for i in range(1, 301)]
    rows.insert(10, customer_row("C000200", phone="13700000200", aum="1.00"))  # the later C000200 row wins
    big = customers_csv(tmp_path / "c.csv", rows)
    assert cli("load", "customers", str(big)).last_line == "loaded 300, rejected 0, duplicates 1"
    assert _customer_indexes() == expected
    with unit_of_work() as s:
        assert s.get(Customer, "C000200").aum_fen == 52300000  # type: ignore[union-attr]
    assert cli("load", "customers", str(big)).last_line == "loaded 0, rejected 0, duplicates 301"
    found = cli("customer", "find", "--phone", "13700000123")
    assert found.exit_code == 0 and "C000123" in found.stdout
