"""CNY money: integer fen in storage, ``Decimal`` at the edges, never float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

FEN = Decimal("0.01")
MAX_CNY = Decimal("10") ** 15  # far beyond any real balance, well inside a 64-bit count of fen


class MoneyError(ValueError):
    pass


def parse_cny(text: str, *, allow_zero: bool = True) -> Decimal:
    """Parse a CNY amount written as a decimal string with at most two decimals."""
    raw = text.strip()
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise MoneyError(f"{text!r} is not a decimal amount") from exc
    if not value.is_finite():
        raise MoneyError(f"{text!r} is not a finite amount")
    if abs(value) >= MAX_CNY:
        raise MoneyError(f"{text!r} is too large")
    if value != value.quantize(FEN):
        raise MoneyError(f"{text!r} has more than two decimals")
    if value < 0 or (value == 0 and not allow_zero):
        raise MoneyError(f"{text!r} must be {'>= 0' if allow_zero else '> 0'}")
    return value.quantize(FEN)


def to_fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_exact())


def from_fen(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(FEN)


def fen_sql(amount: str) -> str:
    """SQL (DuckDB, PostgreSQL) for the integer fen of a ``DECIMAL(…, 2)`` amount expression: exact, as
    :func:`to_fen` is (an integer travels to Python far cheaper than a decimal; :func:`from_fen` turns it
    back). ``DECIMAL(18,2) * 100`` overflows from 10^14 CNY, below :data:`MAX_CNY`: such amounts are
    widened first. Only those: in DuckDB the widened product (128-bit) costs ~20 times the plain one, and
    a backtest converts millions of amounts."""
    return (
        f"CASE WHEN {amount} > -100000000000000 AND {amount} < 100000000000000 "
        f"THEN CAST({amount} * 100 AS BIGINT) ELSE CAST(CAST({amount} AS DECIMAL(38,2)) * 100 AS BIGINT) END"
    )


def format_cny(fen: int) -> str:
    return f"{from_fen(fen):,.2f}"
