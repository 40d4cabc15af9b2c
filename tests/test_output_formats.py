"""`--format table|csv|json` on the listing commands: csv and json carry the rows only on stdout (titles and
totals on stderr), the same keys and values in both, money as decimal strings, times in ISO 8601 with the
bank's offset, Chinese as it is; tables are not cut to 80 columns in a pipe, keep Chinese columns aligned and
print customer text literally. Every time the commands list is pinned in the data, not read from the clock."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.cells import cell_len

from omnibank import listing
from omnibank.benefits import ledger
from omnibank.campaigns.models import CampaignGrant
from omnibank.db import unit_of_work
from omnibank.kit.console import out
from omnibank.listing import Col, OutputFormat, print_rows
from omnibank.users import service as users
from tests.benefits.helpers import NOW, TZ, grant_one, small_catalogue
from tests.segments.bank import load_bank

ROOT = Path(__file__).resolve().parents[1]
ISO_BANK = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+08:00$")


@pytest.fixture(autouse=True)
def pipe_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared console as a pipe sees it: no width fixed by an earlier test (the CLI runner is no tty)."""
    monkeypatch.setattr(out, "_width", None)


@pytest.fixture
def bank(env, tmp_path: Path) -> Path:
    load_bank(env.settings, tmp_path / "bank")  # customers C01…C05 (张三丰), orgs 衡水银行总行 …
    return tmp_path


def ok(cli, *args: str):
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    return r


def rows(cli, *args: str) -> list[dict[str, object]]:
    """The command's rows as JSON lines, checked against its CSV: same keys in the same order, same values."""
    as_json = ok(cli, *args, "--format", "json")
    as_csv = ok(cli, *args, "--format", "csv")
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    lines = as_csv.stdout.splitlines()
    assert lines, "csv prints its header line even without rows"
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(table) == len(objects)
    header = next(csv.reader([lines[0]]))
    for obj, row in zip(objects, table, strict=True):
        assert list(obj) == header
        assert all(isinstance(v, str | int | bool) or v is None for v in obj.values()), obj
        assert row == {k: _csv_text(v) for k, v in obj.items()}
    return objects


def json_rows(cli, *args: str) -> list[dict[str, object]]:
    """One run's JSON lines (for a command that changes something, run once per format)."""
    return [json.loads(line) for line in ok(cli, *args, "--format", "json").stdout.splitlines()]


def _csv_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------------------- one per domain


def test_segment_preview_list_and_matrix(cli, bank) -> None:
    got = rows(cli, "segment", "preview", "in_org('S0101')", "--as-of", "2026-03-01")
    assert [r["customer_id"] for r in got] == ["C01", "C02"]
    assert list(got[0]) == ["customer_id", "name", "gender", "age", "branch_id", "aum", "occupation"]
    assert got[0]["name"] == "张**" and got[0]["aum"] == "49999.99" and got[1]["aum"] == "50000.00"
    assert got[0]["age"] == 60  # born 1966-03-01
    r = ok(cli, "segment", "preview", "in_org('S0101')", "--as-of", "2026-03-01", "--format", "json")
    assert "2 of 2 matching customers" in r.stderr and "matching" not in r.stdout

    ok(cli, "segment", "save", "silver", "age >= 60", "-d", '银发客群, "六十岁以上"')
    (saved,) = rows(cli, "segment", "list")
    assert saved == {
        "name": "silver", "expression": "age >= 60", "members": None, "last_snapshot": None,
        "description": '银发客群, "六十岁以上"',
    }  # fmt: skip

    ok(cli, "tags", "load", str(ROOT / "examples" / "tags"))
    computed = json_rows(cli, "tags", "compute", "--as-of", "2026-03-01")
    assert computed and list(computed[0]) == ["tag", "customers", "gained", "lost"]
    assert sum(int(str(t["gained"])) for t in computed) > 0
    again = ok(cli, "tags", "compute", "--as-of", "2026-03-01", "--format", "csv")
    assert [r["gained"] for r in csv.DictReader(io.StringIO(again.stdout))] == ["0"] * len(computed)
    assert "tags as of 2026-03-01" in again.stderr and "computed" in again.stderr
    matrix = rows(cli, "segment", "matrix", "--as-of", "2026-03-01")
    assert list(matrix[0])[:3] == ["lifecycle", "wealth", "employee"] and list(matrix[0])[-1] == "total"
    assert sum(int(str(m["total"])) for m in matrix) == 5


