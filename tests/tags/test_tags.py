"""Tags: definitions from YAML (refused clearly when wrong), computed in dependency order, stored per
customer with the history of gains and losses; the shipped examples give the same counts on every
engine."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from omnibank.db import unit_of_work
from omnibank.demo.generator import generate
from omnibank.errors import AppError, InputRefused
from omnibank.events.mirror import mirror_events
from omnibank.ingest.service import load_file
from omnibank.segments.engine import StoreEngine, customer_facts, duck_engine, parse_in
from omnibank.segments.expr import evaluate
from omnibank.tags import service
from omnibank.tags.models import CustomerTag, CustomerTagChange
from tests.conftest import ON_POSTGRES, write
from tests.segments.bank import load_bank

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tags"


def define(env, tmp_path: Path, yaml_text: str) -> list[str]:
    specs = service.read_definitions(write(tmp_path / "tags.yaml", yaml_text))
    with unit_of_work(env.settings) as session:
        return service.store_definitions(session, specs)


def compute(env, as_of: date) -> service.ComputeReport:
    with unit_of_work(env.settings) as session:
        return service.compute_tags(session, env.settings, as_of=as_of)


def carriers(env, tag: str) -> list[str]:
    with unit_of_work(env.settings) as session:
        return sorted(session.scalars(select(CustomerTag.customer_id).where(CustomerTag.tag == tag)))


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("- name: a\n  category: wealth\n  expression: [", "not valid YAML"),
        ("name: a", "expected a list of tags"),
        ("- name: a\n  category: wealth\n  expression: aum > 1\n  colour: red", "unknown key(s) colour"),
        ("- name: a\n  category: wealth", "missing expression"),
        ("- name: Big-Spender\n  category: wealth\n  expression: aum > 1", "a name is lower-case"),
        ("- name: age\n  category: wealth\n  expression: aum > 1", "taken by a field"),
        ("- name: a\n  category: vip\n  expression: aum > 1", "category must be one of"),
        ("- name: a\n  category: wealth\n  expression: aum > 1\n" * 2, "defined twice"),
        ("- name: a\n  category: wealth\n  expression: aum > ", "tag 'a': syntax error"),
        ("- name: a\n  category: wealth\n  expression: has_tag('zzz')", "tag 'a': unknown tag 'zzz'"),
    ],
)
def test_bad_definitions_are_refused_naming_file_and_tag(env, tmp_path, yaml_text, expected) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    with pytest.raises(InputRefused) as info:
        define(env, tmp_path, yaml_text)
    assert expected in info.value.message
    assert "tags.yaml" in info.value.message
    with unit_of_work(env.settings) as session:  # nothing stored
        assert session.scalar(select(CustomerTag).limit(1)) is None


def test_a_cycle_is_refused(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    with pytest.raises(AppError, match="cycle: a → b → a"):
        define(
            env,
            tmp_path,
            "- name: a\n  category: other\n  expression: b\n- name: b\n  category: other\n  expression: a\n",
        )


def test_compute_keeps_history_of_gains_and_losses(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    define(
        env,
        tmp_path,
        """
- name: active_30
  category: channel
  expression: events('app.login', 30) > 0
- name: active_rich
  category: other
  description: uses the tag above, computed first
  expression: active_30 AND aum >= 50000
""",
    )
    first = compute(env, date(2026, 3, 1))
    assert {r.tag: (r.members, r.gained, r.lost) for r in first.results} == {
        "active_30": (2, 2, 0),
        "active_rich": (1, 1, 0),
    }
    assert carriers(env, "active_30") == ["C01", "C02"]
    assert carriers(env, "active_rich") == ["C02"]  # saw active_30 as just computed

    again = compute(env, date(2026, 3, 1))
    assert again.gained == 0 and again.lost == 0

    later = compute(env, date(2026, 3, 4))  # C02's last login (1 Feb) left the 30-day window
    assert carriers(env, "active_30") == ["C01"]
    assert carriers(env, "active_rich") == []
    assert later.lost == 2
    with unit_of_work(env.settings) as session:
        history = session.execute(
            select(CustomerTagChange.tag, CustomerTagChange.change, CustomerTagChange.as_of)
            .where(CustomerTagChange.customer_id == "C02")
            .order_by(CustomerTagChange.id)
        ).all()
        assert [tuple(h) for h in history] == [
            ("active_30", "gained", date(2026, 3, 1)),
            ("active_rich", "gained", date(2026, 3, 1)),
            ("active_30", "lost", date(2026, 3, 4)),
            ("active_rich", "lost", date(2026, 3, 4)),
        ]
        since = session.scalar(select(CustomerTag.since).where(CustomerTag.customer_id == "C01"))
        assert since == date(2026, 3, 1)  # kept from when it was gained


def test_the_example_tags_agree_on_every_engine(env, tmp_path) -> None:
    """Every shipped example expression: DuckDB = in-memory, and = PostgreSQL when the suite runs there."""
    files = generate(
        tmp_path / "demo", customers=300, seed=5, start=date(2026, 1, 1), days=200, progress=False
    )
    for kind, path in zip(("orgs", "staff", "customers", "events"), files.paths, strict=True):
        load_file(kind, path, settings=env.settings, progress=False)
    specs = service.read_definitions(EXAMPLES)
    assert {s.category for s in specs} >= {
        "lifecycle",
        "wealth",
        "silver",
        "digital",
        "consumption",
        "channel",
    }
    as_of = date(2026, 7, 19)
    with unit_of_work(env.settings) as session:
        service.store_definitions(session, specs)
    report = compute(env, as_of)
    sizes = {r.tag: r.members for r in report.results}
    category = {s.name: s.category for s in specs}
    assert sum(n for t, n in sizes.items() if category[t] == "wealth") == 300  # tiers cover everyone once
    assert sum(n for t, n in sizes.items() if category[t] == "lifecycle") == 300  # one stage each
    with unit_of_work(env.settings) as session:
        ids = [f"C{i:06d}" for i in range(1, 301)]
        facts = customer_facts(session, env.settings, ids)
        if ON_POSTGRES:
            mirror_events(session, env.settings)
        with duck_engine(session, env.settings) as duck:
            for spec in specs:
                expression = parse_in(session, spec.expression)
                got = duck.ids(expression, as_of).to_pylist()
                assert len(got) == sizes[spec.name], spec.name
                assert got == sorted(c for c, f in facts.items() if evaluate(expression, f, as_of)), spec.name
                if ON_POSTGRES:
                    assert StoreEngine(session, env.settings.timezone).count(expression, as_of) == len(got), (
                        spec.name
                    )
