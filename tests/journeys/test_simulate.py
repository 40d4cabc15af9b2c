"""`journey simulate`: the contact policy over a virtual clock (quiet hours in bank-local time, caps across
journeys, consent, do-not-disturb), the actions file and summary, and a store and log left untouched."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from omnibank.contact.models import ContactDnd
from omnibank.db import get_engine, unit_of_work
from omnibank.db.base import Base
from omnibank.ingest.service import load_file
from omnibank.models import import_all_models
from tests.conftest import write
from tests.events.helpers import jsonl
from tests.journeys.helpers import PLAINTEXT, example, journey, load_bank, login, of, run, view

PUSH_EVERY_LOGIN = """\
id: {id}
name: 登录推送
purpose: {purpose}
trigger: {{event: app.login}}
reentry: 1h
steps:
  - id: push
    send: {{channel: {channel}, template: 欢迎回来}}
"""


def test_quiet_hours_defer_to_eight_bank_local(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    spec = journey(PUSH_EVERY_LOGIN.format(id="p", purpose="service", channel="app_push"))
    actions, _ = run(env.settings, tmp_path, [
        login("a", "K1", "2026-03-02T13:30:00Z"),    # 21:30 in Shanghai: deferred to 08:00 the next morning
        login("b", "K2", "2026-03-02T23:59:00Z"),    # 07:59 on the 3rd in Shanghai: deferred one minute
        login("c", "S2", "2026-03-02T12:59:00Z"),    # 20:59: goes
    ], spec)  # fmt: skip
    got = [
        (a["customer_id"], a["action"], a["time"], a.get("until")) for a in actions if a.get("step") == "push"
    ]
    assert got == [
        ("S2", "send", "2026-03-02T20:59:00+08:00", None),
        ("K1", "defer", "2026-03-02T21:30:00+08:00", "2026-03-03T08:00:00+08:00"),
        ("K2", "defer", "2026-03-03T07:59:00+08:00", "2026-03-03T08:00:00+08:00"),
        ("K1", "send", "2026-03-03T08:00:00+08:00", None),
        ("K2", "send", "2026-03-03T08:00:00+08:00", None),
    ]


def test_quiet_hours_follow_the_configured_bank_zone(env, tmp_path, monkeypatch) -> None:
    from omnibank import config

    load_bank(env.settings, tmp_path / "bank")
    monkeypatch.setenv("OMNIBANK_TIMEZONE", "Europe/London")
    config.reset_settings()
    spec = journey(PUSH_EVERY_LOGIN.format(id="p", purpose="service", channel="sms"))
    actions, _ = run(config.get_settings(), tmp_path, [login("a", "K1", "2026-03-02T13:30:00Z")], spec)
    # 13:30 in London is not quiet (it would be 21:30 in Shanghai)
    assert [(a["action"], a["time"]) for a in of(actions, "send")] == [("send", "2026-03-02T13:30:00+00:00")]


def test_caps_hold_across_journeys_and_service_bypasses_them(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    a = journey(PUSH_EVERY_LOGIN.format(id="a", purpose="marketing", channel="sms"))
    b = journey(PUSH_EVERY_LOGIN.format(id="b", purpose="marketing", channel="sms"))
    c = journey(PUSH_EVERY_LOGIN.format(id="c", purpose="marketing", channel="app_push"))
    s = journey(PUSH_EVERY_LOGIN.format(id="s", purpose="service", channel="sms"))
    # Monday to Wednesday, two logins a day
    days = [
        datetime(2026, 3, 2, 10, tzinfo=UTC) + timedelta(days=d, hours=h) for d in range(3) for h in (0, 3)
    ]
    events = [login(f"l{i}", "K1", t.isoformat()) for i, t in enumerate(days)]
    actions, report = run(env.settings, tmp_path, events, a, b, c, s)
    marketing = [x for x in of(actions, "send") if x["purpose"] == "marketing"]
    per_day: dict[tuple[str, str], int] = {}
    for x in marketing:
        key = (x["channel"], x["time"][:10])
        per_day[key] = per_day.get(key, 0) + 1
    assert max(per_day.values()) == 1  # one marketing send per channel per day, whichever journey asks
    assert len(marketing) == 3  # three a natural week over all channels
    reasons = {x["reason"] for x in of(actions, "suppress")}
    assert reasons == {"cap_channel_day", "cap_week"}
    assert len(of(actions, "send", journey="s")) == 6  # service: every time
    assert report.journeys["a"].suppressed["cap_channel_day"] >= 1


def test_do_not_disturb_stops_service_too(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    with unit_of_work(env.settings) as session:
        session.add(ContactDnd(customer_id="K1", channel="all", reason="客户投诉后要求勿扰",
                               since=datetime(2026, 1, 1, tzinfo=UTC), created_by="test"))  # fmt: skip
    spec = journey(PUSH_EVERY_LOGIN.format(id="s", purpose="service", channel="sms"))
    actions, _ = run(env.settings, tmp_path, [login("a", "K1", "2026-03-02T10:00:00+08:00")], spec)
    assert [(x["action"], x["reason"]) for x in actions if x.get("step") == "push"] == [("suppress", "dnd")]


def _fingerprint(env) -> str:
    import_all_models()
    digest = hashlib.sha256()
    with get_engine(env.settings).connect() as conn:
        for table in Base.metadata.sorted_tables:
            n = conn.execute(select(func.count()).select_from(table)).scalar()
            digest.update(f"{table.name}:{n};".encode())
    log = env.settings.event_log_dir
    for f in sorted(log.rglob("*")):
        digest.update(f"{f.relative_to(log)}:{f.stat().st_size}:{f.stat().st_mtime_ns};".encode())
    return digest.hexdigest()


def test_simulate_touches_nothing_and_writes_the_actions_file(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    log_events = jsonl(tmp_path / "log.jsonl", login("old", "K1", "2026-01-01T10:00:00+08:00"))
    assert load_file("events", log_events, settings=env.settings, progress=False).loaded == 1
    before = _fingerprint(env)
    events = jsonl(tmp_path / "events.jsonl", view("v1", "K1", "2026-03-02T10:00:00+08:00"),
                   view("v2", "K3", "2026-03-02T10:00:00+08:00"))  # fmt: skip
    out = tmp_path / "actions.jsonl"
    res = cli("journey", "simulate", str(Path("examples/journeys/product_view_lead.yaml")), str(events),
              "--out", str(out))  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert _fingerprint(env) == before
    actions = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {(a["customer_id"], a["action"]) for a in actions} >= {
        ("K1", "enter"), ("K1", "lead"), ("K1", "send"), ("K3", "suppress")
    }  # fmt: skip
    for a in actions:
        assert {"time", "journey", "customer_id", "action"} <= set(a)
    assert "no_consent" in res.stdout and "B001" in res.stdout
    text_out = out.read_text(encoding="utf-8") + res.stdout
    assert not [p for p in PLAINTEXT if p in text_out]  # no names or phones in actions or summary


def test_cli_validate_and_refusal(cli, env, tmp_path) -> None:
    ok = cli("journey", "validate", "examples/journeys")
    assert ok.exit_code == 0 and ok.stdout.count("is valid") == 5
    bad = write(
        tmp_path / "bad.yaml",
        "id: x\nname: y\ntrigger: {event: app.login}\nsteps:\n  - id: a\n    wait: soon\n",
    )
    res = cli("journey", "validate", str(bad))
    assert res.exit_code == 1 and "steps.0.wait (line 6)" in res.stderr
    assert example("product_view_lead").purpose == "marketing"


def test_since_starts_scheduled_triggers_at_their_first_moment_in_the_window(env, tmp_path) -> None:
    """A manager asks about 3–20 June 2030: the weekly segment trigger (Mondays 10:00) first fires on Monday
    3 June, not weeks before from the file's first event, and nothing happens outside the window."""
    load_bank(env.settings, tmp_path / "bank")
    since = datetime.fromisoformat("2030-06-03T00:00:00+08:00")
    until = datetime.fromisoformat("2030-06-20T00:00:00+08:00")
    actions, _ = run(env.settings, tmp_path, [
        login("early", "K1", "2030-02-17T09:00:00+08:00"),   # only counts in expressions
        login("inside", "K2", "2030-06-05T09:00:00+08:00"),
        login("after", "K3", "2030-07-01T09:00:00+08:00"),   # past --until: never seen
    ], example("silver_digital_help"), since=since, until=until)  # fmt: skip
    times = sorted(datetime.fromisoformat(a["time"]) for a in actions)
    assert times and since <= times[0] and times[-1] <= until
    sends = of(actions, "send", step="branch_task")
    # S1 (71) and S2 (66) never logged in: both get the branch task on the first Monday, once (re-entry 180 d)
    assert sorted((a["customer_id"], a["time"]) for a in sends) == [
        ("S1", "2030-06-03T10:00:00+08:00"),
        ("S2", "2030-06-03T10:00:00+08:00"),
    ]


def test_since_keeps_earlier_events_out_of_triggers(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    spec = journey(PUSH_EVERY_LOGIN.format(id="p", purpose="service", channel="sms"))
    actions, report = run(env.settings, tmp_path, [
        login("a", "K1", "2026-03-02T10:00:00+08:00"),
        login("b", "K2", "2026-03-04T10:00:00+08:00"),
    ], spec, since=datetime.fromisoformat("2026-03-03T00:00:00+08:00"))  # fmt: skip
    assert [a["customer_id"] for a in of(actions, "enter")] == ["K2"]
    assert report.events == 1


def test_sends_record_the_text_the_customer_gets(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    viewed = view("v1", "K1", "2026-03-02T10:00:00+08:00", product="WM2026B07")
    actions, _ = run(env.settings, tmp_path, [viewed], example("product_view_lead"))
    texts = [a["template"] for a in actions if a.get("template") and a["action"] in ("send", "defer")]
    assert texts and all("WM2026B07" in t and "{" not in t for t in texts)
