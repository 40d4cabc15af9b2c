"""The demo generator: determinism and every file against the data contract."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from omnibank.customers.values import CHANNEL_PREFS, GENDERS, OCCUPATIONS, RISK_LEVELS
from omnibank.demo.generator import DemoSummary, generate
from omnibank.kit.idcard import id_birth_date, id_gender, valid_id_number
from omnibank.orgs.models import ORG_LEVELS, STAFF_ROLES

START = date(2026, 1, 1)
DAYS = 365
CUSTOMERS = 1_500
EVENTS_PER_CUSTOMER = 50.0

CUSTOMER_COLUMNS = [
    "customer_id",
    "name",
    "gender",
    "birth_date",
    "phone",
    "id_number",
    "branch_id",
    "rm_id",
    "aum",
    "occupation",
    "risk_tolerance",
    "channel_pref",
    "marketing_consent",
    "registered_at",
]
MOBILE = re.compile(r"^1[35789]\d{9}$")
MONEY = re.compile(r"^(0|[1-9]\d*)\.\d{2}$")
CHINESE_NAME = re.compile(r"^[\u4e00-\u9fff]{2,4}$")
EVENT_CHANNELS = {"app", "wechat", "sms", "phone", "branch", "wecom", "web", "partner"}
TZ8 = "+08:00"


@dataclass
class Demo:
    summary: DemoSummary
    orgs: list[dict[str, str]]
    staff: list[dict[str, str]]
    customers: list[dict[str, str]]
    events: list[dict[str, Any]]


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo")
    summary = generate(
        out,
        customers=CUSTOMERS,
        seed=7,
        start=START,
        days=DAYS,
        events_per_customer=EVENTS_PER_CUSTOMER,
        progress=False,
    )
    _, orgs = _read_csv(summary.orgs_csv)
    _, staff = _read_csv(summary.staff_csv)
    _, customers = _read_csv(summary.customers_csv)
    with summary.events_jsonl.open(encoding="utf-8") as fh:
        events = [json.loads(line) for line in fh]
    return Demo(summary, orgs, staff, customers, events)


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


# ---------------------------------------------------------------------------------------------- determinism


def _run(out: Path, **kwargs: Any) -> dict[str, bytes]:
    summary = generate(out, customers=300, days=20, progress=False, **kwargs)
    return {p.name: p.read_bytes() for p in summary.paths}


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", seed=11)
    second = _run(tmp_path / "b", seed=11)
    assert first == second
    assert all(first.values())


def test_identical_in_another_process_with_another_hash_seed(tmp_path: Path) -> None:
    here = _run(tmp_path / "a", seed=5)
    code = (
        "import sys; from pathlib import Path; from omnibank.demo.generator import generate; "
        "generate(Path(sys.argv[1]), customers=300, days=20, seed=5, progress=False)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], check=True, env=env)
    there = {name: (tmp_path / "b" / name).read_bytes() for name in here}
    assert here == there


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", seed=11)
    other = _run(tmp_path / "b", seed=12)
    assert first["customers.csv"] != other["customers.csv"]
    assert first["events.jsonl"] != other["events.jsonl"]


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate(tmp_path, customers=50, days=2, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""


@pytest.mark.parametrize(
    "kwargs", [{"customers": 0}, {"days": 0}, {"events_per_customer": -1.0}, {"seed": -1}]
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        generate(tmp_path, progress=False, **kwargs)


# ---------------------------------------------------------------------------------------------- organisation


def test_orgs_form_a_tree_rooted_at_hq(demo: Demo) -> None:
    header, _ = _read_csv(demo.summary.orgs_csv)
    assert header == ["org_id", "parent_id", "name", "level"]
    by_id = {o["org_id"]: o for o in demo.orgs}
    assert len(by_id) == len(demo.orgs) == demo.summary.orgs
    roots = [o for o in demo.orgs if o["parent_id"] == ""]
    assert roots == [{"org_id": "HQ", "parent_id": "", "name": "衡水银行总行", "level": "hq"}]
    parent_level = {"branch": "hq", "subbranch": "branch", "team": "subbranch"}
    for org in demo.orgs:
        assert org["level"] in ORG_LEVELS
        assert org["name"]
        if org["level"] != "hq":
            assert by_id[org["parent_id"]]["level"] == parent_level[org["level"]]
    levels = Counter(o["level"] for o in demo.orgs)
    assert levels["branch"] == 10
    assert 20 <= levels["subbranch"] <= 40
    assert levels["subbranch"] <= levels["team"] <= 3 * levels["subbranch"]
    assert by_id["B001"] == {"org_id": "B001", "parent_id": "HQ", "name": "衡水分行", "level": "branch"}
    assert all(re.fullmatch(r"S\d{4}", o["org_id"]) for o in demo.orgs if o["level"] == "subbranch")
    assert all(re.fullmatch(r"T\d{6}", o["org_id"]) for o in demo.orgs if o["level"] == "team")


def test_staff_file(demo: Demo) -> None:
    header, _ = _read_csv(demo.summary.staff_csv)
    assert header == ["staff_id", "org_id", "name", "role", "phone"]
    orgs = {o["org_id"]: o for o in demo.orgs}
    ids = [s["staff_id"] for s in demo.staff]
    assert len(set(ids)) == len(ids) == demo.summary.staff
    customer_phones = {c["phone"] for c in demo.customers}
    phones = [s["phone"] for s in demo.staff]
    assert len(set(phones)) == len(phones)
    assert not customer_phones & set(phones)
    for s in demo.staff:
        assert re.fullmatch(r"E\d{5}", s["staff_id"])
        assert s["role"] in STAFF_ROLES
        assert s["org_id"] in orgs
        assert CHINESE_NAME.match(s["name"]), s
        assert MOBILE.match(s["phone"]), s
        level = orgs[s["org_id"]]["level"]
        if s["role"] in ("rm", "wealth_manager"):
            assert level == "team"
        if s["role"] in ("campaign_manager", "admin"):
            assert level == "hq"
    roles = Counter(s["role"] for s in demo.staff)
    assert roles["rm"] + roles["wealth_manager"] >= CUSTOMERS / 150
    assert set(roles) == set(STAFF_ROLES)


def test_staff_scales_with_customers(tmp_path: Path) -> None:
    summary = generate(tmp_path, customers=20_000, days=1, events_per_customer=1.0, progress=False)
    assert 150 <= summary.staff <= 300
    relationship = summary.staff_by_role["rm"] + summary.staff_by_role["wealth_manager"]
    assert relationship >= 20_000 / 150


# ---------------------------------------------------------------------------------------------- customers


def test_customers_follow_the_contract(demo: Demo) -> None:
    header, _ = _read_csv(demo.summary.customers_csv)
    assert header == CUSTOMER_COLUMNS
    first_line = demo.summary.customers_csv.read_text(encoding="utf-8").split("\n", 1)[0]
    assert first_line == ",".join(CUSTOMER_COLUMNS)
    assert len(demo.customers) == CUSTOMERS == demo.summary.customers
    for i, c in enumerate(demo.customers, start=1):
        assert c["customer_id"] == f"C{i:06d}"
        assert CHINESE_NAME.match(c["name"]), c
        assert c["gender"] in GENDERS
        birth = date.fromisoformat(c["birth_date"])
        assert 18 <= _age(birth, START) <= 95
        assert MOBILE.match(c["phone"]), c
        assert valid_id_number(c["id_number"]), c
        assert id_birth_date(c["id_number"]) == birth
        assert id_gender(c["id_number"]) == c["gender"]
        assert c["id_number"][:2] == "13"  # Hebei
        assert MONEY.match(c["aum"]), c
        assert c["occupation"] in OCCUPATIONS
        assert c["risk_tolerance"] in RISK_LEVELS
        assert c["channel_pref"] in CHANNEL_PREFS
        assert c["marketing_consent"] in ("true", "false")
        registered = date.fromisoformat(c["registered_at"])
        assert date(2005, 1, 1) <= registered <= START - timedelta(days=1)
        assert _age(birth, registered) >= 16, c
    for column in ("customer_id", "phone", "id_number"):
        assert len({c[column] for c in demo.customers}) == CUSTOMERS, column


def test_customers_belong_to_existing_branches_and_rms(demo: Demo) -> None:
    orgs = {o["org_id"]: o for o in demo.orgs}
    staff = {s["staff_id"]: s for s in demo.staff}

    def ancestors(org_id: str) -> set[str]:
        out = set()
        while org_id:
            out.add(org_id)
            org_id = orgs[org_id]["parent_id"]
        return out

    with_rm = 0
    for c in demo.customers:
        assert orgs[c["branch_id"]]["level"] in ("branch", "subbranch")
        if c["rm_id"]:
            with_rm += 1
            rm = staff[c["rm_id"]]
            assert rm["role"] in ("rm", "wealth_manager")
            assert c["branch_id"] in ancestors(rm["org_id"])
    assert 0.6 <= with_rm / CUSTOMERS <= 0.8
    assert sum(orgs[c["branch_id"]]["level"] == "subbranch" for c in demo.customers) > 0.8 * CUSTOMERS


def test_customer_profile_is_realistic(demo: Demo) -> None:
    ages = [_age(date.fromisoformat(c["birth_date"]), START) for c in demo.customers]
    silver = sum(a >= 60 for a in ages) / CUSTOMERS
    assert 0.28 <= silver <= 0.40
    aum = sorted(Decimal(c["aum"]) for c in demo.customers)
    assert Decimal(15_000) <= aum[CUSTOMERS // 2] <= Decimal(50_000)
    assert aum[-1] >= Decimal(1_000_000)
    # older customers hold more, are more conservative and prefer the branch or the phone
    young = [c for c, a in zip(demo.customers, ages, strict=True) if a < 35]
    old = [c for c, a in zip(demo.customers, ages, strict=True) if a >= 60]

    def median_aum(rows: list[dict[str, str]]) -> Decimal:
        return sorted(Decimal(r["aum"]) for r in rows)[len(rows) // 2]

    def share(rows: list[dict[str, str]], column: str, values: set[str]) -> float:
        return sum(r[column] in values for r in rows) / len(rows)

    assert median_aum(old) > median_aum(young)
    assert share(old, "risk_tolerance", {"C1", "C2"}) > share(young, "risk_tolerance", {"C1", "C2"})
    assert share(old, "channel_pref", {"branch", "phone"}) > 0.4
    assert share(young, "channel_pref", {"app", "wechat"}) > 0.7
    assert share(old, "occupation", {"retired"}) > 0.5
    assert all(c["occupation"] != "student" for c, a in zip(demo.customers, ages, strict=True) if a >= 25)
    retired_ages = [a for c, a in zip(demo.customers, ages, strict=True) if c["occupation"] == "retired"]
    assert sum(a >= 60 for a in retired_ages) / len(retired_ages) > 0.85
    consent = share(demo.customers, "marketing_consent", {"true"})
    assert 0.7 <= consent <= 0.8
    assert 0.4 <= share(demo.customers, "gender", {"M"}) <= 0.6


# ---------------------------------------------------------------------------------------------- events

REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "card.issued": {"card_id": str, "product": str, "tier": str, "primary": bool, "new_customer": bool},
    "card.transaction": {"card_id": str, "amount": str, "merchant": str, "mcc": str},
    "points.earned": {"points": int},
    "points.redeem": {"reward": str, "quantity": int},
    "app.product_view": {"product_id": str, "duration_s": int},
    "app.login": {},
    # the experience data (issue 17, demo/experience.py)
    "branch.visit": {"branch_id": str, "wait_min": int, "service": str},
    "card.application_submitted": {"application_id": str, "product": str},
    "card.application_approved": {"application_id": str, "product": str},
    "card.application_declined": {"application_id": str, "product": str},
    "card.activated": {"card_id": str},
    "app.login_failed": {},
    "survey.response": {"survey": str},
    # bill installments (issue 19, demo/installments.py)
    "installment.offered": {"card_id": str, "amount": str},
    "installment.accepted": {"card_id": str, "amount": str, "terms": int},
}
OPTIONAL: dict[str, set[str]] = {"survey.response": {"nps", "csat", "comment", "branch_id", "touchpoint"}}
COMMON = {"event_id", "type", "customer_id", "ts"}


def test_events_follow_the_contract(demo: Demo) -> None:
    assert demo.events
    customers = {c["customer_id"] for c in demo.customers}
    seen: set[str] = set()
    previous = datetime.min.replace(tzinfo=datetime.fromisoformat("2026-01-01T00:00:00+08:00").tzinfo)
    first = datetime.fromisoformat(f"{START.isoformat()}T00:00:00{TZ8}")
    end = first + timedelta(days=DAYS)
    for e in demo.events:
        assert e["event_id"] not in seen
        seen.add(e["event_id"])
        assert re.fullmatch(r"EV\d{10}", e["event_id"])
        assert e["customer_id"] in customers
        assert e["ts"].endswith(TZ8)
        ts = datetime.fromisoformat(e["ts"])
        assert first <= ts < end
        assert ts >= previous, e
        previous = ts
        fields = REQUIRED[e["type"]]
        assert (
            COMMON | set(fields)
            <= set(e) - {"channel"}
            <= COMMON | set(fields) | OPTIONAL.get(e["type"], set())
        )
        if "channel" in e:
            assert e["channel"] in EVENT_CHANNELS
        for name, kind in fields.items():
            assert isinstance(e[name], kind), (name, e)
            if kind is int:
                assert not isinstance(e[name], bool)
        if e["type"] == "card.transaction":
            assert MONEY.match(e["amount"]), e
            assert Decimal(e["amount"]) > 0, e
            assert re.fullmatch(r"\d{4}", e["mcc"])
        elif e["type"] == "card.issued":
            assert e["tier"] in ("classic", "gold", "platinum")
        elif e["type"] == "points.earned":
            assert e["points"] > 0
        elif e["type"] == "points.redeem":
            assert e["reward"] == "luckin_voucher"
            assert e["quantity"] == 1
        elif e["type"] == "app.product_view":
            assert e["duration_s"] >= 1
            assert re.fullmatch(r"(WM|FUND|LOAN|DEPO)[0-9A-Z]+", e["product_id"])
    assert len(seen) == demo.summary.events == sum(demo.summary.events_by_type.values())
    by_type = {k: v for k, v in demo.summary.events_by_type.items() if v}
    assert Counter(e["type"] for e in demo.events) == by_type


def test_event_lines_are_compact_utf8_json(demo: Demo) -> None:
    with demo.summary.events_jsonl.open("rb") as fh:
        line = fh.readline()
    assert line.endswith(b"\n")
    assert line.startswith(b'{"event_id":"EV0000000001"')
    raw = demo.summary.events_jsonl.read_text(encoding="utf-8")
    assert "瑞幸咖啡" in raw  # merchant names written as UTF-8, not \u escapes


def test_transactions_only_on_held_cards_and_after_registration(demo: Demo) -> None:
    registered = {c["customer_id"]: date.fromisoformat(c["registered_at"]) for c in demo.customers}
    owner: dict[str, str] = {}
    issued_at: dict[str, datetime] = {}
    transactions = 0
    for e in demo.events:
        ts = datetime.fromisoformat(e["ts"])
        assert ts.date() >= registered[e["customer_id"]]
        if e["type"] == "card.issued":
            assert e["card_id"] not in issued_at, "issued twice"
            assert e["card_id"] not in owner, "used before it was issued"
            issued_at[e["card_id"]] = ts
            owner[e["card_id"]] = e["customer_id"]
        elif e["type"] == "card.transaction":
            transactions += 1
            card = e["card_id"]
            assert owner.setdefault(card, e["customer_id"]) == e["customer_id"], "a card has one holder"
            if card in issued_at:
                assert ts > issued_at[card]
    pre_existing = {card for card in owner if card not in issued_at}
    holders = {owner[card] for card in pre_existing}
    assert 0.25 <= len(holders) / CUSTOMERS <= 0.5  # ~40% held a card before the year
    assert transactions > 0


def test_luckin_cobranded_card_year(demo: Demo) -> None:
    luckin = [e for e in demo.events if e["type"] == "card.issued" and e["product"] == "luckin_cobrand"]
    assert 0.07 <= len({e["customer_id"] for e in luckin}) / CUSTOMERS <= 0.13
    months = Counter(e["ts"][5:7] for e in luckin)
    assert len(months) == 12  # spread over the year
    assert sum(e["primary"] for e in luckin) > 0.85 * len(luckin)
    assert 0 < sum(e["new_customer"] for e in luckin) < len(luckin)
    assert {e["tier"] for e in luckin} == {"classic", "gold", "platinum"}
    other = [e for e in demo.events if e["type"] == "card.issued" and e["product"] != "luckin_cobrand"]
    assert other
    assert "standard_credit" in {e["product"] for e in other}

    luckin_cards = {e["card_id"] for e in luckin}
    coffee = [
        e
        for e in demo.events
        if e["type"] == "card.transaction" and e["merchant"] == "瑞幸咖啡" and e["card_id"] in luckin_cards
    ]
    assert all(e["mcc"] == "5814" for e in coffee)
    small = sum(Decimal("9.90") <= Decimal(e["amount"]) <= Decimal("29.00") for e in coffee)
    assert small > 0.8 * len(coffee)
    # holders buy coffee 1-5 times a week: on average over their holding period, between 1 and 5
    issued = {e["card_id"]: datetime.fromisoformat(e["ts"]) for e in luckin}
    end = datetime.fromisoformat(f"{(START + timedelta(days=DAYS)).isoformat()}T00:00:00{TZ8}")
    weeks = sum(max((end - t).days - 1, 0) for t in issued.values()) / 7
    assert 1.0 <= len(coffee) / weeks <= 5.0
    amounts = [Decimal(e["amount"]) for e in demo.events if e["type"] == "card.transaction"]
    assert sum(Decimal("98.00") <= a <= Decimal("100.00") for a in amounts) > 10  # near the 99 threshold
    redeems = [e for e in demo.events if e["type"] == "points.redeem"]
    assert redeems
    per_month = Counter((e["customer_id"], e["ts"][:7]) for e in redeems)
    assert max(per_month.values()) <= 3


def test_event_mix_and_volume(demo: Demo) -> None:
    per_customer = len(demo.events) / CUSTOMERS
    assert 0.8 * EVENTS_PER_CUSTOMER <= per_customer <= 1.2 * EVENTS_PER_CUSTOMER
    kinds = Counter(e["type"] for e in demo.events)
    assert set(kinds) == set(REQUIRED)
    views = [e["duration_s"] for e in demo.events if e["type"] == "app.product_view"]
    assert 0.15 <= sum(v >= 60 for v in views) / len(views) <= 0.6
    birth = {c["customer_id"]: date.fromisoformat(c["birth_date"]) for c in demo.customers}
    logins = Counter(e["customer_id"] for e in demo.events if e["type"] == "app.login")
    silver = [c for c, b in birth.items() if _age(b, START) >= 60]
    young = [c for c, b in birth.items() if _age(b, START) < 35]
    assert sum(c not in logins for c in silver) / len(silver) > 0.4  # many 60+ never log in
    assert sum(logins[c] for c in young) / len(young) > 2 * sum(logins[c] for c in silver) / len(silver)
    # monthly points for active cardholders
    points = Counter(e["customer_id"] for e in demo.events if e["type"] == "points.earned")
    assert max(points.values()) <= 13


@pytest.mark.parametrize(("days", "rate"), [(30, 50.0), (73, 20.0), (120, 100.0), (365, 2.0), (400, 10.0)])
def test_volume_scales_with_days_and_rate(tmp_path: Path, days: int, rate: float) -> None:
    summary = generate(tmp_path, customers=1_000, days=days, events_per_customer=rate, progress=False)
    expected = 1_000 * rate * days / 365
    assert 0.85 * expected <= summary.events <= 1.15 * expected


def test_no_events_asked_for(tmp_path: Path) -> None:
    summary = generate(tmp_path, customers=100, days=30, events_per_customer=0.0, progress=False)
    assert summary.events == 0
    assert summary.events_jsonl.read_bytes() == b""
    assert summary.customers_csv.read_text(encoding="utf-8").count("\n") == 101


def test_summary_matches_the_files(demo: Demo) -> None:
    s = demo.summary
    assert s.paths == (s.orgs_csv, s.staff_csv, s.customers_csv, s.events_jsonl)
    assert [p.name for p in s.paths] == ["orgs.csv", "staff.csv", "customers.csv", "events.jsonl"]
    assert s.orgs_by_level == dict(Counter(o["level"] for o in demo.orgs))
    assert {k: v for k, v in s.staff_by_role.items() if v} == dict(Counter(x["role"] for x in demo.staff))