def test_tags_list(cli, bank) -> None:
    ok(cli, "tags", "load", str(ROOT / "examples" / "tags"))
    got = rows(cli, "tags", "list")
    assert list(got[0]) == ["category", "tag", "customers", "description", "expression"]
    assert any("手机银行" in str(t["description"]) for t in got)
    assert all(t["customers"] == 0 for t in got)  # not computed yet


def test_benefits_stock_suppliers_coupons_budgets_points(cli, env, tmp_path) -> None:
    ok(cli, "benefits", "load", str(small_catalogue(tmp_path)))
    benefits = {b["id"]: b for b in rows(cli, "benefits", "list")}
    voucher = benefits["voucher"]
    assert voucher["name"] == "饮品券" and voucher["face_value"] == "26.00" and voucher["cost"] == "15.00"
    assert voucher["face_value_by_tier"] == "platinum:29.00" and voucher["available"] == 3
    assert benefits["discount"]["discount_rate"] == "0.75" and benefits["discount"]["available"] is None
    r = ok(cli, "benefits", "list", "--format", "csv")
    assert "4 benefits" in r.stderr and "4 benefits" not in r.stdout

    stock = {s["benefit_id"]: s for s in rows(cli, "benefits", "stock")}
    assert stock["voucher"]["average_unit_cost"] == "15.00" and stock["gift"]["received"] == 100

    (supplier,) = rows(cli, "suppliers", "list")
    assert supplier["name"] == "权益供应商" and ISO_BANK.match(str(supplier["status_changed_at"]))
    (card,) = rows(cli, "suppliers", "scorecard", "--as-of", "2026-03-02")
    assert card["supplier_id"] == "acme" and card["success_rate"] == "1.0000" and card["grade"] == "A"

    first = grant_one("fmt:1", customer="C000123", at=NOW).coupon
    assert first is not None
    (coupon,) = rows(cli, "coupons", "list", "--customer", "C000123")
    assert coupon["id"] == first.id and coupon["face_value"] == "26.00" and coupon["discount_rate"] is None
    assert (coupon["campaign"], coupon["rule"], coupon["benefit_id"]) == ("camp", "weekly", "voucher")
    assert coupon["granted_at"] == "2026-03-02T10:00:00+08:00" and ISO_BANK.match(str(coupon["valid_to"]))
    history = rows(cli, "coupons", "show", str(first.id))
    assert [h["action"] for h in history] == ["grant"] and history[0]["to_status"] == "granted"

    ok(cli, "budgets", "set", "--campaign", "camp", "--money", "1234.5", "--count", "10")
    (budget,) = rows(cli, "budgets", "list")
    assert budget["money_limit"] == "1234.50" and budget["money_used"] == "0.00"
    assert budget["count_left"] == 10 and budget["rule"] is None

    with unit_of_work() as session:
        ledger.earn(session, customer_id="C000123", amount=1500, key="evt:p1", now=NOW, reference="积分")
        ledger.spend(session, customer_id="C000123", amount=500, key="redeem:p1", now=NOW)
    postings = rows(cli, "points", "balance", "C000123")
    assert [(p["kind"], p["points"]) for p in postings] == [("redeem", -500), ("earn", 1500)]
    assert postings[1]["reference"] == "积分" and postings[1]["created_at"] == "2026-03-02T10:00:00+08:00"
    r = ok(cli, "points", "balance", "C000123", "--format", "json")
    assert "C000123: 1,000 points" in r.stderr and "points" not in r.stdout.replace('"points"', "")


def test_campaign_list_and_grants(cli, env) -> None:
    ok(cli, "campaign", "start", str(ROOT / "examples" / "campaigns" / "luckin_cobrand.yaml"))
    (campaign,) = rows(cli, "campaign", "list")
    assert campaign["id"] == "luckin2026" and "瑞幸" in str(campaign["name"])
    assert (campaign["events_applied"], campaign["grants"]) == (0, 0)
    with unit_of_work() as session:
        session.add(CampaignGrant(
            key="luckin2026:welcome:C01", campaign="luckin2026", rule="welcome", customer_id="C01",
            benefit="luckin_voucher", granted_at=NOW, valid_from=NOW, valid_to=NOW + timedelta(days=30),
            claim_by=None, face_value_fen=2600, discount_rate=None, stage=None, points=None, event_id="e1",
            local_date=NOW.date(),
        ))  # fmt: skip
    (grant,) = rows(cli, "campaign", "grants")
    assert grant["face_value"] == "26.00" and grant["granted_at"] == "2026-03-02T10:00:00+08:00"
    assert grant["valid_to"] == "2026-04-01T10:00:00+08:00" and grant["claim_by"] is None


