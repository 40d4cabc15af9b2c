"""The store path: submit decides like the pure policy and records every send with its reason; a key
submitted again changes nothing; dispatch decides deferred messages again, hands queued ones over, emits
receipt events once; receipts from gateways; do-not-disturb."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from omnibank.audit.models import AuditEntry
from omnibank.config import Settings
from omnibank.consent import service as consent
from omnibank.contact import outbox
from omnibank.contact.caps import cap_counts
from omnibank.contact.channels import Outcome, Outgoing
from omnibank.contact.dispatch import dispatch, redecide_due
from omnibank.contact.dnd import add_dnd, list_dnd, remove_dnd
from omnibank.contact.models import ContactMessage
from omnibank.contact.policy import CHANNELS, MemoryCounters, PolicyConfig, Send, plan
from omnibank.contact.receipts import Receipt, emit_pending, record_receipts
from omnibank.db import unit_of_work
from omnibank.errors import AppError, Conflict, NotFound
from omnibank.events.log import EventLog
from tests.contact.helpers import CONSENTING, MONDAY, TZ, clear_contact, load_bank, send


@pytest.fixture
def bank(env, tmp_path) -> Settings:
    load_bank(env.settings, tmp_path / "bank")
    return env.settings


def submit(settings: Settings, sends: Sequence[Send], now: datetime = MONDAY) -> list[Any]:
    with unit_of_work() as session:
        return outbox.submit(session, settings, sends, now=now)


def rows() -> dict[str, ContactMessage]:
    with unit_of_work() as session:
        return {m.key: m for m in session.scalars(select(ContactMessage))}


def caps(customer: str) -> dict[str, int]:
    with unit_of_work() as session:
        return cap_counts(session, customer)


def log_events(settings: Settings) -> list[dict[str, Any]]:
    log = EventLog(settings)
    if not log.files():
        return []
    con = log.connect()
    try:
        cur = con.execute(
            f"SELECT event_id, type, customer_id, channel, payload FROM {log.scan_sql()} "
            "WHERE type LIKE 'message.%' ORDER BY event_id"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


class Recording:
    """An adapter that records what it was handed and answers as told (a stand-in gateway, no I/O)."""

    name = "recording"

    def __init__(self, status: str = "sent", reason: str | None = None):
        self.status, self.reason = status, reason
        self.handed: list[Outgoing] = []

    def deliver(self, messages: Sequence[Outgoing], *, now: datetime) -> list[Outcome]:
        self.handed.extend(messages)
        return [Outcome(m.message_id, self.status, self.reason, f"gw-{m.message_id}") for m in messages]  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- submit


def test_submit_records_every_send_with_its_decision_and_reason(bank) -> None:
    ds = submit(bank, [
        send("a", "C01", "sms"),
        send("b", "C01", "sms", at=MONDAY + timedelta(hours=1)),  # the sms day is used
        send("c", "C07", "sms"),  # no marketing consent
        send("d", "C07", "sms", "service"),  # service needs none
        send("e", "C02", "wechat", at=MONDAY.replace(hour=22)),  # quiet hours
        send("f", "C404", "sms", "service"),  # no such customer
    ])  # fmt: skip
    assert [(d.action, d.reason) for d in ds] == [
        ("send", None), ("suppress", "cap_channel_day"), ("suppress", "no_consent"), ("send", None),
        ("defer", "quiet_hours"), ("suppress", "unreachable"),
    ]  # fmt: skip
    assert ds[4].at == datetime(2026, 12, 1, 8, 0, tzinfo=TZ)
    stored = rows()
    assert {k: (m.status, m.reason) for k, m in stored.items()} == {
        "a": ("queued", None), "b": ("suppressed", "cap_channel_day"), "c": ("suppressed", "no_consent"),
        "d": ("queued", None), "e": ("deferred", "quiet_hours"), "f": ("suppressed", "unreachable"),
    }  # fmt: skip
    assert [d.message_id for d in ds] == [stored[k].id for k in "abcdef"]
    assert stored["e"].scheduled_for == datetime(2026, 12, 1, 8, 0, tzinfo=TZ)
    assert caps("C01") == {"d:sms:2026-11-30": 1, "w:2026-11-30": 1}
    assert caps("C07") == {}  # service and refused sends take nothing


def test_the_same_key_again_returns_its_decision_and_changes_nothing(bank) -> None:
    first = submit(bank, [send("k1", "C01", "sms"), send("k2", "C01", "app_push")])
    k3 = send("k3", "C01", "wechat")
    again = submit(bank, [send("k1", "C01", "sms"), send("k2", "C01", "app_push"), k3, k3])
    assert [(d.action, d.message_id) for d in again[:2]] == [(d.action, d.message_id) for d in first]
    assert again[2] == again[3] and again[2].action == "send"
    assert len(rows()) == 3
    assert caps("C01")["w:2026-11-30"] == 3  # k1 and k2 counted once


def test_payload_keeps_template_variables_and_no_personal_data(bank) -> None:
    payload = {"金额": "1200.00元", "name": "张三丰", "备注": "致电13812345678"}
    submit(bank, [send("p", "C01", "sms", "service", template="card_due", payload=payload)])
    payload = json.loads(rows()["p"].payload)
    assert payload == {"金额": "1200.00元", "备注": "致电138****5678"}


def test_bad_sends_are_refused_naming_the_send(bank) -> None:
    with pytest.raises(AppError, match="send key"):
        submit(bank, [send("key with spaces")])
    with pytest.raises(AppError, match="journey must be"):
        submit(bank, [send("k", journey="x" * 65)])
    assert rows() == {}


# -------------------------------------------------------------------------- the store path = the pure path

FEW = ["C01", "C02", "C03", "C07"]  # few customers, so that caps are hit often
stream = st.lists(
    st.tuples(
        st.sampled_from(FEW),
        st.sampled_from(CHANNELS),
        st.sampled_from(["marketing", "marketing", "service"]),
        st.integers(0, 9 * 24 * 4 - 1),  # quarter hours over nine days
    ),
    min_size=1,
    max_size=50,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=stream,
    dnd=st.sets(st.tuples(st.sampled_from(FEW), st.sampled_from(("all", *CHANNELS))), max_size=3),
    caps=st.tuples(st.integers(0, 2), st.integers(0, 3)),
)
def test_submit_and_dispatch_decide_exactly_as_the_pure_policy(bank, raw, dnd, caps) -> None:
    bank = bank.model_copy(update={"cap_channel_day": caps[0], "cap_week": caps[1]})
    start = datetime(2026, 11, 27, 0, 0, tzinfo=TZ)  # a Friday: the stream crosses two week boundaries
    timed = sorted(((start + timedelta(minutes=15 * q), c, ch, p) for c, ch, p, q in raw), key=lambda t: t[0])
    sends = [Send(f"k{i}", c, ch, p, when) for i, (when, c, ch, p) in enumerate(timed)]  # type: ignore[arg-type]
    with unit_of_work() as session:
        clear_contact(session)
        for cid, channel in sorted(dnd):
            add_dnd(
                session, cid, channel=channel, reason="客户要求", actor="test", now=start - timedelta(days=1)
            )
    config = PolicyConfig.from_settings(bank)
    pure = list(plan(sends, config, consent=lambda s: s.customer_id in CONSENTING,
                     dnd=lambda s: (s.customer_id, "all") in dnd or (s.customer_id, s.channel) in dnd,
                     counters=MemoryCounters()))  # fmt: skip
    expected = {s.key: d for s, d in pure}  # the final decision of each
    # the store: at each moment something happens, deferred messages due are decided again, then submitted
    moments = sorted({s.at for s in sends} | {d.at for _, d in pure if d.action == "defer"})
    by_time: dict[datetime, list[Send]] = {}
    for s in sends:
        by_time.setdefault(s.at, []).append(s)
    for moment in moments:
        with unit_of_work() as session:
            redecide_due(session, bank, now=moment, limit=10_000)
            outbox.submit(session, bank, by_time.get(moment, []), now=moment)
    stored = rows()
    assert len(stored) == len(sends)
    for key, want in expected.items():
        m = stored[key]
        got = outbox._decision_of(m)
        assert (got.action, got.reason, got.at) == (want.action, want.reason, want.at), key


# ------------------------------------------------------------------------------------------- dispatch


def test_dispatch_decides_deferred_messages_again_and_takes_caps_the_day_they_go(bank) -> None:
    sunday_night = datetime(2026, 12, 6, 22, 0, tzinfo=TZ)
    submit(bank, [send(f"w{i}", "C01", ch, at=datetime(2026, 12, 6, 10 + i, tzinfo=TZ))
                  for i, ch in enumerate(("sms", "app_push", "wechat"))], now=sunday_night)  # fmt: skip
    ds = submit(bank, [send("night", "C01", "wecom", at=sunday_night)], now=sunday_night)
    assert ds[0].action == "defer"
    adapter = Recording()
    early = dispatch(
        bank, now=datetime(2026, 12, 7, 7, 59, tzinfo=TZ), adapters=dict.fromkeys(CHANNELS, adapter)
    )
    assert early.redecided == {} and rows()["night"].status == "deferred"
    report = dispatch(
        bank, now=datetime(2026, 12, 7, 8, 0, tzinfo=TZ), adapters=dict.fromkeys(CHANNELS, adapter)
    )
    assert report.redecided == {"queued": 1}
    assert {m.key for m in adapter.handed} == {"w0", "w1", "w2", "night"}
    assert caps("C01")["w:2026-12-07"] == 1 and caps("C01")["w:2026-11-30"] == 3
    assert rows()["night"].status == "sent" and rows()["night"].provider_ref == f"gw-{ds[0].message_id}"


def test_a_deferred_message_can_end_suppressed_when_the_day_it_goes_is_full(bank) -> None:
    submit(bank, [send("late", "C01", "sms", at=MONDAY.replace(hour=23))])
    submit(bank, [send("early", "C01", "sms", at=datetime(2026, 12, 1, 7, 0, tzinfo=TZ).replace(hour=7))])
    # 07:00 is quiet too: both deferred to 08:00; the first decided again takes Tuesday's sms day
    dispatch(bank, now=datetime(2026, 12, 1, 8, 0, tzinfo=TZ), adapters=dict.fromkeys(CHANNELS, Recording()))
    got = {k: (m.status, m.reason) for k, m in rows().items()}
    assert got == {"late": ("sent", None), "early": ("suppressed", "cap_channel_day")}


def test_dispatch_emits_receipt_events_once(bank) -> None:
    settings = bank.model_copy(update={"contact_sandbox_click_rate": Decimal(1)})
    ds = submit(
        settings,
        [send("a", "C01", "sms", journey="生日关怀", step="s1"), send("b", "C02", "wechat", "service")],
    )
    report = dispatch(settings, now=MONDAY + timedelta(minutes=1))
    assert report.handed == 2 and report.outcomes == {"clicked": 2} and report.events == 4
    events = log_events(settings)
    a = ds[0].message_id
    assert [e["event_id"] for e in events if e["customer_id"] == "C01"] == [
        f"msg:{a}:clicked",
        f"msg:{a}:delivered",
    ]
    payload = json.loads(next(e for e in events if e["event_id"] == f"msg:{a}:delivered")["payload"])
    assert payload["message_id"] == a and payload["journey"] == "生日关怀" and payload["step"] == "s1"
    assert payload["contact_channel"] == "sms" and payload["channel"] == "sms"
    assert next(e for e in events if e["customer_id"] == "C02")["channel"] == "wechat"
    # nothing new on the next round; a crash before the flag was cleared emits the same ids: added once
    assert dispatch(settings, now=MONDAY + timedelta(minutes=2)).events == 0
    with unit_of_work() as session:
        session.execute(update(ContactMessage).values(events_pending=True))
    assert emit_pending(settings) == (0, 4)
    assert len(log_events(settings)) == 4
    assert not any(m.events_pending for m in rows().values())


def test_consent_revoked_before_the_message_goes_withdraws_it_and_gives_the_caps_back(bank) -> None:
    submit(bank, [send("a", "C03", "sms"), send("svc", "C03", "app_push", "service")])
    assert caps("C03")["w:2026-11-30"] == 1
    with unit_of_work() as session:
        consent.revoke(session, "C03", purpose="marketing", channel="app", actor="test")
    adapter = Recording()
    report = dispatch(bank, now=MONDAY + timedelta(minutes=5), adapters=dict.fromkeys(CHANNELS, adapter))
    assert report.withdrawn == {"no_consent": 1}
    assert [m.key for m in adapter.handed] == ["svc"]
    assert (rows()["a"].status, rows()["a"].reason) == ("suppressed", "no_consent")
    assert caps("C03") == {"d:sms:2026-11-30": 0, "w:2026-11-30": 0}


def test_a_failing_gateway_marks_the_message_failed_with_the_reason(bank) -> None:
    ds = submit(bank, [send("a", "C01", "sms")])
    adapters = dict.fromkeys(CHANNELS, Recording("failed", "gateway_http_503"))
    report = dispatch(bank, now=MONDAY + timedelta(minutes=1), adapters=adapters)
    assert report.outcomes == {"failed": 1}
    m = rows()["a"]
    assert (m.status, m.reason, m.attempts) == ("failed", "gateway_http_503", 1)
    failed = [e for e in log_events(bank) if e["type"] == "message.failed"]
    assert [e["event_id"] for e in failed] == [f"msg:{ds[0].message_id}:failed"]
    assert json.loads(failed[0]["payload"])["reason"] == "gateway_http_503"


def test_dispatch_limit_and_lease(bank) -> None:
    submit(bank, [send(f"s{i}", "C01", "sms", "service") for i in range(5)])
    adapter = Recording()
    adapters = dict.fromkeys(CHANNELS, adapter)
    assert dispatch(bank, now=MONDAY, limit=2, adapters=adapters).handed == 2
    assert dispatch(bank, now=MONDAY, limit=10, adapters=adapters).handed == 3
    assert len({m.key for m in adapter.handed}) == 5
    with pytest.raises(AppError, match="limit"):
        dispatch(bank, now=MONDAY, limit=0)


# -------------------------------------------------------------------------------------------- receipts


def test_receipts_move_a_sent_message_and_are_idempotent(bank) -> None:
    ds = submit(bank, [send("a", "C01", "sms"), send("q", "C02", "sms", at=MONDAY.replace(hour=23))])
    dispatch(bank, now=MONDAY, adapters=dict.fromkeys(CHANNELS, Recording()))
    a, q = ds[0].message_id, ds[1].message_id
    assert a is not None and q is not None
    later = MONDAY + timedelta(minutes=3)
    with unit_of_work() as session:
        results = record_receipts(session, [
            Receipt(a, "delivered", later), Receipt(a, "delivered", later),
            Receipt(a, "failed", later, "late failure"), Receipt(q, "delivered", later),
            Receipt(999, "clicked", later),
        ], now=later)  # fmt: skip
    assert [(r.outcome, r.status) for r in results] == [
        ("recorded", "delivered"), ("unchanged", "delivered"), ("unchanged", "delivered"),
        ("refused", "deferred"), ("refused", None),
    ]  # fmt: skip
    assert results[4].detail == "no message 999"
    with unit_of_work() as session:
        record_receipts(session, [Receipt(a, "clicked", later + timedelta(minutes=1))], now=later)
    assert emit_pending(bank) == (2, 0)
    m = rows()["a"]
    assert (m.status, m.delivered_at, m.clicked_at) == ("clicked", later, later + timedelta(minutes=1))
    assert {e["event_id"] for e in log_events(bank)} == {f"msg:{a}:delivered", f"msg:{a}:clicked"}


# -------------------------------------------------------------------------------------- do-not-disturb


def test_dnd_add_list_remove_with_history_and_audit(bank) -> None:
    with unit_of_work() as session:
        row = add_dnd(session, "C01", channel="ai_call", reason="客户投诉电话过多 13812345678",
                              actor="user:李清照", now=MONDAY, until=MONDAY + timedelta(days=30))  # fmt: skip
        assert row.reason == "客户投诉电话过多 138****5678"
        with pytest.raises(Conflict, match="already"):
            add_dnd(session, "C01", channel="ai_call", reason="again", actor="t", now=MONDAY)
        add_dnd(session, "C01", channel="all", reason="全部勿扰", actor="t", now=MONDAY)
    ds = submit(bank, [send("s", "C01", "sms", "service", at=MONDAY + timedelta(hours=1))])
    assert (ds[0].action, ds[0].reason) == ("suppress", "dnd")
    with unit_of_work() as session:
        assert remove_dnd(session, "C01", channel="all", actor="t", now=MONDAY + timedelta(hours=2)) == 1
        open_now = list_dnd(session, customer_id="C01", active_at=MONDAY + timedelta(hours=3))
        assert [r.channel for r in open_now] == ["ai_call"]
        assert len(list_dnd(session, customer_id="C01")) == 2  # the removed one is kept
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.subject_id == "C01")))
        assert actions == ["contact.dnd_add", "contact.dnd_add", "contact.dnd_remove"]
        with pytest.raises(NotFound, match="no do-not-disturb for sms"):
            remove_dnd(session, "C01", channel="sms", actor="t", now=MONDAY)
    ds = submit(bank, [send("s2", "C01", "sms", "service", at=MONDAY + timedelta(hours=3)),
                       send("c2", "C01", "ai_call", "service", at=MONDAY + timedelta(hours=3))])  # fmt: skip
    assert [(d.action, d.reason) for d in ds] == [("send", None), ("suppress", "dnd")]
    # the ai_call window ends after 30 days
    ds = submit(bank, [send("c3", "C01", "ai_call", "service", at=MONDAY + timedelta(days=30))])
    assert ds[0].action == "send"


def test_dnd_refuses_bad_input(bank) -> None:
    with unit_of_work() as session:
        with pytest.raises(NotFound, match="no customer C404"):
            add_dnd(session, "C404", reason="x", actor="t", now=MONDAY)
        with pytest.raises(AppError, match="channel: 'fax'"):
            add_dnd(session, "C01", channel="fax", reason="x", actor="t", now=MONDAY)
        with pytest.raises(AppError, match="reason: say why"):
            add_dnd(session, "C01", reason="  ", actor="t", now=MONDAY)
        with pytest.raises(AppError, match="until: .* is not after now"):
            add_dnd(session, "C01", reason="x", actor="t", now=MONDAY, until=MONDAY)
