"""The customer 360's recommended benefits (B2): what a grant would accept now, best first with the reason,
through the one read layer the CLI and the API share; the model is not rebuilt on every view."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from omnibank.benefits import ledger, recommend
from omnibank.customer_ops.view import customer_360
from omnibank.db import unit_of_work
from omnibank.security import get_cipher
from tests.api.bank import Bank, build_bank
from tests.benefits.helpers import NOW, give

TODAY = date(2026, 3, 2)


@pytest.fixture
def bank(env, tmp_path: Path) -> Bank:
    # given the small bank (voucher, gift, discount and a points benefit) where CB1 redeemed the gift and
    # CA1 holds a voucher unused
    b = build_bank(env.settings, tmp_path / "bank")
    with unit_of_work(b.settings) as session:
        coupon = give(session, "cb1-gift", customer="CB1", benefit="gift").coupon
        assert coupon is not None
        ledger.claim(session, coupon.id, now=NOW + timedelta(hours=1), actor="test")
        ledger.redeem(session, coupon.id, now=NOW + timedelta(hours=2), actor="test")
        give(session, "ca1-voucher", customer="CA1", benefit="voucher")
    return b


def view(settings, customer_id: str, **kw):
    with unit_of_work(settings) as session:
        return customer_360(session, settings, get_cipher(settings), customer_id, actor="user:t", today=TODAY,
                            source="test", now=NOW, **kw)  # fmt: skip


def test_the_360_recommends_what_could_be_granted_now_with_the_reason(bank: Bank) -> None:
    v = view(bank.settings, "CA1")
    # the gift (redeemed in the bank, so favoured by CA1's age band) first; the voucher CA1 holds and the
    # points credit are left out
    assert [(r.benefit_id, r.name, r.source, r.reason) for r in v.recommended] == [
        ("gift", "盲盒", "age", "同年龄段热门"),
        ("discount", "分期折扣券", "popular", "热门权益"),
    ]
    assert v.recommended[0].score > v.recommended[1].score
    assert [r.benefit_id for r in view(bank.settings, "CB2").recommended] == ["gift", "discount", "voucher"]
    assert view(bank.settings, "CA1", recommended=0).recommended == []


def test_the_360_reuses_a_recent_model_while_coupons_move(bank: Bank, monkeypatch) -> None:
    built: list[int] = []
    real = recommend.build_model
    monkeypatch.setattr(recommend, "build_model", lambda inputs: built.append(1) or real(inputs))
    view(bank.settings, "CB2")
    with unit_of_work(bank.settings) as session:
        give(session, "cb2-voucher", customer="CB2", benefit="voucher")  # a grant moves the data
    again = view(bank.settings, "CB2")
    assert len(built) == 1  # the 360 took the model built a moment ago …
    assert "voucher" not in [r.benefit_id for r in again.recommended]  # … but what CB2 holds is read live
    with unit_of_work(bank.settings) as session:
        recommend.recommend(session, bank.settings, "CB2")
    assert len(built) == 2  # an exact recommendation rebuilds for the moved data


def test_the_api_360_carries_the_recommendations(bank: Bank) -> None:
    r = bank.get("rm_a", "/api/v1/customers/CA1")
    assert r.status_code == 200
    got = r.json()["recommended"]
    assert [(x["benefit_id"], x["source"], x["reason"]) for x in got] == [
        ("gift", "age", "同年龄段热门"),
        ("discount", "popular", "热门权益"),
    ]
    assert set(got[0]) == {"benefit_id", "name", "score", "source", "reason"}


def test_customer_show_prints_the_recommendations(bank: Bank, cli) -> None:
    result = cli("customer", "show", "CA1")
    assert result.exit_code == 0
    text = result.stdout
    assert "recommended benefits" in text and "同年龄段热门" in text
    assert text.index("gift") < text.index("discount")
