from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from omnibank.db import unit_of_work
from omnibank.orgs import repository
from omnibank.orgs.models import Org
from tests.conftest import write
from tests.factories import ORGS, STAFF


def rejects(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_loads_tree_with_paths_and_subtrees(cli, tmp_path: Path) -> None:
    res = cli("load", "orgs", str(write(tmp_path / "orgs.csv", ORGS)))
    assert res.exit_code == 0, res.stderr
    assert res.last_line == "loaded 7, rejected 0, duplicates 0"
    with unit_of_work() as s:
        orgs = {o.org_id: o for o in s.scalars(select(Org))}
        assert orgs["T010101"].path == "/HQ/B001/S0101/T010101/"
        assert orgs["T010101"].depth == 3
        assert repository.subtree_ids(s, "B001") == {"B001", "S0101", "S0102", "T010101"}
        assert repository.subtree_ids(s, "S0201") == {"S0201"}


def test_reload_changes_nothing_and_an_edit_is_applied(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "orgs.csv", ORGS)
    cli("load", "orgs", str(f))
    again = cli("load", "orgs", str(f))
    assert again.last_line == "loaded 0, rejected 0, duplicates 7"
    # move a sub-branch to another branch: its subtree's paths follow
    moved = write(tmp_path / "move.csv", "org_id,parent_id,name,level\nS0101,B002,桃城支行,subbranch\n")
    assert cli("load", "orgs", str(moved)).last_line == "loaded 1, rejected 0, duplicates 0"
    with unit_of_work() as s:
        assert s.get(Org, "T010101").path == "/HQ/B002/S0101/T010101/"  # type: ignore[union-attr]
        assert "T010101" in repository.subtree_ids(s, "B002")


def test_bad_rows_rejected_with_line_and_reason_good_rows_load(cli, env, tmp_path: Path) -> None:
    text = (
        "org_id,parent_id,name,level\n"
        "HQ,,衡水银行总行,hq\n"
        "B001,HQ,衡水分行,branch\n"
        "B009,HX,无名分行,branch\n"  # line 4: unknown parent
        "S0101,B001,桃城支行,region\n"  # line 5: bad level
        "B002,,石家庄分行,branch\n"  # line 6: missing parent
        "HQ2,,第二总行,hq\n"  # line 7: second hq
        "T1,B009,某团队,team\n"  # line 8: ancestor rejected
        "B003,S0102,沧州分行,branch\n"  # line 9: S0102 not known -> unknown parent
        "S0102,B001,冀州支行\n"  # line 10: wrong field count
        "B001,HQ,衡水分行,branch\n"  # line 11: repeated id
        "S0103,B001,,subbranch\n"  # line 12: missing name
        "B004,T9,x,branch\n"  # line 13: unknown parent
    )
    res = cli("load", "orgs", str(write(tmp_path / "orgs.csv", text)))
    assert res.exit_code == 3
    assert res.last_line.startswith("loaded 2, rejected 10, duplicates 0 (rejects: ")
    rows = rejects(res.last_line.split("(rejects: ")[1].rstrip(")"))
    by_line = {int(r["line"]): r["reason"] for r in rows}
    assert by_line[4] == "parent_id: unknown org HX"
    assert by_line[5].startswith("level: 'region' is not one of hq, branch")
    assert by_line[6].startswith("parent_id: missing")
    assert by_line[7].startswith("level: a second hq")
    assert by_line[8] == "parent_id: ancestor B009 has an unknown parent HX"
    assert by_line[9] == "parent_id: unknown org S0102"
    assert by_line[10] == "expected 4 fields, found 3"
    assert by_line[11] == "org_id: B001 appears again (first on line 3)"
    assert by_line[12] == "name: missing"
    assert by_line[13] == "parent_id: unknown org T9"
    with unit_of_work() as s:
        assert repository.org_ids(s) == {"HQ", "B001"}


def test_cycle_is_refused_and_rows_beneath_it_too(cli, tmp_path: Path) -> None:
    cli("load", "orgs", str(write(tmp_path / "orgs.csv", ORGS)))
    # B001 under S0101 (its own child) would make a cycle B001 → S0101 → B001
    cyc = write(
        tmp_path / "cycle.csv",
        "org_id,parent_id,name,level\nX1,X2,甲,subbranch\nX2,X1,乙,subbranch\nX3,X1,丙,team\nB005,HQ,廊坊分行,branch\n",
    )
    res = cli("load", "orgs", str(cyc))
    assert res.exit_code == 3
    reasons = {int(r["line"]): r["reason"] for r in rejects(res.last_line.split("(rejects: ")[1].rstrip(")"))}
    assert reasons[2].startswith("cycle in the org tree: ")
    assert "X1" in reasons[2] and "X2" in reasons[2]
    assert reasons[3].startswith("cycle in the org tree: ")
    assert 4 in reasons  # beneath the cycle
    # a cycle through an org already in the database
    res2 = cli(
        "load",
        "orgs",
        str(write(tmp_path / "c2.csv", "org_id,parent_id,name,level\nB001,T010101,衡水分行,branch\n")),
    )
    assert res2.exit_code == 3
    with unit_of_work() as s:
        assert s.get(Org, "B001").parent_id == "HQ"  # type: ignore[union-attr]
        assert "B005" in repository.org_ids(s)
        assert not {"X1", "X2", "X3"} & repository.org_ids(s)


def test_level_must_sit_below_parent(cli, tmp_path: Path) -> None:
    cli("load", "orgs", str(write(tmp_path / "orgs.csv", ORGS)))
    res = cli(
        "load",
        "orgs",
        str(write(tmp_path / "l.csv", "org_id,parent_id,name,level\nB010,T010101,错层分行,branch\n")),
    )
    assert res.exit_code == 3
    reason = rejects(res.last_line.split("(rejects: ")[1].rstrip(")"))[0]["reason"]
    assert reason == "level: branch cannot sit under T010101 (team)"


def test_unreadable_files_are_refused_with_nothing_loaded(cli, tmp_path: Path) -> None:
    missing = cli("load", "orgs", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1
    assert "no such file" in missing.stderr
    wrong = cli("load", "orgs", str(write(tmp_path / "w.csv", "org,parent,name,level\nHQ,,总行,hq\n")))
    assert wrong.exit_code == 1
    assert "wrong header" in wrong.stderr and "missing column(s) org_id, parent_id" in wrong.stderr
    empty = cli("load", "orgs", str(write(tmp_path / "e.csv", "")))
    assert empty.exit_code == 1 and "empty" in empty.stderr
    with unit_of_work() as s:
        assert repository.org_ids(s) == set()


def test_header_with_bom_and_other_column_order(cli, tmp_path: Path) -> None:
    f = tmp_path / "bom.csv"
    f.write_bytes(
        "\ufefflevel,name,org_id,parent_id\r\nhq,衡水银行总行,HQ,\r\nbranch,衡水分行,B001,HQ\r\n".encode()
    )
    assert cli("load", "orgs", str(f)).last_line == "loaded 2, rejected 0, duplicates 0"


def test_staff_load_encrypts_and_rejects(cli, env, tmp_path: Path) -> None:
    cli("load", "orgs", str(write(tmp_path / "orgs.csv", ORGS)))
    text = (
        STAFF
        + "E00004,B999,王五,rm,13911114444\nE00005,B001,赵六,boss,13911115555\nE00006,B001,钱七,rm,12345\n"
    )
    res = cli("load", "staff", str(write(tmp_path / "staff.csv", text)))
    assert res.exit_code == 3
    assert res.last_line.startswith("loaded 3, rejected 3, duplicates 0")
    rows = rejects(res.last_line.split("(rejects: ")[1].rstrip(")"))
    assert [r["reason"] for r in rows] == [
        "org_id: unknown org B999 (load orgs.csv first)",
        "role: 'boss' is not one of rm, wealth_manager, teller, branch_manager, service_agent, telemarketer, "
        "campaign_manager, admin",
        "phone: not an 11-digit mobile number starting with 1",
    ]
    assert "王五" not in rows[0]["raw"] and "王*" in rows[0]["raw"] and "139****4444" in rows[0]["raw"]
    again = cli("load", "staff", str(write(tmp_path / "staff2.csv", STAFF)))
    assert again.last_line == "loaded 0, rejected 0, duplicates 3"
