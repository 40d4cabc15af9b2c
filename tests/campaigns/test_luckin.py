"""Worked examples of the Huaxia × Luckin co-branded card year (seed 002), every rule at its boundaries,
run through `campaign simulate` exactly as a campaign manager would backtest it."""

from __future__ import annotations

from tests.campaigns.helpers import card, exchange, of, points, run, spend


def test_welcome_needs_99_inclusive_within_60_days_of_issue(env, tmp_path) -> None:
    grants, _ = run(env.settings, tmp_path, [
        card("c1", "A", "2026-03-01T10:00:00+08:00"),
        spend("t1", "A", "2026-03-05T12:00:00+08:00", "98.99"),  # below the threshold
        card("c2", "B", "2026-03-01T10:00:00+08:00"),
        spend("t2", "B", "2026-04-30T23:59:00+08:00", "99.00"),  # day 60: inclusive
        card("c3", "C", "2026-03-01T10:00:00+08:00"),
        spend("t3", "C", "2026-05-01T00:01:00+08:00", "500.00"),  # day 61: too late
    ])  # fmt: skip
    welcome = of(grants, "welcome")
    assert {g["customer_id"] for g in welcome} == {"B"}
    assert len(welcome) == 6
    assert {g["face_value"] for g in welcome} == {"26.00"}


def test_welcome_is_for_new_primary_gold_cards_only_and_once(env, tmp_path) -> None:
    grants, _ = run(env.settings, tmp_path, [
        card("c1", "PLAT", "2026-03-01T10:00:00+08:00", tier="platinum"),
        spend("t1", "PLAT", "2026-03-02T10:00:00+08:00", "120.00"),
        card("c2", "OLD", "2026-03-01T10:00:00+08:00", new=False),
        spend("t2", "OLD", "2026-03-02T10:00:00+08:00", "120.00"),
        card("c3", "SUPP", "2026-03-01T10:00:00+08:00", primary=False),
        spend("t3", "SUPP", "2026-03-02T10:00:00+08:00", "120.00"),
        card("c4", "G", "2026-03-01T10:00:00+08:00"),
        spend("t4", "G", "2026-03-02T10:00:00+08:00", "120.00"),
        spend("t5", "G", "2026-03-03T10:00:00+08:00", "120.00"),  # a second qualifying spend: no second gift
    ])  # fmt: skip
    assert {g["customer_id"] for g in of(grants, "welcome")} == {"G"}
    assert len(of(grants, "welcome")) == 6


def test_welcome_vouchers_take_effect_three_a_month(env, tmp_path) -> None:
    grants, _ = run(env.settings, tmp_path, [
        card("c1", "A", "2026-03-20T10:00:00+08:00"),
        spend("t1", "A", "2026-03-25T18:30:00+08:00", "99.00"),
    ])  # fmt: skip
    welcome = sorted(of(grants, "welcome"), key=lambda g: g["valid_from"])
    starts = [g["valid_from"] for g in welcome]
    assert starts[:3] == ["2026-03-25T18:30:00+08:00"] * 3
    assert starts[3:] == ["2026-04-01T00:00:00+08:00"] * 3  # the rest on the 1st of the next month
    assert {g["claim_by"] for g in welcome} == {"2026-04-24T23:59:59+08:00"}  # claim within 30 days
    assert welcome[0]["valid_to"] == "2026-04-24T23:59:59+08:00"  # each valid 30 days
    assert welcome[5]["valid_to"] == "2026-05-01T23:59:59+08:00"


def test_weekly_counts_three_spends_in_a_natural_week(env, tmp_path) -> None:
    grants, _ = run(env.settings, tmp_path, [
        card("c1", "A", "2026-03-01T10:00:00+08:00"),
        # Mon 2 Mar … Sun 8 Mar 23:30 local: three spends in one natural week
        spend("t1", "A", "2026-03-02T09:00:00+08:00"),
        spend("t2", "A", "2026-03-05T09:00:00+08:00"),
        spend("t3", "A", "2026-03-08T23:30:00+08:00"),
        spend("t4", "A", "2026-03-08T23:40:00+08:00"),  # a fourth in the same week: nothing more
        # Sun 15 Mar 23:30 local is still week 11; Mon 16 Mar 00:30 local starts week 12
        spend("t5", "A", "2026-03-14T09:00:00+08:00"),
        spend("t6", "A", "2026-03-15T23:30:00+08:00"),
        spend("t7", "A", "2026-03-16T00:30:00+08:00"),
    ])  # fmt: skip
    weekly = of(grants, "weekly")
    assert [g["granted_at"] for g in weekly] == ["2026-03-08T23:30:00+08:00"]
    assert weekly[0]["claim_by"] == "2026-03-15T23:59:59+08:00"  # within 7 days of qualifying
    assert weekly[0]["face_value"] == "26.00"


def test_weekly_week_boundary_is_bank_local(env, tmp_path) -> None:
    # 15:30Z on Sunday 8 March is 23:30 Sunday in Shanghai; 16:30Z is 00:30 Monday 9 March
    grants, _ = run(env.settings, tmp_path, [
        card("c1", "A", "2026-03-01T10:00:00+08:00", tier="platinum"),
        spend("t1", "A", "2026-03-07T10:00:00+08:00"),
        spend("t2", "A", "2026-03-08T10:00:00+08:00"),
        spend("t3", "A", "2026-03-08T16:30:00Z"),  # Monday local: a new week
        card("c2", "B", "2026-03-01T10:00:00+08:00", tier="platinum"),
        spend("u1", "B", "2026-03-07T10:00:00+08:00"),
        spend("u2", "B", "2026-03-08T10:00:00+08:00"),
        spend("u3", "B", "2026-03-08T15:30:00Z"),  # still Sunday local
    ])  # fmt: skip
    weekly = of(grants, "weekly")
    assert [g["customer_id"] for g in weekly] == ["B"]
    assert weekly[0]["face_value"] == "29.00"  # platinum


