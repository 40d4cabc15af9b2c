"""One of each idea: one ``age`` (the expression compiler's SQL agrees with it on every day, 29 February
included), one list of card tiers and one of the contract's channels (the modules that need them import
them), one list of delivery channels."""

from __future__ import annotations

import functools
from datetime import date, timedelta
from typing import get_args

import duckdb
from hypothesis import example, given, settings
from hypothesis import strategies as st

from omnibank.customers.values import CARD_TIERS, CHANNEL_PREFS, EVENT_CHANNELS, age_on
from omnibank.segments.compile import compile_expression
from omnibank.segments.expr import CustomerFacts, evaluate, parse

DAYS = st.dates(min_value=date(1900, 1, 1), max_value=date(2199, 12, 31))


def _sql_ages(births: list[date], as_of: date) -> list[int]:
    """``age`` as the compiler writes it in SQL, run by DuckDB over a table ``p`` of birth dates."""
    from omnibank.segments.compile import _Writer
    from omnibank.segments.expr import Field

    age_sql = _Writer(parse("age >= 0"), as_of, "duckdb").sql(Field("age", "int"))
    rows = ", ".join(f"({i}, DATE '{b.isoformat()}')" for i, b in enumerate(births))
    sql = f"SELECT {age_sql} FROM (VALUES {rows}) AS p(i, birth_date) ORDER BY i"
    return [int(r[0]) for r in _con().execute(sql).fetchall()]


@functools.cache
def _con() -> duckdb.DuckDBPyConnection:
    """One in-memory connection for every example (a new one each costs more than the query)."""
    return duckdb.connect()


@settings(deadline=None)  # a DuckDB connection an example
@given(st.lists(DAYS, min_size=1, max_size=30), DAYS)
@example([date(2000, 2, 29), date(2000, 3, 1), date(2000, 2, 28)], date(2001, 2, 28))
@example([date(2000, 2, 29), date(2004, 2, 29)], date(2024, 2, 29))
def test_the_compilers_sql_age_is_age_on(births: list[date], as_of: date) -> None:
    assert _sql_ages(births, as_of) == [age_on(b, as_of) for b in births]


@settings(deadline=None)
@given(DAYS, DAYS, st.integers(0, 120))
@example(date(2000, 2, 29), date(2001, 2, 28), 1)
@example(date(2000, 2, 29), date(2001, 3, 1), 1)
def test_age_comparisons_in_sql_and_in_memory_agree_with_age_on(birth: date, as_of: date, n: int) -> None:
    facts = CustomerFacts(attributes={"birth_date": birth}, tags=frozenset(), org_path="/HQ/", events=())
    for op, want in ((">=", age_on(birth, as_of) >= n), ("<", age_on(birth, as_of) < n)):
        expression = parse(f"age {op} {n}")
        assert evaluate(expression, facts, as_of) is want
        where = compile_expression(expression, as_of, "duckdb").count_sql(
            ctes=f"profiles AS (SELECT 'C1' AS customer_id, DATE '{birth.isoformat()}' AS birth_date), "
            "tags AS (SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS tag WHERE false), "
            "events AS (SELECT NULL::VARCHAR AS customer_id WHERE false)"
        )
        (count,) = _con().execute(where).fetchall()[0]
        assert count == int(want), (op, n)


def test_age_on_counts_a_birthday_on_the_day_and_29_february_on_1_march() -> None:
    assert age_on(date(1990, 5, 17), date(2026, 5, 17)) == 36
    assert age_on(date(1990, 5, 17), date(2026, 5, 16)) == 35
    assert age_on(date(2000, 2, 29), date(2001, 2, 28)) == 0
    assert age_on(date(2000, 2, 29), date(2001, 2, 28) + timedelta(days=1)) == 1


def test_one_list_of_card_tiers_and_of_the_contracts_channels() -> None:
    from omnibank.benefits.models import TIERS
    from omnibank.benefits.schemas import Tier
    from omnibank.demo import events as generator

    assert CARD_TIERS == ("classic", "gold", "platinum")
    assert TIERS is CARD_TIERS and get_args(Tier) == CARD_TIERS
    assert generator.CARD_TIERS is CARD_TIERS and generator.EVENT_CHANNELS is EVENT_CHANNELS
    from omnibank.events import columns

    assert columns.TIERS is CARD_TIERS and columns.CHANNELS is EVENT_CHANNELS  # the contract's checks
    assert set(CHANNEL_PREFS) <= set(EVENT_CHANNELS)


def test_one_list_of_delivery_channels() -> None:
    from omnibank.contact.policy import CHANNELS
    from omnibank.contact.routing import Channel
    from omnibank.journeys import spec

    assert get_args(Channel) == CHANNELS
    assert spec.Channel is Channel
    assert not hasattr(spec, "CHANNELS")
