"""The expression language: one small SQL-like language for segments, tag rules, campaign eligibility
and journey conditions.

    age >= 60 AND in_org('B002') AND events('app.login', 90) = 0
    has_tag('wealth_affluent') OR amount('card.transaction', 30, merchant = '瑞幸咖啡') >= 99

Text is parsed with sqlglot, then checked node by node against an allow-list and turned into a small
tree of our own (:class:`Node`). Nothing a user writes reaches a database as SQL: the compiler
(:mod:`omnibank.segments.compile`) writes SQL from the tree, and :func:`evaluate` runs the same tree for
one customer in memory (real-time decisions), with SQL's three-valued logic.

Functions:

* ``has_tag('name')`` — the customer carries a computed tag (a tag's name alone works too);
* ``in_org('B002')`` — the customer's branch is that org or below it in the tree;
* ``events('type', N [, condition])`` — events of that type whose bank-local date ``d`` satisfies
  ``as_of − N < d ≤ as_of`` (and the condition over event fields, when given);
* ``amount('type', N [, condition])`` — the sum of their ``amount`` (0 when none);
* ``days_since('type' [, condition])`` — days from the latest such event on or before ``as_of`` to
  ``as_of`` (NULL when there is none, so ``days_since('app.login') > 90`` leaves out who never logged in);
* ``score('model')`` — the customer's latest stored score of a model (``omnibank model score``; a
  probability, or an uplift for an uplift model), exact to millionths; NULL when not scored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from omnibank.customers.values import CHANNEL_PREFS, GENDERS, OCCUPATIONS, RISK_LEVELS, age_on
from omnibank.errors import AppError

# --------------------------------------------------------------------------------------------- fields

FieldType = Literal["str", "num", "int", "date", "bool"]

#: Customer fields: name → (type, allowed values for enumerations)
CUSTOMER_FIELDS: dict[str, tuple[FieldType, tuple[str, ...]]] = {
    "customer_id": ("str", ()),
    "gender": ("str", GENDERS),
    "age": ("int", ()),
    "birth_date": ("date", ()),
    "branch_id": ("str", ()),
    "rm_id": ("str", ()),
    "aum": ("num", ()),
    "occupation": ("str", OCCUPATIONS),
    "risk_tolerance": ("str", RISK_LEVELS),
    "channel_pref": ("str", CHANNEL_PREFS),
    "marketing_consent": ("bool", ()),
    "registered_at": ("date", ()),
    "tenure_days": ("int", ()),  # days from registered_at to the as-of date
}

#: Event fields usable in the condition of events()/amount()/days_since(); ``primary`` is the contract's
#: name for the log's ``is_primary`` column.
EVENT_FIELDS: dict[str, tuple[FieldType, str]] = {
    "channel": ("str", "channel"),
    "amount": ("num", "amount"),
    "card_id": ("str", "card_id"),
    "product": ("str", "product"),
    "tier": ("str", "tier"),
    "primary": ("bool", "is_primary"),
    "new_customer": ("bool", "new_customer"),
    "merchant": ("str", "merchant"),
    "mcc": ("str", "mcc"),
    "points": ("int", "points"),
    "reward": ("str", "reward"),
    "quantity": ("int", "quantity"),
    "product_id": ("str", "product_id"),
    "duration_s": ("num", "duration_s"),
    "weekday": ("int", "weekday"),  # bank-local ISO day of the week: 1 Monday … 7 Sunday
}

FUNCTIONS = {
    "has_tag": "has_tag('name')",
    "in_org": "in_org('org_id')",
    "events": "events('type', days [, condition])",
    "amount": "amount('type', days [, condition])",
    "days_since": "days_since('type' [, condition])",
    "score": "score('model')",
}
MAX_DAYS = 3660
MAX_LENGTH = 4000
#: how deeply an expression may nest: parentheses and function calls, each NOT or sign in a row
MAX_DEPTH = 20
#: numbers are below 10^15 in size, with at most 6 decimals
MAX_NUMBER = 10**15
MAX_DECIMALS = 6
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
TAG_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MODEL_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
#: a stored score is an integer in millionths (``model_scores.score_ppm``)
SCORE_SCALE = 1_000_000


class ExpressionError(AppError):
    """An expression that cannot be used; the message says what and where."""

    code = "invalid_expression"
    status = 422


# ----------------------------------------------------------------------------------------------- tree

Value = str | Decimal | int | bool | date | None


@dataclass(frozen=True)
class Lit:
    value: Value
    type: FieldType | None  # None for NULL


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType


@dataclass(frozen=True)
class EvField:
    name: str  # the contract's name
    column: str  # the log's column
    type: FieldType


@dataclass(frozen=True)
class Cmp:
    op: Literal["=", "!=", "<", "<=", ">", ">="]
    left: Node
    right: Node


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class In:
    item: Node
    values: tuple[Lit, ...]


@dataclass(frozen=True)
class Between:
    item: Node
    low: Node
    high: Node


@dataclass(frozen=True)
class IsNull:
    item: Node


@dataclass(frozen=True)
class Like:
    item: Node
    pattern: str


@dataclass(frozen=True)
class HasTag:
    tag: str


@dataclass(frozen=True)
class InOrg:
    org_id: str


@dataclass(frozen=True)
class Score:
    model: str


@dataclass(frozen=True)
class EventAgg:
    kind: Literal["count", "sum", "days_since"]
    type: str
    days: int | None  # None: all history up to as_of (days_since)
    cond: Node | None

    @property
    def result_type(self) -> FieldType:
        return "num" if self.kind == "sum" else "int"


Node = (
    Lit
    | Field
    | EvField
    | Cmp
    | And
    | Or
    | Not
    | In
    | Between
    | IsNull
    | Like
    | HasTag
    | InOrg
    | EventAgg
    | Score
)


@dataclass(frozen=True)
class Expression:
    """A checked expression: its text and its tree."""

    text: str
    root: Node
    tags: frozenset[str] = field(default_factory=frozenset)
    orgs: frozenset[str] = field(default_factory=frozenset)
    aggregates: tuple[EventAgg, ...] = ()
    models: frozenset[str] = field(default_factory=frozenset)


# ---------------------------------------------------------------------------------------------- parse


@dataclass(frozen=True)
class Vocabulary:
    """What an expression may name besides the fixed fields: tags, orgs and models with stored scores
    (None: not checked)."""

    tags: frozenset[str] | None = None
    orgs: frozenset[str] | None = None
    models: frozenset[str] | None = None


def _where(text: str, node: exp.Expr) -> str:
    sql = node.sql()
    pos = text.find(sql) if len(sql) < 60 else -1
    return f" at position {pos + 1}" if pos >= 0 else f" in `{sql[:60]}`"


def parse(text: str, vocabulary: Vocabulary | None = None) -> Expression:
    """Parse and check an expression; raises :class:`ExpressionError` naming what is wrong."""
    vocabulary = vocabulary or Vocabulary()
    tree = _parse_tree(text)
    checker = _Checker(text, vocabulary)
    try:
        root = checker.boolean(tree)
    except RecursionError:  # a deep tree the nesting count let through (a chain such as 1 = 1 = 1 …)
        raise _too_deep() from None
    return Expression(
        text=text,
        root=root,
        tags=frozenset(checker.tags),
        orgs=frozenset(checker.orgs),
        aggregates=tuple(dict.fromkeys(checker.aggregates)),
        models=frozenset(checker.models),
    )


# Characters no expression has any use for: control characters (but tab and line ends), and the halves of
# UTF-16 surrogate pairs, which are not characters (JSON's "\ud800", undecodable bytes on a command line)
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_OPENING = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE, TokenType.CASE}
_CLOSING = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE, TokenType.END}
_SIGNS = {TokenType.DASH, TokenType.PLUS, TokenType.TILDE}
# tokens after which a sign is an operator, not a prefix
_OPERAND_END = {
    TokenType.NUMBER, TokenType.STRING, TokenType.VAR, TokenType.IDENTIFIER, TokenType.NULL,
    TokenType.TRUE, TokenType.FALSE, *_CLOSING,
}  # fmt: skip


def _too_deep() -> ExpressionError:
    return ExpressionError(
        f"the expression is nested more than {MAX_DEPTH} levels deep (parentheses, function calls, "
        "NOT in a row); write it flatter"
    )


def _nesting(tokens: list[Token]) -> int:
    """How deeply the tokens nest, counted before parsing (the parser recurses once per level, and a
    few hundred levels exhaust Python's stack): each open parenthesis, bracket or CASE, and each NOT or
    sign in a row before an operand (a run ends at AND, OR or a comma)."""
    deepest = 0
    outer: list[int] = []  # at each open level: the run of prefixes in force outside it
    in_force = 0  # sum(outer)
    run = 0
    previous: TokenType | None = None
    for token in tokens:
        kind = token.token_type
        if kind in _OPENING:
            outer.append(run)
            in_force += run
            run = 0
        elif kind in _CLOSING:
            run = outer.pop() if outer else 0
            in_force -= run
        elif kind in (TokenType.AND, TokenType.OR, TokenType.COMMA):
            run = 0
        elif kind == TokenType.NOT or (kind in _SIGNS and previous not in _OPERAND_END):
            run += 1
        deepest = max(deepest, len(outer) + in_force + run)
        if deepest > MAX_DEPTH:
            break
        previous = kind
    return deepest


def _parse_tree(text: str) -> exp.Expr:
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    bad = _NOT_TEXT.search(text)
    if bad:
        char = bad.group()
        surrogate = "\ud800" <= char <= "\udfff"
        what = "a lone surrogate, which is not a character" if surrogate else "a control character"
        where = f"U+{ord(char):04X}) at position {bad.start() + 1}"
        raise ExpressionError(f"the expression holds {what} ({where}")
    if ";" in _outside_strings(text):
        raise ExpressionError("`;` is not allowed: give one expression, not statements")
    stripped = _outside_strings(text)
    if "--" in stripped or "/*" in stripped or "#" in stripped:
        raise ExpressionError("comments are not allowed in an expression")
    try:
        # sqlglot's generic dialect: the language is plain SQL expressions; DuckDB's dialect would add nothing
        # the allow-list accepts, and building it costs ~0.18 s of every command's start (its generator
        # parses SQL templates when its class is made). Tokenized once: the nesting is counted on the
        # tokens before the parser, which recurses, sees them.
        dialect = Dialect.get_or_raise(None)
        tokens = dialect.tokenize(text)
        if _nesting(tokens) > MAX_DEPTH:
            raise _too_deep()
        trees = dialect.parser().parse(tokens, text)
        if not trees or trees[0] is None:
            raise ExpressionError("the expression is empty")
        tree = exp.Block(expressions=trees) if len(trees) > 1 else trees[0]
    except RecursionError:
        raise _too_deep() from None
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        col = first.get("col")
        what = first.get("description") or "syntax error"
        where = f" at position {col}" if col else ""
        raise ExpressionError(f"syntax error{where}: {what}") from None
    except TokenError as exc:
        raise ExpressionError(f"syntax error: {exc}") from None
    return tree


def parse_event_condition(text: str) -> Node:
    """A condition over one event's fields (``amount >= 99``, ``product = 'luckin_cobrand'``), as used by
    campaign triggers and card requirements; evaluate it with :func:`event_matches`."""
    tree = _parse_tree(text)
    try:
        return _Checker(text, Vocabulary(), event_scope=True).boolean(tree)
    except RecursionError:
        raise _too_deep() from None


def event_matches(condition: Node | None, event: Mapping[str, Any]) -> bool:
    """Whether an event (a mapping of the log's columns) satisfies a condition; NULL counts as no."""
    if condition is None:
        return True
    return _eval(condition, _NO_FACTS, date.min, event) is True


EventPredicate = Callable[[Mapping[str, Any]], bool]


def event_predicate(condition: Node | None) -> EventPredicate:
    """:func:`event_matches` for one condition, compiled once into closures (the campaign engine calls it
    for every event). Same three-valued logic: a comparison with a missing field is NULL, not false."""
    if condition is None:
        return lambda _event: True
    fn = _closure(condition)
    return lambda event: fn(event) is True


_Fn = Callable[[Mapping[str, Any]], Any]


def _field_vs_literal(field: EvField, value: Any, op: Callable[[Any, Any], Any]) -> _Fn:
    column = field.column
    if value is None:
        return lambda _e: None
    if field.type == "num":

        def compare_num(e: Mapping[str, Any]) -> Any:
            v = e.get(column)
            if v is None:
                return None
            return op(Decimal(str(v)) if isinstance(v, float) else v, value)

        return compare_num

    def compare(e: Mapping[str, Any]) -> Any:
        v = e.get(column)
        return None if v is None else op(v, value)

    return compare


def _closure(node: Node) -> _Fn:  # noqa: C901 - one case per node kind
    if isinstance(node, Lit):
        value = node.value
        return lambda _e: value
    if isinstance(node, EvField):
        column = node.column
        if node.type == "num":

            def num(e: Mapping[str, Any]) -> Any:
                v = e.get(column)
                return Decimal(str(v)) if isinstance(v, float) else v

            return num
        return lambda e: e.get(column)
    if isinstance(node, And):
        parts = [_closure(n) for n in node.items]
        return lambda e: _and(p(e) for p in parts)
    if isinstance(node, Or):
        parts = [_closure(n) for n in node.items]
        return lambda e: _or(p(e) for p in parts)
    if isinstance(node, Not):
        inner = _closure(node.item)

        def negate(e: Mapping[str, Any]) -> Any:
            v = inner(e)
            return None if v is None else not v

        return negate
    if isinstance(node, Cmp) and isinstance(node.left, EvField) and isinstance(node.right, Lit):
        return _field_vs_literal(node.left, node.right.value, _OPS[node.op])  # the common case, one call
    if isinstance(node, Cmp):
        left, right, op = _closure(node.left), _closure(node.right), _OPS[node.op]

        def compare(e: Mapping[str, Any]) -> Any:
            a, b = left(e), right(e)
            return None if a is None or b is None else op(a, b)

        return compare
    if isinstance(node, In):
        item = _closure(node.item)
        values = [v.value for v in node.values]

        def within(e: Mapping[str, Any]) -> Any:
            v = item(e)
            return None if v is None else v in values

        return within
    if isinstance(node, Between):
        item, low, high = _closure(node.item), _closure(node.low), _closure(node.high)
        return lambda e: _and([_compare(">=", item(e), low(e)), _compare("<=", item(e), high(e))])
    if isinstance(node, IsNull):
        item = _closure(node.item)
        return lambda e: item(e) is None
    if isinstance(node, Like):
        item, pattern = _closure(node.item), like_regex(node.pattern)

        def like(e: Mapping[str, Any]) -> Any:
            v = item(e)
            return None if v is None else pattern.fullmatch(str(v)) is not None

        return like
    raise ExpressionError(f"not an event condition: {node!r}")


def _outside_strings(text: str) -> str:
    """The text with string literals blanked, to look for characters that matter only outside them."""
    return re.sub(r"'(?:[^']|'')*'", "''", text)


_CMP_OPS: dict[type[exp.Expr], Literal["=", "!=", "<", "<=", ">", ">="]] = {
    exp.EQ: "=",
    exp.NEQ: "!=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_COMPARABLE: dict[FieldType, set[FieldType]] = {
    "str": {"str"},
    "num": {"num", "int"},
    "int": {"num", "int"},
    "date": {"date"},
    "bool": {"bool"},
}


class _Checker:
    def __init__(self, text: str, vocabulary: Vocabulary, *, event_scope: bool = False):
        self.text = text
        self.vocabulary = vocabulary
        self.event_scope = event_scope
        self.tags: set[str] = set()
        self.orgs: set[str] = set()
        self.models: set[str] = set()
        self.aggregates: list[EventAgg] = []

    def fail(self, node: exp.Expr, message: str) -> ExpressionError:
        return ExpressionError(f"{message}{_where(self.text, node)}")

    # -- boolean positions
    def boolean(self, node: exp.Expr) -> Node:
        if node.comments:
            raise self.fail(node, "comments are not allowed")
        if isinstance(node, exp.Paren):
            return self.boolean(node.this)
        if isinstance(node, exp.And):
            return And(tuple(self.boolean(n) for n in node.flatten()))
        if isinstance(node, exp.Or):
            return Or(tuple(self.boolean(n) for n in node.flatten()))
        if isinstance(node, exp.Not):
            inner = node.this
            return Not(self.boolean(inner))
        if type(node) in _CMP_OPS:
            left, right = self.value(node.this), self.value(node.expression)
            left, right = self._coerce_pair(node, left, right)
            return self._cards(node, Cmp(_CMP_OPS[type(node)], left, right))
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                raise self.fail(node, "IN takes a list of values, not a subquery")
            item = self.value(node.this)
            given = [self.value(v) for v in node.expressions]
            if not given:
                raise self.fail(node, "IN needs at least one value")
            values: list[Lit] = []
            for _ in range(2):  # twice: a quoted date as the item becomes a date against a DATE value
                values = []
                for value in given:
                    item, lit = self._literal_for(node, item, value)
                    values.append(lit)
            return self._cards(node, In(item, tuple(values)))
        if isinstance(node, exp.Between):
            item = self.value(node.this)
            self._cards(node, item)
            low, high = self.value(node.args["low"]), self.value(node.args["high"])
            item, low = self._coerce_pair(node, item, low)  # each side as its comparison would take it
            item, high = self._coerce_pair(node, item, high)
            item, low = self._coerce_pair(node, item, low)  # again: the item may have become a date
            return Between(item, low, high)
        if isinstance(node, exp.Is):
            item = self.value(node.this)
            if not (isinstance(node.expression, exp.Null)):
                raise self.fail(node, "IS takes only NULL (IS NULL, IS NOT NULL)")
            return IsNull(item)
        if isinstance(node, exp.Like):
            item = self.value(node.this)
            self._cards(node, item)
            if self._type(item) != "str":
                raise self.fail(node, "LIKE needs a text field")
            pattern = node.expression
            if not (isinstance(pattern, exp.Literal) and pattern.is_string):
                raise self.fail(node, "LIKE needs a quoted pattern such as 'WM%'")
            if "\\" in pattern.this:
                raise self.fail(node, "a LIKE pattern may not contain a backslash")
            return Like(item, pattern.this)
        if isinstance(node, exp.Boolean):
            return Lit(bool(node.this), "bool")
        if isinstance(node, exp.Column | exp.Anonymous | exp.Func | exp.Identifier):
            value = self.value(node)
            if self._type(value) != "bool":
                raise self.fail(node, "this is not a condition (compare it with something)")
            if isinstance(value, Field | EvField):
                return Cmp("=", value, Lit(True, "bool"))
            return value
        raise self._refuse(node)

    def _cards(self, node: exp.Expr, built: Node) -> Node:
        """Card numbers are kept as keyed tokens (:mod:`omnibank.events.protect`): ``card_id`` compared
        with a number matches the number (a contract file simulated) or its token (the event log), and
        compares only with =, != and IN (a token has no order and no prefix)."""
        if isinstance(built, EvField) and built.name == "card_id":
            raise self.fail(node, _CARD_COMPARISONS)
        if isinstance(built, In) and isinstance(built.item, EvField) and built.item.name == "card_id":
            return In(built.item, tuple(lit for v in built.values for lit in _card_literals(v)))
        if not isinstance(built, Cmp):
            return built
        field, other = built.left, built.right
        if not isinstance(field, EvField):
            field, other = other, field
        if not (isinstance(field, EvField) and field.name == "card_id"):
            return built
        if built.op not in ("=", "!="):
            raise self.fail(node, _CARD_COMPARISONS)
        if not isinstance(other, Lit):
            return built
        match = In(field, _card_literals(other))
        return match if built.op == "=" else Not(match)

    def _refuse(self, node: exp.Expr) -> ExpressionError:
        if isinstance(node, exp.Select | exp.Subquery | exp.Query):
            return self.fail(node, "subqueries are not allowed")
        if isinstance(node, exp.Block | exp.Command):
            return self.fail(node, "only one expression is allowed")
        if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
            return self.fail(node, "arithmetic is not supported; compare a field with a value")
        return self.fail(node, f"`{node.sql(dialect='duckdb')[:60]}` is not allowed here")

    # -- value positions
    def value(self, node: exp.Expr) -> Node:
        if node.comments:
            raise self.fail(node, "comments are not allowed")
        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return Lit(node.this, "str")
            try:
                number = Decimal(node.this)
            except InvalidOperation:
                raise self.fail(node, f"{node.this} is not a number") from None
            if not number.is_finite() or abs(number) >= MAX_NUMBER or number != round(number, MAX_DECIMALS):
                raise self.fail(
                    node,
                    f"{node.this[:30]} is out of range: numbers are below 10^15 with at most "
                    f"{MAX_DECIMALS} decimals",
                )
            if number == number.to_integral_value() and "e" not in node.this.lower() and "." not in node.this:
                return Lit(int(number), "int")
            return Lit(number, "num")
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
            inner = self.value(node.this)
            assert isinstance(inner, Lit)
            assert isinstance(inner.value, int | Decimal)
            return Lit(-inner.value, inner.type)
        if isinstance(node, exp.Boolean):
            return Lit(bool(node.this), "bool")
        if isinstance(node, exp.Null):
            return Lit(None, None)
        if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
            if node.to.this == exp.DataType.Type.DATE:
                return Lit(self._date(node, node.this.this), "date")
            raise self.fail(node, "only DATE 'YYYY-MM-DD' literals may be written with a type")
        if isinstance(node, exp.Column):
            if node.table or node.args.get("db") or node.args.get("catalog"):
                raise self.fail(node, f"`{node.sql()}`: table names are not allowed; use a field name")
            return self._name(node, node.name)
        if isinstance(node, exp.Identifier):
            return self._name(node, node.name)
        if isinstance(node, exp.Anonymous | exp.Func) and not isinstance(node, exp.Cast):
            return self._function(node)
        raise self._refuse(node)

    def _name(self, node: exp.Expr, name: str) -> Node:
        lower = name.lower()
        if self.event_scope:
            if lower in EVENT_FIELDS:
                typ, column = EVENT_FIELDS[lower]
                return EvField(lower, column, typ)
            raise self.fail(
                node, f"unknown event field `{name}`; event fields: {', '.join(sorted(EVENT_FIELDS))}"
            )
        if lower in CUSTOMER_FIELDS:
            return Field(lower, CUSTOMER_FIELDS[lower][0])
        known_tags = self.vocabulary.tags
        if known_tags is not None and lower in known_tags:
            self.tags.add(lower)
            return HasTag(lower)
        if known_tags is None and TAG_PATTERN.match(lower) and lower not in FUNCTIONS:
            raise self.fail(node, f"unknown field `{name}`; fields: {', '.join(CUSTOMER_FIELDS)}")
        tags_hint = f"; tags: {', '.join(sorted(known_tags))}" if known_tags else ""
        raise self.fail(node, f"unknown field `{name}`; fields: {', '.join(CUSTOMER_FIELDS)}{tags_hint}")

    def _function(self, node: exp.Expr) -> Node:
        if isinstance(node, exp.Anonymous):
            name = str(node.this).lower()
        else:
            name = node.sql_name().lower() if isinstance(node, exp.Func) else node.key
        args = list(node.expressions) if isinstance(node, exp.Anonymous) else _func_args(node)
        if name not in FUNCTIONS:
            raise self.fail(node, f"unknown function `{name}`; functions: {', '.join(FUNCTIONS.values())}")
        if self.event_scope:
            raise self.fail(node, f"`{name}` cannot be used inside an event condition")
        usage = FUNCTIONS[name]
        if name == "has_tag":
            tag = self._string_arg(node, args, 0, usage, count=1).lower()
            known = self.vocabulary.tags
            if known is not None and tag not in known:
                listed = ", ".join(sorted(known)) or "none defined yet (omnibank tags load)"
                raise self.fail(node, f"unknown tag '{tag}'; tags: {listed}")
            self.tags.add(tag)
            return HasTag(tag)
        if name == "in_org":
            org = self._string_arg(node, args, 0, usage, count=1)
            known_orgs = self.vocabulary.orgs
            if known_orgs is not None and org not in known_orgs:
                raise self.fail(node, f"unknown org '{org}' (see: omnibank org tree)")
            self.orgs.add(org)
            return InOrg(org)
        if name == "score":
            model = self._string_arg(node, args, 0, usage, count=1).lower()
            if not MODEL_PATTERN.match(model):
                raise self.fail(node, f"'{model}' is not a model name (lower-case letters, digits, _ or -)")
            known_models = self.vocabulary.models
            if known_models is not None and model not in known_models:
                listed = ", ".join(sorted(known_models)) or "none scored yet (omnibank model score NAME)"
                raise self.fail(node, f"no stored scores of model '{model}'; scored models: {listed}")
            self.models.add(model)
            return Score(model)
        # events / amount / days_since
        windowed = name != "days_since"
        lo, hi = (2, 3) if windowed else (1, 2)
        if not lo <= len(args) <= hi:
            raise self.fail(node, f"`{name}` takes {usage}")
        etype = self._string_arg(node, args, 0, usage)
        if not TYPE_PATTERN.match(etype):
            raise self.fail(node, f"'{etype}' is not an event type (such as 'card.transaction')")
        days: int | None = None
        if windowed:
            days_node = self.value(args[1])
            if not (isinstance(days_node, Lit) and days_node.type == "int"):
                raise self.fail(node, f"`{name}`: the number of days must be a whole number")
            assert isinstance(days_node.value, int)
            days = days_node.value
            if not 1 <= days <= MAX_DAYS:
                raise self.fail(node, f"`{name}`: days must be between 1 and {MAX_DAYS}, got {days}")
        cond = None
        if len(args) == hi:
            sub = _Checker(self.text, self.vocabulary, event_scope=True)
            cond = sub.boolean(args[-1])
        kind: Literal["count", "sum", "days_since"] = (
            "count" if name == "events" else "sum" if name == "amount" else "days_since"
        )
        agg = EventAgg(kind, etype, days, cond)
        self.aggregates.append(agg)
        return agg

    def _string_arg(
        self, node: exp.Expr, args: list[exp.Expr], i: int, usage: str, count: int | None = None
    ) -> str:
        if (count is not None and len(args) != count) or len(args) <= i:
            raise self.fail(node, f"takes {usage}")
        arg = args[i]
        if not (isinstance(arg, exp.Literal) and arg.is_string):
            raise self.fail(node, f"takes {usage}: argument {i + 1} must be a quoted string")
        return str(arg.this)

    # -- types
    def _type(self, node: Node) -> FieldType | None:
        if isinstance(node, Lit):
            return node.type
        if isinstance(node, Field | EvField):
            return node.type
        if isinstance(node, EventAgg):
            return node.result_type
        if isinstance(node, Score):
            return "num"
        if isinstance(node, HasTag | InOrg):
            return "bool"
        return "bool"

    def _date(self, node: exp.Expr, text: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise self.fail(node, f"'{text}' is not a date in the form YYYY-MM-DD") from None

    def _literal_for(self, node: exp.Expr, item: Node, value: Node) -> tuple[Node, Lit]:
        if not isinstance(value, Lit):
            raise self.fail(node, "IN takes a list of values")
        item, coerced = self._coerce_pair(node, item, value)
        assert isinstance(coerced, Lit)
        return item, coerced

    def _coerce_pair(self, node: exp.Expr, left: Node, right: Node) -> tuple[Node, Node]:
        """Check that two sides can be compared; a quoted date against a date field becomes a date; an
        enumeration's value must be one it can take."""
        lt, rt = self._type(left), self._type(right)
        if isinstance(right, Lit) and right.type == "str" and lt == "date":
            assert isinstance(right.value, str)
            right = Lit(self._date(node, right.value), "date")
            rt = "date"
        if isinstance(left, Lit) and left.type == "str" and rt == "date":
            assert isinstance(left.value, str)
            left = Lit(self._date(node, left.value), "date")
            lt = "date"
        if lt is None or rt is None:
            raise self.fail(node, "compare with NULL using IS NULL or IS NOT NULL")
        if rt not in _COMPARABLE[lt]:
            raise self.fail(node, f"cannot compare {_describe(left, lt)} with {_describe(right, rt)}")
        for f, other in ((left, right), (right, left)):
            if isinstance(f, Field) and isinstance(other, Lit) and isinstance(other.value, str):
                allowed = CUSTOMER_FIELDS[f.name][1]
                if allowed and other.value not in allowed:
                    raise self.fail(node, f"{f.name}: '{other.value}' is not one of {', '.join(allowed)}")
        return left, right


_CARD_COMPARISONS = "card_id: card numbers are kept as keyed tokens; compare card_id with =, != or IN"


def _card_literals(value: Lit) -> tuple[Lit, ...]:
    """A card number as a condition looks for it: as written, and as the token the event log holds."""
    if not isinstance(value.value, str):
        return (value,)
    from omnibank.events.protect import card_token_of_home

    token = card_token_of_home(value.value)
    return (value,) if token == value.value else (value, Lit(token, "str"))


def _describe(node: Node, typ: FieldType | None) -> str:
    names = {"str": "text", "num": "a number", "int": "a number", "date": "a date", "bool": "true/false"}
    label = names.get(typ or "", "NULL")
    if isinstance(node, Field | EvField):
        return f"`{node.name}` ({label})"
    if isinstance(node, Lit):
        return f"{node.value!r} ({label})" if node.value is not None else "NULL"
    return label


def _func_args(node: exp.Expr) -> list[exp.Expr]:
    """Arguments of a function sqlglot recognised as a built-in (e.g. LEFT): only to refuse it clearly."""
    args = [node.this] if isinstance(node.this, exp.Expr) else []
    args += [v for k, v in node.args.items() if k != "this" and isinstance(v, exp.Expr)]
    return args


# ----------------------------------------------------------------------------------------- in memory


@dataclass(frozen=True)
class CustomerFacts:
    """What evaluating an expression for one customer needs."""

    attributes: Mapping[str, Value]  # the CUSTOMER_FIELDS but age and tenure_days (computed)
    tags: frozenset[str]
    org_path: str  # "/HQ/B001/S0101/"
    events: Sequence[Mapping[str, Any]]  # each with type, local_date and the log's typed columns
    scores: Mapping[str, int] = field(default_factory=dict)  # model → stored score in millionths


_NO_FACTS = CustomerFacts(attributes={}, tags=frozenset(), org_path="", events=())


def evaluate(expression: Expression, facts: CustomerFacts, as_of: date) -> bool:
    """Whether one customer matches: the same answer the compiled SQL gives (NULL counts as no)."""
    return _eval(expression.root, facts, as_of, None) is True


def _eval(node: Node, facts: CustomerFacts, as_of: date, event: Mapping[str, Any] | None) -> Value:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Field):
        if node.name == "age":
            birth = facts.attributes["birth_date"]
            return age_on(birth, as_of) if isinstance(birth, date) else None
        if node.name == "tenure_days":
            registered = facts.attributes["registered_at"]
            return (as_of - registered).days if isinstance(registered, date) else None
        return facts.attributes.get(node.name)
    if isinstance(node, EvField):
        assert event is not None
        raw = event.get(node.column)
        if isinstance(raw, float):
            return Decimal(str(raw))
        value: Value = raw
        return value
    if isinstance(node, And):
        return _and(_eval(n, facts, as_of, event) for n in node.items)
    if isinstance(node, Or):
        return _or(_eval(n, facts, as_of, event) for n in node.items)
    if isinstance(node, Not):
        inner = _eval(node.item, facts, as_of, event)
        return None if inner is None else not inner
    if isinstance(node, Cmp):
        return _compare(
            node.op, _eval(node.left, facts, as_of, event), _eval(node.right, facts, as_of, event)
        )
    if isinstance(node, In):
        item = _eval(node.item, facts, as_of, event)
        if item is None:
            return None
        return _or(_compare("=", item, v.value) for v in node.values)
    if isinstance(node, Between):
        item = _eval(node.item, facts, as_of, event)
        return _and(
            [
                _compare(">=", item, _eval(node.low, facts, as_of, event)),
                _compare("<=", item, _eval(node.high, facts, as_of, event)),
            ]
        )
    if isinstance(node, IsNull):
        return _eval(node.item, facts, as_of, event) is None
    if isinstance(node, Like):
        item = _eval(node.item, facts, as_of, event)
        if item is None:
            return None
        return like_regex(node.pattern).fullmatch(str(item)) is not None
    if isinstance(node, HasTag):
        return node.tag in facts.tags
    if isinstance(node, InOrg):
        return f"/{node.org_id}/" in facts.org_path
    if isinstance(node, EventAgg):
        return _aggregate(node, facts, as_of)
    if isinstance(node, Score):
        ppm = facts.scores.get(node.model)
        return None if ppm is None else Decimal(ppm) / SCORE_SCALE
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover


def _aggregate(agg: EventAgg, facts: CustomerFacts, as_of: date) -> Value:
    start = None if agg.days is None else as_of.toordinal() - agg.days
    hits = [
        e
        for e in facts.events
        if e["type"] == agg.type
        and e["local_date"] <= as_of
        and (start is None or e["local_date"].toordinal() > start)
        and (agg.cond is None or _eval(agg.cond, facts, as_of, e) is True)
    ]
    if agg.kind == "count":
        return len(hits)
    if agg.kind == "sum":
        return sum((Decimal(e["amount"]) for e in hits if e.get("amount") is not None), Decimal(0))
    if not hits:
        return None
    latest: date = max(e["local_date"] for e in hits)
    return (as_of - latest).days


def _and(values: Iterable[Value]) -> Value:
    seen_null = False
    for v in values:
        if v is False:
            return False
        if v is None:
            seen_null = True
    return None if seen_null else True


def _or(values: Iterable[Value]) -> Value:
    seen_null = False
    for v in values:
        if v is True:
            return True
        if v is None:
            seen_null = True
    return None if seen_null else False


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def _compare(op: str, a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    return _OPS[op](a, b)


def like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE (``%`` any run, ``_`` one character; case-sensitive) as a regular expression."""
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)
