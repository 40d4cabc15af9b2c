"""Surveys over the store: invitations from events in the log (once, never for a stale event), the open
complaint hold placed and lifted by the service desk, fatigue read from the outbox, a journey's survey step,
answers through the API checked against the survey, and bad survey files refused with field and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from omnibank.config import Settings
from omnibank.contact import outbox
from omnibank.contact.models import ContactMessage
from omnibank.contact.policy import Send
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.events.reader import read_events
from omnibank.ingest.service import load_file
from omnibank.journeys.spec import parse_journey
from omnibank.security import get_cipher
from omnibank.service import tickets
from omnibank.service.calendar import BusinessCalendar
from omnibank.service.routing import default_routing
from omnibank.service.sla import DEFAULT_POLICY
from omnibank.surveys.sending import trigger_pass
from omnibank.surveys.spec import parse_surveys
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank
from tests.leads.helpers import load_bank

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)  # a working Monday
EXAMPLE = Path(__file__).parents[2] / "examples" / "cx" / "surveys.yaml"


@pytest.fixture
def settings(env, tmp_path: Path) -> Settings:
    s: Settings = env.settings.model_copy(update={"surveys_file": EXAMPLE})
    load_bank(s, tmp_path / "bank")
    return s


def _submit(settings: Settings, *sends: Send, now: datetime = NOW) -> list[tuple[str, str | None]]:
    with unit_of_work(settings) as session:
        return [(d.action, d.reason) for d in outbox.submit(session, settings, list(sends), now=now)]


def _survey(key: str, customer: str = "CA1", at: datetime = NOW) -> Send:
    return Send(key, customer, "sms", "survey", at, payload={"survey": "csat_branch"})


def test_an_open_complaint_holds_surveys_until_it_is_resolved_then_fatigue_counts_from_the_outbox(
    settings: Settings,
) -> None:
    desk = tickets.Desk(DEFAULT_POLICY, BusinessCalendar(tz=TZ), default_routing("HQ", ["E00006"]))
    request = tickets.TicketRequest(
        kind="complaint", category="branch", customer_id="CA1", channel="branch", subject="排队太久"
    )
    with unit_of_work(settings) as session:
        ticket_id = tickets.open_ticket(
            session, desk, get_cipher(settings), request, by="t", now=NOW
        ).ticket.ticket_id
    assert _submit(settings, _survey("s1"), _survey("s1b", "CA3")) == [
        ("suppress", "open_complaint"),
        ("send", None),
    ]
    with unit_of_work(settings) as session:
        tickets.set_status(session, desk, ticket_id, "resolved", by="t", now=NOW + timedelta(hours=1))
    later = NOW + timedelta(hours=2)
    assert _submit(settings, _survey("s2", at=later), _survey("s3", at=later + timedelta(days=1))) == [
        ("send", None),
        ("suppress", "survey_fatigue"),  # the one before it in the same batch counts
    ]
    month = later + timedelta(days=31)
    assert _submit(settings, _survey("s4", at=month), now=month) == [("send", None)]
    with unit_of_work(settings) as session:  # reopened: held again
        tickets.set_status(session, desk, ticket_id, "reopened", by="t", now=month)
    assert _submit(settings, _survey("s5", at=month + timedelta(days=40)), now=month) == [
        ("suppress", "open_complaint")
    ]


def _events(settings: Settings, tmp_path: Path, lines: list[dict]) -> None:
    path = tmp_path / f"events-{len(list(tmp_path.glob('events-*')))}.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    assert load_file("events", path, settings=settings, progress=False).loaded == len(lines)


def test_events_in_the_log_invite_once_and_stale_ones_not_at_all(settings: Settings, tmp_path: Path) -> None:
    visit = NOW - timedelta(hours=3)

    def days_ago(n: int) -> str:
        return (NOW - timedelta(days=n)).isoformat()

    _events(
        settings,
        tmp_path,
        [
            {"event_id": "v1", "type": "branch.visit", "customer_id": "CA1", "ts": visit.isoformat(),
             "channel": "branch", "branch_id": "S0101", "wait_min": 35},
            {"event_id": "v2", "type": "branch.visit", "customer_id": "CB1", "ts": days_ago(9),
             "channel": "branch", "branch_id": "S0201", "wait_min": 5},
            {"event_id": "a1", "type": "card.activated", "customer_id": "CA3", "ts": days_ago(7),
             "card_id": "6225880000000001"},
            {"event_id": "x1", "type": "app.login", "customer_id": "CA2", "ts": visit.isoformat()},
        ],
    )  # fmt: skip
    with unit_of_work(settings) as session:
        report = trigger_pass(session, settings, now=NOW)
    assert (report.files, report.events, report.stale) == (2, 3, 1)  # February and March
    assert dict(report.invited) == {"send": 2}
    with unit_of_work(settings) as session:
        rows = {
            (m.key, m.customer_id, m.channel, m.purpose, m.payload)
            for m in session.scalars(select(ContactMessage))
        }
        again = trigger_pass(session, settings, now=NOW)
    assert rows == {
        ("survey:csat_branch:v1", "CA1", "wechat", "survey", '{"survey": "csat_branch"}'),
        ("survey:nps_card:a1", "CA3", "sms", "survey", '{"survey": "nps_card"}'),
    }
    assert (again.files, again.events) == (0, 0)


def test_a_journey_step_survey_is_a_send_with_purpose_survey() -> None:
    spec = parse_journey(
        """
