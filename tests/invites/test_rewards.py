"""Staff rewards (M3): rules as data, a month's figures per member of staff from the events of the customers
bound to them, the append-only staff reward ledger (posting, correction by reversal, verify) and the
command. Worked examples on a small bank with events in the real event log, and hypothesis properties."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import typer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text
from typer.testing import CliRunner

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.events.emit import emit
from omnibank.ingest.service import load_file
from omnibank.invites import rewards
from omnibank.invites.cli import rewards as rewards_command
from omnibank.invites.cli import rewards_verify
from omnibank.invites.models import InviteBinding, InviteCode, StaffRewardEntry
from omnibank.invites.rewards import RewardLine, parse_rules
from tests.factories import ORGS, STAFF

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=TZ)
A, B = "E00001", "E00002"  # A in T010101 (branch B001), B in S0201 (branch B002)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "invites" / "rewards.yaml"

RULES = """
rules:
  - id: new_card
    name: 新客办卡奖励
    kind: per_event
    event: card.issued
    where: {new_customer: true}
    amount: 50
  - id: spend_share
    name: 消费转化奖励
    kind: share_of_amount
    rate: 0.003
    cap_per_month: "2000.00"
"""


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=TZ)


_ids = itertools.count(1)


def card(customer: str, ts: str, *, new: bool = True, product: str = "std") -> dict[str, Any]:
    n = next(_ids)
    return {"event_id": f"card{n}", "type": "card.issued", "customer_id": customer, "ts": ts + "+08:00",
            "card_id": f"62220000{n:08d}", "product": product, "tier": "gold", "primary": True,
            "new_customer": new}  # fmt: skip


def spend(customer: str, ts: str, amount: str) -> dict[str, Any]:
    n = next(_ids)
    return {"event_id": f"txn{n}", "type": "card.transaction", "customer_id": customer, "ts": ts + "+08:00",
            "card_id": "6222000099998888", "amount": amount}  # fmt: skip


def log(settings_: Settings, *events: dict[str, Any]) -> None:
    result = emit(settings_, list(events))
    assert result.rejected == 0, result.rejects


@pytest.fixture
def bank(env, tmp_path: Path) -> Settings:
    """Orgs and staff; codes for A and B; C1–C3 bound to A on 1 Nov, D1 bound to B on 10 Nov (bank time)."""
    s: Settings = env.settings
    (tmp_path / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp_path / "staff.csv").write_text(STAFF, encoding="utf-8")
    for kind in ("orgs", "staff"):
        assert load_file(kind, tmp_path / f"{kind}.csv", settings=s, progress=False).rejected == 0
    with unit_of_work(s) as session:
        for staff, code in ((A, "AAAAAA2"), (B, "BBBBBB3")):
            session.add(
                InviteCode(code=code, staff_id=staff, issued_at=at("2026-10-01 09:00"), issued_by="t")
            )
        session.flush()
        for customer, staff, code, path, bound in (
            ("C1", A, "AAAAAA2", "/HQ/B001/S0101/T010101/", "2026-11-01 10:00"),
            ("C2", A, "AAAAAA2", "/HQ/B001/S0101/T010101/", "2026-11-01 10:00"),
            ("C3", A, "AAAAAA2", "/HQ/B001/S0101/T010101/", "2026-08-01 10:00"),  # its 90 days end 30 Oct
            ("D1", B, "BBBBBB3", "/HQ/B002/S0201/", "2026-11-10 10:00"),
        ):
            session.add(
                InviteBinding(
                    customer_id=customer,
                    code=code,
                    staff_id=staff,
                    org_id=path.split("/")[-2],
                    org_path=path,
                    event_id=f"bind:{customer}",
                    channel="app",
                    bound_at=at(bound),
                    recorded_at=at(bound),
                )
            )
    return s


def compute(
    s: Settings, rules_text: str = RULES, period: str = "2026-11", **kw: Any
) -> dict[tuple[str, str], RewardLine]:
    with unit_of_work(s) as session:
        lines = rewards.compute(session, s, parse_rules(rules_text), period, **kw)
    return {(line.staff_id, line.rule): line for line in lines}


def post(s: Settings, rules_text: str = RULES, period: str = "2026-11") -> rewards.PostReport:
    with unit_of_work(s) as session:
        return rewards.post(session, s, parse_rules(rules_text), period, now=NOW, actor="test:pytest")


def entries(s: Settings) -> list[StaffRewardEntry]:
    with unit_of_work(s) as session:
        found = list(session.scalars(select(StaffRewardEntry).order_by(StaffRewardEntry.id)))
        session.expunge_all()
    return found


def verify(s: Settings) -> rewards.VerifyReport:
    with unit_of_work(s) as session:
        return rewards.verify(session)


# ---------------------------------------------------------------------------------------- worked examples


def test_fifty_per_new_card_of_a_bound_customer_within_the_window_and_the_month(bank: Settings) -> None:
    log(
        bank,
        card("C1", "2026-11-03T10:00:00"),
        card("C2", "2026-11-20T10:00:00"),
        card("C2", "2026-11-21T10:00:00", new=False),  # not a new customer: the rule's where
        card("C1", "2026-11-01T09:59:59"),  # before the binding
        card("C1", "2026-12-01T00:00:00"),  # December, bank time (still 30 Nov in UTC)
        card("C3", "2026-11-05T10:00:00"),  # 96 days after C3's binding
        card("X9", "2026-11-05T10:00:00"),  # nobody's customer
        card("D1", "2026-11-10T10:00:00"),  # B's customer, at the instant of the binding
    )
    got = compute(bank)
    assert set(got) == {(A, "new_card"), (B, "new_card")}
    a = got[(A, "new_card")]
    assert (a.events, a.reward, a.capped) == (2, Decimal("100.00"), False)
    assert a.why == "2 card.issued × 50.00 = 100.00"
    assert got[(B, "new_card")].reward == Decimal("50.00")
    assert compute(bank, period="2026-12")[(A, "new_card")].events == 1  # the 1 December card


def test_a_share_of_spend_rounded_half_up_and_capped_at_2000_a_month_per_member_of_staff(
    bank: Settings,
) -> None:
    log(
        bank,
        spend("C1", "2026-11-02T12:00:00", "500000.00"),
        spend("C2", "2026-11-30T23:59:59", "500000.00"),  # day 30 of C2's window, the month's last second
        spend("C2", "2026-12-01T10:00:01", "9999.00"),  # outside the window and the month
        spend("D1", "2026-11-11T08:00:00", "12345.67"),  # 0.3% = 37.03701 → 37.04
        spend("D1", "2026-12-10T10:00:00", "777.00"),  # 30 days after D1's binding: outside the window
    )
    got = compute(bank)
    a, b = got[(A, "spend_share")], got[(B, "spend_share")]
    assert (a.events, a.basis, a.reward, a.capped) == (2, Decimal("1000000.00"), Decimal("2000.00"), True)
    assert a.why == "0.3% of 1,000,000.00 (2 card.transaction) = 3,000.00, capped at 2,000.00 a month"
    assert (b.events, b.basis, b.reward, b.capped) == (1, Decimal("12345.67"), Decimal("37.04"), False)
    assert compute(bank, period="2026-12") == {}  # both December spends are outside their windows


def test_a_customer_bound_to_one_member_of_staff_counts_for_that_one_only_and_org_scopes(
    bank: Settings,
) -> None:
    log(bank, spend("C1", "2026-11-02T12:00:00", "1000.00"), spend("D1", "2026-11-12T12:00:00", "2000.00"))
    got = compute(bank)
    assert got[(A, "spend_share")].reward == Decimal("3.00") and got[(B, "spend_share")].reward == Decimal(
        "6.00"
    )
    assert set(compute(bank, org="B001")) == {(A, "spend_share")}
    assert set(compute(bank, org="S0201")) == {(B, "spend_share")}
    assert compute(bank, org="S0102") == {}


def test_where_filters_by_equality_and_one_of(bank: Settings) -> None:
    rules = """
