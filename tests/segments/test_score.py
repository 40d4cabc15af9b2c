"""``score('NAME')``: a model's stored scores read by every engine (DuckDB over the snapshot, PostgreSQL
in the store, the in-memory evaluator) with exactly the same answers, millionths compared exactly; a
new scoring moves the snapshot; an unknown model is refused by name."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from omnibank.db import unit_of_work
from omnibank.marketing.scores import store_scores, stored_models, to_ppm
from omnibank.segments.engine import StoreEngine, customer_facts, duck_engine, parse_in
from omnibank.segments.expr import ExpressionError, evaluate
from omnibank.segments.expr import parse as parse_expr
from tests.conftest import ON_POSTGRES
from tests.segments.bank import load_bank

NOW = datetime(2026, 3, 2, 2, tzinfo=UTC)
DAY = date(2026, 3, 1)
IDS = ["C01", "C02", "C03", "C04", "C05"]
# C05 is not scored: score() is NULL for it
SCORES = [("C01", 0.4), ("C02", 0.3999995), ("C03", 0.9), ("C04", 0.0)]


@pytest.fixture
def bank(env, tmp_path):
    load_bank(env.settings, tmp_path / "bank")
    with unit_of_work(env.settings) as session:
        store_scores(session, model="installment", version="20260301T000000Z", as_of=DAY, scores=SCORES,
                     now=NOW)  # fmt: skip
    return env


def members(env, text: str) -> list[str]:
    settings = env.settings
    with unit_of_work(settings) as session:
        expression = parse_in(session, text)
        with duck_engine(session, settings) as duck:
            ids = sorted(duck.ids(expression, DAY).to_pylist())
            assert duck.count(expression, DAY) == len(ids)
        if ON_POSTGRES:
            store = StoreEngine(session, settings.timezone)
            assert sorted(store.ids(expression, DAY).to_pylist()) == ids, text
        facts = customer_facts(session, settings, IDS)
    in_memory = sorted(cid for cid, f in facts.items() if evaluate(expression, f, DAY))
    assert ids == in_memory, text
    return ids


def test_scores_are_stored_in_millionths_rounded() -> None:
    assert to_ppm(0.4) == 400_000
    assert to_ppm(0.3999995) == 400_000  # half away from zero
    assert to_ppm(0.3999994) == 399_999
    assert to_ppm(-0.0123456) == -12_346  # an uplift may be negative


def test_engines_agree_on_score_comparisons(bank) -> None:
    assert members(bank, "score('installment') >= 0.4") == ["C01", "C02", "C03"]
    assert members(bank, "score('installment') > 0.4") == ["C03"]
    assert members(bank, "score('installment') = 0") == ["C04"]
    assert members(bank, "score('installment') IS NULL") == ["C05"]
    assert members(bank, "NOT score('installment') < 0.5") == ["C03"]  # NULL stays out
    assert members(bank, "score('installment') BETWEEN 0.3 AND 0.5") == ["C01", "C02"]
    assert members(bank, "score('installment') >= 0.4 AND aum < 50000") == ["C01"]
    assert members(bank, "score('installment') IN (0.9, 0)") == ["C03", "C04"]


def test_a_new_scoring_replaces_the_old_and_moves_the_snapshot(bank) -> None:
    assert members(bank, "score('installment') >= 0.5") == ["C03"]
    with unit_of_work(bank.settings) as session:
        store_scores(session, model="installment", version="20260302T000000Z", as_of=DAY,
                     scores=[("C05", 0.75)], now=NOW)  # fmt: skip
    assert members(bank, "score('installment') >= 0.5") == ["C05"]
    with unit_of_work(bank.settings) as session:
        assert stored_models(session) == [("installment", "20260302T000000Z", DAY, 1)]


def test_unknown_or_malformed_models_are_refused(bank) -> None:
    with unit_of_work(bank.settings) as session, pytest.raises(ExpressionError) as caught:
        parse_in(session, "score('churn') > 0.5")
    assert "no stored scores of model 'churn'" in caught.value.message
    assert "installment" in caught.value.message
    with pytest.raises(ExpressionError, match="not a model name"):
        parse_expr("score('Bad Name') > 1")
    with pytest.raises(ExpressionError, match="takes score"):
        parse_expr("score('a', 'b') > 1")
    with pytest.raises(ExpressionError, match="not a condition"):
        parse_expr("score('installment')")
