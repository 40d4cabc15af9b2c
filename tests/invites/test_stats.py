"""What the codes brought in: a worked example of every figure, the roll-up property (a unit's figure is the
sum of its children's at every level), scoping, leaderboards and the CLI."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import delete

from omnibank.campaigns.models import Campaign, CampaignGrant
from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.errors import NotFound
from omnibank.invites import stats, views
from omnibank.invites.models import InviteBinding
from omnibank.orgs.models import Org
from tests.invites.helpers import NOW, bind, event, load_bank, load_events


@pytest.fixture
def bank(env, tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    settings: Settings = env.settings
    code = load_bank(settings, tmp_path / "bank")
    # N1 by E00001 (S0101), N2 by E00009 (team T010101 under S0101), N4 by E00002 (S0201)
    load_events(settings, tmp_path / "e.jsonl", [
        event("N1", "2026-11-02T09:00:00+08:00", code["E00001"], channel="wechat"),
        event("N2", "2026-11-03T09:00:00+08:00", code["E00009"]),
        event("N4", "2026-11-20T09:00:00+08:00", code["E00002"]),
        event("N1", "2026-11-05T09:00:00+08:00", type_="card.issued", card_id="K1", product="luckin_cobrand",
              tier="gold", primary=True, new_customer=True),
        event("N1", "2026-11-06T09:00:00+08:00", type_="card.transaction", card_id="K1", amount="100.50"),
        event("N1", "2026-12-10T09:00:00+08:00", type_="card.transaction", card_id="K1", amount="999.00"),
        event("N4", "2026-11-25T09:00:00+08:00", type_="card.transaction", card_id="K4", amount="20.00"),
    ])  # fmt: skip
    bind(settings)
    with unit_of_work(settings) as session:  # N2 took part in a campaign after being bound
        session.add(Campaign(id="luckin", name="瑞幸联名卡", definition="{}", status="active", started_at=NOW,
                             updated_at=NOW))  # fmt: skip
        session.flush()
        session.add(CampaignGrant(key="g1", campaign="luckin", rule="r", customer_id="N2", benefit="coffee",
                                  granted_at=datetime(2026, 11, 4, tzinfo=UTC), valid_from=NOW, event_id="x",
                                  local_date=date(2026, 11, 4)))  # fmt: skip
    return settings, code


def _report(settings: Settings, reach: stats.Reach = stats.Reach(), **kw: object) -> stats.Report:
    period = kw.pop("period", stats.Period(None, None))
    as_of = kw.pop("as_of", date(2026, 12, 31))
    with unit_of_work(settings) as session:
        return stats.report(session, settings, reach=reach, period=period, as_of=as_of, **kw)  # type: ignore[arg-type]


def test_every_figure_on_a_worked_example(bank) -> None:
    settings, code = bank
    rep = _report(settings)
    assert (rep.total.invited, rep.total.participated, rep.total.converted) == (3, 1, 1)
    assert rep.total.amount == Decimal("120.50")  # N1's 100.50 within 30 days (not the 999 in December) + 20
    by_staff = {n.key: n for n in rep.rows("staff")}
    assert by_staff["E00001"].figures == stats.Figures(1, 0, 1, 10050)
    assert by_staff["E00001"].code == code["E00001"]
    assert by_staff["E00009"].figures == stats.Figures(1, 1, 0, 0)
    assert by_staff["E00002"].figures == stats.Figures(1, 0, 0, 2000)
    branches = {n.key: n.figures.invited for n in rep.rows("branch")}
    assert branches == {"B001": 2, "B002": 1}
    teams = {n.key: (n.direct, n.figures.invited) for n in rep.rows("team")}
    assert teams == {"T010101": (False, 1), "S0101*": (True, 1), "S0201*": (True, 1)}  # direct staff rows
    assert _report(settings, days=60).total.amount == Decimal(
        "1119.50"
    )  # the December spend is within 60 days
    with_campaign = _report(settings, campaign="luckin")
    assert (with_campaign.total.participated, with_campaign.total.converted) == (1, 0)
    assert with_campaign.total.amount == Decimal("0")  # only participants' spend
    november_2 = _report(settings, period=stats.Period(date(2026, 11, 2), date(2026, 11, 2)))
    assert november_2.total.invited == 1  # the period is the binding's bank-local day
    with pytest.raises(NotFound, match="no campaign nope"):
        _report(settings, campaign="nope")


def test_an_rm_sees_their_own_figures_and_a_branch_manager_their_subtree(bank) -> None:
    settings, _ = bank
    with unit_of_work(settings) as session:
        rm = views.reach_of(session, whole_bank=False, org_id="S0101", role="rm", staff_id="E00001")
        manager = views.reach_of(
            session, whole_bank=False, org_id="B001", role="branch_manager", staff_id="E00003"
        )
        with pytest.raises(NotFound):
            stats.narrowed(session, manager, "B002")
    assert {n.key for n in _report(settings, rm).rows("staff")} == {"E00001"}
    assert {n.key for n in _report(settings, manager).rows("staff")} == {"E00001", "E00009"}
    assert _report(settings, stats.Reach(org_path="/HQ/B002/")).total.invited == 1


def test_the_leaderboard_ranks_by_the_metric_asked(bank) -> None:
    settings, _ = bank
    rep = _report(settings)
    assert [(r, n.key) for r, n in stats.leaderboard(rep, by="branch")] == [(1, "B001"), (2, "B002")]
    by_amount = stats.leaderboard(rep, by="staff", metric="amount", top=2)
    assert [n.key for _, n in by_amount] == ["E00001", "E00002"]


# -- the roll-up property -----------------------------------------------------------------------------------

_STAFF_AT = {"E00001": "S0101", "E00002": "S0201", "E00003": "B001", "E00009": "T010101", "E00004": "HQ"}


@given(
    st.lists(st.tuples(st.sampled_from(sorted(_STAFF_AT)), st.integers(0, 60), st.booleans()), max_size=40)
)
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_unit_is_the_sum_of_its_children(env_bank, bindings: list[tuple[str, int, bool]]) -> None:
    settings, paths = env_bank
    with unit_of_work(settings) as session:
        session.execute(delete(InviteBinding))
        for i, (staff_id, day, moved) in enumerate(bindings):
            org = "S0102" if moved and staff_id == "E00001" else _STAFF_AT[staff_id]  # bound before a move
            at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=day)
            session.add(InviteBinding(customer_id=f"X{i}", code=_codes(settings)[staff_id], staff_id=staff_id,
                                      org_id=org, org_path=paths[org], event_id=f"e{i}", bound_at=at,
                                      recorded_at=at))  # fmt: skip
    rep = _report(settings)
    assert rep.total.invited == len(bindings)
    for node in rep.nodes.values():
        if node.level == "staff":
            continue
        children = rep.children(node.key)
        summed = stats.Figures()
        for child in children:
            summed.add(child.figures)
        assert node.figures == summed, node.key
    for level in ("staff", "team", "subbranch", "branch"):
        summed = stats.Figures()
        for row in rep.rows(level):  # type: ignore[arg-type]
            summed.add(row.figures)
        assert summed == rep.total, level


_CODE_CACHE: dict[str, dict[str, str]] = {}


def _codes(settings: Settings) -> dict[str, str]:
    from omnibank.invites import codes

    key = str(settings.home_dir)
    if key not in _CODE_CACHE:
        with unit_of_work(settings) as session:
            _CODE_CACHE[key] = {s: c.code for s, c in codes.live_codes(session).items()}
    return _CODE_CACHE[key]


@pytest.fixture
def env_bank(env, tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    settings: Settings = env.settings
    load_bank(settings, tmp_path / "bank")
    with unit_of_work(settings) as session:
        paths = {o.org_id: o.path for o in session.query(Org)}
    return settings, paths


def test_the_cli_prints_and_writes_the_report(bank, cli, tmp_path: Path) -> None:
    out = tmp_path / "stats.csv"
    result = cli("invites", "stats", "--by", "branch", "--out", str(out))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "total: invited 3" in result.stdout
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["unit"], r["invited"], r["amount"]) for r in rows] == [
        ("B001", "2", "100.50"),
        ("B002", "1", "20.00"),
    ]
    board = cli("invites", "leaderboard", "--by", "staff", "--top", "1", "--format", "json")
    assert '"unit":"E00001"' in board.stdout or '"unit":"E00002"' in board.stdout
    bad = cli("invites", "stats", "--by", "region")
    assert bad.exit_code != 0 and "--by" in bad.stderr
    refused = cli("invites", "refusals")
    assert refused.exit_code == 0 and "no refused binding" in refused.stdout


def test_the_facts_kept_with_bindings_follow_later_files(bank, tmp_path: Path) -> None:
    """Spend and cards loaded after the binding reach the stored figures, which match the figures computed
    from the log (the same conversion written differently takes that path)."""
    settings, _ = bank
    load_events(settings, tmp_path / "later.jsonl", [
        event("N2", "2026-11-20T09:00:00+08:00", type_="card.issued", card_id="K2", product="luckin_cobrand",
              tier="gold", primary=True, new_customer=True),
        event("N2", "2026-11-21T09:00:00+08:00", type_="card.transaction", card_id="K2", amount="7.25"),
        event("N2", "2026-12-20T09:00:00+08:00", type_="card.transaction", card_id="K2", amount="1000.00"),
        event("N1", "2026-11-30T09:00:00+08:00", type_="card.transaction", card_id="K1", amount="0.25"),
    ])  # fmt: skip
    bind(settings)
    stored = _report(settings)
    assert (stored.total.converted, stored.total.amount) == (2, Decimal("128.00"))  # 120.50 + 7.25 + 0.25
    computed = _report(settings, convert=stats.DEFAULT_CONVERT + " ")  # not the default text: from the log
    assert [(g.staff_id, g.figures) for g in sorted(computed.groups, key=lambda g: g.staff_id)] == [
        (g.staff_id, g.figures) for g in sorted(stored.groups, key=lambda g: g.staff_id)
    ]
    november = _report(settings, period=stats.Period(date(2026, 11, 1), date(2026, 11, 30)))
    assert november.total.converted == 2
    as_of_19th = _report(settings, as_of=date(2026, 11, 19))  # N2's card came on the 20th: not yet converted
    assert as_of_19th.total.converted == 1
    from_log = _report(settings, as_of=date(2026, 11, 19), convert=stats.DEFAULT_CONVERT + " ")
    assert from_log.total.converted == 1
