"""Benefit recommendations (B2): similar customers' redemptions, the age-band prior for customers without
history, and only what a grant would accept now (active, in stock, within budget, not already held)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from omnibank.benefits import catalogue, ledger
from omnibank.benefits.ledger import BudgetKey
from omnibank.benefits.recommend import REASONS, Recommendation, recommend, recommend_many
from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.errors import NotFound
from omnibank.ingest.service import load_file
from tests.benefits.helpers import NOW, STEPS, give, load
from tests.conftest import Env, write
from tests.factories import ORGS, customer_row, customers_csv

YOUNG, OLD, MIDDLE = "2001-04-01", "1955-04-01", "1985-04-01"  # 24, 70 and 40 on NOW
PEOPLE = {
    "Y1": YOUNG, "Y2": YOUNG, "Y3": YOUNG, "Y4": YOUNG, "Y5": YOUNG, "NY": YOUNG,
    "O1": OLD, "O2": OLD, "O3": OLD, "NO": OLD, "P": MIDDLE,
}  # fmt: skip
# Y1, Y2 (and O1) redeemed coffee with cake; the young also watch movies, the old take the health check.
REDEEMED = {
    "Y1": ["coffee", "cake"], "Y2": ["coffee", "cake"], "Y3": ["movie"], "Y4": ["movie"], "Y5": ["movie"],
    "O1": ["health", "coffee"], "O2": ["health"], "O3": ["health"],
}  # fmt: skip


def _benefit(bid: str, kind: str, name: str, face: str, stock: str) -> str:
    return f"""
  - id: {bid}
    type: {kind}
    name: {name}
    supplier: acme
    face_value: "{face}"
    cost: "1.00"
    usage_instructions: 到店出示
    redemption_steps: {STEPS}
    {stock}