def test_a_repeated_event_counts_once(env, tmp_path) -> None:
    grants, _ = run(env.settings, tmp_path, [
        card("c1", "A", "2026-03-01T10:00:00+08:00"),
        spend("t1", "A", "2026-03-02T09:00:00+08:00"),
        spend("t2", "A", "2026-03-03T09:00:00+08:00"),
        spend("t2", "A", "2026-03-03T09:00:00+08:00"),  # the same event again
    ])  # fmt: skip
    assert of(grants, "weekly") == []


def test_weekly_is_capped_at_52_a_year(env, tmp_path) -> None:
    from datetime import date, timedelta

    # 2026 has 53 natural weeks with days in it: Thu 1 – Sun 4 January, then 52 weeks from Monday 5 January
    events = [card("c1", "A", "2025-12-01T10:00:00+08:00")]  # issued before the campaign: still qualifies
    events += [spend(f"jan-{d}", "A", f"2026-01-0{d}T12:00:00+08:00") for d in (1, 2, 3)]
    for week in range(52):
        for k in range(3):
            d = date(2026, 1, 5) + timedelta(days=7 * week + k)
            events.append(spend(f"w{week}-{k}", "A", f"{d}T12:00:00+08:00"))
    grants, report = run(env.settings, tmp_path, events)
    weekly = of(grants, "weekly")
    assert len(weekly) == 52
    assert weekly[-1]["granted_at"] == "2026-12-23T12:00:00+08:00"  # the 52nd: week of 21 December
    assert dict(report.refusals) == {("weekly", "cap:year"): 1}  # the week of 28 December


def test_points_exchange_caps_and_points(env, tmp_path) -> None:
    grants, report = run(env.settings, tmp_path, [
        card("c1", "A", "2026-03-01T10:00:00+08:00", new=False),  # any primary card holder may exchange
        points("p1", "A", "2026-03-01T11:00:00+08:00", 10_000),
        exchange("x1", "A", "2026-03-02T10:00:00+08:00", 2),
        exchange("x2", "A", "2026-03-03T10:00:00+08:00", 2),  # 1 more fits the month's 3
        exchange("x3", "A", "2026-04-01T00:10:00+08:00", 3),  # a new month
        exchange("x4", "A", "2026-05-01T10:00:00+08:00", 3),  # only 10,000 points: 4 left … 10 - 3 - 3 = 4
        exchange("x5", "A", "2026-06-01T10:00:00+08:00", 3),
    ])  # fmt: skip
    months = [g["granted_at"][:7] for g in of(grants, "points_exchange")]
    assert months.count("2026-03") == 3
    assert months.count("2026-04") == 3
    assert months.count("2026-05") == 3
    assert months.count("2026-06") == 1  # 10,000 points buy 10 vouchers
    refused = {(rule, reason): n for (rule, reason), n in report.refusals.items()}
    assert refused == {("points_exchange", "cap:month"): 1, ("points_exchange", "insufficient_points"): 2}


def test_checkin_map_unlocks_stages_in_order(env, tmp_path) -> None:
    from datetime import date, timedelta

    events = [
        card("c1", "A", "2026-01-05T10:00:00+08:00"),
        spend("big", "A", "2026-01-06T10:00:00+08:00", "150"),
    ]
    monday = date(2026, 1, 12)
    for week in range(8):  # welcome (6 vouchers × 2 icons = 12) + 8 weekly = 20 icons
        for k in range(3):
            events.append(
                spend(f"w{week}-{k}", "A", f"{monday + timedelta(days=7 * week + k)}T12:00:00+08:00")
            )
    grants, _ = run(env.settings, tmp_path, events)
    stage = of(grants, "checkin_map")
    assert [(g["stage"], g["benefit"], g.get("discount_rate")) for g in stage] == [
        (1, "installment_discount", "0.75"),
        (1, "blind_box", None),
    ]
    assert stage[0]["granted_at"] == of(grants, "weekly")[-1]["granted_at"]  # the 20th icon unlocked it


def test_the_whole_year_lights_100_icons_and_all_five_stages(env, tmp_path) -> None:
    from datetime import date, timedelta

    events = [
        card("c1", "A", "2025-12-29T10:00:00+08:00", tier="platinum"),
        card("c2", "A", "2026-01-02T10:00:00+08:00"),  # a gold card too: welcome is for gold
        spend("big", "A", "2026-01-03T10:00:00+08:00", "99.00"),
        points("p", "A", "2026-01-01T09:00:00+08:00", 36_000),
    ]
    for week in range(53):
        for k in range(3):
            events.append(
                spend(
                    f"w{week}-{k}", "A", f"{date(2025, 12, 29) + timedelta(days=7 * week + k)}T12:00:00+08:00"
                )
            )
    for month in range(1, 13):
        events.append(exchange(f"x{month}", "A", f"2026-{month:02d}-15T10:00:00+08:00", 3))
    grants, _ = run(env.settings, tmp_path, events)
    assert len(of(grants, "welcome")) == 6 and len(of(grants, "weekly")) == 52
    assert len(of(grants, "points_exchange")) == 36
    rates = [g["discount_rate"] for g in of(grants, "checkin_map") if g["benefit"] == "installment_discount"]
    assert rates == ["0.75", "0.7", "0.65", "0.6", "0.5"]
    assert sum(1 for g in of(grants, "checkin_map") if g["benefit"] == "blind_box") == 5
