"""Property: for any expression, the compiled SQL (DuckDB, and PostgreSQL when the suite runs there) and
the in-memory evaluation of the same tree pick exactly the same customers of a generated bank."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.demo.generator import generate
from omnibank.events.mirror import mirror_events
from omnibank.ingest.service import load_file
from omnibank.segments.engine import StoreEngine, customer_facts, duck_engine, parse_in
from omnibank.segments.expr import evaluate
from tests.conftest import ON_POSTGRES

TYPES = ["app.login", "card.transaction", "app.product_view", "points.earned", "card.issued"]

atoms = st.one_of(
    st.builds(lambda n: f"age >= {n}", st.integers(18, 90)),
    st.builds(lambda n: f"aum < {n}", st.sampled_from(["1000", "50000", "500000.5", "6000000"])),
    st.sampled_from(
        [
            "gender = 'F'",
            "rm_id IS NULL",
            "NOT (rm_id = 'E00150')",
            "marketing_consent = true",
            "occupation IN ('retired', 'farmer', 'student')",
            "channel_pref <> 'app'",
            "risk_tolerance BETWEEN 'C2' AND 'C4'",
            "in_org('B001')",
            "in_org('S0301')",
            "registered_at >= '2024-06-01'",
            "tenure_days < 800",
        ]
    ),
    st.builds(
        lambda t, n, k: f"events('{t}', {n}) >= {k}",
        st.sampled_from(TYPES),
        st.integers(1, 90),
        st.integers(0, 4),
    ),
    st.builds(lambda n, a: f"amount('card.transaction', {n}) > {a}", st.integers(1, 90), st.integers(0, 300)),
    st.builds(
        lambda n: f"events('card.transaction', {n}, merchant = '瑞幸咖啡' AND amount >= 20) > 0",
        st.integers(1, 90),
    ),
    st.builds(lambda k: f"days_since('app.login') <= {k}", st.integers(0, 60)),
    st.builds(lambda d: f"events('app.product_view', 60, duration_s >= {d}) > 0", st.integers(0, 120)),
)


def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, b: f"({a}) AND ({b})", children, children),
        st.builds(lambda a, b: f"({a}) OR ({b})", children, children),
        st.builds(lambda a: f"NOT ({a})", children),
    )


expressions = st.recursive(atoms, combine, max_leaves=5)


def test_compiled_sql_and_in_memory_agree(env, tmp_path) -> None:
    start = date(2026, 1, 1)
    files = generate(tmp_path / "bank", customers=150, seed=11, start=start, days=75, progress=False)
    for kind, path in zip(("orgs", "staff", "customers", "events"), files.paths, strict=True):
        assert load_file(kind, path, settings=env.settings, progress=False).rejected == 0
    cfg = env.settings
    with unit_of_work(cfg) as session:
        ids = list(session.scalars(select(Customer.customer_id)))
        facts = customer_facts(session, cfg, ids)
        if ON_POSTGRES:
            mirror_events(session, cfg)
    assert len(facts) == 150
    assert sum(len(f.events) for f in facts.values()) > 1000
    sizes: set[int] = set()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(text=expressions, offset=st.integers(0, 80))
    def check(text: str, offset: int) -> None:
        as_of = start + timedelta(days=offset)
        with unit_of_work(cfg) as session:
            expression = parse_in(session, text)
            with duck_engine(session, cfg) as duck:
                got = duck.ids(expression, as_of).to_pylist()
            if ON_POSTGRES:
                assert StoreEngine(session, cfg.timezone).ids(expression, as_of).to_pylist() == got, text
        expected = sorted(cid for cid, f in facts.items() if evaluate(expression, f, as_of))
        assert got == expected, text
        sizes.add(len(got))

    check()
    assert len(sizes) > 10  # the expressions picked many different groups, not only none or all
