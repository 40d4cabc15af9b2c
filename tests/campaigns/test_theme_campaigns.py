"""Worked examples of the two theme campaigns shipped beside the Luckin year: 红色星期五 (Fridays, bank-local)
and 9元享看 (a monthly threshold with a yearly cap and a budget), plus eligibility from a segment."""

from __future__ import annotations

from pathlib import Path

from omnibank.campaigns.spec import Budget, load_campaign
from tests.campaigns.helpers import run, spend

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "campaigns"


def test_red_friday_counts_bank_local_fridays(env, tmp_path) -> None:
    spec = load_campaign(EXAMPLES / "red_friday.yaml")
    events = [
        {**spend("f1", "A", "2026-03-13T12:00:00+08:00", "50.00"), "merchant": "美团外卖"},  # Friday: yes
        {**spend("f2", "A", "2026-03-13T19:00:00+08:00", "80.00"), "merchant": "盒马鲜生"},  # same week: no
        {**spend("t1", "B", "2026-03-12T12:00:00+08:00", "80.00"), "merchant": "美团外卖"},  # Thursday: no
        {**spend("f3", "B", "2026-03-13T12:00:00+08:00", "49.99"), "merchant": "美团外卖"},  # below 50: no
        {**spend("f4", "B", "2026-03-13T12:00:00+08:00", "60.00"), "merchant": "中国石化"},  # not a partner
        # 23:30 UTC on Thursday 19 March is 07:30 Friday 20 March in Shanghai
        {**spend("f5", "C", "2026-03-19T23:30:00Z", "60.00"), "merchant": "京东商城"},
    ]
    grants, _ = run(env.settings, tmp_path, events, spec)
    assert [(g["customer_id"], g["granted_at"]) for g in grants] == [
        ("A", "2026-03-13T12:00:00+08:00"),
        ("C", "2026-03-20T07:30:00+08:00"),
    ]
    assert {g["benefit"] for g in grants} == {"instant_discount_10"}
    assert grants[0]["claim_by"] == "2026-03-16T23:59:59+08:00"


def test_red_friday_caps_four_a_month(env, tmp_path) -> None:
    spec = load_campaign(EXAMPLES / "red_friday.yaml")
    fridays = ["2026-05-01", "2026-05-08", "2026-05-15", "2026-05-22", "2026-05-29", "2026-06-05"]
    events = [{**spend(f"f{i}", "A", f"{d}T12:00:00+08:00", "99.00"), "merchant": "盒马鲜生"}
              for i, d in enumerate(fridays)]  # fmt: skip
    grants, report = run(env.settings, tmp_path, events, spec)
    assert [g["granted_at"][:10] for g in grants] == fridays[:4] + fridays[5:]
    assert dict(report.refusals) == {("friday_spend", "cap:month"): 1}


def test_video_offer_monthly_with_yearly_cap_and_budget(env, tmp_path) -> None:
    spec = load_campaign(EXAMPLES / "video_9yuan.yaml")
    events = []
    for month in range(1, 9):
        for k in range(3):
            events.append(spend(f"a{month}-{k}", "A", f"2026-{month:02d}-{10 + k}T12:00:00+08:00"))
    events += [spend(f"b{k}", "B", f"2026-01-{20 + k}T12:00:00+08:00") for k in range(2)]  # only two
    grants, report = run(env.settings, tmp_path, events, spec)
    assert [g["granted_at"][:7] for g in grants] == [f"2026-{m:02d}" for m in range(1, 7)]  # six a year
    assert dict(report.refusals) == {("monthly_offer", "cap:year"): 2}
    tight = spec.model_copy(update={"rules": [spec.rules[0].model_copy(update={"budget": Budget(count=2)})]})
    grants, report = run(env.settings, tmp_path, events, tight)
    assert len(grants) == 2
    assert report.refusals[("monthly_offer", "budget:rule")] == 6


def test_eligibility_limits_who_takes_part(cli, env, tmp_path) -> None:
    from tests.events.helpers import jsonl
    from tests.segments.bank import load_bank

    load_bank(env.settings, tmp_path / "bank", with_events=False)  # C04 is 30, C01 and C02 are 60
    events = jsonl(tmp_path / "spend.jsonl", *[
        spend(f"{c}{k}", c, f"2026-03-{10 + k}T12:00:00+08:00") for c in ("C01", "C04") for k in range(3)
    ])  # fmt: skip
    r = cli(
        "campaign",
        "simulate",
        str(EXAMPLES / "video_9yuan.yaml"),
        str(events),
        "--out",
        str(tmp_path / "g.jsonl"),
    )
    assert r.exit_code == 0, r.stderr
    customers = {line.split('"customer_id":"')[1].split('"')[0] for line in (tmp_path / "g.jsonl").open()}
    assert customers == {"C04"}