id: after_visit
name: 到访回访
trigger: {event: branch.visit}
steps:
  - id: ask
    survey: csat_branch
  - id: ask_again
    survey: {id: nps_card, channel: app_push}
"""
    )
    first, second = (s.send for s in spec.steps)
    assert first is not None and second is not None
    assert (first.purpose, first.survey, first.channel) == ("survey", "csat_branch", "sms")
    assert (second.purpose, second.survey, second.channel) == ("survey", "nps_card", "app_push")
    with pytest.raises(InputRefused, match=r"steps.0 \(line 5\): survey: unknown field"):
        parse_journey(
            "id: j\nname: j\ntrigger: {event: branch.visit}\nsteps:\n"
            "  - id: ask\n    survey: {id: x, when: now}\n"
        )


def test_bad_survey_files_are_refused_naming_field_and_line() -> None:
    with pytest.raises(InputRefused) as refused:
        parse_surveys(
            "surveys:\n  - id: a\n    name: 甲\n    asks: [nps, stars]\n    question: 推荐吗？\n"
            "    triggers:\n      - event: Branch-Visit\n  - id: a\n    name: 乙\n    asks: [csat]\n"
            "    question: 满意吗？\n",
            source="surveys.yaml",
        )
    message = str(refused.value)
    assert message.startswith("surveys.yaml: surveys refused:")
    assert "surveys.0.asks.1 (line 4)" in message
    assert "surveys.0.triggers.0.event (line 7)" in message
    with pytest.raises(InputRefused, match="survey ids repeated: a"):
        parse_surveys(
            "surveys:\n  - {id: a, name: 甲, asks: [nps], question: q}\n"
            "  - {id: a, name: 乙, asks: [csat], question: q}\n"
        )
    assert set(parse_surveys(EXAMPLE.read_text(encoding="utf-8"))) == {
        "nps_card",
        "csat_branch",
        "ces_service",
    }


@pytest.fixture
def bank(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000, "surveys_file": EXAMPLE})
    built = build_bank(settings, tmp_path / "api-bank")
    with built.client:
        yield built


def test_answers_through_the_api_are_checked_and_kept_once(bank: Bank) -> None:
    url = "/api/v1/surveys/csat_branch/responses"
    body = {"answers": [{"customer_id": "CA1", "key": "r1", "csat": 2, "comment": "排队一个小时，太慢了",
                         "branch_id": "S0101", "answered_at": "2026-03-02T11:00:00+08:00"}]}  # fmt: skip
    r = bank.client.post(url, json=body, headers=bank.auth("admin"))
    assert r.status_code == 200, r.text
    assert r.json() == {"survey": "csat_branch", "recorded": 1, "duplicates": 0}
    assert bank.client.post(url, json=body, headers=bank.auth("admin")).json()["duplicates"] == 1
    (event,) = [e for e in read_events(bank.settings, types={"survey.response"})]
    assert (event.event_id, event.customer_id) == ("survey:csat_branch:r1", "CA1")
    bad = bank.client.post(url, json={"answers": [{"customer_id": "CA1", "key": "r2", "csat": 6}]},
                           headers=bank.auth("admin"))  # fmt: skip
    assert bad.status_code == 422 and "csat" in bad.text
    not_asked = bank.client.post(url, json={"answers": [{"customer_id": "CA1", "key": "r3", "nps": 9}]},
                                 headers=bank.auth("admin"))  # fmt: skip
    assert not_asked.status_code == 422 and "does not ask" in not_asked.text
    unknown = bank.client.post("/api/v1/surveys/nope/responses", json=body, headers=bank.auth("admin"))
    assert unknown.status_code == 404 and "no survey" in unknown.text
