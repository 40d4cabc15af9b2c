"""The same expressions on Spark (local mode): a corpus covering every field kind, operator and function of
the language gives exactly the customers DuckDB gives (and PostgreSQL's store engine when the suite runs
there) on a generated bank; tags computed on Spark equal tags computed on DuckDB."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.demo.generator import generate
from omnibank.events.mirror import mirror_events
from omnibank.ingest.service import load_file
from omnibank.marketing.scores import store_scores
from omnibank.segments.engine import StoreEngine, current_snapshot, duck_engine, parse_in
from omnibank.segments.tables import customer_tags
from omnibank.tags.service import compute_tags, read_definitions, store_definitions
from tests.conftest import ON_POSTGRES

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("CI"):  # in CI a missing Java is a failure
    pytest.skip("Spark needs a Java runtime (Debian: openjdk-17-jre-headless)", allow_module_level=True)
pytestmark = pytest.mark.spark

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AS_OF = date(2026, 3, 10)
LIFECYCLE = [
    "lifecycle_new", "lifecycle_dormant", "lifecycle_churn_risk", "lifecycle_growing", "lifecycle_mature"
]  # fmt: skip
NOW = datetime(2026, 3, 10, 4, tzinfo=UTC)

CORPUS = [
    "age >= 40",
    "age BETWEEN 25 AND 35",
    "aum < 50000",
    "aum >= 500000.5 OR gender = 'F'",
    "rm_id IS NULL",
    "NOT (rm_id = 'E00150')",
    "marketing_consent = true",
    "occupation IN ('retired', 'farmer', 'student')",
    "channel_pref <> 'app' AND risk_tolerance BETWEEN 'C2' AND 'C4'",
    "in_org('B001')",
    "registered_at >= '2024-06-01'",
    "tenure_days < 800",
    "branch_id LIKE 'S01%'",
    "events('app.login', 30) >= 2",
    "events('card.transaction', 60) = 0",
    "amount('card.transaction', 45) > 120.5",
    "events('card.transaction', 60, merchant = '瑞幸咖啡' AND amount >= 20) > 0",
    "days_since('app.login') <= 7",
    "days_since('card.transaction') IS NULL",
    "events('app.product_view', 60, duration_s >= 60) > 0",
    "events('app.login', 30, weekday IN (6, 7)) > 0",
    "events('app.login', 30, channel = 'app') > 1 AND NOT in_org('B002')",
    "score('propensity') >= 0.5",
    "score('propensity') IS NULL OR score('propensity') < 0.1",
    "has_tag('channel_app_active') AND age < 60",
    "has_tag('lifecycle_dormant') OR NOT has_tag('wealth_affluent')",
]


@pytest.fixture
def bank(env, tmp_path):
    """A generated bank with stored scores and the example tags computed on DuckDB (the process's Spark
    session is kept for the other Spark tests: tests/conftest.py stops it at the end)."""
    settings = env.settings
    files = generate(tmp_path / "bank", customers=150, seed=11, start=date(2026, 1, 1), days=70,
                     progress=False)  # fmt: skip
    for kind, path in zip(("orgs", "staff", "customers", "events"), files.paths, strict=True):
        assert load_file(kind, path, settings=settings, progress=False).rejected == 0
    with unit_of_work(settings) as session:
        everyone = sorted(session.scalars(select(Customer.customer_id)))
        store_scores(session, model="propensity", version="v1", as_of=AS_OF,
                     scores=[(c, (i % 10) / 10) for i, c in enumerate(everyone[:120])], now=NOW)  # fmt: skip
        store_definitions(session, read_definitions(EXAMPLES / "tags"), now=NOW)
        compute_tags(session, settings, as_of=AS_OF, now=NOW)
        if ON_POSTGRES:
            mirror_events(session, settings)
    return settings


def test_spark_answers_like_duckdb_and_postgres(bank) -> None:
    from omnibank.segments.spark import SparkEngine

    sizes = set()
    with unit_of_work(bank) as session:
        spark = SparkEngine(bank, current_snapshot(session, bank), master="local[2]")
        for n, text in enumerate(CORPUS):
            expression = parse_in(session, text)
            with duck_engine(session, bank) as duck:
                want = duck.ids(expression, AS_OF).to_pylist()
            assert spark.ids(expression, AS_OF).to_pylist() == want, text
            if n % 5 == 0:  # the count's own query (a Spark job each: ~1 s on two cores, more in CI)
                assert spark.count(expression, AS_OF) == len(want), text
            if ON_POSTGRES:
                assert StoreEngine(session, bank.timezone).ids(expression, AS_OF).to_pylist() == want, text
            sizes.add(len(want))
    assert len(sizes) > 8  # the corpus picks many different groups, not only none or all

    # tags computed on Spark (in order, each seeing the ones before) equal DuckDB's: nothing gained or lost
    with unit_of_work(bank) as session:
        before = sorted(session.execute(select(customer_tags.c.customer_id, customer_tags.c.tag)).all())
        # the lifecycle tags: a chain, each later one naming earlier ones (four Spark jobs a tag: the others'
        # expressions are in the corpus above)
        report = compute_tags(session, bank, as_of=AS_OF, now=NOW, engine="spark", spark_master="local[2]",
                              only=LIFECYCLE)  # fmt: skip
        after = sorted(session.execute(select(customer_tags.c.customer_id, customer_tags.c.tag)).all())
    done = [r.tag for r in report.results]  # each after the tags it names
    assert sorted(done) == sorted(LIFECYCLE)
    position = {tag: n for n, tag in enumerate(done)}
    assert position["lifecycle_dormant"] < position["lifecycle_churn_risk"] < position["lifecycle_mature"]
    assert all(r.gained == 0 and r.lost == 0 for r in report.results)
    assert sum(r.members for r in report.results) > 20
    assert after == before and len(before) > 50
