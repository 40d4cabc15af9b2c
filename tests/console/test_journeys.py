"""The console's journeys pages: the list and one journey's report (funnel, steps, sends per channel,
uplift), for readers of campaigns only, in Chinese too."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import text

from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.journeys import runtime, views
from omnibank.journeys.simulate import simulate
from omnibank.worker.loop import work_once
from tests.console.conftest import Console
from tests.events.helpers import jsonl
from tests.journeys.helpers import EXAMPLES, card, example

TZ = ZoneInfo("Asia/Shanghai")


def run_journey(console: Console, tmp_path: Path) -> None:
    """card_activation_nudge started, two customers entered, the worker run past every step."""
    settings = console.bank.settings
    text = (EXAMPLES / "card_activation_nudge.yaml").read_text(encoding="utf-8")
    with unit_of_work(settings) as session:
        runtime.start(session, settings, example("card_activation_nudge"), source_text=text,
                      now=datetime(2026, 3, 1, tzinfo=TZ))  # fmt: skip
    events = jsonl(tmp_path / "ev.jsonl", card("c1", "CA1", "2026-03-01T09:00:00+08:00"),
                   card("c2", "CB1", "2026-03-01T09:00:00+08:00"))  # fmt: skip
    load_file("events", events, settings=settings, progress=False)
    work_once(settings, now=datetime(2026, 3, 16, 10, tzinfo=TZ), dispatch=False)


def test_list_and_report_show_the_recorded_figures(console: Console, tmp_path: Path) -> None:
    run_journey(console, tmp_path)
    console.signin("cm")
    listing = console.get("/console/journeys")
    assert listing.status_code == 200, listing.text
    assert (
        'id="journey-card_activation_nudge"' in listing.text
        and 'data-chart="journey-entries-data"' in listing.text
    )
    page = console.get("/console/journeys/card_activation_nudge")
    assert page.status_code == 200, page.text
    with unit_of_work(console.bank.settings) as session:
        report = views.report(session, "card_activation_nudge")
    f = report.figures
    assert f.entered == 2
    assert f'<strong id="entered">{f.entered}</strong>' in page.text
    assert '"type": "funnel"' in page.text and "Step push" in page.text  # a stage per step
    push = f.steps["push"]
    assert push.sent + sum(push.suppressed.values()) == f.treated
    # the sends per step and channel add up to the step's sends
    by_channel = [c for c in report.channels if c.step == "push"]
    assert sum(c.sent for c in by_channel) == push.sent
    if by_channel:
        assert 'id="channels"' in page.text
    assert "Uplift" in page.text


def test_unknown_journey_is_404_and_readers_need_campaigns_read(console: Console) -> None:
    console.signin("cm")
    assert console.get("/console/journeys/nope").status_code == 404
    assert "No journeys started yet." in console.get("/console/journeys").text
    console.client.cookies.clear()
    console.signin("agent")
    assert console.get("/console/journeys").status_code == 403


def test_chinese_heading(console: Console) -> None:
    console.signin("cm", lang="zh")
    page = console.get("/console/journeys")
    assert "<h1>客户旅程</h1>" in page.text


# -------------------------------------------------------------------------------------------- simulate

TABLES = ("journeys", "journey_entries", "journey_step_runs", "journey_offsets", "contact_messages",
          "contact_caps", "leads")  # fmt: skip


def counts(console: Console) -> dict[str, int]:
    with unit_of_work(console.bank.settings) as session:
        return {t: int(session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in TABLES}


def test_simulate_shows_what_the_simulator_finds_and_writes_nothing(console: Console, tmp_path: Path) -> None:
    run_journey(console, tmp_path)
    console.signin("cm")
    page = console.get("/console/journeys/card_activation_nudge")
    assert 'action="/console/journeys/card_activation_nudge/simulate"' in page.text
    assert ">Simulate</button>" in page.text and "Simulating…" in page.text
    before = counts(console)
    result = console.post("/console/journeys/card_activation_nudge/simulate", {"since": "", "until": ""})
    assert result.status_code == 200, result.text
    assert counts(console) == before  # read-only: nothing entered, recorded, sent or queued

    # the same spec through the simulator directly
    direct = simulate([example("card_activation_nudge")], console.bank.settings, events=None)
    expected = direct.journeys["card_activation_nudge"]
    assert expected.entered == 2
    assert f'<strong id="sim-entered">{expected.entered}</strong>' in result.text
    assert f'<strong id="sim-reached">{len(expected.contacted)}</strong>' in result.text
    assert f'<strong id="sim-sent">{sum(expected.sends.values())}</strong>' in result.text
    assert f'<strong id="sim-deferred">{expected.deferred}</strong>' in result.text
    assert f'<strong id="sim-suppressed">{sum(expected.suppressed.values())}</strong>' in result.text
    assert f'<dd id="events">{direct.events}</dd>' in result.text
    assert 'data-chart="journey-sim-actions-data"' in result.text

    # the read layer: its per-step figures add up to the simulator's totals
    with unit_of_work(console.bank.settings) as session:
        summary = views.simulate_journey(session, console.bank.settings, "card_activation_nudge")
    sim = summary.journey("card_activation_nudge")
    assert sim.steps and sim.channels  # the figures compared are not all zero
    got = (sim.entered, sim.control, sim.reached, sim.deferred, sim.converted)
    assert got == (expected.entered, expected.control, len(expected.contacted), expected.deferred,
                   expected.converted)  # fmt: skip
    assert sim.sends == dict(expected.sends) and sim.suppressed == dict(expected.suppressed)
    assert sim.spared == {k: n for k, n in direct.spared("card_activation_nudge").items() if n}
    assert [s.step for s in sim.steps] == [s for s in ("push", "sms") if any(x.step == s for x in sim.steps)]
    assert sum(s.sent for s in sim.steps) == sim.sent
    assert sum(c.suppressed for c in sim.channels) == sim.suppressed_total
    for c in sim.channels:
        assert c.channel == {"push": "app_push", "sms": "sms"}[c.step] or c.channel == ""
    if sim.channels:
        assert 'id="sim-channels"' in result.text


def test_simulate_with_a_window_reads_bank_time(console: Console, tmp_path: Path) -> None:
    run_journey(console, tmp_path)
    console.signin("cm")
    # a window that ends before the events: nothing happens
    early = console.post("/console/journeys/card_activation_nudge/simulate",
                         {"since": "2026-01-01T00:00", "until": "2026-02-01T00:00"})  # fmt: skip
    assert early.status_code == 200, early.text
    assert '<strong id="sim-entered">0</strong>' in early.text
    with unit_of_work(console.bank.settings) as session:
        windowed = views.simulate_journey(session, console.bank.settings, "card_activation_nudge",
                                          since=datetime(2026, 3, 1, tzinfo=TZ),
                                          until=datetime(2026, 3, 1, 9, 30, tzinfo=TZ))  # fmt: skip
    page = console.post("/console/journeys/card_activation_nudge/simulate",
                        {"since": "2026-03-01T00:00", "until": "2026-03-01T09:30"})  # fmt: skip
    sim = windowed.journey("card_activation_nudge")
    assert sim.entered == 2 and sim.sent == 0  # entered at 09:00 bank time; the first send waits 14 days
    assert f'<strong id="sim-entered">{sim.entered}</strong>' in page.text


def test_simulate_refuses_bad_input_and_readers_without_the_permission(console: Console) -> None:
    console.signin("cm")
    assert console.post("/console/journeys/nope/simulate").status_code == 404
    bad = console.post("/console/journeys/nope/simulate", {"since": "tomorrow"})
    assert bad.status_code == 422 and "Start: enter a date and time" in bad.text
    assert console.post("/console/journeys/nope/simulate", {"until": "0001-01-01T00:00"}).status_code == 422
    late = console.post("/console/journeys/nope/simulate",
                        {"since": "2026-03-02T00:00", "until": "2026-03-01T00:00"})  # fmt: skip
    assert late.status_code == 422 and "The end comes before the start." in late.text
    no_csrf = console.client.post("/console/journeys/nope/simulate", data={}, follow_redirects=False)
    assert no_csrf.status_code == 403
    console.client.cookies.clear()
    console.signin("rm_a")
    assert console.post("/console/journeys/nope/simulate").status_code == 403


def test_simulate_in_chinese(console: Console, tmp_path: Path) -> None:
    run_journey(console, tmp_path)
    console.signin("cm", lang="zh")
    page = console.post("/console/journeys/card_activation_nudge/simulate")
    assert page.status_code == 200, page.text
    assert "<h1>模拟测算结果：新卡激活提醒</h1>" in page.text
    assert "未发送任何消息" in page.text and "开始时间" in page.text
