"""Money through kit/money.py only: amounts go to Python as integer fen from SQL (:func:`fen_sql`) and come
back as the same Decimal (:func:`from_fen`), for any amount the log can hold."""

from __future__ import annotations

from decimal import Decimal

import duckdb
from hypothesis import example, given, settings
from hypothesis import strategies as st

from omnibank.kit.money import FEN, MAX_CNY, fen_sql, from_fen, to_fen

AMOUNTS = st.decimals(min_value=-MAX_CNY + FEN, max_value=MAX_CNY - FEN, places=2)


@settings(deadline=None)  # a DuckDB connection an example
@given(st.lists(AMOUNTS, min_size=1, max_size=20))
@example([MAX_CNY - FEN, -(MAX_CNY - FEN), Decimal("0.00")])
def test_fen_sql_is_exact_and_from_fen_gives_the_amount_back(amounts: list[Decimal]) -> None:
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE t (i INTEGER, amount DECIMAL(18,2))")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(a)) for i, a in enumerate(amounts)])
        fens = [r[0] for r in con.execute(f"SELECT {fen_sql('amount')} FROM t ORDER BY i").fetchall()]
    finally:
        con.close()
    assert fens == [to_fen(a) for a in amounts]
    assert all(isinstance(f, int) for f in fens)
    back = [from_fen(f) for f in fens]
    assert back == amounts
    assert all(b.as_tuple().exponent == -2 for b in back)  # two decimals, as the log's DECIMAL(18,2) has


def test_from_fen_of_a_null_amount_is_never_asked_and_zero_keeps_two_decimals() -> None:
    assert str(from_fen(0)) == "0.00"
    assert str(from_fen(-5)) == "-0.05"
    assert str(from_fen(12345)) == "123.45"
