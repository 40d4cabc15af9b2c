"""Feature drift: a sample of the training distribution has a small PSI, a shifted one (or one gone missing)
is flagged; a trained model keeps its reference bins and `model show --as-of` flags the features whose
population moved since training."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.ingest.service import load_file
from omnibank.marketing import drift, models
from tests.events.helpers import event, jsonl
from tests.marketing.test_models import CUT, NOW, load_bank, train

pytest.importorskip("sklearn")


def matrix(*columns: np.ndarray) -> np.ndarray:
    return np.column_stack(columns).astype(np.float64)


def test_same_distribution_small_shifted_flagged() -> None:
    rng = np.random.default_rng(7)
    ref = drift.reference(("spend", "young"), matrix(rng.lognormal(5, 1, 5000), rng.random(5000) < 0.3))
    assert len(ref["features"]["spend"]["edges"]) == 9 and len(ref["features"]["spend"]["shares"]) == 10
    assert ref["features"]["young"]["edges"] == [0.0, 1.0]  # a flag keeps two bins (and an empty third)
    assert sum(ref["features"]["spend"]["shares"]) == pytest.approx(1.0, abs=1e-5)

    same = drift.compare(ref, ("spend", "young"), matrix(rng.lognormal(5, 1, 3000), rng.random(3000) < 0.3))
    assert all(f.psi < 0.02 and not f.flagged for f in same)

    shifted = matrix(rng.lognormal(5.8, 1, 3000), rng.random(3000) < 0.6)
    found = {f.feature: f for f in drift.compare(ref, ("spend", "young"), shifted)}
    assert found["spend"].flagged and found["spend"].psi > 0.2
    assert found["young"].flagged  # 30% → 60%: PSI 0.37

    missing = rng.lognormal(5, 1, 3000)
    missing[:1200] = np.nan  # 40% now without a value
    (spend,) = drift.compare(ref, ("spend",), matrix(missing))
    assert spend.flagged and spend.expected_nan == 0.0 and spend.actual_nan == pytest.approx(0.4)
    (loose,) = drift.compare(ref, ("spend",), matrix(missing), threshold=100)
    assert not loose.flagged


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))), min_size=1, max_size=200))
def test_psi_is_never_negative_and_zero_on_the_reference_itself(values: list[float]) -> None:
    column = np.array(values, dtype=np.float64)
    ref = drift.reference(("x",), matrix(column))
    (own,) = drift.compare(ref, ("x",), matrix(column))
    assert own.psi == pytest.approx(0.0, abs=1e-4)  # shares are stored to 6 digits
    other = np.concatenate([column, column[:1] + 1.0])
    (f,) = drift.compare(ref, ("x",), matrix(other))
    assert f.psi >= 0.0


def test_a_trained_model_flags_the_features_that_moved(env, cli, tmp_path, time_machine) -> None:
    bank = load_bank(env, tmp_path, 200)
    card = train(env, bank["features"])
    ref = card.card["reference"]
    assert ref["features_as_of"] == "2026-03-01" and ref["rows"] == 200
    assert set(ref["features"]) == {"age", "spend_30d", "views_x_30d", "views_30d"}

    # the held-out period's population is drawn like the training one: nothing flagged
    with unit_of_work(env.settings) as session:
        report = models.drift(session, env.settings, "installment", as_of=CUT)
    assert report.rows == 200 and report.flagged == ()
    assert all(f.psi < 0.2 for f in report.features)

    # in April every customer spends ten times as much and views nothing: spend and views drift
    later = date(2026, 4, 30)
    when = f"{(later - timedelta(days=3)).isoformat()}T12:00:00+08:00"
    april = [event(f"big{i}", "card.transaction", customer_id=cid, ts=when, card_id=f"6222{i:012d}",
                   amount=f"{20000 + i}.00")
             for i, cid in enumerate(bank["ids"])]  # fmt: skip
    path = jsonl(tmp_path / "april.jsonl", *april)
    assert load_file("events", path, settings=env.settings, progress=False).rejected == 0
    with unit_of_work(env.settings) as session:
        report = models.drift(session, env.settings, "installment", as_of=later)
    by = {f.feature: f for f in report.features}
    assert {"spend_30d", "views_x_30d", "views_30d"} <= set(report.flagged)
    assert "age" not in report.flagged and by["spend_30d"].psi > 1.0
    with (
        unit_of_work(env.settings) as session,
        pytest.raises(InputRefused, match="threshold must be above 0"),
    ):
        models.drift(session, env.settings, "installment", as_of=later, threshold=0)

    time_machine.move_to(NOW, tick=False)
    shown = cli("model", "show", "installment", "--as-of", later.isoformat())
    assert shown.exit_code == 0, shown.stderr
    assert "feature drift as of 2026-04-30" in shown.stdout and "DRIFT" in shown.stdout
    assert "with PSI over 0.2: spend_30d, views_x_30d, views_30d" in shown.stdout
    calm = cli("model", "show", "installment", "--as-of", later.isoformat(), "--psi-threshold", "1000")
    assert "drift: none" in calm.stdout and "DRIFT" not in calm.stdout
