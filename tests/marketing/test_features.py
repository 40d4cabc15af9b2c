"""Model features, point in time: every feature of a small bank equals the hand-computed value as of the
cut-off; events and tags after the cut-off reach no feature; a label counts only the window after the
cut-off and one that looks back before it is refused; a bad feature set is refused naming field and line."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.ingest.service import load_file
from omnibank.marketing import features as ft
from omnibank.segments.expr import ExpressionError
from omnibank.tags import service as tags
from tests.api.bank import STAFF
from tests.events.helpers import event, jsonl
from tests.factories import ORGS, customer_row, customers_csv

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "models" / "installment" / "features.yaml"
CUT = date(2026, 3, 31)

SPEC = """\
id: installment
features:
  - {id: age, expr: "age"}
  - {id: aum, expr: "aum"}
  - {id: views_30d, expr: "events('app.product_view', 30)"}
  - {id: spend_90d, expr: "amount('card.transaction', 90)"}
  - {id: days_since_txn, expr: "days_since('card.transaction')"}
  - {id: luckin_fan, expr: "has_tag('luckin_fan')"}
  - {id: young, expr: "age < 35"}
  - {id: retired, expr: "occupation = 'retired'"}
"""


def txn(eid: str, customer: str, ts: str, amount: str) -> dict[str, Any]:
    return event(
        eid, "card.transaction", customer_id=customer, ts=ts, card_id=f"6222{customer}", amount=amount
    )


def view(eid: str, customer: str, ts: str) -> dict[str, Any]:
    return event(
        eid,
        "app.product_view",
        customer_id=customer,
        ts=ts,
        channel="app",
        product_id="WM2026A01",
        duration_s=60,
    )


def accepted(eid: str, customer: str, ts: str) -> dict[str, Any]:
    return event(eid, "installment.accepted", customer_id=customer, ts=ts, card_id=f"6222{customer}",
                 amount="3000.00", terms=6)  # fmt: skip


# as of 2026-03-31 (Asia/Shanghai): 30 days back is (03-01, 03-31], 90 days (2025-12-31, 03-31]
PAST = [
    view("v1", "CA1", "2026-03-10T10:00:00+08:00"),
    view("v2", "CA1", "2026-03-25T10:00:00+08:00"),
    view("v0", "CA1", "2026-03-01T23:00:00+08:00"),  # day 03-01: just outside 30 days
    txn("t1", "CA1", "2026-03-20T12:00:00+08:00", "100.00"),
    txn("t2", "CA1", "2026-01-05T12:00:00+08:00", "50.50"),
    txn("t0", "CA1", "2025-12-31T12:00:00+08:00", "7.00"),  # outside 90 days, still the latest for none
    txn("t3", "CB1", "2026-03-31T23:30:00+08:00", "30.00"),  # the cut-off's last half hour: counts
    accepted("a0", "CA1", "2026-03-30T09:00:00+08:00"),  # before the cut-off: no label
]
# after the cut-off; 2026-04-01T00:10+08:00 is still 03-31 in UTC
FUTURE = [
    txn("f1", "CB1", "2026-04-01T00:10:00+08:00", "999.00"),
    txn("f2", "CB2", "2026-04-02T10:00:00+08:00", "120.00"),
    view("f3", "CB2", "2026-04-01T00:10:00+08:00"),
    accepted("a1", "CB1", "2026-04-05T09:00:00+08:00"),
    accepted("a2", "CB2", "2026-05-05T09:00:00+08:00"),  # after the 30-day window
]


def load_bank(env, tmp: Path) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    customers_csv(tmp / "customers.csv", [
        customer_row("CA1", birth_date="1960-01-01", aum="100000.00", occupation="retired",
                     phone="13800000001"),
        customer_row("CB1", birth_date="1991-04-04", aum="5000.50", branch_id="S0201", rm_id="E00002",
                     phone="13800000002"),
        customer_row("CB2", birth_date="1985-05-05", aum="0.00", branch_id="B002", rm_id="",
                     phone="13800000003"),
    ])  # fmt: skip
    for kind in ("orgs", "staff", "customers"):
        assert load_file(kind, tmp / f"{kind}.csv", settings=env.settings, progress=False).rejected == 0


def load_events(env, path: Path, events: list[dict[str, Any]]) -> None:
    assert load_file("events", jsonl(path, *events), settings=env.settings, progress=False).rejected == 0


def compute_tags(env, *days: date) -> None:
    spec = tags.TagSpec("luckin_fan", "lifestyle", "", "amount('card.transaction', 30) >= 100", "test")
    with unit_of_work(env.settings) as session:
        tags.store_definitions(session, [spec])
    for day in days:
        with unit_of_work(env.settings) as session:
            tags.compute_tags(session, env.settings, as_of=day)


def build(env) -> ft.FeatureMatrix:
    with unit_of_work(env.settings) as session:
        return ft.build(session, env.settings, ft.parse_feature_set(SPEC), as_of=CUT)


def test_features_as_of_the_cut_off_and_nothing_after_it_reaches_them(env, tmp_path) -> None:
    load_bank(env, tmp_path / "bank")
    load_events(env, tmp_path / "past.jsonl", PAST)
    compute_tags(env, CUT)
    before = build(env)
    assert before.customer_ids == ("CA1", "CB1", "CB2")
    assert before.values.dtype == np.float64
    assert before.row("CA1") == {"age": 66, "aum": 100000.0, "views_30d": 2, "spend_90d": 150.5,
                                 "days_since_txn": 11, "luckin_fan": 1, "young": 0, "retired": 1}  # fmt: skip
    assert before.row("CB1") == {"age": 34, "aum": 5000.5, "views_30d": 0, "spend_90d": 30.0,
                                 "days_since_txn": 0, "luckin_fan": 0, "young": 1, "retired": 0}  # fmt: skip
    cb2 = before.row("CB2")
    assert math.isnan(cb2.pop("days_since_txn"))  # no transaction at all: NULL → NaN
    assert cb2 == {"age": 40, "aum": 0.0, "views_30d": 0, "spend_90d": 0.0, "luckin_fan": 0, "young": 0,
                   "retired": 0}  # fmt: skip

    # the future arrives: events after the cut-off, tags recomputed later (CB1 gains luckin_fan, CA1 loses it)
    load_events(env, tmp_path / "future.jsonl", FUTURE)
    compute_tags(env, date(2026, 4, 1), date(2026, 4, 25))
    with unit_of_work(env.settings) as session:
        assert tags.tags_of(session, "CB1")[0][0] == "luckin_fan"
        assert tags.tags_of(session, "CA1") == []
    after = build(env)
    assert after.customer_ids == before.customer_ids
    np.testing.assert_array_equal(after.values, before.values)  # NaN where NaN


def test_label_counts_only_the_window_after_the_cut_off(env, tmp_path) -> None:
    load_bank(env, tmp_path / "bank")
    load_events(env, tmp_path / "ev.jsonl", PAST + FUTURE)
    with unit_of_work(env.settings) as session:
        y = ft.label(
            session, env.settings, "events('installment.accepted', 30) >= 1", as_of=CUT, window_days=30
        )
        # a shorter window inside the label window is fine
        y7 = ft.label(
            session, env.settings, "events('installment.accepted', 7) >= 1", as_of=CUT, window_days=30
        )
        with pytest.raises(InputRefused, match=r"reaches 30 days before the cut-off"):
            ft.label(
                session, env.settings, "events('installment.accepted', 60) >= 1", as_of=CUT, window_days=30
            )
        spec = ft.parse_feature_set("id: x\nfeatures:\n  - {id: z, expr: \"has_tag('zzz')\"}\n")
        with pytest.raises(InputRefused, match=r"unknown tag 'zzz'"):  # names are checked against the store
            ft.build(session, env.settings, spec, as_of=CUT)
        with pytest.raises(InputRefused, match=r"all history"):
            ft.label(
                session, env.settings, "days_since('installment.accepted') < 5", as_of=CUT, window_days=30
            )
    assert y == {"CA1": 0, "CB1": 1, "CB2": 0}  # CA1's is before the cut-off, CB2's after the window
    assert y7 == {"CA1": 0, "CB1": 0, "CB2": 0}  # CB1's acceptance is on day 5, outside (04-23, 04-30]
    m = ft.FeatureMatrix(CUT, ("CA1", "CB1", "CB2"), ("x",), np.zeros((3, 1)))
    assert m.aligned(y).tolist() == [0, 1, 0]


def test_bad_feature_sets_are_refused_naming_field_and_line() -> None:
    text = SPEC + (
        '  - {id: job, expr: "occupation"}\n'
        "  - {id: broken, expr: \"events('app.login', 0)\"}\n"
        '  - {id: nope, expr: "salary"}\n'
    )
    with pytest.raises(InputRefused) as info:
        ft.parse_feature_set(text, source="f.yaml")
    message = info.value.message
    assert message.startswith("f.yaml: feature set refused:")
    assert "features.8.expr (line 11): job: `occupation` is text" in message
    assert "occupation = 'retired'" in message
    assert "features.9.expr (line 12): broken:" in message and "days must be between 1" in message
    assert "features.10.expr (line 13): nope: unknown field `salary`" in message
    with pytest.raises(InputRefused, match=r"features.0.id \(line 3\)"):
        ft.parse_feature_set("id: x\nfeatures:\n  - {id: A, expr: age}\n")
    with pytest.raises(InputRefused, match=r"given twice"):
        ft.parse_feature_set("id: x\nfeatures:\n  - {id: a, expr: age}\n  - {id: a, expr: aum}\n")


@pytest.mark.parametrize(
    ("text", "kind"),
    [("age", "value"), ("aum", "value"), ("days_since('app.login')", "value"), ("1", "value"),
     ("has_tag('x')", "flag"), ("age < 35 AND aum > 1000", "flag"), ("marketing_consent", "flag")],
)  # fmt: skip
def test_a_feature_is_a_value_or_a_condition(text, kind) -> None:
    assert ft.parse_feature(text)[0] == kind


@pytest.mark.parametrize(
    ("text", "message"),
    [("birth_date", "is a date"), ("'abc'", "must be a number"), ("age) IS NULL OR (age", "syntax error"),
     ("customer_id", "is text")],
)  # fmt: skip
def test_non_numeric_features_are_refused(text, message) -> None:
    with pytest.raises(ExpressionError, match=message):
        ft.parse_feature(text)


def test_the_example_feature_set_loads() -> None:
    from omnibank.marketing.models import load_model_spec

    spec = load_model_spec(EXAMPLE)  # a model's feature file: a feature set with its baseline
    assert spec.features.id == "installment"
    columns = spec.features.columns
    assert spec.baseline in columns and len(columns) == len(set(columns)) >= 10
