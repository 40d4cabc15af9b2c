"""Uplift models from a journey's control group: a planted heterogeneous effect (only young customers respond
to the call) is ranked first (Qini clearly above 0, uplift at the top 10% far above the overall uplift); a
journey with no effect gives a Qini near 0; features are strictly before each entry day; the score of an
uplift model is its uplift; the CLI trains, lists and shows one."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from omnibank.db import unit_of_work
from omnibank.errors import InputRefused, NotFound
from omnibank.journeys.models import Journey, JourneyEntry
from omnibank.journeys.spec import parse_journey
from omnibank.marketing import models, uplift
from tests.events.helpers import event
from tests.factories import customer_row, id_number
from tests.marketing.test_models import load_files

pytest.importorskip("sklearn")

TZ = ZoneInfo("Asia/Shanghai")
N = 1200
AS_OF = date(2026, 3, 31)
TODAY = date(2026, 5, 10)
NOW = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)
CALL_DAYS = (date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16))  # the planted journey's entry days
SMS_DAY = date(2026, 3, 5)  # the no-effect journey's one entry day
ACCEPTED = "events('installment.accepted', 30) >= 1"
SPEC = """\
id: installment_uplift
features:
  - {id: age, expr: "age"}
  - {id: spend_60d, expr: "amount('card.transaction', 60)"}
  - {id: logins_30d, expr: "events('app.login', 30)"}
"""


def journey_yaml(jid: str, conversion: bool) -> str:
    text = f"""\
id: {jid}
name: 账单分期外呼
trigger:
  event: card.issued
control_percent: 50
steps:
  - id: call
    send:
      channel: sms
      template: 您的账单可办理分期, 详询客服
