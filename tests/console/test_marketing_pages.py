"""The console's precision-marketing page (精准营销): the models with their held-out metrics against the
baseline (numbers rounded, never a raw float), whether each version is live and its scores stored, and the
recent call lists with the spared customers counted by reason (translated); Chinese by default, English on
request, empty states in words, nothing personal, and only for those who read campaigns."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from omnibank.contact.models import ContactDnd
from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.marketing import calllist, models
from omnibank.marketing.scores import store_scores
from omnibank.marketing.views import call_lists, models_view
from tests.api.bank import ALL, Bank
from tests.benefits.helpers import NOW
from tests.console.conftest import Console

DAY = NOW.date()
RANKED = ["CA1", "CA2", "CA3", "CB1", "CB2"]  # the stub model's ranking, best first
VERSION = "20260201T000000Z"


def propensity_card(auc: float = 0.81234567, baseline_auc: float = 0.64) -> dict[str, Any]:
    return {
        "features": {"baseline": "spend_90d", "features": {"spend_90d": "amount('card.transaction', 90)"}},
        "label": "events('installment.accepted', 30) >= 1",
        "as_of": "2026-01-15",
        "window_days": 30,
        "metrics": {
            "model": {"auc": auc, "lift_10": 3.0951, "precision_10": 0.31, "base_rate": 0.1},
            "baseline": {"auc": baseline_auc, "lift_10": 1.8049, "precision_10": 0.18, "base_rate": 0.1},
        },
        "trained_at": NOW.isoformat(),
    }


def uplift_card() -> dict[str, Any]:
    return {
        "kind": "uplift",
        "features": {"features": {"age": "age"}},
        "treatment": "installment_calls",
        "as_of": "2026-01-31",
        "window_days": 30,
        "metrics": {"model": {"qini": 0.01234567, "auuc": 0.02, "auuc_random": 0.005, "uplift": 0.01049,
                              "uplift_10": 0.04251, "uplift_20": 0.03, "uplift_30": None}},
        "trained_at": NOW.isoformat(),
    }  # fmt: skip


def trained(bank: Bank) -> None:
    """Model ``installment``: an old version (retired) and a live one with its scores stored; an uplift model
    ``call_uplift`` not scored. Saved (and signed) as ``omnibank model train`` saves them."""
    settings = bank.settings
    old = models.save(settings, name="installment", now=NOW - timedelta(days=30),
                      card=propensity_card(0.7, 0.66), estimator={"stub": 1})  # fmt: skip
    models.retire(settings, "installment", old.version, now=NOW)
    live = models.save(settings, name="installment", now=NOW, card=propensity_card(), estimator={"stub": 2})
    models.save(settings, name="call_uplift", now=NOW, card=uplift_card(), estimator={"stub": 3})
    with unit_of_work(settings) as session:
        store_scores(session, model="installment", version=live.version, as_of=DAY,
                     scores=[(c, 0.9 - i / 10) for i, c in enumerate(RANKED)], now=NOW)  # fmt: skip


@pytest.fixture
def stub_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The call list's ranking stubbed (as tests/marketing/test_calllist.py does): CA1 best, then down."""

    def ranking(*_a: Any, **_kw: Any) -> list[tuple[str, float]]:
        return [(c, 0.9 - i / 10) for i, c in enumerate(RANKED)]

    monkeypatch.setattr(calllist, "ranking", ranking)
    monkeypatch.setattr(calllist, "_live_version", lambda _s, _n, v: v or VERSION)


def a_call_list(bank: Bank) -> calllist.CallListResult:
    """Top 2 of five through the contact policy: CA1 has no marketing consent, CA2 is on do-not-disturb, so
    both are spared and the list is filled from further down (no holdout)."""
    with unit_of_work(bank.settings) as session:
        session.execute(update(Customer).where(Customer.customer_id == "CA1").values(marketing_consent=False))
        since = NOW - timedelta(days=1)
        session.add(ContactDnd(customer_id="CA2", channel="all", reason="客户要求", since=since, until=None,
                               created_by="test"))  # fmt: skip
        session.flush()
        return calllist.make(session, bank.settings, model="installment", top=2, as_of=DAY, now=NOW,
                             holdout_percent=0, list_id="installment-20260302T020000Z")  # fmt: skip


def test_the_empty_page_in_chinese_says_how_to_begin(console: Console) -> None:
    console.signin("cm", lang="zh")
    page = console.get("/console/marketing")
    assert page.status_code == 200, page.text
    assert "<h1>精准营销</h1>" in page.text
    nav = page.text.split('class="side"', 1)[1].split("</nav>", 1)[0]
    assert ">精准营销</a>" in nav and nav.index("/console/journeys") < nav.index("/console/marketing")
    assert 'href="/console/marketing" aria-current="page"' in nav
    assert "还没有模型：" in page.text and "<code>omnibank model train …</code>" in page.text
    assert "还没有外呼名单：" in page.text and "omnibank calllist MODEL --top N" in page.text
    assert 'id="models"' not in page.text and 'id="call-lists"' not in page.text


