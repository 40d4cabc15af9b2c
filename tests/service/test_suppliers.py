"""A ticket about a benefit goes to its supplier: a signed webhook with the supplier's own response target,
the supplier's answer (once), its signed callback, and the complaints and late answers the scorecard
counts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import select

from omnibank import config
from omnibank.api.errors import Unauthorized
from omnibank.benefits import suppliers as benefit_suppliers
from omnibank.contact.channels import SIGNATURE_HEADER, sign, verify
from omnibank.db import unit_of_work
from omnibank.errors import Conflict, InputRefused, NotFound
from omnibank.security import get_cipher
from omnibank.service import suppliers
from omnibank.service import tickets as desk_tickets
from omnibank.service.calendar import BusinessCalendar
from omnibank.service.models import Ticket, TicketHistory
from omnibank.service.routing import default_routing
from omnibank.service.sla import DEFAULT_POLICY, TargetSpec
from omnibank.service.tickets import Desk, TicketRequest
from tests.benefits.helpers import load, small_catalogue

TZ = ZoneInfo("Asia/Shanghai")
SECRET = "供应商-secret"
URL = "https://acme.example/omnibank/tickets"
FRIDAY = datetime(2026, 3, 6, 16, 0, tzinfo=TZ)  # 1.5 working hours left that day
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)
DESCRIPTION = "我是张三，电话13812345678，券一直核销失败"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def desk(**supplier_targets: TargetSpec) -> Desk:
    routing = default_routing(None, [])
    if supplier_targets:
        routing = routing.model_copy(update={"suppliers": {**routing.suppliers, **supplier_targets}})
    return Desk(policy=DEFAULT_POLICY, calendar=BusinessCalendar(tz=TZ), routing=routing)


def settings_with(webhooks: Mapping[str, str] | None = None) -> config.Settings:
    return config.get_settings().model_copy(
        update={
            "supplier_webhooks": dict(webhooks or {"acme": URL}),
            "supplier_webhook_secret": SecretStr(SECRET),
        }
    )


class FakeSupplier:
    """A fake supplier endpoint: records each POST and answers with the next status (or raises)."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.calls.append((url, body, dict(headers)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def bank(env: Any, tmp_path: Path) -> None:
    """Supplier acme's voucher and gift; the bank's own discount."""
    load(small_catalogue(tmp_path))


def open_one(
    *, now: datetime, benefit: str | None = "voucher", kind: str = "complaint", d: Desk | None = None
) -> str:
    request = TicketRequest(
        kind=kind, category="benefit", customer_id="C000001", channel="app",
        subject="券核销失败 请回电13812345678",
        description=DESCRIPTION, benefit_id=benefit,
    )  # fmt: skip
    with unit_of_work() as session:
        opened = desk_tickets.open_ticket(
            session, d or desk(), get_cipher(), request, by="user:客服", now=now
        )
    return opened.ticket.ticket_id


def notify(post: FakeSupplier, *, now: datetime, d: Desk | None = None, **kw: Any) -> suppliers.NotifyReport:
    with unit_of_work() as session:
        return suppliers.notify_suppliers(session, kw.pop("settings", settings_with()), d or desk(), now=now,
                                          post=post, **kw)  # fmt: skip


def ticket(ticket_id: str) -> Ticket:
    with unit_of_work() as session:
        found = session.get(Ticket, ticket_id)
        assert found is not None
        session.expunge(found)
        return found


