"""A backtest on Spark (local mode) over the event log writes the local backtest's grants.jsonl byte for
byte, with the same cost summary; a campaign whose budget spans customers, or an events file, is refused
with the reason."""

from __future__ import annotations

import io
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from omnibank.campaigns.simulate import SimulationReport, simulate
from omnibank.campaigns.spec import Budget, load_campaign
from omnibank.demo.generator import generate
from omnibank.errors import InputRefused
from omnibank.ingest.service import load_file
from tests.campaigns.helpers import LUCKIN

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("CI"):  # in CI a missing Java is a failure
    pytest.skip("Spark needs a Java runtime (Debian: openjdk-17-jre-headless)", allow_module_level=True)
pytestmark = pytest.mark.spark

RED_FRIDAY = LUCKIN.with_name("red_friday.yaml")
FIGURES = ("events", "grants", "face_value", "by_rule_month", "refusals", "customers")


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spark-bank")
    generate(out, customers=600, seed=7, start=date(2026, 1, 1), days=365, progress=False)
    return out / "events.jsonl"


@pytest.fixture
def log_bank(env, demo_files):
    """The generated year loaded into the data home's event log (the process's Spark session is kept for
    the other Spark tests: tests/conftest.py stops it at the end)."""
    assert load_file("events", demo_files, settings=env.settings, progress=False).rejected == 0
    return env.settings


def figures(report: SimulationReport) -> dict[str, object]:
    return {name: getattr(report, name) for name in FIGURES}


def test_spark_backtest_equals_local_backtest(log_bank, cli, tmp_path) -> None:
    from omnibank.campaigns.spark import simulate_on_spark

    settings = log_bank
    spec = load_campaign(LUCKIN)
    full, pruned, on_spark = io.BytesIO(), io.BytesIO(), io.BytesIO()
    local = simulate(spec, settings, events=None, out=full, prune=False, workers=1)
    local_pruned = simulate(spec, settings, events=None, out=pruned, workers=1)
    seen: list[int] = []
    report = simulate_on_spark(spec, settings, out=on_spark, master="local[2]", on_progress=seen.append)

    assert local.grants > 200  # the bank's card holders earn grants of every kind, refusals too
    rules = {rule for rule, _ in local.by_rule_month}
    assert rules >= {"welcome", "weekly", "points_exchange", "checkin_map"}
    assert local.refusals
    assert full.getvalue() == pruned.getvalue()
    assert on_spark.getvalue() == full.getvalue()
    assert figures(report) == figures(local) == figures(local_pruned)
    assert report.source.read == report.events == seen[-1]

    # a part of the customers (eligibility, consent), in a campaign over every customer's spends, bank-local
    # weekdays and amounts (no card needed): the same again
    eligible = frozenset(g.decode().split('"')[3] for g in full.getvalue().splitlines()[::3])
    assert 0 < len(eligible) < local.customers
    friday = load_campaign(RED_FRIDAY)
    unlimited = [r.model_copy(update={"budget": None}) for r in friday.rules]  # its budget spans customers
    friday = friday.model_copy(update={"rules": unlimited})
    for spec_, who, per_run in ((friday, eligible, 7),):  # 7: many runs in each task (a Spark run: ~10 s)
        want, got = io.BytesIO(), io.BytesIO()
        expected = simulate(spec_, settings, events=None, out=want, eligible=who, prune=False, workers=1)
        report = simulate_on_spark(
            spec_, settings, out=got, eligible=who, master="local[2]", customers_per_run=per_run
        )
        assert expected.grants > 5, spec_.id
        assert got.getvalue() == want.getvalue(), spec_.id
        assert figures(report) == figures(expected), spec_.id

    # the command: the same file, the same summary (it stops the session at its end: last here)
    out = tmp_path / "grants.jsonl"
    spark = ("--engine", "spark", "--spark-master", "local[2]")
    r = cli("campaign", "simulate", str(LUCKIN), *spark, "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert out.read_bytes() == full.getvalue()
    summary = f"{local.grants:,} grants to {local.customers:,} customers, face value {local.face_value:,.2f}"
    assert summary in r.stdout


def test_a_budget_across_customers_is_refused(env, cli, tmp_path) -> None:
    from omnibank.campaigns.spark import simulate_on_spark

    spec = load_campaign(LUCKIN)
    wide = spec.model_copy(update={"budget": Budget(count=50)})
    with pytest.raises(InputRefused, match=r"campaign-wide budget \(50 items\).*one pass over all events"):
        simulate_on_spark(wide, env.settings, out=io.BytesIO())
    rules = [r.model_copy(update={"budget": Budget(face_value="1000.00")}) if r.id == "weekly" else r
             for r in spec.rules]  # fmt: skip
    with pytest.raises(
        InputRefused, match=r"budget of rule weekly \(face value 1000\.00 CNY\).*--engine duckdb"
    ):
        simulate_on_spark(spec.model_copy(update={"rules": rules}), env.settings)
    # an events file is the loader's to read: Spark reads the log
    with pytest.raises(InputRefused, match="load it first: omnibank load events"):
        simulate_on_spark(spec, env.settings, events=tmp_path / "events.jsonl")

    # the command refuses before it computes an audience or starts Spark
    path = tmp_path / "wide.yaml"
    path.write_text(LUCKIN.read_text(encoding="utf-8") + "budget: {count: 50}\n", encoding="utf-8")
    r = cli("campaign", "simulate", str(path), "--engine", "spark")
    assert r.exit_code == 1 and "campaign-wide budget (50 items)" in r.stderr
    r = cli("campaign", "simulate", str(LUCKIN), str(tmp_path / "events.jsonl"), "--engine", "spark")
    assert r.exit_code == 1 and "load it first: omnibank load events" in r.stderr
