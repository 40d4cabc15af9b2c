"""Propensity models: a planted signal (fans of product X convert) is learnt and ranked first, shuffled labels
are not (AUC near 0.5); same data and seed give the same scores; a changed artifact is refused, never
unpickled; a held-out window that has not ended is refused; no customer id in the artifact or its card."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.ingest.service import load_file
from omnibank.marketing import models
from tests.api.bank import STAFF
from tests.events.helpers import event, jsonl
from tests.factories import ORGS, customer_row, customers_csv, id_number

pytest.importorskip("sklearn")

CUT = date(2026, 3, 31)  # held out: features as of 03-31, labels (03-31, 04-30]; training one window earlier
TODAY = date(2026, 5, 10)
NOW = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)
N = 200
LABEL = "events('installment.accepted', 30) >= 1"
SPEC = """\
id: installment
features:
  - {id: age, expr: "age"}
  - {id: spend_30d, expr: "amount('card.transaction', 30)"}
  - {id: views_x_30d, expr: "events('app.product_view', 30, product_id = 'X')"}
  - {id: views_30d, expr: "events('app.product_view', 30)"}
"""


def ts(day: date, rng: random.Random) -> str:
    return f"{day.isoformat()}T{rng.randint(9, 20):02d}:{rng.randint(0, 59):02d}:00+08:00"


def generate(rng: random.Random, n: int = N) -> tuple[list[dict[str, str]], list[dict[str, Any]], set[str]]:
    """Customers, their events and the fans of product X in the held-out period. In each period, 30% of
    customers view product X 3-6 times and 80% of them accept an installment in the next 30 days; the
    others view product Y 0-3 times and 3% accept. Spend is noise."""
    customers, events, fans = [], [], set()
    for i in range(n):
        cid = f"C{i:06d}"
        year = rng.randint(1960, 2000)
        customers.append(customer_row(cid, birth_date=f"{year}-05-17", phone=f"138{i:08d}",
                                      id_no=id_number("131102", f"{year}0517", f"{i:03d}")))  # fmt: skip
        for period, start in ((0, date(2026, 2, 1)), (1, date(2026, 3, 3))):
            fan = rng.random() < 0.3
            if fan and period == 1:
                fans.add(cid)
            product, views = ("X", rng.randint(3, 6)) if fan else ("Y", rng.randint(0, 3))
            for v in range(views):
                day = start + timedelta(days=rng.randint(0, 26))
                events.append(event(f"v{i}-{period}-{v}", "app.product_view", customer_id=cid,
                                    ts=ts(day, rng), channel="app", product_id=product,
                                    duration_s=30))  # fmt: skip
            day = start + timedelta(days=rng.randint(0, 26))
            events.append(event(f"t{i}-{period}", "card.transaction", customer_id=cid, ts=ts(day, rng),
                                card_id=f"6222{i:012d}", amount=f"{rng.randint(10, 2000)}.00"))  # fmt: skip
            if rng.random() < (0.8 if fan else 0.03):
                day = start + timedelta(days=30 + rng.randint(3, 25))  # in the next window
                accepted = event(f"a{i}-{period}", "installment.accepted", customer_id=cid, ts=ts(day, rng),
                                 card_id=f"6222{i:012d}", amount="3000.00", terms=6)  # fmt: skip
                events.append(accepted)
    return customers, events, fans


@pytest.fixture
def bank(env, tmp_path) -> dict[str, Any]:
    return load_bank(env, tmp_path, N)


def load_files(env, folder: Path, customers: list[dict[str, str]], events: list[dict[str, Any]]) -> None:
    """The test org tree and staff, ``customers`` and ``events`` written as contract files under ``folder``
    and loaded, every line accepted (the marketing tests' banks)."""
    folder.mkdir()
    (folder / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (folder / "staff.csv").write_text(STAFF, encoding="utf-8")
    customers_csv(folder / "customers.csv", customers)
    for kind in ("orgs", "staff", "customers"):
        assert load_file(kind, folder / f"{kind}.csv", settings=env.settings, progress=False).rejected == 0
    path = jsonl(folder / "events.jsonl", *events)
    assert load_file("events", path, settings=env.settings, progress=False).rejected == 0


def load_bank(env, tmp_path: Path, n: int) -> dict[str, Any]:
    customers, events, fans = generate(random.Random(19), n)
    load_files(env, tmp_path / "bank", customers, events)
    features = tmp_path / "features.yaml"
    features.write_text(SPEC, encoding="utf-8")
    return {"features": features, "fans": fans, "ids": [c["customer_id"] for c in customers]}


def train(env, features: Path, *, now: datetime = NOW, today: date = TODAY) -> models.ModelCard:
    with unit_of_work(env.settings) as session:
        return models.train(session, env.settings, name="installment", features_path=features,
                            label_expr=LABEL, as_of=CUT, window_days=30, today=today, now=now,
                            seed=0)  # fmt: skip


def score(env, version: str | None = None) -> list[tuple[str, float]]:
    with unit_of_work(env.settings) as session:
        return models.score(session, env.settings, "installment", as_of=CUT, version=version)


def test_a_planted_signal_is_learnt_ranked_first_reproducible_and_signed(env, bank, monkeypatch) -> None:
    with (
        unit_of_work(env.settings) as session,
        pytest.raises(InputRefused, match=r"period has one class only"),
    ):
        models.train(session, env.settings, name="never", features_path=bank["features"],
                     label_expr="events('installment.accepted', 30) >= 100", as_of=CUT, window_days=30,
                     today=TODAY, now=NOW)  # fmt: skip

    card = train(env, bank["features"])
    model, baseline = card.metrics["model"], card.metrics["baseline"]
    assert model["auc"] > 0.8 and model["lift_10"] > 2
    assert card.card["features"]["baseline"] == "spend_30d"
    assert abs(baseline["auc"] - 0.5) < 0.15  # spend is noise here
    assert card.card["rows"]["test"] == N and 0 < card.card["rows"]["test_positives"] < N
    assert set(card.card["libraries"]) == {"python", "numpy", "scikit-learn"}

    scores = score(env)
    assert [c for c, _ in scores] == sorted(bank["ids"])
    ranked = sorted(scores, key=lambda s: -s[1])
    assert {c for c, _ in ranked[: N // 10]} <= bank["fans"]  # the top 10% are all fans of product X
    assert all(0.0 <= s <= 1.0 for _, s in scores)

    # same data, same seed: a second version scores exactly alike
    again = train(env, bank["features"], now=NOW + timedelta(minutes=1))
    assert again.version != card.version
    assert score(env) == score(env, card.version) == scores  # the latest is `again`

    # nothing personal: no customer id in the estimator or the card
    blob = (card.path / models.ESTIMATOR).read_bytes()
    text = (card.path / models.CARD).read_text(encoding="utf-8")
    assert not [c for c in bank["ids"] if c.encode() in blob or c in text]

    # a changed artifact is refused and never unpickled
    first, second = card, again
    loads: list[bytes] = []
    monkeypatch.setattr(models.pickle, "loads", loads.append)
    refused = r"signature of model.pkl and card.json does not match.*Refused and not loaded"

    blob = bytearray((second.path / models.ESTIMATOR).read_bytes())  # one bit of the estimator
    blob[len(blob) // 2] ^= 0x01
    (second.path / models.ESTIMATOR).write_bytes(bytes(blob))
    with pytest.raises(models.ModelRefused, match=refused):
        score(env)

    doc = json.loads((first.path / models.CARD).read_text(encoding="utf-8"))  # a better AUC on the card
    doc["metrics"]["model"]["auc"] = 0.99
    (first.path / models.CARD).write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(models.ModelRefused, match=refused):
        score(env, first.version)
    assert loads == []  # never unpickled
    shown, problem = models.show(env.settings, "installment", first.version)
    assert shown.version == first.version and problem and "does not match" in problem


def test_shuffled_labels_give_an_auc_near_one_half(env, bank) -> None:
    spec = models.load_model_spec(bank["features"])
    with unit_of_work(env.settings) as session:
        data = models.dataset(session, env.settings, spec.features, LABEL, as_of=CUT, window_days=30)
    rng = np.random.default_rng(5)
    shuffled = models.Dataset(data.columns, data.train_x, rng.permutation(data.train_y), data.test_x,
                              rng.permutation(data.test_y))  # fmt: skip
    noise = models.fit(shuffled, baseline=spec.baseline, seed=0)
    assert abs(noise.metrics["model"]["auc"] - 0.5) <= 0.15


def test_a_held_out_window_that_has_not_ended_is_refused(env, tmp_path) -> None:
    features = tmp_path / "features.yaml"
    features.write_text(SPEC, encoding="utf-8")
    ended = r"\(2026-03-31, 2026-04-30\] has not ended.*no later than 2026-03-24"
    with pytest.raises(InputRefused, match=ended):
        train(env, features, today=date(2026, 4, 24))


def test_the_cli_trains_scores_lists_shows_and_retires(env, cli, tmp_path, time_machine) -> None:
    bank = load_bank(env, tmp_path, 60)  # small: the planted signal is tested above
    time_machine.move_to(NOW, tick=False)
    res = cli("model", "train", "installment", "--features", str(bank["features"]), "--label", LABEL,
              "--as-of", CUT.isoformat(), "--window", "30d")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "AUC" in res.stdout and "lift at top 10%" in res.stdout and "baseline (spend_30d)" in res.stdout
    out = tmp_path / "scores.csv"
    assert cli("model", "score", "installment", "--as-of", CUT.isoformat(), "--out", str(out)).exit_code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "customer_id,score" and len(lines) == 60 + 1
    assert all(len(line.split(",")[1].split(".")[1]) == 6 for line in lines[1:])
    # the scores are stored too: score('installment') in an expression reads exactly them (millionths)
    written = {cid: Decimal(v) for cid, v in (line.split(",") for line in lines[1:])}
    cut = sorted(written.values())[len(written) // 2]
    res = cli("segment", "count", f"score('installment') >= {cut}", "--as-of", CUT.isoformat())
    assert res.exit_code == 0, res.stderr
    assert int(res.stdout.splitlines()[-1]) == sum(v >= cut for v in written.values())
    listed = cli("model", "list", "--format", "csv")
    assert listed.stdout.splitlines()[1].startswith("installment,20260510T020000Z,2026-03-31,30,")
    assert "signature: ok" in cli("model", "show", "installment").stdout
    assert cli("model", "retire", "installment", "20260510T020000Z").exit_code == 0
    assert ",retired" in cli("model", "list", "--format", "csv").stdout
    res = cli("model", "score", "installment", "--as-of", CUT.isoformat(), "--out", str(out))
    assert res.exit_code == 1 and "every version of model installment is retired" in res.stderr
    res = cli("model", "train", "installment", "--features", str(bank["features"]), "--label", LABEL,
              "--as-of", "2026-04-30")  # fmt: skip
    assert res.exit_code == 1 and "has not ended" in res.stderr


def test_a_baseline_key_names_the_baseline_feature_and_keeps_lines() -> None:
    spec = models.parse_model_spec(SPEC + "baseline: views_30d\n")
    assert spec.baseline == "views_30d" and spec.features.columns[-1] == "views_30d"
    with pytest.raises(InputRefused, match=r"baseline \(line 1\): 'nope' is not a feature"):
        models.parse_model_spec("baseline: nope\n" + SPEC)
    with pytest.raises(InputRefused, match=r"features.0.id \(line 4\)"):  # lines still name the right place
        models.parse_model_spec("baseline: age\n" + SPEC.replace("id: age", "id: Age"))
    assert models.parse_model_spec("id: x\nfeatures:\n  - {id: age, expr: age}\n").baseline is None