def actions(ticket_id: str) -> list[tuple[str, str, str | None]]:
    with unit_of_work() as session:
        rows = session.execute(
            select(TicketHistory.action, TicketHistory.by, TicketHistory.detail)
            .where(TicketHistory.ticket_id == ticket_id)
            .order_by(TicketHistory.seq)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


# --------------------------------------------------------------------------------------------- settings


def test_settings_refuse_a_plain_http_url_a_bad_id_and_webhooks_without_a_secret(env: Any) -> None:
    with pytest.raises(ValidationError, match="not an https URL"):
        config.Settings(supplier_webhooks={"acme": "http://acme.example/x"}, supplier_webhook_secret="s")
    with pytest.raises(ValidationError, match="not a supplier id"):
        config.Settings(supplier_webhooks={"ac me": URL}, supplier_webhook_secret="s")
    with pytest.raises(ValidationError, match="needed when OMNIBANK_SUPPLIER_WEBHOOKS is set"):
        config.Settings(supplier_webhooks={"acme": URL})
    ok = config.Settings(supplier_webhooks={"acme": URL}, supplier_webhook_secret="s")
    assert ok.supplier_webhooks == {"acme": URL}


# ------------------------------------------------------------------------------------------- telling


def test_the_supplier_is_told_once_signed_without_personal_data_and_due_on_the_calendar(bank: None) -> None:
    tid = open_one(now=FRIDAY - timedelta(hours=1))
    post = FakeSupplier(200)

    report = notify(post, now=FRIDAY)

    assert report.notified == [tid] and (report.failed, report.no_webhook) == (0, 0)
    ((url, body, headers),) = post.calls
    assert url == URL and verify(SECRET.encode(), body, headers[SIGNATURE_HEADER])
    assert headers["Idempotency-Key"] == f"supplier:{tid}"
    doc = json.loads(body)
    assert set(doc) == {"ticket_id", "benefit_id", "coupon_id", "category", "priority", "subject",
                        "opened_at", "answer_by"}  # fmt: skip
    text = body.decode()
    assert "张三" not in text and "13812345678" not in text and "C000001" not in text
    assert doc["subject"].startswith("券核销失败")  # its digit runs masked
    # 8 business hours from Friday 16:00: 1.5 on Friday, 3 Monday morning, 3.5 from 13:30 → Monday 17:00
    assert doc["answer_by"] == "2026-03-09T17:00:00+08:00"
    assert (doc["ticket_id"], doc["benefit_id"], doc["opened_at"]) == (
        tid,
        "voucher",
        "2026-03-06T15:00:00+08:00",
    )
    told = ticket(tid)
    assert told.supplier_notified_at == FRIDAY and told.supplier_due_at == at("2026-03-09 17:00")
    assert actions(tid)[-1] == ("supplier_notified", "system:suppliers", "due 2026-03-09 17:00")

    again = notify(post, now=FRIDAY + timedelta(hours=1))
    assert again.notified == [] and len(post.calls) == 1
    assert [a for a, _, _ in actions(tid)].count("supplier_notified") == 1


def test_a_calendar_day_target_runs_to_midnight_and_past_the_weekend(bank: None) -> None:
    d = desk(acme=TargetSpec(calendar_days=3))
    monday = open_one(now=MONDAY, d=d)
    notify(FakeSupplier(204), now=MONDAY, d=d)
    assert ticket(monday).supplier_due_at == at("2026-03-06 00:00")  # Mon + 3 days: Thursday ends
    wednesday = open_one(now=at("2026-03-04 10:00"), d=d)
    notify(FakeSupplier(200), now=at("2026-03-04 10:00"), d=d)
    assert ticket(wednesday).supplier_due_at == at("2026-03-10 00:00")  # Saturday's end moves to Monday's


def test_a_failed_post_is_tried_again_and_given_up_after_ten_attempts(bank: None) -> None:
    tid = open_one(now=MONDAY)
    flaky = FakeSupplier(503, OSError("connection refused"), 200)
    first = notify(flaky, now=MONDAY)
    second = notify(flaky, now=MONDAY + timedelta(minutes=5))
    assert (first.failed, second.failed) == (1, 1) and ticket(tid).supplier_attempts == 2
    assert ticket(tid).supplier_notified_at is None and "supplier_notified" not in [
        a for a, _, _ in actions(tid)
    ]
    third = notify(flaky, now=MONDAY + timedelta(minutes=10))
    # told Monday 10:10: 1h50 + 4h that day, 2h10 on Tuesday
    assert third.notified == [tid] and ticket(tid).supplier_due_at == at("2026-03-03 11:10")

    hopeless = open_one(now=MONDAY)
    down = FakeSupplier(500)
    reports = [notify(down, now=MONDAY + timedelta(minutes=i)) for i in range(12)]
    assert sum(r.failed for r in reports) == 10 and sum(r.gave_up for r in reports) == 1
    assert len(down.calls) == 10 and ticket(hopeless).supplier_attempts == 10
    assert ticket(hopeless).supplier_notified_at is None


def test_without_a_url_the_ticket_waits_and_is_counted(bank: None) -> None:
    tid = open_one(now=MONDAY)
    open_one(now=MONDAY, benefit="discount")  # the bank's own benefit: no supplier to tell
    open_one(now=MONDAY, benefit=None, kind="inquiry")
    post = FakeSupplier(200)
    report = notify(post, now=MONDAY, settings=settings_with({"other": URL}))
    assert (report.no_webhook, report.notified, post.calls) == (1, [], [])
    assert ticket(tid).supplier_attempts == 0 and ticket(tid).supplier_notified_at is None
    # once a URL is configured, it goes
    assert notify(post, now=MONDAY + timedelta(hours=1)).notified == [tid]


def test_a_closed_ticket_is_not_sent(bank: None) -> None:
    tid = open_one(now=MONDAY)
    with unit_of_work() as session:
        desk_tickets.set_status(session, desk(), tid, "closed", by="user:客服", now=MONDAY)
    post = FakeSupplier(200)
    assert notify(post, now=MONDAY).notified == [] and post.calls == []


# ------------------------------------------------------------------------------------------ answers


def test_the_first_answer_counts_and_the_ticket_keeps_waiting_for_staff(bank: None) -> None:
    tid = open_one(now=MONDAY)
    notify(FakeSupplier(200), now=MONDAY)
    with unit_of_work() as session:
        desk_tickets.set_status(session, desk(), tid, "waiting_supplier", by="user:客服", now=MONDAY)
        read = suppliers.record_answer(session, desk(), tid, by="supplier:acme", now=at("2026-03-03 12:00"),
                                       note="已补发券码 8888")  # fmt: skip
    assert read.supplier_answered_at == at("2026-03-03 12:00") and read.status == "waiting_supplier"
    assert actions(tid)[-1] == ("supplier_answered", "supplier:acme", "late")  # due 03-03 11:00
    with unit_of_work() as session:
        again = suppliers.record_answer(session, desk(), tid, by="supplier:acme", now=at("2026-03-04 09:00"))
    assert again.supplier_answered_at == at("2026-03-03 12:00")
    assert [a for a, _, _ in actions(tid)].count("supplier_answered") == 1

    own = open_one(now=MONDAY, benefit="discount")
    with unit_of_work() as session, pytest.raises(Conflict, match="not about a supplier"):
        suppliers.record_answer(session, desk(), own, by="supplier:acme", now=MONDAY)
    with unit_of_work() as session, pytest.raises(NotFound, match="no ticket TKNOPE"):
        suppliers.record_answer(session, desk(), "TKNOPE", by="supplier:acme", now=MONDAY)


def test_a_callback_is_read_only_with_its_signature(bank: None) -> None:
    tid = open_one(now=MONDAY)
    settings = settings_with()
    body = json.dumps({"ticket_id": tid, "note": "已处理"}).encode()
    good = sign(SECRET.encode(), body)
    with unit_of_work() as session:
        doc = suppliers.verify_callback(settings, body, good, session=session)
    assert doc == {"ticket_id": tid, "note": "已处理", "supplier_id": "acme"}

    with pytest.raises(Unauthorized) as refused:
        suppliers.verify_callback(settings, body.replace(b"\\u5df2", b"x"), good)
    assert refused.value.status == 401
    with pytest.raises(Unauthorized):
        suppliers.verify_callback(settings, body, sign(b"another secret", body))
    with pytest.raises(Unauthorized):
        suppliers.verify_callback(settings, body, "")
    unset = settings.model_copy(update={"supplier_webhook_secret": None})
    with pytest.raises(Unauthorized, match="not set"):
        suppliers.verify_callback(unset, body, good)

    def signed(doc: Any) -> tuple[bytes, str]:
        raw = json.dumps(doc).encode()
        return raw, sign(SECRET.encode(), raw)

    with unit_of_work() as session, pytest.raises(NotFound, match="no ticket TKNOPE"):
        suppliers.verify_callback(settings, *signed({"ticket_id": "TKNOPE"}), session=session)
    with unit_of_work() as session, pytest.raises(NotFound, match="of supplier other"):
        suppliers.verify_callback(
            settings, *signed({"ticket_id": tid, "supplier_id": "other"}), session=session
        )
    with pytest.raises(InputRefused, match="expected"):
        suppliers.verify_callback(settings, *signed(["not", "an", "object"]))
    raw = b"not json"
    with pytest.raises(InputRefused, match="not JSON"):
        suppliers.verify_callback(settings, raw, sign(SECRET.encode(), raw))


# ---------------------------------------------------------------------------------------- scorecard


def test_complaints_and_late_answers_are_counted_in_the_window_and_lower_the_score(bank: None) -> None:
    start, end = at("2026-03-02 00:00"), at("2026-03-09 00:00")
    open_one(now=at("2026-02-27 10:00"))  # a complaint before the window
    late = open_one(now=MONDAY)  # complaints in the window: this one …
    in_time = open_one(now=MONDAY)  # … and this one
    open_one(now=MONDAY, kind="inquiry")  # an inquiry: told, due Tuesday 11:00, never answered
    notify(FakeSupplier(200), now=MONDAY)  # all four due 2026-03-03 11:00 (8 business hours)
    unanswered_later = open_one(now=at("2026-03-06 16:00"), kind="request")  # due Monday 03-09 17:00
    notify(FakeSupplier(200), now=at("2026-03-06 16:00"))
    with unit_of_work() as session:
        suppliers.record_answer(session, desk(), late, by="supplier:acme", now=at("2026-03-03 11:01"))
        suppliers.record_answer(session, desk(), in_time, by="supplier:acme", now=at("2026-03-03 11:00"))
    assert ticket(unanswered_later).supplier_due_at == at("2026-03-09 17:00")

    with unit_of_work() as session:
        counts = suppliers.supplier_counts(session, start=start, end=end)
        # late: the answer after its due time, the old complaint and the inquiry never answered
        assert counts == {"acme": suppliers.SupplierTicketCounts(complaints=2, late_answers=3)}
        # asked on Tuesday at 11:00 itself, the unanswered are not late yet (the due time is still in time)
        early = suppliers.supplier_counts(session, start=start, end=end, now=at("2026-03-03 11:00"))
        assert early["acme"].late_answers == 1
        tickets = suppliers.scorecard_tickets(session, until=at("2026-03-08 00:00").date(), days=7, tz=TZ)
        assert tickets == {"acme": (2, 3)}
        (line,) = benefit_suppliers.scorecard(session, until=at("2026-03-08 00:00").date(), days=7, tz=TZ,
                                               tickets=tickets)  # fmt: skip
        (plain,) = benefit_suppliers.scorecard(session, until=at("2026-03-08 00:00").date(), days=7, tz=TZ)
    assert (line.complaints, line.late_answers) == (2, 3)
    assert line.score == plain.score - 10 - 6 == 84 and line.grade == "B"
    assert (plain.complaints, plain.late_answers) == (0, 0)


def test_the_scorecard_command_counts_the_tickets(bank: None, cli: Any, time_machine: Any) -> None:
    time_machine.move_to(at("2026-03-04 10:00"), tick=False)
    open_one(now=MONDAY)
    notify(FakeSupplier(200), now=MONDAY)  # due 2026-03-03 11:00, never answered
    r = cli("suppliers", "scorecard", "--as-of", "2026-03-04", "--format", "json")
    assert r.exit_code == 0, r.stderr
    (card,) = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert (card["complaints"], card["late_answers"], card["score"]) == (1, 1, 93)
