"""The expression language's checks: what is accepted, and a clear error naming what is wrong."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from omnibank.segments.compile import compile_expression
from omnibank.segments.expr import (
    Cmp,
    EventAgg,
    ExpressionError,
    Field,
    HasTag,
    Lit,
    Vocabulary,
    parse,
)

VOCAB = Vocabulary(
    tags=frozenset({"silver_60_74", "wealth_affluent"}), orgs=frozenset({"HQ", "B001", "B002"})
)


def error(text: str) -> str:
    with pytest.raises(ExpressionError) as info:
        parse(text, VOCAB)
    return info.value.message


def test_a_comparison_becomes_a_typed_tree() -> None:
    e = parse("aum >= 50000.5", VOCAB)
    assert e.root == Cmp(">=", Field("aum", "num"), Lit(Decimal("50000.5"), "num"))


def test_a_tag_name_alone_is_has_tag() -> None:
    assert parse("silver_60_74", VOCAB).root == HasTag("silver_60_74")
    assert parse("has_tag('wealth_affluent')", VOCAB).tags == frozenset({"wealth_affluent"})


def test_a_quoted_date_against_a_date_field_is_a_date() -> None:
    e = parse("registered_at >= '2024-01-01'", VOCAB)
    assert isinstance(e.root, Cmp)
    assert e.root.right == Lit(date(2024, 1, 1), "date")


def test_event_functions_with_conditions() -> None:
    e = parse("events('card.transaction', 30, merchant = '瑞幸咖啡' AND amount >= 20) >= 3", VOCAB)
    (agg,) = e.aggregates
    assert isinstance(agg, EventAgg)
    assert (agg.kind, agg.type, agg.days) == ("count", "card.transaction", 30)
    assert agg.cond is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo > 1", "unknown field `foo`; fields: customer_id, gender, age"),
        ("frob('x')", "unknown function `frob`; functions: has_tag('name'), in_org('org_id')"),
        ("age >", "syntax error at position"),
        ("age > 1 )", "syntax error"),
        ("gender = 'M'; DROP TABLE customers", "`;` is not allowed"),
        ("gender = 'M' -- sneaky", "comments are not allowed"),
        ("gender = 'M' /* x */", "comments are not allowed"),
        ("(SELECT 1) = 1", "subqueries are not allowed"),
        ("customer_id IN (SELECT customer_id FROM customers)", "not a subquery"),
        ("customers.gender = 'M'", "table names are not allowed"),
        ("gender = 'X'", "gender: 'X' is not one of M, F"),
        ("occupation IN ('retired', 'astronaut')", "occupation: 'astronaut' is not one of"),
        ("age = 'sixty'", "cannot compare `age` (a number) with 'sixty' (text)"),
        ("birth_date < '1960-02-30'", "'1960-02-30' is not a date in the form YYYY-MM-DD"),
        ("rm_id = NULL", "compare with NULL using IS NULL"),
        ("has_tag('nope')", "unknown tag 'nope'; tags: silver_60_74, wealth_affluent"),
        ("in_org('B999')", "unknown org 'B999'"),
        ("events('app.login', 0) > 1", "days must be between 1 and 3660"),
        ("events('app.login') > 1", "takes events('type', days [, condition])"),
        ("events('APP', 3) > 1", "'APP' is not an event type"),
        ("events('app.login', 3, age > 3) > 1", "unknown event field `age`"),
        ("events('app.login', 3, has_tag('silver_60_74')) > 1", "cannot be used inside an event condition"),
        ("aum + 1 > 3", "arithmetic is not supported"),
        ("age", "this is not a condition"),
        ("merchant LIKE 'a\\\\b'", "unknown field `merchant`"),
        ("", "the expression is empty"),
    ],
)
def test_every_error_names_what_is_wrong(text: str, expected: str) -> None:
    assert expected in error(text)


def test_strings_are_quoted_never_pasted() -> None:
    e = parse("customer_id = 'x'' OR 1=1 --'", VOCAB)
    sql = compile_expression(e, date(2026, 3, 1), "duckdb").count_sql()
    assert "'x'' OR 1=1 --'" in sql  # one literal, its quote doubled
    assert e.root == Cmp("=", Field("customer_id", "str"), Lit("x' OR 1=1 --", "str"))


@pytest.mark.parametrize(
    ("text", "join"),
    [
        ("amount('card.transaction', 30) >= 99", " JOIN ev"),
        ("events('app.login', 30) > 0 AND age > 30", " JOIN ev"),
        ("NOT (events('app.login', 30) = 0)", " JOIN ev"),
        ("0 < events('app.login', 30)", " JOIN ev"),
        ("days_since('app.login') < 5", " JOIN ev"),
        ("events('app.login', 30) = 0", " LEFT JOIN ev"),
        ("events('app.login', 30) > 0 OR age > 30", " LEFT JOIN ev"),
        ("days_since('app.login') IS NULL", " LEFT JOIN ev"),
        ("NOT (amount('card.transaction', 30) >= 99)", " LEFT JOIN ev"),
    ],
)
def test_only_customers_with_events_are_joined_when_no_one_else_can_match(text: str, join: str) -> None:
    sql = compile_expression(parse(text, VOCAB), date(2026, 3, 1), "duckdb").count_sql()
    assert join in sql
    if join == " JOIN ev":
        assert "LEFT JOIN" not in sql
