"""Invite codes: one per active member of staff, short and unambiguous, never reused; revoke, rotate, staff
who leave; the CLI's issue, list and export."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused, NotFound
from omnibank.ingest.service import load_file
from omnibank.invites import codes
from omnibank.invites.models import InviteCode
from omnibank.orgs.models import Staff
from tests.api.bank import STAFF
from tests.invites.helpers import NOW, load_bank


@pytest.fixture
def bank(env, tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    settings: Settings = env.settings
    return settings, load_bank(settings, tmp_path / "bank")


def test_every_active_member_of_staff_gets_one_unambiguous_code(bank) -> None:
    settings, issued = bank
    assert sorted(issued) == [f"E0000{i}" for i in range(1, 10)]
    assert len(set(issued.values())) == len(issued)
    for code in issued.values():
        assert codes.CODE_PATTERN.match(code)
        assert not set(code) & set("01OIL")
    with unit_of_work(settings) as session:  # again: nobody gets a second code
        report = codes.issue(session, now=NOW, actor="t")
        assert (report.issued, report.kept) == (0, 9)
        assert {s: c.code for s, c in codes.live_codes(session).items()} == issued


def test_issue_for_a_subtree_only(env, tmp_path: Path) -> None:
    settings: Settings = env.settings
    load_bank(settings, tmp_path / "bank")
    with unit_of_work(settings) as session:
        session.execute(InviteCode.__table__.delete())  # type: ignore[attr-defined]
        report = codes.issue(session, org_id="B001", now=NOW, actor="t")
        held = set(codes.live_codes(session))
    assert held == {"E00001", "E00003", "E00006", "E00009"}  # B001's subtree: S0101, S0102, T010101, B001
    assert report.issued == 4
    with unit_of_work(settings) as session, pytest.raises(NotFound, match="no org B999"):
        codes.issue(session, org_id="B999", now=NOW, actor="t")


def test_a_code_once_issued_is_never_drawn_again(bank, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, issued = bank
    old = issued["E00001"]
    draws = iter([old, old, issued["E00002"], "ABCDEFG"])  # a retired code, a live one, then a fresh one
    monkeypatch.setattr(codes, "new_code", lambda: next(draws))
    with unit_of_work(settings) as session:
        codes.revoke(session, "E00001", reason="测试", now=NOW, actor="t")
        _, new = codes.rotate(session, "E00001", now=NOW + timedelta(minutes=1), actor="t")
    assert new.code == "ABCDEFG"


def test_revoke_and_rotate_keep_the_history(bank) -> None:
    settings, issued = bank
    with unit_of_work(settings) as session:
        with pytest.raises(InputRefused, match="say why"):
            codes.revoke(session, "E00001", reason="  ", now=NOW, actor="t")
        old, new = codes.rotate(session, "E00001", now=NOW, actor="t")
        assert old is not None and old.code == issued["E00001"] and new.code != old.code
        with pytest.raises(NotFound, match="no staff member E99999"):
            codes.rotate(session, "E99999", now=NOW, actor="t")
    with unit_of_work(settings) as session:
        rows = session.scalars(select(InviteCode).where(InviteCode.staff_id == "E00001")).all()
        assert sorted((c.revoke_reason or "live") for c in rows) == ["live", codes.ROTATED]
        codes.revoke(session, "E00001", reason="离职前交接", now=NOW, actor="t")
        with pytest.raises(NotFound, match="no live invite code"):
            codes.revoke(session, "E00001", reason="again", now=NOW, actor="t")


def test_codes_are_typed_any_way() -> None:
    assert codes.normalise(" ab3-k7x 9 ") == "AB3K7X9"


def test_staff_left_out_of_a_staff_file_lose_their_code(bank, tmp_path: Path) -> None:
    settings, issued = bank
    fewer = (
        "\n".join(line for line in STAFF.splitlines() if not line.startswith(("E00002,", "E00006,"))) + "\n"
    )
    (tmp_path / "staff2.csv").write_text(fewer, encoding="utf-8")
    report = load_file("staff", tmp_path / "staff2.csv", settings=settings, progress=False)
    assert (report.extra["left"], report.extra["codes_revoked"]) == (2, 2)
    assert "marked as left: 2" in report.summary_line()
    with unit_of_work(settings) as session:
        live = sorted(codes.live_codes(session))
        assert live == ["E00001", "E00003", "E00004", "E00005", "E00007", "E00008", "E00009"]
        left = session.scalars(select(Staff.staff_id).where(Staff.left_at.is_not(None))).all()
        assert sorted(left) == ["E00002", "E00006"]
        report2 = codes.issue(session, now=NOW, actor="t")
        assert report2.issued == 0  # who left gets no new code
    (tmp_path / "staff3.csv").write_text(STAFF, encoding="utf-8")  # E00002 and E00006 are back
    load_file("staff", tmp_path / "staff3.csv", settings=settings, progress=False)
    with unit_of_work(settings) as session:
        assert session.scalars(select(Staff.staff_id).where(Staff.left_at.is_not(None))).all() == []
        assert codes.issue(session, now=NOW, actor="t").issued == 2
        assert issued["E00002"] not in {c.code for c in codes.live_codes(session).values()}


def test_a_staff_file_with_no_good_row_deactivates_nobody(bank, tmp_path: Path) -> None:
    settings, _ = bank
    (tmp_path / "bad.csv").write_text(
        "staff_id,org_id,name,role,phone\nE00001,NOPE,某人,rm,\n", encoding="utf-8"
    )
    report = load_file("staff", tmp_path / "bad.csv", settings=settings, progress=False)
    assert report.rejected == 1 and "left" not in report.extra


def test_the_cli_deactivates_lists_and_exports(bank, cli, tmp_path: Path) -> None:
    settings, issued = bank
    result = cli("staff", "deactivate", "E00002")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "marked as left; invite codes revoked: 1" in result.stdout + result.stderr
    assert "had left already" in cli("staff", "deactivate", "E00002").stdout
    listed = cli("invites", "list", "--org", "B002", "--format", "csv")
    rows = list(csv.DictReader(listed.stdout.splitlines()))
    assert [(r["staff_id"], r["code"]) for r in rows] == [("E00002", ""), ("E00008", issued["E00008"])]
    out = tmp_path / "codes.csv"
    result = cli("invites", "export", "--org", "B001", "--out", str(out))
    assert result.exit_code == 0, result.stdout + result.stderr
    exported = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["staff_id"] for r in exported] == ["E00001", "E00003", "E00006", "E00009"]
    for r in exported:
        assert r["code"] == issued[r["staff_id"]]
        assert "/s/" in r["link"]
    again = tmp_path / "again.csv"
    cli("invites", "export", "--org", "B001", "--out", str(again))
    assert [r["link"] for r in csv.DictReader(again.open(encoding="utf-8"))] == [r["link"] for r in exported]
