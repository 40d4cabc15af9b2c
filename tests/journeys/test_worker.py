"""The worker over the store: journeys started, events loaded into the log, steps run at the right times
through the contact policy and the leads service; a step never runs twice."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from omnibank.contact.models import ContactMessage
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.journeys import runtime
from omnibank.journeys.models import JourneyEntry, JourneyStepRun
from omnibank.journeys.spec import JourneySpec
from omnibank.leads.models import Lead
from omnibank.worker.loop import LoopReport, work_once
from tests.events.helpers import jsonl
from tests.journeys.helpers import EXAMPLES, card, example, lead_event, load_bank, spend, view

TZ = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def start(env, spec: JourneySpec, now: datetime) -> None:
    text = (EXAMPLES / f"{spec.id}.yaml").read_text(encoding="utf-8")
    with unit_of_work(env.settings) as session:
        runtime.start(session, env.settings, spec, source_text=text, now=now)


def load(env, tmp: Path, *events: dict) -> None:
    path = jsonl(tmp / f"ev-{len(list(tmp.glob('ev-*')))}.jsonl", *events)
    report = load_file("events", path, settings=env.settings, progress=False)
    assert report.rejected == 0


def work(env, now: datetime) -> LoopReport:
    return work_once(env.settings, now=now, dispatch=False)


def runs(env, **where: str) -> list[JourneyStepRun]:
    with unit_of_work(env.settings) as session:
        q = select(JourneyStepRun).order_by(JourneyStepRun.at, JourneyStepRun.key)
        for k, v in where.items():
            q = q.where(getattr(JourneyStepRun, k) == v)
        return list(session.scalars(q))


def test_product_view_becomes_a_lead_then_an_sms_when_nobody_calls(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    start(env, example("product_view_lead"), at("2026-03-01T00:00:00"))
    load(env, tmp_path, view("v1", "K1", "2026-03-02T10:00:00+08:00"),
         view("v2", "K2", "2026-03-02T11:00:00+08:00"),
         view("v3", "K2", "2026-03-02T11:30:00+08:00", seconds=20))  # fmt: skip
    r = work(env, at("2026-03-02T12:00:00"))
    assert (r.entered, r.leads) == (2, 2)
    with unit_of_work(env.settings) as session:
        leads = {ld.customer_id: ld for ld in session.scalars(select(Lead))}
    assert {c: (ld.owner_staff_id, ld.product_id) for c, ld in leads.items()} == {
        "K1": ("E00001", "WM2026A01"), "K2": ("E00002", "WM2026A01")
    }  # fmt: skip
    assert leads["K1"].due_at == at("2026-03-04T10:00:00")
    # K2's RM calls on the next day: the lead.contacted event ends K2's journey
    contacted = lead_event(
        "lc1", "K2", "2026-03-03T09:00:00+08:00", lead_id=leads["K2"].lead_id, staff_id="E00002",
        product_id="WM2026A01", source="journey:product_view_lead",
    )  # fmt: skip
    load(env, tmp_path, contacted)
    work(env, at("2026-03-03T09:05:00"))
    assert runs(env, kind="send") == []
    r = work(env, at("2026-03-04T10:01:00"))
    sends = runs(env, kind="send")
    assert [(s.customer_id, s.channel, s.outcome) for s in sends] == [("K1", "sms", "send")]
    with unit_of_work(env.settings) as session:
        assert session.scalar(select(func.count()).select_from(ContactMessage)) == 1
        statuses = dict(session.execute(select(JourneyEntry.customer_id, JourneyEntry.status)).all())
    assert statuses == {"K1": "done", "K2": "done"}
    # running again changes nothing
    r = work(env, at("2026-03-05T10:00:00"))
    assert (r.claimed, r.entered) == (0, 0)
    assert len(runs(env, kind="send")) == 1


def test_card_nudge_stops_at_the_first_transaction_and_spares_the_control_group(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    start(env, example("card_activation_nudge"), at("2026-03-01T00:00:00"))
    # K1 falls in the journey's 10% control group (deterministic by customer and journey)
    load(env, tmp_path, *(card(f"c{c}", c, "2026-03-01T09:00:00+08:00") for c in ("K1", "K2", "S2")))
    work(env, at("2026-03-01T10:00:00"))
    work(env, at("2026-03-15T09:30:00"))  # 14 days: a push each
    load(
        env,
        tmp_path,
        spend("t1", "K2", "2026-03-16T12:00:00+08:00"),
        spend("t2", "K1", "2026-03-16T13:00:00+08:00"),
    )
    work(env, at("2026-03-16T13:05:00"))
    work(env, at("2026-03-22T09:30:00"))  # 7 more days: an SMS for S2 only
    sends = [(s.customer_id, s.step, s.channel) for s in runs(env, kind="send")]
    assert sends == [("K2", "push", "app_push"), ("S2", "push", "app_push"), ("S2", "sms", "sms")]
    assert [(r.customer_id, r.control) for r in runs(env, kind="convert")] == [("K2", False), ("K1", True)]
    with unit_of_work(env.settings) as session:
        statuses = dict(session.execute(select(JourneyEntry.customer_id, JourneyEntry.status)).all())
    assert statuses == {"K1": "control", "K2": "converted", "S2": "done"}


def test_consent_revoked_mid_journey_stops_the_next_marketing_step(env, tmp_path) -> None:
    from omnibank.consent import service as consent

    load_bank(env.settings, tmp_path / "bank")
    start(env, example("card_activation_nudge"), at("2026-03-01T00:00:00"))
    load(
        env,
        tmp_path,
        card("c2", "K2", "2026-03-01T09:00:00+08:00"),
        card("c3", "S2", "2026-03-01T09:00:00+08:00"),
    )
    work(env, at("2026-03-01T10:00:00"))
    work(env, at("2026-03-15T09:30:00"))  # the push goes to both
    with unit_of_work(env.settings) as session:  # K2 withdraws marketing consent after the push
        consent.revoke(session, "K2", purpose="marketing", channel="app", actor="test")
    work(env, at("2026-03-22T09:30:00"))
    got = [(s.customer_id, s.step, s.outcome, s.reason) for s in runs(env, kind="send")]
    assert got == [
        ("K2", "push", "send", None), ("S2", "push", "send", None),
        ("K2", "sms", "suppress", "no_consent"), ("S2", "sms", "send", None),
    ]  # fmt: skip
    with unit_of_work(env.settings) as session:
        msgs = {(m.customer_id, m.channel): m.status for m in session.scalars(select(ContactMessage))}
    assert msgs[("K2", "sms")] == "suppressed"


def test_reentry_after_the_configured_time_only(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    start(env, example("product_view_lead"), at("2026-03-01T00:00:00"))  # reentry: 30d
    load(env, tmp_path, view("v1", "K1", "2026-03-02T10:00:00+08:00"))
    work(env, at("2026-03-02T10:05:00"))
    work(env, at("2026-03-04T10:05:00"))  # nobody called: the SMS, and the entry is done
    load(env, tmp_path, view("v2", "K1", "2026-03-10T10:00:00+08:00"))  # 8 days later: not yet
    work(env, at("2026-03-10T10:05:00"))
    load(env, tmp_path, view("v3", "K1", "2026-04-02T10:00:00+08:00"))  # 31 days after the first entry
    work(env, at("2026-04-02T10:05:00"))
    with unit_of_work(env.settings) as session:
        entries = [
            (e.entry_no, e.entered_at)
            for e in session.scalars(select(JourneyEntry).order_by(JourneyEntry.entry_no))
        ]
    assert entries == [(1, at("2026-03-02T10:00:00")), (2, at("2026-04-02T10:00:00"))]
    assert len(runs(env, kind="lead")) == 2


def test_cli_start_worker_list_report(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    assert cli("journey", "start", "examples/journeys/card_activation_nudge.yaml").exit_code == 0
    load(
        env,
        tmp_path,
        card("c2", "K2", "2020-03-01T09:00:00+08:00"),
        card("c3", "K3", "2020-03-01T09:00:00+08:00"),
    )
    res = cli("worker", "--once")
    assert res.exit_code == 0, res.stderr
    assert "2 entered" in res.stdout
    listing = cli("journey", "list")
    assert "active" in listing.stdout and "│ 2 " in listing.stdout.replace("  ", " ")
    report = cli("journey", "report", "card_activation_nudge")
    assert report.exit_code == 0
    assert "entered 2" in report.stdout and "no_consent" in report.stdout  # K3: no marketing consent
    assert cli("journey", "stop", "card_activation_nudge").exit_code == 0
    assert "stopped" in cli("journey", "list").stdout


def test_delivery_receipts_from_the_outbox_are_attributed_to_the_step(env, tmp_path) -> None:
    from omnibank.journeys.report import attribution

    load_bank(env.settings, tmp_path / "bank")
    start(env, example("card_activation_nudge"), at("2026-03-01T00:00:00"))
    load(env, tmp_path, card("c2", "K2", "2026-03-01T09:00:00+08:00"))
    work_once(env.settings, now=at("2026-03-01T10:00:00"))
    first = work_once(env.settings, now=at("2026-03-15T09:30:00"))  # the push, handed to its channel
    assert first.dispatched == 1
    work_once(env.settings, now=at("2026-03-15T09:31:00"))  # the receipt comes back through the log
    receipts = runs(env, kind="receipt")
    assert [(r.customer_id, r.step, r.outcome) for r in receipts][:1] == [("K2", "push", "delivered")]
    with unit_of_work(env.settings) as session:
        (figures,) = attribution(session, "card_activation_nudge")
    assert (figures.steps["push"].sent, figures.steps["push"].delivered) == (1, 1)


def test_a_send_by_route_falls_back_on_silence_and_on_failure(env, tmp_path) -> None:
    from tests.events.helpers import event

    load_bank(env.settings, tmp_path / "bank")
    spec = example("mortgage_referral")
    start(env, spec, at("2026-03-01T00:00:00"))
    load(env, tmp_path, view("m1", "K1", "2026-03-02T10:00:00+08:00", product="LOANMORT01", seconds=45))
    work(env, at("2026-03-02T10:01:00"))  # K1 (AUM 523,000): a person calls first
    work(env, at("2026-03-03T10:02:00"))  # no delivery within a day: the customer's preferred app
    failed = event("f1", "message.failed", customer_id="K1", ts="2026-03-03T10:05:00+08:00", message_id="1",
                   journey="mortgage_referral", step="call_first")  # fmt: skip
    load(env, tmp_path, failed)
    work(env, at("2026-03-03T10:06:00"))  # the push failed: the AI line
    delivered = event("d1", "message.delivered", customer_id="K1", ts="2026-03-03T10:30:00+08:00",
                      message_id="3", journey="mortgage_referral", step="call_first")  # fmt: skip
    load(env, tmp_path, delivered)
    work(env, at("2026-03-03T10:31:00"))
    assert [(s.channel, s.outcome) for s in runs(env, kind="send")] == [
        ("human_call", "send"), ("app_push", "send"), ("ai_call", "send")
    ]  # fmt: skip
    assert [(r.customer_id, r.outcome) for r in runs(env, kind="lead")] == [("K1", "created")]


def test_segment_trigger_on_its_schedule(env, tmp_path) -> None:
    from omnibank.tags.models import CustomerTag
    from tests.journeys.helpers import login

    load_bank(env.settings, tmp_path / "bank")
    load(env, tmp_path, login("l1", "S2", "2026-02-20T09:00:00+08:00"))  # S2 uses the app; S1 never did
    start(env, example("silver_digital_help"), at("2026-02-25T00:00:00"))
    r = work(env, at("2026-03-01T12:00:00"))  # Sunday: not yet
    assert r.entered == 0
    r = work(env, at("2026-03-02T10:30:00"))  # Monday 10:00 has come
    assert r.entered == 1
    tasks = [(s.customer_id, s.channel, s.outcome, s.at) for s in runs(env, kind="send")]
    assert tasks == [("S1", "branch_task", "send", at("2026-03-02T10:30:00"))]
    r = work(env, at("2026-03-02T11:00:00"))  # the same Monday again: no second look
    assert r.entered == 0
    with unit_of_work(env.settings) as session:
        assert session.get(CustomerTag, ("S1", "silver_app_guided")) is not None
