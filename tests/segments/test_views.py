"""The segments' read layer: the list with sizes at the last snapshot, a segment's history and the diff
between its last two snapshots, each counting only a scope's customers; the matrix folded per occupation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from omnibank.customers.repository import Scope, Within, subtree_scope
from omnibank.db import unit_of_work
from omnibank.errors import AppError, NotFound
from omnibank.segments import service, views
from tests.conftest import Env
from tests.segments.bank import load_bank

MARCH_1, MARCH_2 = date(2026, 3, 1), date(2026, 3, 2)
WHOLE = Scope.whole_bank()


@pytest.fixture
def bank(env: Env, tmp_path: Path) -> Env:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    return env


def _save_and_snapshot(env: Env, text: str, as_of: date) -> service.SnapshotResult:
    with unit_of_work(env.settings) as session:
        service.save(session, name="sixty", text=text, description="60+", actor="test")
    with unit_of_work(env.settings) as session:
        return service.snapshot(session, env.settings, "sixty", as_of=as_of, actor="test")


def test_diff_between_the_last_two_snapshots(bank: Env) -> None:
    # C01 turns 60 on 1 March, C02 on 2 March; C03 (1951) and C05 (1964) are older; C04 (1995) is not
    _save_and_snapshot(bank, "age >= 60", MARCH_1)
    with unit_of_work(bank.settings) as session:
        first = views.snapshot_diff(session, "sixty", WHOLE)
        assert first.first and (first.entered, first.left) == (3, 0)
        assert first.entered_ids == ["C01", "C03", "C05"]
    _save_and_snapshot(bank, "age >= 60", MARCH_2)
    with unit_of_work(bank.settings) as session:
        second = views.snapshot_diff(session, "sixty", WHOLE)
        assert not second.first and second.previous_id == first.snapshot_id
        assert (second.entered, second.left, second.entered_ids) == (1, 0, ["C02"])
    _save_and_snapshot(bank, "age >= 61", MARCH_2)
    with unit_of_work(bank.settings) as session:
        third = views.snapshot_diff(session, "sixty", WHOLE, show=1)
        assert (third.entered, third.left) == (0, 2)
        assert third.left_ids == ["C01"]  # the first of the two, by id
        detail = views.segment_detail(session, "sixty", WHOLE)
        assert [p.members for p in detail.history] == [3, 4, 2]
        assert detail.diff == views.snapshot_diff(session, "sixty", WHOLE)


def test_a_scope_counts_only_its_customers(bank: Env) -> None:
    _save_and_snapshot(bank, "age >= 60", MARCH_1)
    _save_and_snapshot(bank, "age >= 60", MARCH_2)
    _save_and_snapshot(bank, "age >= 61", MARCH_2)
    with unit_of_work(bank.settings) as session:
        s0101 = subtree_scope(session, "S0101")  # C01 (S0101) and C02 (team T010101)
        detail = views.segment_detail(session, "sixty", s0101)
        assert [p.members for p in detail.history] == [1, 2, 0]
        assert [(p.entered, p.left) for p in detail.history] == [(1, 0), (1, 0), (0, 2)]
        assert detail.diff is not None and detail.diff.left_ids == ["C01", "C02"]
        b002 = subtree_scope(session, "B002")  # C04 and C05
        assert [p.members for p in views.segment_detail(session, "sixty", b002).history] == [1, 1, 1]
        diff = views.snapshot_diff(session, "sixty", b002)
        assert (diff.entered, diff.left, diff.left_ids) == (0, 0, [])
        assert [r.members for r in views.list_segments(session, s0101)] == [0]
        assert [r.members for r in views.list_segments(session, b002)] == [1]
        assert [r.members for r in views.list_segments(session, WHOLE)] == [2]
        assert views.list_segments(session, Scope.nothing())[0].members == 0


def test_never_snapshotted_and_unknown_segments(bank: Env) -> None:
    with unit_of_work(bank.settings) as session:
        service.save(session, name="young", text="age < 30", description="", actor="test")
    with unit_of_work(bank.settings) as session:
        [row] = views.list_segments(session, WHOLE)
        assert (row.name, row.members, row.as_of) == ("young", None, None)
        detail = views.segment_detail(session, "young", WHOLE)
        assert detail.history == [] and detail.diff is None
        with pytest.raises(AppError, match="no snapshot"):
            views.snapshot_diff(session, "young", WHOLE)
        with pytest.raises(NotFound):
            views.segment_detail(session, "nope", WHOLE)


def test_matrix_view_per_occupation_and_scope(bank: Env) -> None:
    from omnibank.tags import service as tags

    examples = Path(__file__).resolve().parents[2] / "examples" / "tags"
    with unit_of_work(bank.settings) as session:
        tags.store_definitions(session, tags.read_definitions(examples))
    with unit_of_work(bank.settings) as session:
        tags.compute_tags(session, bank.settings, as_of=MARCH_1)
    with unit_of_work(bank.settings) as session:
        everyone = views.matrix_view(session, bank.settings, as_of=MARCH_1, within=None)
        assert everyone.total == 5 and sum(everyone.row_totals) == sum(everyone.column_totals) == 5
        retired = views.matrix_view(session, bank.settings, as_of=MARCH_1, within=None, occupation="retired")
        assert retired.total == 1  # C03
        w = retired.wealth.index("wealth_private")
        assert sum(row[w] for row in retired.cells) == 1
        b002 = views.matrix_view(session, bank.settings, as_of=MARCH_1, within=Within("B002"))
        assert b002.total == 2  # C04, C05
        seniors = views.matrix_view(session, bank.settings, as_of=MARCH_1, within=Within("B002"),
                                    where="age >= 60")  # fmt: skip
        assert seniors.total == 1  # C05
        with pytest.raises(AppError, match="occupation"):
            views.matrix_view(session, bank.settings, as_of=MARCH_1, within=None, occupation="pirate")