def test_journey_list_and_an_empty_report(cli, env) -> None:
    ok(cli, "journey", "start", str(ROOT / "examples" / "journeys" / "product_view_lead.yaml"))
    (journey,) = rows(cli, "journey", "list")
    assert journey["id"] == "product_view_lead" and journey["active"] == 0
    assert rows(cli, "journey", "report") == []
    r = ok(cli, "journey", "report", "--format", "csv")
    assert r.stdout.splitlines() == [
        "journey,entered,control,treated,converted,converted_control,rate,control_rate,uplift,step,sent,"
        "deferred,suppressed,suppressed_by_reason,delivered,clicked,failed,done"
    ]
    assert "nothing recorded yet" in r.stderr


def test_contact_dnd_and_outbox(cli, bank) -> None:
    ok(cli, "contact", "dnd", "add", "C01", "--reason", "客户来电要求勿扰", "--until", "2099-12-31")
    (entry,) = rows(cli, "contact", "dnd", "list")
    assert entry["customer_id"] == "C01" and entry["reason"] == "客户来电要求勿扰"
    assert entry["until"] == "2100-01-01T00:00:00+08:00" and entry["removed_at"] is None
    r = ok(cli, "contact", "dnd", "list", "--format", "json")
    assert "1 entry" in r.stderr and "do-not-disturb" in r.stderr and "entry" not in r.stdout
    r = ok(cli, "contact", "outbox", "--format", "csv")
    assert len(r.stdout.splitlines()) == 1 and r.stdout.startswith("id,customer_id,channel,purpose,journey,")
    assert "0 shown" in r.stderr


def test_leads_list(cli, bank) -> None:
    ok(cli, "leads", "add", "--customer", "C01", "--due-in", "2d", "--note", "浏览理财页面", "--key", "k1")
    (lead,) = rows(cli, "leads", "list", "--staff", "E00001")
    assert lead["customer_id"] == "C01" and lead["name"] == "张**" and lead["phone"] == "138****0001"
    assert lead["owner_staff_id"] == "E00001" and lead["overdue"] is False and lead["escalated_to"] is None
    assert ISO_BANK.match(str(lead["due_at"]))
    r = ok(cli, "leads", "list", "--staff", "E00002", "--format", "json")
    assert r.stdout == "" and "no leads for E00002" in r.stderr


def test_users_tokens_audit_consent_keys_org_customer(cli, bank) -> None:
    with unit_of_work() as session:
        users.create_user(session, role="rm", password="Correct-Horse-9", now=datetime.now(UTC),
                          actor="test", staff_id="E00001")  # fmt: skip
    (user,) = rows(cli, "user", "list")
    assert user == {
        "username": "E00001", "role": "rm", "staff_id": "E00001", "supplier_id": None, "state": "active",
        "locked_until": None, "last_login_at": None,
    }  # fmt: skip
    ok(cli, "token", "create", "--name", "crm", "--scopes", "customers:read", "--org", "B001")
    (token,) = rows(cli, "token", "list")
    assert token["name"] == "crm" and token["org_id"] == "B001" and token["state"] == "active"
    assert ISO_BANK.match(str(token["expires_at"])) and "omb_" not in json.dumps(token)

    ok(cli, "consent", "grant", "C01", "marketing", "--channel", "app", "--evidence", "表单-1")
    purposes = {p["purpose"]: p for p in rows(cli, "consent", "show", "C01")}
    marketing = purposes["marketing"]
    assert marketing["allowed"] is True and ISO_BANK.match(str(marketing["recorded_at"]))
    (record,) = rows(cli, "consent", "show", "C01", "--history")
    assert record["evidence"] == "表单-1" and record["change"] == "granted"

    entries = rows(cli, "audit", "list", "--subject", "C01")
    assert entries[0]["action"] == "consent.grant" and ISO_BANK.match(str(entries[0]["at"]))
    assert isinstance(json.loads(str(entries[0]["detail"])), dict)

    keys = rows(cli, "keys", "status")
    assert {k["field"] for k in keys} >= {"customers.name_enc", "customers.phone_enc", "staff.name_enc"}
    assert all(k["active"] is True for k in keys) and sum(int(str(k["ciphertexts"])) for k in keys) > 0

    nodes = {n["org_id"]: n for n in rows(cli, "org", "tree", "--depth", "3")}
    assert nodes["HQ"] == {
        "org_id": "HQ", "parent_id": None, "name": "衡水银行总行", "level": "hq", "depth": 0, "staff": 3,
        "customers": 5,
    }  # fmt: skip
    assert nodes["T010101"]["depth"] == 3 and nodes["T010101"]["name"] == "财富管理团队"

    (found,) = rows(cli, "customer", "find", "--phone", "13800000001")
    assert found == {
        "customer_id": "C01", "branch_id": "S0101", "rm_id": "E00001", "registered_at": "2015-03-02",
    }  # fmt: skip