def test_models_and_a_call_list_in_chinese(console: Console, stub_ranking: None) -> None:
    trained(console.bank)
    made = a_call_list(console.bank)
    assert dict(made.spared) == {"no_consent": 1, "dnd": 1}  # the policy's own reasons
    console.signin("cm", lang="zh")
    page = console.get("/console/marketing")
    assert page.status_code == 200, page.text
    text = page.text
    models_table = text.split('id="models"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr id="model-([a-z_]+)-(\d{8}T\d{6}Z)"', models_table)
    assert [name for name, _ in rows] == ["call_uplift", "installment", "installment"]  # newest version first
    live, retired = (row for row in models_table.split("<tr id=")[2:4])
    assert "倾向模型" in live and "2026年1月15日" in live and "30 天" in live
    assert "AUC 0.812" in live and "基线 0.640" in live  # rounded, beside the baseline's
    assert "提升度 3.10 倍" in live and "基线 1.80 倍" in live
    assert '<span class="ok">AUC 0.812</span>' in live  # better than the baseline: marked
    assert "5 位客户" in live and "评分日期：2026年3月2日" in live and "在用" in live
    assert "已停用" in retired and "未存储" in retired and '<span class="ok">AUC 0.700</span>' in retired
    uplift = models_table.split("<tr id=")[1]
    assert "增益模型" in uplift and "Qini 0.0123" in uplift and "随机 0.0000" in uplift
    assert "增益 +4.3 个百分点" in uplift and "随机 +1.0 个百分点" in uplift
    assert "0.81234567" not in text and "0.01234567" not in text and "3.0951" not in text  # no raw floats

    lists = text.split('id="call-lists"', 1)[1].split("</table>", 1)[0]
    row = lists.split('<tr id="list-installment-20260302T020000Z">', 1)[1]
    cells = re.findall(r'<td class="num">(\d+)', row)
    assert cells[:4] == ["2", "2", "0", "0"]  # top, listed, held out, deferred
    assert '未授权营销 <span class="num">1</span>' in row and '免打扰 <span class="num">1</span>' in row
    assert "AI 外呼" in row and "直接外呼" in row and "2026年3月2日 10:00" in row
    assert not any(re.search(rf"\b{c}\b", text) for c in ALL)  # nothing personal: no customer id


def test_in_english_with_every_spared_reason_named(console: Console, stub_ranking: None) -> None:
    trained(console.bank)
    a_call_list(console.bank)
    console.signin("cm", lang="en")
    page = console.get("/console/marketing")
    assert page.status_code == 200, page.text
    assert "<h1>Precision marketing</h1>" in page.text
    assert "No marketing consent" in page.text and "Do not disturb" in page.text
    assert "lift 3.10×" in page.text and "baseline 0.640" in page.text and "uplift +4.3 pp" in page.text
    assert "5 customers" in page.text and "30 days" in page.text and "Live version" in page.text


def test_a_worse_model_is_marked_and_a_broken_card_is_said(console: Console) -> None:
    settings = console.bank.settings
    models.save(settings, name="weak", now=NOW, card=propensity_card(0.6, 0.7), estimator={"stub": 1})
    broken = models.models_dir(settings) / "broken" / VERSION
    broken.mkdir(parents=True)
    (broken / models.CARD).write_text("{not json", encoding="utf-8")
    console.signin("admin", lang="zh")
    page = console.get("/console/marketing")
    assert page.status_code == 200, page.text
    assert '<span class="warn">AUC 0.600</span>' in page.text and "基线 0.700" in page.text
    assert "模型 broken 无法读取，原因请运行 omnibank model show broken 查看。" in page.text
    assert str(settings.home_dir) not in page.text  # the server's paths are not the page's business


def test_only_those_who_read_campaigns_see_the_page(console: Console) -> None:
    console.signin("rm_a", lang="zh")
    assert console.get("/console/marketing").status_code == 403
    assert "/console/marketing" not in console.get("/console").text
    console.client.cookies.clear()
    console.signin("bm_a", lang="zh")  # a branch manager reads campaigns: the bank-wide counts, nobody named
    assert console.get("/console/marketing").status_code == 200


def test_the_read_layer_orders_and_counts(console: Console, stub_ranking: None) -> None:
    trained(console.bank)
    a_call_list(console.bank)
    with unit_of_work(console.bank.settings) as session:
        view = models_view(session, console.bank.settings)
        lines = call_lists(session)
        assert call_lists(session, model="call_uplift") == []
    live = next(m for m in view.lines if m.name == "installment" and not m.retired)
    assert (live.scored, live.scored_as_of, live.first.better, live.top10.better) == (5, DAY, True, True)
    assert str(live.first.model) == "0.81234567" and live.baseline == "spend_90d"
    assert [(c.listed, c.held_out, c.spared_total, list(c.spared)) for c in lines] == [
        (2, 0, 2, ["no_consent", "dnd"])
    ]
    assert lines[0].as_of == date(2026, 3, 2)