"""
    if conversion:
        text += "conversion:\n  event: installment.accepted\n  within: 30d\n"
    return text


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour, 0), TZ).astimezone(UTC)


def iso(day: date, hour: int = 10) -> str:
    return datetime.combine(day, time(hour, 0), TZ).isoformat()


def entry(jid: str, cid: str, day: date, control: bool, converted: datetime | None) -> JourneyEntry:
    return JourneyEntry(
        journey=jid, customer_id=cid, entry_no=1, status="converted" if converted else "done", step=None,
        control=control, state="{}", next_due_at=None, entered_at=at(day), converted_at=converted,
        updated_at=converted or at(day),
    )  # fmt: skip


def load_bank(env, tmp_path: Path, n: int = N) -> dict[str, Any]:
    """Customers half young (born 1995-2003) and half older (1955-1985), all entering two journeys:

    * ``installment_call`` on one of three days, half of them as control: a treated young customer converts
      (the entry's ``converted_at``) with probability 0.7, everyone else 0.05 — only the young respond;
    * ``installment_sms`` on one day, half as control: 8% accept an installment (an event in the next 20
      days) whatever their group — no effect.

    Everyone logs in on their call-entry day (a feature must not see it) and half also five days before.
    """
    rng = random.Random(19)
    customers, events, entries, young = [], [], [], set()
    for i in range(n):
        cid = f"C{i:06d}"
        is_young = i % 2 == 0
        year = rng.randint(1995, 2003) if is_young else rng.randint(1955, 1985)
        if is_young:
            young.add(cid)
        id_no = id_number(f"13110{2 + i // 1000}", f"{year}0517", f"{i % 1000:03d}")
        customers.append(customer_row(cid, birth_date=f"{year}-05-17", phone=f"138{i:08d}", id_no=id_no))
        day = CALL_DAYS[i % 3]
        events.append(event(f"t{i}", "card.transaction", customer_id=cid, ts=iso(day - timedelta(days=20)),
                            card_id=f"6222{i:012d}", amount=f"{rng.randint(10, 2000)}.00"))  # fmt: skip
        events.append(event(f"l{i}", "app.login", customer_id=cid, ts=iso(day, 9), channel="app"))
        if rng.random() < 0.5:
            events.append(event(f"k{i}", "app.login", customer_id=cid, ts=iso(day - timedelta(days=5)),
                                channel="app"))  # fmt: skip
        control = rng.random() < 0.5
        p = 0.7 if is_young and not control else 0.05
        converted = at(day) + timedelta(days=rng.randint(0, 20)) if rng.random() < p else None
        entries.append(entry("installment_call", cid, day, control, converted))
        sms_control = rng.random() < 0.5
        entries.append(entry("installment_sms", cid, SMS_DAY, sms_control, None))
        if rng.random() < 0.08:
            day2 = SMS_DAY + timedelta(days=rng.randint(0, 20))
            events.append(event(f"a{i}", "installment.accepted", customer_id=cid, ts=iso(day2, 15),
                                card_id=f"6222{i:012d}", amount="3000.00", terms=6))  # fmt: skip
    load_files(env, tmp_path / "bank", customers, events)
    with unit_of_work(env.settings) as session:
        for jid, conversion in (("installment_call", True), ("installment_sms", False)):
            text = journey_yaml(jid, conversion)
            parse_journey(text)  # a valid journey
            started = at(date(2026, 3, 1))
            session.add(Journey(id=jid, name="账单分期外呼", definition=text, status="active",
                                started_at=started, updated_at=started))  # fmt: skip
        session.flush()
        session.add_all(entries)
    features = tmp_path / "features.yaml"
    features.write_text(SPEC, encoding="utf-8")
    return {"features": features, "young": young, "ids": [c["customer_id"] for c in customers]}


@pytest.fixture
def bank(env, tmp_path) -> dict[str, Any]:
    return load_bank(env, tmp_path)


def train(env, bank: dict[str, Any], journey: str, label: str | None, *, name: str = "call_uplift",
          today: date = TODAY) -> models.ModelCard:  # fmt: skip
    with unit_of_work(env.settings) as session:
        return uplift.train(session, env.settings, name=name, features_path=bank["features"],
                            journey_id=journey, label_expr=label, as_of=AS_OF, window_days=30, today=today,
                            now=NOW, seed=0)  # fmt: skip


def test_a_planted_effect_on_the_young_is_ranked_first_and_scored_as_uplift(env, bank) -> None:
    card = train(env, bank, "installment_call", None)
    assert card.card["kind"] == "uplift" and models.kind_of(card.card) == "uplift"
    assert card.card["split"]["kind"] == "time" and card.card["split"]["held_out_from"] == "2026-03-16"
    assert card.card["label"] == "journey installment_call conversion (installment.accepted within 30d)"
    m = card.metrics["model"]
    assert 0.2 < m["uplift"] < 0.45  # the young half: +65 pp, the others: 0
    assert m["qini"] > 0.035  # clearly above random targeting (0 in expectation; at best ~0.08 here)
    assert m["auuc"] == pytest.approx(m["auuc_random"] + m["qini"], abs=1e-5)
    assert m["uplift_10"] > m["uplift"] + 0.15  # the top decile: far above random targeting
    assert m["uplift_20"] > m["uplift"] + 0.1 and m["uplift_30"] > m["uplift"] + 0.1
    rows = card.card["rows"]
    assert rows["train"] + rows["test"] == N and rows["test"] == N // 3

    scores = dict(_score(env))
    assert len(scores) == N and all(-1.0 <= s <= 1.0 for s in scores.values())
    ranked = sorted(scores, key=lambda c: -scores[c])
    top = ranked[: N // 5]
    assert sum(c in bank["young"] for c in top) >= 0.95 * len(top)  # the top 20% are the young

    # nothing personal: no customer id in the estimator or the card
    blob = (card.path / models.ESTIMATOR).read_bytes()
    text = (card.path / models.CARD).read_text(encoding="utf-8")
    assert not [c for c in bank["ids"] if c.encode() in blob or c in text]
    assert "reference" in card.card and set(card.card["reference"]["features"]) == {"age", "spend_60d",
                                                                                    "logins_30d"}  # fmt: skip


def _score(env) -> list[tuple[str, float]]:
    with unit_of_work(env.settings) as session:
        return models.score(session, env.settings, "call_uplift", as_of=AS_OF)


def test_no_effect_gives_a_qini_near_zero_on_a_random_split(env, bank) -> None:
    card = train(env, bank, "installment_sms", ACCEPTED, name="sms_uplift")
    assert card.card["split"]["kind"] == "random" and card.card["split"]["why"] == "entries on one day"
    m = card.metrics["model"]
    assert abs(m["uplift"]) < 0.06
    assert abs(m["qini"]) < 0.02
    assert 0.03 < m["treated_rate"] < 0.15 and 0.03 < m["control_rate"] < 0.15


def test_features_are_strictly_before_the_entry_day(env, bank) -> None:
    spec = models.load_model_spec(bank["features"])
    with unit_of_work(env.settings) as session:
        data = uplift.dataset(session, env.settings, spec.features, "installment_call", as_of=AS_OF,
                              window_days=30, label_expr=None)  # fmt: skip
    logins = data.x[:, data.columns.index("logins_30d")]
    spend = data.x[:, data.columns.index("spend_60d")]
    assert set(np.unique(logins).tolist()) == {0.0, 1.0}  # the entry day's login never counts
    assert (spend > 0).all()  # the transaction 20 days before entry does
    assert len(data.y) == N and set(data.days) == set(CALL_DAYS)
    # entries after --as-of are left out
    with unit_of_work(env.settings) as session:
        early = uplift.journey_entries(session, env.settings, "installment_call", as_of=date(2026, 3, 9),
                                       window_days=30)  # fmt: skip
    assert {e.day for e in early} == {CALL_DAYS[0], CALL_DAYS[1]}


def test_refusals_name_the_problem(env, bank) -> None:
    with pytest.raises(NotFound, match="no journey 'nope'"):
        train(env, bank, "nope", None)
    with pytest.raises(
        InputRefused, match="installment_sms has no conversion: give the outcome with --label"
    ):
        train(env, bank, "installment_sms", None)
    with pytest.raises(
        InputRefused, match=r"runs to 2026-04-29, which has not ended.*no later than 2026-03-29"
    ):
        train(env, bank, "installment_call", None, today=date(2026, 4, 28))


def test_uplift_metrics_on_hand_made_rankings() -> None:
    # 4 treated, 4 control; the two treated converters ranked first: uplift 100 pp at the top
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    t = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    good = uplift.evaluate(y, t, np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=np.float64))
    bad = uplift.evaluate(y, t, np.array([1, 2, 3, 4, 5, 6, 7, 8], dtype=np.float64))
    assert good["uplift"] == bad["uplift"] == 0.5
    assert good["qini"] > 0 > bad["qini"]
    assert good["auuc_random"] == 0.25
    assert good["uplift_30"] == 1.0  # top 3: two treated converters, one control non-converter
    assert good["uplift_10"] is None  # the top row holds no control


def test_the_cli_trains_lists_and_shows_an_uplift_model(env, cli, bank, time_machine) -> None:
    time_machine.move_to(NOW, tick=False)
    res = cli("model", "train", "call_uplift", "--features", str(bank["features"]), "--treatment",
              "installment_call", "--as-of", AS_OF.isoformat())  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "Qini coefficient" in res.stdout and "uplift at top 10%" in res.stdout
    assert "random targeting" in res.stdout and "split: time" in res.stdout
    listed = cli("model", "list", "--format", "csv").stdout.splitlines()
    assert listed[0] == ("name,version,as_of,window_days,kind,auc,baseline_auc,qini,uplift_10,uplift,status")
    assert listed[1].startswith("call_uplift,20260510T020000Z,2026-03-31,30,uplift,,,0.")
    shown = cli("model", "show", "call_uplift", "--as-of", AS_OF.isoformat())
    assert shown.exit_code == 0, shown.stderr
    assert "(uplift)" in shown.stdout and "treatment: journey installment_call" in shown.stdout
    assert "feature drift as of 2026-03-31" in shown.stdout and "signature: ok" in shown.stdout
    res = cli("model", "train", "x", "--features", str(bank["features"]), "--as-of", AS_OF.isoformat())
    assert res.exit_code == 1 and "--label: give the outcome" in res.stderr


def test_the_cli_writes_a_feature_set_without_personal_data(env, cli, bank, tmp_path) -> None:
    out = tmp_path / "features.csv"
    res = cli("model", "features", str(bank["features"]), "--as-of", "2026-03-15", "--out", str(out))
    assert res.exit_code == 0, res.stderr
    assert f"{N} customers × 3 features as of 2026-03-15" in res.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "customer_id,age,spend_60d,logins_30d" and len(lines) == N + 1
    first = lines[1].split(",")  # C000000: young, entered 03-02 (a login that day), spent 20 days before
    assert first[0] == "C000000" and 22 <= int(first[1]) <= 31 and int(first[3]) >= 1
    text = out.read_text(encoding="utf-8")
    assert "张三丰" not in text and "13800000000" not in text