- {id: luckin, name: 联名卡, kind: per_event, event: card.issued, amount: "20.00",
   where: {product: [luckin_cobrand, other], new_customer: true}, cap_per_month: 30}
"""
    log(bank, card("C1", "2026-11-03T10:00:00", product="luckin_cobrand"),
        card("C2", "2026-11-04T10:00:00", product="luckin_cobrand"),
        card("C2", "2026-11-05T10:00:00", product="std"))  # fmt: skip
    line = compute(bank, rules)[(A, "luckin")]
    assert (line.events, line.basis, line.reward, line.capped) == (
        2,
        Decimal("40.00"),
        Decimal("30.00"),
        True,
    )


def test_the_example_rules_load(bank: Settings) -> None:
    spec = rewards.load_rules(EXAMPLE)
    assert [r.id for r in spec.rules] == ["new_card", "luckin_card", "spend_share"]
    share = spec.rules[2]
    assert isinstance(share, rewards.ShareRule) and share.rate == Decimal("0.003")


# ------------------------------------------------------------------------------------------------ posting


def test_posting_twice_changes_nothing_and_a_late_event_is_corrected_by_reversal(bank: Settings) -> None:
    log(bank, card("C1", "2026-11-03T10:00:00"), spend("D1", "2026-11-11T08:00:00", "1000.00"))
    first = post(bank)
    assert first.count("new") == 2
    again = post(bank)
    assert again.count("unchanged") == 2 and again.count("new") == again.count("corrected") == 0
    assert len(entries(bank)) == 2
    log(bank, card("C2", "2026-11-28T10:00:00"))  # arrives late
    late = post(bank)
    assert [(p.staff_id, p.rule, p.action, p.previous, p.amount) for p in late.posted] == [
        (A, "new_card", "corrected", Decimal("50.00"), Decimal("100.00")),
        (B, "spend_share", "unchanged", Decimal("3.00"), Decimal("3.00")),
    ]
    rows = entries(bank)
    by_key = {e.key: e for e in rows}
    first_credit = by_key[f"reward:new_card:{A}:2026-11"]
    reversal = by_key[f"reward:new_card:{A}:2026-11:rev:{first_credit.id}"]
    assert (reversal.direction, reversal.amount_fen, reversal.reverses) == ("debit", 5000, first_credit.id)
    assert by_key[f"reward:new_card:{A}:2026-11:v2"].amount_fen == 10000
    assert first_credit.amount_fen == 5000  # never edited
    with unit_of_work(bank) as session:
        assert rewards.balances(session) == {A: Decimal("100.00"), B: Decimal("3.00")}
        assert [(x.staff_id, x.reward) for x in rewards.posted(session, "2026-11")] == [
            (A, Decimal("100.00")), (B, Decimal("3.00"))
        ]  # fmt: skip
    assert post(bank).count("unchanged") == 2 and len(entries(bank)) == 4
    report = verify(bank)
    assert report.ok, report.problems
    assert report.balances == {A: Decimal("100.00"), B: Decimal("3.00")}


def test_a_figure_gone_is_reversed_and_only_the_rules_given_are_touched(bank: Settings) -> None:
    log(bank, card("C1", "2026-11-03T10:00:00"), spend("D1", "2026-11-11T08:00:00", "1000.00"))
    post(bank)
    only_cards = (
        "- {id: new_card, name: 新卡, kind: per_event, event: card.issued, amount: 50, where: {product: x}}"
    )
    report = post(bank, only_cards)  # new_card now matches nothing; spend_share is not in this file
    assert [(p.rule, p.action) for p in report.posted] == [("new_card", "withdrawn")]
    with unit_of_work(bank) as session:
        assert rewards.balances(session) == {A: Decimal("0.00"), B: Decimal("3.00")}
    assert verify(bank).ok


def test_verify_catches_a_tampered_amount_and_a_double_reversal(bank: Settings) -> None:
    log(bank, card("C1", "2026-11-03T10:00:00"), spend("D1", "2026-11-11T08:00:00", "1000.00"))
    post(bank)
    assert verify(bank).ok
    with unit_of_work(bank) as session:
        session.execute(text("UPDATE staff_reward_entries SET amount_fen = 90000 WHERE rule = 'new_card'"))
    problems = verify(bank).problems
    assert len(problems) == 1 and "amount 900.00 differs from its basis" in problems[0] and A in problems[0]
    with unit_of_work(bank) as session:
        session.execute(text("UPDATE staff_reward_entries SET amount_fen = 5000 WHERE rule = 'new_card'"))
    log(bank, card("C2", "2026-11-28T10:00:00"))
    post(bank)  # reverses the 50.00 credit
    credit = next(e for e in entries(bank) if e.key == f"reward:new_card:{A}:2026-11")
    with unit_of_work(bank) as session:  # a second reversal of the same credit, slipped in by hand
        session.add(StaffRewardEntry(key=f"reward:new_card:{A}:2026-11:rev:{credit.id}:again", staff_id=A,
                                     rule="new_card", period="2026-11", direction="debit", amount_fen=5000,
                                     basis="by hand", reverses=credit.id, created_at=NOW,
                                     created_by="someone"))  # fmt: skip
    problems = verify(bank).problems
    assert any(f"entry {credit.id} is reversed more than once" in p for p in problems), problems
    assert any("balance" in p and A in p for p in problems), problems


def test_verify_catches_two_live_credits_and_a_reversal_of_another_amount(bank: Settings) -> None:
    log(bank, card("C1", "2026-11-03T10:00:00"))
    post(bank)
    with unit_of_work(bank) as session:
        session.add(
            StaffRewardEntry(
                key=f"reward:new_card:{A}:2026-11:v2",
                staff_id=A,
                rule="new_card",
                period="2026-11",
                direction="credit",
                amount_fen=5000,
                basis="1 card.issued × 50.00 = 50.00",
                created_at=NOW,
                created_by="x",
            )
        )
    problems = verify(bank).problems
    assert any("2 live credits" in p for p in problems), problems
    with pytest.raises(Exception, match="more than one live credit"):
        post(bank)


# ---------------------------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        (
            "- {id: a, name: x, kind: per_event, event: card.issued, amount: 1.234}",
            "rule 'a' (rules[0]): amount: Decimal input should have no more than 2 decimal places",
        ),
        (
            "- {id: a, name: x, kind: per_event, event: card.issued}",
            "rule 'a' (rules[0]): amount: Field required",
        ),
        (
            "- {id: a, name: x, kind: bonus, event: card.issued}",
            "rule 'a' (rules[0]): kind: must be per_event",
        ),
        (
            "- {id: a, name: x, kind: share_of_amount, rate: 1.5}",
            "rule 'a' (rules[0]): rate: Input should be less",
        ),
        (
            "- {id: a, name: x, kind: share_of_amount, event: card.issued, rate: 0.1}",
            "rule 'a' (rules[0]): event: card.issued events carry no amount",
        ),
        (
            "- {id: a, name: x, kind: per_event, event: card.issued, amount: 5, where: {colour: red}}",
            "rule 'a' (rules[0]): where.colour: not a field a rule can filter on",
        ),
        (
            "- {id: a, name: x, kind: per_event, event: card.issued, amount: 5, "
            "where: {new_customer: 'yes'}}",
            "rule 'a' (rules[0]): where.new_customer: 'yes' is not true or false",
        ),
        (
            "- {id: a, name: x, kind: share_of_amount, rate: 0.1, where: {product: x}}",
            "where.product: card.transaction events carry no product",
        ),
        (
            "- {id: a, name: x, kind: per_event, event: card.issued, amount: 5, within_days: 0}",
            "rule 'a' (rules[0]): within_days: Input should be greater than or equal to 1",
        ),
        (
            "- {id: a, name: x, kind: per_event, event: card.issued, amount: 5, cap_per_month: -1}",
            "rule 'a' (rules[0]): cap_per_month: Input should be greater than 0",
        ),
        (
            "- {id: a, name: x, kind: per_event, event: card.issued, amount: 5, bonus: 1}",
            "rule 'a' (rules[0]): bonus: Extra inputs are not permitted",
        ),
        (
            "- {id: a, name: x, kind: per_event, event: card.issued, amount: 5}\n"
            "- {id: a, name: y, kind: per_event, event: card.issued, amount: 6}",
            "rule id 'a' is used twice",
        ),
        ("rules: []", "rules: List should have at least 1 item"),
        ("rules: [", "not valid YAML"),
    ],
)
def test_rule_errors_name_the_file_the_rule_and_the_field(yaml_text: str, named: str) -> None:
    with pytest.raises(InputRefused) as caught:
        parse_rules(yaml_text, source="rewards.yaml")
    assert caught.value.message.startswith("rewards.yaml: ")
    assert named in caught.value.message


def test_numbers_are_read_exactly_never_as_floats() -> None:
    spec = parse_rules("- {id: a, name: x, kind: share_of_amount, rate: 0.1, cap_per_month: 2000.10}")
    rule = spec.rules[0]
    assert isinstance(rule, rewards.ShareRule)
    assert rule.rate == Decimal("0.1") and rule.cap_per_month == Decimal("2000.10")
    with pytest.raises(ValueError, match="not exact"):
        rewards.ShareRule.model_validate({"id": "a", "name": "x", "kind": "share_of_amount", "rate": 0.1})


def test_periods_are_bank_local_months() -> None:
    p = rewards.parse_period("2026-12", TZ)
    assert (p.start, p.end) == (at("2026-12-01 00:00"), at("2027-01-01 00:00"))
    assert rewards.last_month(at("2027-01-01 00:30"), TZ) == "2026-12"  # 31 Dec 16:30 UTC
    with pytest.raises(InputRefused, match="--period"):
        rewards.parse_period("2026-13", TZ)


# ------------------------------------------------------------------------------------------------ command


def test_the_command_lists_posts_writes_csv_and_verifies(bank: Settings, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("rewards")(rewards_command)
    app.command("rewards-verify")(rewards_verify)
    runner = CliRunner()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    log(bank, card("C1", "2026-11-03T10:00:00"), spend("D1", "2026-11-11T08:00:00", "1000.00"))

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=False)

    shown = run("rewards", "--rules", str(rules), "--period", "2026-11", "--format", "csv")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == [
        "staff_id,rule,name,events,basis,reward,capped,why",
        f"{A},new_card,新客办卡奖励,1,50.00,50.00,false,1 card.issued × 50.00 = 50.00",
        f'{B},spend_share,消费转化奖励,1,1000.00,3.00,false,"0.3% of 1,000.00 (1 card.transaction) = 3.00"',
    ]  # fmt: skip
    assert entries(bank) == []  # not posted without --post
    out_csv = tmp_path / "out.csv"
    posted = run("rewards", "--rules", str(rules), "--period", "2026-11", "--post", "--out", str(out_csv))
    assert posted.exit_code == 0 and "posted: 2 new" in posted.stdout
    assert (
        out_csv.read_text(encoding="utf-8").splitlines()[0]
        == "staff_id,rule,name,events,basis,reward,capped,why,posted"
    )
    ledger = run("rewards", "--period", "2026-11", "--format", "json")
    assert ledger.exit_code == 0 and ledger.stdout.count("\n") == 2 and '"reward":"50.00"' in ledger.stdout
    ok = run("rewards-verify")
    assert ok.exit_code == 0 and ok.stdout.startswith("OK: 2 entries")
    with pytest.raises(InputRefused, match="--post takes the whole bank"):
        run("rewards", "--rules", str(rules), "--period", "2026-11", "--post", "--org", "B001")
    with unit_of_work(bank) as session:
        session.execute(text("UPDATE staff_reward_entries SET amount_fen = 1 WHERE rule = 'spend_share'"))
    bad = run("rewards-verify")
    assert bad.exit_code == 1 and "differs from its basis" in bad.stdout


# ------------------------------------------------------------------------------------------------ properties


@settings(max_examples=200, deadline=None)
@given(
    amounts=st.lists(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2), max_size=20
    ),
    rate=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1"), places=8),
    cap=st.none() | st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000.00"), places=2),
)
@example(amounts=[Decimal("1.00")], rate=Decimal("0.005"), cap=None)  # 0.005: half up is 0.01
def test_a_share_is_the_rounded_rate_of_the_sum_never_above_the_cap(
    amounts: list[Decimal], rate: Decimal, cap: Decimal | None
) -> None:
    rule = rewards.ShareRule(id="s", name="份额", kind="share_of_amount", rate=rate, cap_per_month=cap)
    total = sum(amounts, Decimal("0.00"))
    line = rewards.figure(rule, A, len(amounts), total)
    exact = (rate * total).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert line.reward == (exact if cap is None else min(cap, exact))
    assert line.capped == (cap is not None and exact > cap)
    assert line.basis == total and line.why.endswith(
        f"{line.reward:,.2f}" + ("" if not line.capped else " a month")
    )


def test_after_any_sequence_of_reposts_the_balance_is_the_sum_of_the_live_credits(bank: Settings) -> None:
    figures = st.sampled_from(
        [Decimal(0), Decimal("0.01"), Decimal("50.00"), Decimal("2000.00"), Decimal("123.45")]
    )
    rounds = st.lists(
        st.fixed_dictionaries({(s, r): figures for s in (A, B) for r in ("x", "y")}), min_size=1, max_size=6
    )

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(sequence=rounds)
    def run(sequence: list[dict[tuple[str, str], Decimal]]) -> None:
        with unit_of_work(bank) as session:
            session.execute(delete(StaffRewardEntry).where(StaffRewardEntry.reverses.is_not(None)))
            session.execute(delete(StaffRewardEntry))
        for i, wanted in enumerate(sequence):
            lines = [
                RewardLine(s, r, r, 1, amount, amount, False, f"figure = {amount:,.2f}")
                for (s, r), amount in wanted.items()
                if amount > 0
            ]
            with unit_of_work(bank) as session:
                rewards.post_lines(session, lines, rules=["x", "y"], period="2026-11", now=NOW + timedelta(i),
                                   actor="test")  # fmt: skip
        last = sequence[-1]
        with unit_of_work(bank) as session:
            got = rewards.balances(session)
            live = {(x.staff_id, x.rule): x.reward for x in rewards.posted(session, "2026-11")}
            report = rewards.verify(session)
        assert report.ok, report.problems
        assert live == {k: v for k, v in last.items() if v > 0}
        for staff in (A, B):
            expected = sum((v for (s, _), v in last.items() if s == staff), Decimal("0.00"))
            assert got.get(staff, Decimal("0.00")) == expected == report.balances.get(staff, Decimal("0.00"))

    run()
