"""Bad expressions and dates are refused with the language's error, never a crash: depth and length are
bounded before sqlglot's parser (which recurses) sees the text, numbers and as-of dates lie in a sane range,
text that is not text (a lone surrogate, a NUL) is refused. A hypothesis fuzzer writes expressions from the
language's grammar — with junk, Chinese and odd characters, deep nesting — and checks that each parses or
is refused, and that what parses runs on DuckDB, on PostgreSQL (when the suite runs there) and in memory."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.errors import AppError
from omnibank.events.mirror import mirror_events
from omnibank.segments.engine import StoreEngine, customer_facts, duck_engine, vocabulary
from omnibank.segments.expr import (
    CUSTOMER_FIELDS,
    EVENT_FIELDS,
    MAX_DEPTH,
    ExpressionError,
    evaluate,
    parse,
    parse_event_condition,
)
from tests.conftest import ON_POSTGRES
from tests.segments.bank import load_bank

DEEP_PARENS = "(" * 60 + "age > 60" + ")" * 60
MANY_NOTS = "NOT " * 500 + "age > 60"
LONG = " OR ".join(f"customer_id = 'C{i:07d}'" for i in range(500))  # 10,000+ characters


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (DEEP_PARENS, f"nested more than {MAX_DEPTH} levels deep"),
        (MANY_NOTS, f"nested more than {MAX_DEPTH} levels deep"),
        ("NOT (" * 30 + "age > 1" + ")" * 30, "nested more than"),
        ("events('app.login', 1, " * 25 + "amount > 1" + ")" * 25 + " > 0", "nested more than"),
        ("- " * 300 + "1 = 1", "nested more than"),
        ("CASE WHEN " * 300 + "1", "nested more than"),
        ("[" * 300 + "]" * 300, "nested more than"),
        ("1 = " * 900 + "1", "is not allowed here"),  # a chain the parser builds without recursing
        ("a." * 1500 + "b = 1", ""),
        (LONG, "longer than 4000 characters"),
        ("x" * 10_000, "longer than 4000 characters"),
        ("customer_id = '\ud800'", "lone surrogate"),
        ("customer_id = 'a\x00b'", "control character (U+0000)"),
        ("aum > 1e400", "out of range"),
        ("aum > 1000000000000000", "out of range"),
        ("aum > 0.0000001", "out of range"),
    ],
)
def test_bad_expressions_are_the_languages_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message) if message else None):
        parse(text)


def test_nesting_within_the_limit_still_parses() -> None:
    parse("(" * MAX_DEPTH + "age > 1" + ")" * MAX_DEPTH)
    parse("NOT " * MAX_DEPTH + "age > 1")
    parse(" AND ".join(["NOT (age > 1)"] * 100))  # many NOTs side by side do not nest
    parse("aum > -999999999999999.999999")
    with pytest.raises(ExpressionError, match="nested more than"):
        parse_event_condition("(" * 60 + "amount > 1" + ")" * 60)


def test_ages_and_dates_far_out_compile_and_run(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    with unit_of_work(env.settings) as session, duck_engine(session, env.settings) as duck:
        for text, n in [
            ("age >= 99999999999999", 0),
            ("age > -99999999999999", 5),
            ("age BETWEEN -5 AND 999999999", 5),
            ("birth_date > DATE '0001-01-01' AND registered_at < '9999-12-31'", 5),
        ]:
            assert duck.count(parse(text), date(2026, 3, 1)) == n, text
            if ON_POSTGRES:
                assert StoreEngine(session, env.settings.timezone).count(parse(text), date(2026, 3, 1)) == n


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01"])
def test_as_of_out_of_range_is_one_line_and_exit_1(cli, env, tmp_path, day: str) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    for args, option in [
        (("segment", "count", "age > 1", "--as-of", day), "--as-of"),
        (("segment", "count", "events('app.login', 30) > 0", "--as-of", day), "--as-of"),
        (("segment", "count", "age > 1", "--as-of", day, "--engine", "postgres"), "--as-of"),
        (("segment", "preview", "age > 1", "--as-of", day), "--as-of"),
        (("segment", "export", "age > 1", "--as-of", day, "--out", str(tmp_path / "ids.csv")), "--as-of"),
        (("segment", "matrix", "--as-of", day), "--as-of"),
        (("tags", "compute", "--as-of", day), "--as-of"),
        (("suppliers", "scorecard", "--as-of", day), "--as-of"),
        (("audit", "list", "--since", day), "--since"),
        (("audit", "list", "--since", f"{day}T12:00"), "--since"),
        (("contact", "dnd", "add", "C01", "--reason", "x", "--until", day), "--until"),
        (("demo", "generate", "--out", str(tmp_path / "g"), "--customers", "10", "--start", day), "--start"),
    ]:
        r = cli(*args)
        assert r.exit_code == 1, (args, r.stdout)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert f"{option}: {day} is out of range; use a date from 1900-01-01 to 2199-12-31" in r.stderr, args
    assert not (tmp_path / "ids.csv").exists() and not (tmp_path / "g").exists()


def test_journey_simulate_refuses_since_and_until_out_of_range(cli, env, tmp_path) -> None:
    from pathlib import Path

    load_bank(env.settings, tmp_path / "bank", with_events=False)
    journey = Path(__file__).resolve().parents[2] / "examples" / "journeys" / "product_view_lead.yaml"
    for option in ("--since", "--until"):
        r = cli("journey", "simulate", str(journey), option, "0001-01-01T00:00:00")
        assert r.exit_code == 1, r.stdout
        assert f"{option}: 0001-01-01 is out of range" in r.stderr and "Traceback" not in r.stderr


def test_expression_errors_on_the_cli_are_one_line(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    for text in (DEEP_PARENS, MANY_NOTS, LONG, "customer_id = 'a\udcff'"):
        r = cli("segment", "count", text)
        assert r.exit_code == 1
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# --------------------------------------------------------------------------------------------- the fuzzer

ODD_STRINGS = ["", "瑞幸咖啡", "张三", "'", "''", "\\", "%", "_", "a%_b", "\ud800", "\udcff", "\x00", "\n",
               "\t", "😀", "\u202e", "ß", "İ", "--", "/*", ";", "O'Brien", "\u3000", "１２３"]  # fmt: skip
NUMBERS = ["0", "1", "-1", "60", "1.5", "-0.01", "1e5", "1e400", "1e-7", "0.0000001", "99999999999999",
           "999999999999999", "1000000000000000", "12345678901234567890", "1_000", "0x1F", ".5", "5.",
           "3660", "3661", "-3660", "0.1234567"]  # fmt: skip
DATES = ["'2026-01-01'", "DATE '2026-03-01'", "DATE '2026-02-30'", "'0001-01-01'", "DATE '9999-12-31'",
         "'2026-1-1'", "DATE 'x'", "TIMESTAMP '2026-01-01 00:00'"]  # fmt: skip
NAMES = [*CUSTOMER_FIELDS, *EVENT_FIELDS, "wealth_affluent", "silver_75_plus", "foo", "Age", '"age"', "`age`",
         "p.age", "profiles.aum", "customer_id.x", "SELECT", "NULL", "true", "客户"]  # fmt: skip
FUNCTIONS = ["has_tag", "in_org", "events", "amount", "days_since", "sum", "left", "now", "upper", "count",
             "EVENTS", "Has_Tag", "coalesce", "cast"]  # fmt: skip
TYPES = ["'app.login'", "'card.transaction'", "'card.issued'", "'x'", "'A.B'", "'app.login;'", "1"]
JUNK = [";", "--", "/*", "*/", "SELECT 1", "*", "+", "||", "[1]", "{'a': 1}", "CASE WHEN 1 THEN 2 END", "$1",
        "?", ":x", "@x", "#", "(", ")", ",", "'", '"', "`", "\\", "DROP TABLE customers", "UNION",
        "EXISTS (SELECT 1)", "INTERVAL 1 DAY", "::int", "->", "~", "!"]  # fmt: skip
OPS = ["=", "!=", "<>", "<", "<=", ">", ">=", "==", "LIKE", "NOT LIKE", "ILIKE", "IS", "IS NOT", "+", "-"]

strings = st.sampled_from(ODD_STRINGS).map(lambda s: "'" + s.replace("'", "''") + "'") | st.text(
    st.characters(min_codepoint=1, max_codepoint=0x2FFFF), max_size=8
).map(lambda s: "'" + s.replace("'", "''") + "'")
numbers = st.sampled_from(NUMBERS) | st.integers(-(10**20), 10**20).map(str)
literals = strings | numbers | st.sampled_from(DATES) | st.sampled_from(["NULL", "TRUE", "false"])
names = st.sampled_from(NAMES)


def _call(name: str, args: list[str]) -> str:
    return f"{name}({', '.join(args)})"


def conditions(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    values = names | literals | children
    return st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", values, st.sampled_from(OPS), values),
        st.builds(lambda a, vs: f"{a} IN ({', '.join(vs)})", values, st.lists(values, max_size=4)),
        st.builds(lambda a, lo, hi: f"{a} BETWEEN {lo} AND {hi}", values, values, values),
        st.builds(lambda a, n: f"{a} IS {n}NULL", values, st.sampled_from(["", "NOT "])),
        st.builds(lambda c: f"NOT {c}", children),
        st.builds(lambda c: f"({c})", children),
        st.builds(lambda a, op, b: f"{a} {op} {b}", children, st.sampled_from(["AND", "OR"]), children),
        st.builds(
            lambda f, t, rest: _call(f, [t, *rest]),
            st.sampled_from(FUNCTIONS),
            st.sampled_from(TYPES) | strings,
            st.lists(numbers | children | names, max_size=3),
        ),
        st.builds(
            lambda c, j, pos: c[:pos] + f" {j} " + c[pos:],
            children,
            st.sampled_from(JUNK),
            st.integers(0, 40),
        ),  # fmt: skip
    )


# well-typed comparisons, so that many expressions get past the checker to the engines
typed = st.one_of(
    st.builds(lambda op, n: f"age {op} {n}", st.sampled_from(OPS[:7]), numbers),
    st.builds(lambda op, n: f"aum {op} {n}", st.sampled_from(OPS[:7]), numbers),
    st.builds(
        lambda f, op, n: f"{f} {op} {n}",
        st.sampled_from(["tenure_days", "age", "aum"]),
        st.sampled_from(["IN", "NOT IN"]),
        st.lists(numbers, min_size=1, max_size=3).map(lambda ns: "(" + ", ".join(ns) + ")"),
    ),  # fmt: skip
    st.builds(
        lambda f, op, d: f"{f} {op} {d}",
        st.sampled_from(["birth_date", "registered_at"]),
        st.sampled_from(OPS[:7]),
        st.sampled_from(DATES),
    ),  # fmt: skip
    st.builds(lambda f, s: f"{f} LIKE {s}", st.sampled_from(["customer_id", "branch_id", "rm_id"]), strings),
    st.builds(lambda f, s: f"{f} = {s}", st.sampled_from(["gender", "occupation", "customer_id"]), strings),
    st.builds(
        lambda fn, t, n, f, op, v, k: f"{fn}({t}, {n}, {f} {op} {v}) >= {k}",
        st.sampled_from(["events", "amount"]),
        st.sampled_from(TYPES),
        numbers,
        st.sampled_from(list(EVENT_FIELDS)),
        st.sampled_from(OPS[:7]),
        literals,
        numbers,
    ),
    st.builds(lambda t, k: f"days_since({t}) > {k}", st.sampled_from(TYPES), numbers),
)
atoms = st.one_of(
    typed,
    typed,
    st.builds(lambda f, op, v: f"{f} {op} {v}", names, st.sampled_from(OPS[:7]), literals),
    st.builds(
        lambda t, n, op, k: f"events({t}, {n}) {op} {k}",
        st.sampled_from(TYPES),
        numbers,
        st.sampled_from(OPS[:7]),
        numbers,
    ),  # fmt: skip
    st.builds(
        lambda t, c: f"amount({t}, 30, {c}) > 0",
        st.sampled_from(TYPES),
        st.builds(lambda f, v: f"{f} = {v}", st.sampled_from(list(EVENT_FIELDS)), literals),
    ),
    st.builds(lambda s: f"has_tag({s})", strings | st.sampled_from(["'wealth_affluent'", "'nope'"])),
    st.builds(lambda s: f"in_org({s})", strings | st.sampled_from(["'B001'", "'S0101'", "'ZZZ'"])),
    names,
    st.sampled_from(JUNK),
)
expressions = st.builds(
    lambda inner, depth, wrap: (wrap[0] * depth) + inner + (wrap[1] * depth),
    st.recursive(atoms, conditions, max_leaves=12),
    st.integers(0, 80),
    st.sampled_from([("(", ")"), ("NOT ", ""), ("NOT (", ")"), ("- ", ""), ("", "")]),
)


T = TypeVar("T")


def _attempt(fn: Callable[[], T]) -> tuple[T | None, AppError | None]:
    try:
        return fn(), None
    except AppError as exc:
        return None, exc


def test_fuzzed_expressions_parse_or_are_refused_and_what_parses_runs(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    cfg = env.settings
    with unit_of_work(cfg) as session:
        vocab = vocabulary(session)
        facts = customer_facts(session, cfg, list(session.scalars(select(Customer.customer_id))))
        if ON_POSTGRES:
            mirror_events(session, cfg)
    parsed: list[str] = []

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(text=expressions, as_of=st.sampled_from([date(2026, 3, 1), date(1900, 1, 1), date(2199, 12, 31)]))
    def check(text: str, as_of: date) -> None:
        expression, refused = _attempt(lambda: parse(text, vocab))
        if expression is None:  # the language's error, with a message; anything else fails the test
            assert refused is not None and refused.status == 422 and refused.message, text
            return
        parsed.append(text)
        with unit_of_work(cfg) as session, duck_engine(session, cfg) as duck:
            n, refused = _attempt(lambda: duck.count(expression, as_of))
            if n is None:  # refused with a message (an unknown tag, say): fine
                assert refused is not None and refused.status < 500, (text, refused)
                return
            assert 0 <= n <= len(facts), text
            if ON_POSTGRES:
                assert StoreEngine(session, cfg.timezone).count(expression, as_of) >= 0, text
        for f in facts.values():
            assert evaluate(expression, f, as_of) in (True, False), text

    check()
    assert len(parsed) > 20  # the grammar reaches valid expressions too, not only errors
