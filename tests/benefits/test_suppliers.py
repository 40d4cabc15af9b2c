"""Suppliers: stock sync with a discrepancy report, issue results, the scorecard (A–D) and suspension."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from omnibank.benefits import suppliers
from omnibank.benefits.models import Supplier
from omnibank.benefits.suppliers import grade_for, score_for
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from tests.benefits.helpers import NOW, TZ, grant_one, load, small_catalogue
from tests.conftest import write


@pytest.fixture
def catalogue(env, tmp_path) -> None:
    load(small_catalogue(tmp_path, stock=3))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_sync_reports_each_discrepancy_and_writes_it_beside_the_report(cli, catalogue, tmp_path) -> None:
    grant_one("k1")  # voucher: 2 left
    path = write(
        tmp_path / "acme.csv",
        "supplier_id,benefit_id,available\n"
        "acme,voucher,5\n"  # differs: +3
        "acme,voucher,2\n"  # repeated
        "acme,discount,1\n"  # the bank's own benefit
        "nobody,gift,1\n"
        "acme,gift,-1\n"
        "acme,nothing,4\n",
    )
    r = cli("suppliers", "sync", str(path))
    assert r.exit_code == 3, r.stderr  # rows were rejected
    assert "compared 2, discrepancies 2, rejected 5" in r.stdout
    assert "+3" in r.stdout and "missing_from_file" in r.stdout
    report = Path(r.stdout.split("(report: ")[1].split(";")[0])
    assert report.parent.parent == Path(r.stdout.split("(report: ")[1].split(";")[0]).parents[1]
    assert report.name == "discrepancies.csv" and report.parent.parent.name == "loads"
    assert read_csv(report) == [
        {"supplier_id": "acme", "benefit_id": "gift", "ours": "100", "theirs": "", "difference": "",
         "outcome": "missing_from_file"},
        {"supplier_id": "acme", "benefit_id": "voucher", "ours": "2", "theirs": "5", "difference": "3",
         "outcome": "differs"},
    ]  # fmt: skip
    reasons = [row["reason"] for row in read_csv(report.parent / "rejects.csv")]
    assert reasons == [
        "benefit_id: voucher appears again (first on line 2)",
        "benefit_id: discount is not supplied by acme",
        "supplier_id: unknown supplier 'nobody'",
        "available: must be a whole number >= 0",
        "benefit_id: unknown benefit 'nothing'",
    ]
    assert (report.parent / "report.json").exists()


def test_a_sync_that_agrees_reports_no_discrepancy(cli, catalogue, tmp_path) -> None:
    path = write(tmp_path / "acme.csv", "supplier_id,benefit_id,available\nacme,voucher,3\nacme,gift,100\n")
    r = cli("suppliers", "sync", str(path))
    assert r.exit_code == 0 and "compared 2, discrepancies 0, rejected 0" in r.stdout
    wrong = write(tmp_path / "wrong.csv", "supplier,benefit_id,available\n")
    r = cli("suppliers", "sync", str(wrong))
    assert r.exit_code == 1 and "wrong header" in r.stderr


@pytest.mark.parametrize(
    ("figures", "score", "grade"),
    [
        ({}, 100, "A"),
        ({"issued": 100, "failed": 2}, 95, "A"),  # 1 for the rate, 4 for two failures
        ({"stock_outs": 2}, 90, "A"),
        ({"stock_outs": 3}, 85, "B"),
        ({"issued": 10, "failed": 3, "discrepancies": 1}, 76, "B"),  # 15 + 6 + 3
        ({"issued": 10, "failed": 5}, 65, "C"),  # 25 + 10
        ({"stock_outs": 9, "discrepancies": 9}, 65, "C"),  # capped at 20 and 15
        ({"issued": 4, "failed": 4}, 42, "D"),  # 50 + 8
        ({"issued": 100, "failed": 100, "stock_outs": 9, "discrepancies": 9, "complaints": 9}, 0, "D"),
        ({"complaints": 2, "late_answers": 3}, 84, "B"),  # 10 + 6
        ({"complaints": 9, "late_answers": 9}, 70, "C"),  # capped at 20 and 10
    ],
)
def test_scores_and_grades(figures: dict[str, int], score: int, grade: str) -> None:
    args = {"issued": 0, "failed": 0, "stock_outs": 0, "discrepancies": 0, "complaints": 0,
            "late_answers": 0} | figures  # fmt: skip
    assert score_for(**args)[0] == score
    assert grade_for(score) == grade


def test_the_scorecard_grades_a_failing_supplier_and_suspension_blocks_its_grants(
    pinned_clock, cli, catalogue, tmp_path
) -> None:
    now = datetime.now(UTC)  # issue results are recorded as they arrive
    coupons = [grant_one(f"k{i}", benefit="gift", at=now).coupon for i in range(4)]
    results = "coupon_id,result,reason\n" + "".join(
        f"{c.id},{'ok' if i == 0 else 'failed'},{'' if i == 0 else '卡密库存不足'}\n"  # type: ignore[union-attr]
        for i, c in enumerate(coupons)
    )
    r = cli("suppliers", "results", str(write(tmp_path / "results.csv", results + "999,ok,\n1,maybe,\n")))
    assert r.exit_code == 3 and "loaded 4, rejected 2" in r.stdout
    for i in range(5):
        grant_one(f"v{i}", at=now)  # 3 granted, then out of stock: one stock-out day
    today = now.astimezone(TZ).date()
    with unit_of_work() as session:
        (line,) = suppliers.scorecard(session, until=today, days=90, tz=TZ)
    # 1 of 4 issued: 50 × 0.75 = 37.5 → 38; 3 failed: 6; one stock-out day: 5 → 51
    assert (line.issued, line.failed, line.stock_outs, line.discrepancies, line.complaints) == (4, 3, 1, 0, 0)
    assert line.success_rate == Decimal("0.25")
    assert (line.score, line.grade, line.status, line.recommended) == (51, "D", "active", "suspended")
    # outside the window nothing counts
    with unit_of_work() as session:
        (old,) = suppliers.scorecard(session, until=today - timedelta(days=1), days=1, tz=TZ)
    assert (old.score, old.grade) == (100, "A")

    shown = cli("suppliers", "scorecard")  # up to today
    assert shown.exit_code == 0 and "51" in shown.stdout and "suspended" in shown.stdout
    with unit_of_work() as session:
        assert session.get(Supplier, "acme").status == "active"  # type: ignore[union-attr]  # printing changes nothing
    applied = cli("suppliers", "scorecard", "--as-of", today.isoformat(), "--apply")
    assert "acme: active → suspended" in applied.stdout
    assert grant_one("after", benefit="gift", at=now).reason == "supplier_suspended"
    assert "acme (suspended)" in cli("benefits", "list").stdout

    # the scorecard escalates; lifting a suspension is a person's decision, with a reason
    assert (
        "no supplier changed state"
        in cli("suppliers", "scorecard", "--as-of", "2027-01-01", "--apply").stdout
    )
    assert cli("suppliers", "status", "acme", "active", "--reason", "整改完成").exit_code == 0
    assert grant_one("after", benefit="gift", at=now).issued
    listed = cli("suppliers", "list")
    assert "整改完成" in listed.stdout


def test_supplier_states_are_checked(catalogue) -> None:
    with unit_of_work() as session:
        with pytest.raises(AppError, match="not one of active, warning, rectification, suspended"):
            suppliers.set_status(session, "acme", "banned", reason="x", actor="t", now=NOW)
        with pytest.raises(AppError, match="with a reason"):
            suppliers.set_status(session, "acme", "warning", reason="", actor="t", now=NOW)
        assert suppliers.set_status(session, "acme", "warning", reason="late", actor="t", now=NOW)
        assert not suppliers.set_status(session, "acme", "warning", reason="late", actor="t", now=NOW)