# ------------------------------------------------------------------------------------------ tables in pipes


def test_a_wide_table_is_not_cut_in_a_pipe(cli, bank) -> None:
    long = " OR ".join(f"aum >= {n}" for n in range(1000, 1040))
    assert len(long) > 400
    ok(cli, "segment", "save", "wide", long, "-d", "一个很长的表达式")
    r = ok(cli, "segment", "list")  # the CLI runner's stdout is no terminal, as in a pipe
    assert any(long in line for line in r.stdout.splitlines())
    assert "…" not in r.stdout and max(cell_len(line) for line in r.stdout.splitlines()) > 400


def test_chinese_text_keeps_the_columns_aligned_and_markup_prints_literally(cli, env, tmp_path) -> None:
    ok(cli, "benefits", "load", str(small_catalogue(tmp_path)))
    ok(cli, "segment", "save", "bold", "age >= 60", "-d", "[bold]粗体[/bold] [red]")
    r = ok(cli, "benefits", "list")
    lines = [ln for ln in r.stdout.splitlines() if ln[:1] in "┏┃┡│└"]
    assert any("饮品券" in ln for ln in lines) and any("分期折扣券" in ln for ln in lines)
    assert len({cell_len(ln) for ln in lines}) == 1  # double-width characters counted as two
    r = ok(cli, "segment", "list")
    assert "[bold]粗体[/bold] [red]" in r.stdout and "\x1b[" not in r.stdout  # no colour in a pipe


def test_unknown_format_is_refused_with_a_clear_message(cli, env) -> None:
    r = cli("coupons", "list", "--customer", "C1", "--format", "xml")
    assert r.exit_code == 2 and r.stdout == ""
    said = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.stderr).split())
    assert "--format" in said and "'xml' is not one of 'table', 'csv', 'json'" in said


# --------------------------------------------------------------------------------------------- the helper


COLUMNS = (Col("id", show=str), Col("name"), Col("amount"), Col("at"), Col("shown", data=False))


def _print(fmt: OutputFormat, capsys: pytest.CaptureFixture[str], *rows_: tuple[object, ...]) -> str:
    print_rows(COLUMNS, rows_, fmt, tz=TZ)
    return capsys.readouterr().out


def test_values_in_each_format(capsys: pytest.CaptureFixture[str]) -> None:
    at = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 March, bank-local
    row = (1234, '张三, "丰"\n二行', Decimal("1234.50"), at, "only in the table")
    assert json.loads(_print(OutputFormat.json, capsys, row)) == {
        "id": 1234, "name": '张三, "丰"\n二行', "amount": "1234.50", "at": "2026-03-02T00:30:00+08:00",
    }  # fmt: skip
    text = _print(OutputFormat.csv, capsys, row)
    assert text.startswith("id,name,amount,at\n")
    (_, values) = csv.reader(io.StringIO(text))
    assert values == ["1234", '张三, "丰"\n二行', "1234.50", "2026-03-02T00:30:00+08:00"]
    table = _print(OutputFormat.table, capsys, row)
    assert "1,234.50" in table and "2026-03-02 00:30" in table and "only in the table" in table


def test_csv_and_json_are_utf8_whatever_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="ascii", write_through=True))
    print_rows((Col("name"),), [("衡水银行",)], OutputFormat.json)
    assert raw.getvalue().decode("utf-8") == '{"name":"衡水银行"}\n'


def test_floats_naive_datetimes_and_bad_keys_are_refused() -> None:
    with pytest.raises(TypeError, match="float"):
        print_rows((Col("x"),), [(0.1,)], OutputFormat.json)
    with pytest.raises(ValueError, match="naive"):
        print_rows((Col("x"),), [(datetime(2026, 1, 1),)], OutputFormat.csv, tz=TZ)  # noqa: DTZ001
    with pytest.raises(ValueError, match="snake_case"):
        Col("Face Value")
    assert listing.OutputFormat("json") is OutputFormat.json
