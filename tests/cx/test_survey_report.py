"""Survey results: NPS, CSAT and CES against hand-computed numbers and intervals, per branch and channel."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnibank.config import Settings
from omnibank.cx.survey_report import nps_interval, survey_report, wilson
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused, NotFound
from tests.cx.test_index import at, build_bank, event

D = Decimal


def responses() -> list[dict[str, Any]]:
    nps = [9, 10, 9, 10, 9, 7, 8, 7, 0, 6]  # 5 promoters, 3 passives, 2 detractors
    csat = [5, 4, 5, 4, 4, 5, 4, 5, 3, 2]  # 8 of 10 satisfied
    ces: list[int | None] = [2, 3, 4, 3, None, None, None, None, None, None]
    rows = []
    for i in range(10):
        fields: dict[str, Any] = {"survey": "nps_card", "nps": nps[i], "csat": csat[i]}
        if ces[i] is not None:
            fields["ces"] = ces[i]
        channel = "app" if i < 6 else "wechat"
        rows.append(event(i, "survey.response", "C1", at(2 + i), channel=channel, **fields))
    # answered about S0201 (the event's branch_id, not the customer's home S0101)
    rows.append(
        event(
            10, "survey.response", "C1", at(20), channel="sms", survey="nps_card", nps=10, branch_id="S0201"
        )
    )
    rows.append(event(11, "survey.response", "C3", at(21), channel="app", survey="csat_branch", csat=1))
    rows.append(
        event(12, "survey.response", "C3", at(22), channel="app", survey="nps_card", nps=11)
    )  # out of range
    return rows


@pytest.fixture
def settings(env: Any, tmp_path: Path) -> Settings:
    settings: Settings = env.settings
    build_bank(settings, tmp_path / "bank", responses())
    return settings


def test_nps_csat_ces_by_branch_against_hand_computed_numbers(settings: Settings) -> None:
    with unit_of_work(settings) as session:
        rows = {
            r.group: r for r in survey_report(session, settings, "nps_card", by="branch", period="2026-11")
        }
    assert set(rows) == {"S0101", "S0201"}
    a = rows["S0101"]
    assert (a.responses, a.nps_answers, a.promoters, a.passives, a.detractors) == (10, 10, 5, 3, 2)
    # NPS 50% − 20% = 30; variance (0.5 + 0.2 − 0.3²) / 10 = 0.061; ± 1.96 · 0.247 = ± 48.4
    assert (a.nps, a.nps_low, a.nps_high) == (D("30.0"), D("-18.4"), D("78.4"))
    # CSAT 8/10; Wilson: (0.8 + 1.92/20) / 1.384 ± 1.96 · √(0.016 + 0.0096) / 1.384
    assert (a.csat_answers, a.satisfied, a.csat, a.csat_low, a.csat_high) == (
        10,
        8,
        D("80.0"),
        D("49.0"),
        D("94.3"),
    )
    # CES 2, 3, 4, 3: mean 3, s = 0.8165, t(0.975, 3) = 3.182 → ± 1.3
    assert (a.ces_answers, a.ces, a.ces_low, a.ces_high) == (4, D("3.0"), D("1.7"), D("4.3"))
    b = rows["S0201"]  # one promoter; the customer C3's out-of-range answer counts as a response only … there
    assert (b.nps_answers, b.nps, b.nps_low, b.csat) == (1, D("100.0"), None, None)
    assert b.responses == 2


def test_by_channel_and_whole(settings: Settings) -> None:
    with unit_of_work(settings) as session:
        by_channel = {
            r.group: r for r in survey_report(session, settings, "nps_card", by="channel", period=None)
        }
        whole = survey_report(session, settings, "nps_card", by=None, period="2026-11")
        with pytest.raises(NotFound, match="no answers to survey nps_card in 2026-10"):
            survey_report(session, settings, "nps_card", by=None, period="2026-10")
        with pytest.raises(InputRefused, match="not a survey id"):
            survey_report(session, settings, "NPS card", by=None, period=None)
    assert by_channel["app"].nps == D("83.3")  # 5 promoters, 1 passive (the out-of-range answer: no score)
    assert by_channel["wechat"].nps == D("-50.0")  # 8, 7, 0, 6
    assert by_channel["sms"].nps == D("100.0")
    assert [r.group for r in whole] == ["all"]
    assert (whole[0].responses, whole[0].promoters, whole[0].detractors) == (12, 6, 2)


@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40))
def test_intervals_contain_the_estimate(p: int, passive: int, d: int) -> None:
    n = p + passive + d
    got = nps_interval(p, d, n)
    if n < 2:
        return
    assert got is not None
    nps, low, high = got
    assert -100 <= low <= nps + 1e-9 <= high + 2e-9 <= 100 + 3e-9
    share = wilson(p, n)
    assert share is not None
    assert 0 <= share[1] <= share[0] + 1e-9 <= share[2] + 2e-9 <= 100 + 3e-9