"""


def _catalogue(tmp: Path) -> Path:
    unlimited = "stock: unlimited"
    one = 'lots: [{ref: LOT-G, quantity: 1, unit_cost: "1.00", received_at: 2026-01-01}]'
    return write(
        tmp / "catalogue.yaml",
        "suppliers:\n  - {id: acme, name: 权益供应商}\nbenefits:"
        + _benefit("cake", "voucher", "蛋糕券", "20.00", unlimited)
        + _benefit("coffee", "voucher", "咖啡券", "10.00", unlimited)
        + _benefit("gift", "physical_gift", "盲盒", "5.00", one)
        + _benefit("health", "voucher", "体检套餐", "10.00", unlimited)
        + _benefit("movie", "membership", "视频会员", "15.00", unlimited)
        + _benefit("pricey", "e_card", "京东E卡100元", "100.00", unlimited),
    )


def _bank(settings: Settings, tmp: Path, redeemed: dict[str, list[str]] = REDEEMED) -> None:
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    rows = [
        customer_row(c, birth_date=b, rm_id="", phone=f"1380000{i:04d}")
        for i, (c, b) in enumerate(PEOPLE.items())
    ]
    customers_csv(tmp / "customers.csv", rows)
    for kind in ("orgs", "customers"):
        assert load_file(kind, tmp / f"{kind}.csv", settings=settings, progress=False).rejected == 0
    load(_catalogue(tmp))
    with unit_of_work(settings) as session:
        for customer, benefits in redeemed.items():
            for b in benefits:
                coupon = give(session, f"{customer}:{b}", customer=customer, benefit=b).coupon
                assert coupon is not None
                ledger.claim(session, coupon.id, now=NOW + timedelta(hours=1), actor="test")
                ledger.redeem(session, coupon.id, now=NOW + timedelta(hours=2), actor="test")


def _ids(recs: list[Recommendation]) -> list[str]:
    return [r.benefit_id for r in recs]


def _for(settings: Settings, customer: str, n: int = 6, **kw: object) -> list[Recommendation]:
    with unit_of_work(settings) as session:
        return recommend(session, settings, customer, n=n, **kw)  # type: ignore[arg-type]


def test_what_similar_customers_redeemed_comes_with_its_reason(env: Env, tmp_path: Path) -> None:
    # given the bank, and P (a band nobody else is in) who redeemed coffee
    _bank(env.settings, tmp_path, {**REDEEMED, "P": ["coffee"]})
    # when P asks
    recs = {r.benefit_id: r for r in _for(env.settings, "P")}
    ranked = list(recs)
    # then cake (redeemed by the coffee drinkers) comes before movie and health, which are as popular or more
    assert ranked.index("cake") < ranked.index("movie")
    assert ranked.index("cake") < ranked.index("health")
    assert recs["cake"].reason == REASONS["similar"] == "与您相似的客户常兑换"
    assert (recs["coffee"].source, recs["coffee"].reason) == ("again", REASONS["again"])
    assert recs["movie"].reason != REASONS["similar"]


def test_customers_without_history_get_their_age_bands_favourites(env: Env, tmp_path: Path) -> None:
    _bank(env.settings, tmp_path)
    young, old = _for(env.settings, "NY"), _for(env.settings, "NO")
    assert _ids(young)[0] == "movie" and _ids(old)[0] == "health"
    assert young[0].reason == old[0].reason == REASONS["age"] == "同年龄段热门"
    assert _ids(young).index("movie") < _ids(young).index("health")
    assert _ids(old).index("health") < _ids(old).index("movie")


def test_only_what_a_grant_would_accept_is_recommended(env: Env, tmp_path: Path) -> None:
    _bank(env.settings, tmp_path)
    settings = env.settings
    assert {"gift", "movie", "pricey"} <= set(_ids(_for(settings, "NY")))
    with unit_of_work(settings) as session:
        assert give(session, "take-gift", customer="O1", benefit="gift").issued  # the last one: out of stock
        catalogue.set_benefit_status(session, "movie", "inactive", actor="test", now=NOW)
        give(session, "held", customer="NY", benefit="health")  # NY holds it unused
        ledger.set_budget(session, BudgetKey("spring"), count=None, money_fen=1500, now=NOW)
    listed = _ids(_for(settings, "NY"))
    assert not {"gift", "movie", "health"} & set(listed) and "pricey" in listed
    within = _ids(_for(settings, "NY", budgets=[BudgetKey("spring")]))
    assert "pricey" not in within and "cake" not in within and "coffee" in within  # 15.00 CNY left
    with unit_of_work(settings) as session:
        ledger.set_budget(session, BudgetKey("spring"), count=0, money_fen=None, now=NOW)
    assert _for(settings, "NY", budgets=[BudgetKey("spring")]) == []
    assert "health" in _ids(_for(settings, "O2"))  # only NY holds it


def test_order_is_deterministic_and_ties_go_by_benefit_id(env: Env, tmp_path: Path) -> None:
    _bank(env.settings, tmp_path, {})  # nobody redeemed anything: every benefit scores 0
    first = _for(env.settings, "NY")
    assert _ids(first) == ["cake", "coffee", "gift", "health", "movie", "pricey"]
    assert {r.reason for r in first} == {REASONS["popular"]}
    with unit_of_work(env.settings) as session:
        again = recommend_many(session, env.settings, ["NO", "NY"], n=6)
    assert again["NY"] == first and _ids(again["NO"]) == _ids(first)
    assert _ids(_for(env.settings, "NY", n=2)) == ["cake", "coffee"]


def test_an_unknown_customer_is_not_found(env: Env, tmp_path: Path) -> None:
    _bank(env.settings, tmp_path, {})
    with pytest.raises(NotFound, match="no customer C404"):
        _for(env.settings, "C404")


def test_the_cli_lists_ids_names_and_reasons(env: Env, tmp_path: Path, cli: object) -> None:
    _bank(env.settings, tmp_path)
    result = cli("benefits", "recommend", "NY", "-n", "2", "--format", "csv")  # type: ignore[operator]
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "rank,benefit_id,name,score,source,reason"
    assert lines[1].startswith("1,movie,视频会员,") and lines[1].endswith(",age,同年龄段热门")
    assert len(lines) == 3
