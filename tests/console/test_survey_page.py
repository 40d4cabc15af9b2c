"""The customer-facing survey page (/c/surveys/...): the invitation carries its signed link, the link opens
the survey's questions, an answer is one survey.response event kept once, every bad link the same 404."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from omnibank.console.links import customer_link_token
from omnibank.contact import outbox
from omnibank.contact.models import ContactMessage
from omnibank.contact.policy import Send
from omnibank.db import unit_of_work
from omnibank.events.log import EventLog, sql_string
from omnibank.events.reader import EventRow, read_events
from omnibank.journeys.spec import SURVEY_TEMPLATE
from omnibank.surveys.sending import invitations
from omnibank.surveys.spec import surveys_of
from tests.api.bank import Bank, build_bank
from tests.console.conftest import BASE, Console

EXAMPLE = Path(__file__).parents[2] / "examples" / "cx" / "surveys.yaml"
NAMES = ("张三丰", "李四光")
PHONES = ("13800000001", "13800000002")


# the example's surveys and one that asks everything
ALL_IN_ONE = """
  - id: all_in_one
    name: 综合服务评价
    asks: [nps, csat, ces, comment]
    question: 请评价您最近一次的服务体验
"""


@pytest.fixture
def console(env: Any, tmp_path: Path) -> Iterator[Console]:
    surveys = tmp_path / "surveys.yaml"
    surveys.write_text(EXAMPLE.read_text(encoding="utf-8").rstrip() + "\n" + ALL_IN_ONE, encoding="utf-8")
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000, "surveys_file": surveys})
    bank = build_bank(settings, tmp_path / "bank")
    with TestClient(bank.client.app, base_url=BASE) as client:
        yield Console(bank, client)


def invite(bank: Bank, customer: str = "CA2", survey: str = "nps_card", key: str = "inv-a",
           template: str = SURVEY_TEMPLATE) -> tuple[int, str]:  # fmt: skip
    """Submit an invitation through the outbox: its id and its stored text."""
    settings, now = bank.settings, bank.clock()
    send = Send(key, customer, "sms", "survey", now, template=template, payload={"survey": survey})
    with unit_of_work(settings) as session:
        (decision,) = outbox.submit(session, settings, [send], now=now)
    with unit_of_work(settings) as session:
        row = session.scalars(select(ContactMessage).where(ContactMessage.key == key)).one()
        assert decision.message_id == row.id
        return row.id, row.template or ""


def link_in(bank: Bank, text: str) -> str:
    """The page's path and query from the link in an invitation's text."""
    found = re.search(r"https?://\S+", text)
    assert found, text
    assert found.group().startswith(bank.settings.public_url + "/c/surveys/")
    parts = urlsplit(found.group())
    return f"{parts.path}?{parts.query}"


def form_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(i|k|csrf)" value="([^"]*)"', html))


def answers(console: Console) -> list[Any]:
    return list(read_events(console.bank.settings, types={"survey.response"}))


def payload_of(bank: Bank, event_id: str) -> dict[str, Any]:
    """An event's fields beyond the typed columns, as the log keeps them (its payload JSON)."""
    log = EventLog(bank.settings)
    con = log.connect()
    try:
        listing = ", ".join(sql_string(str(f)) for f in log.files())
        (raw,) = con.execute(
            f"SELECT payload FROM read_parquet([{listing}]) WHERE event_id = ?", [event_id]
        ).fetchone() or (None,)
    finally:
        con.close()
    assert raw is not None, event_id
    found: dict[str, Any] = json.loads(raw)
    return found


def is_elder(html: str) -> bool:
    return re.search(r'<html[^>]*class="elder"', html) is not None


def test_an_invitation_from_a_journey_or_a_trigger_carries_its_link(console: Console) -> None:
    message_id, text = invite(console.bank)
    assert "{survey_link}" not in text and text.startswith("您的意见对我们很重要")
    path = link_in(console.bank, text)
    query = parse_qs(urlsplit(path).query)
    assert urlsplit(path).path == "/c/surveys/nps_card" and query["i"] == [str(message_id)]
    # a trigger's invitation (surveys.sending) gets its link the same way
    settings, now = console.bank.settings, console.bank.clock()
    activated = EventRow(
        "e1", "card.activated", "CA1", int(now.timestamp() * 1e6), now.date(), {"channel": "app"}
    )
    (send,) = invitations(surveys_of(settings), [activated], tz=settings.tz)
    assert send.template == "您有多大可能向亲友推荐我行信用卡？（信用卡推荐意愿）点击作答：{survey_link}"
    with unit_of_work(settings) as session:
        outbox.submit(session, settings, [replace(send, at=now)], now=now)
    with unit_of_work(settings) as session:
        triggered = session.scalars(
            select(ContactMessage.template).where(ContactMessage.key == send.key)
        ).one()
    assert "点击作答：" in (triggered or "") and "/c/surveys/nps_card?i=" in link_in(
        console.bank, triggered or ""
    )
    # not a survey: the text is left as it is
    with unit_of_work(settings) as session:
        service = Send("svc", "CA2", "sms", "service", now, template="见{survey_link}")
        outbox.submit(session, settings, [service], now=now)
    with unit_of_work(settings) as session:
        kept = session.scalars(select(ContactMessage.template).where(ContactMessage.key == "svc")).one()
    assert kept == "见{survey_link}"


def test_the_link_shows_only_the_questions_the_survey_asks_and_nothing_personal(console: Console) -> None:
    _, text = invite(console.bank)
    r = console.client.get(link_in(console.bank, text))
    assert r.status_code == 200, r.text
    html = r.text
    assert '<html lang="zh-CN"' in html and "信用卡推荐意愿" in html
    assert (
        "<legend>您有多大可能向亲友推荐我行信用卡？</legend>" in html
        and "0 不可能" in html
        and "10 非常可能" in html
    )
    assert sorted(int(n) for n in re.findall(r'name="nps" value="(\d+)"', html)) == list(range(11))
    assert 'name="comment"' in html and 'maxlength="1000"' in html
    assert 'name="csat"' not in html and 'name="ces"' not in html
    assert not any(x in html for x in NAMES + PHONES)
    assert not is_elder(html)
    english = console.client.get(link_in(console.bank, text), headers={"accept-language": "en-US,en;q=0.9"})
    assert '<html lang="en"' in english.text and "Extremely likely" in english.text


def test_a_survey_asking_everything_shows_every_scale_and_keeps_every_score(console: Console) -> None:
    message_id, text = invite(console.bank, survey="all_in_one", key="inv-all")
    html = console.client.get(link_in(console.bank, text)).text
    assert "请评价您最近一次的服务体验" in html
    for legend in ("您有多大可能向亲友推荐我们？", "您对我们的服务满意吗？", "这次办理省心吗？"):
        assert f"<legend>{legend}</legend>" in html
    assert "1 非常不满意" in html and "5 非常满意" in html and "1 非常费劲" in html and "7 非常省心" in html
    assert sorted(int(n) for n in re.findall(r'name="ces" value="(\d+)"', html)) == list(range(1, 8))
    form = form_of(html)
    r = console.client.post("/c/surveys/all_in_one", data={**form, "csat": "2", "ces": "7"})
    assert "感谢您的反馈" in r.text
    fields = payload_of(console.bank, f"survey:all_in_one:inv-{message_id}")
    assert (fields.get("nps"), fields["csat"], fields["ces"], fields.get("comment")) == (None, 2, 7, None)


def test_an_answer_is_one_event_and_a_second_answer_changes_nothing(console: Console) -> None:
    message_id, text = invite(console.bank)
    path = link_in(console.bank, text)
    form = form_of(console.client.get(path).text)
    assert form["i"] == str(message_id) and form["csrf"]
    r = console.client.post(
        "/c/surveys/nps_card", data={**form, "nps": "9", "comment": "服务很好，电话13800000002"}
    )
    assert r.status_code == 200 and "感谢您的反馈" in r.text
    (event,) = answers(console)
    assert event.event_id == f"survey:nps_card:inv-{message_id}" and event.customer_id == "CA2"
    assert event.fields["channel"] == "sms"  # how the invitation went
    fields = payload_of(console.bank, event.event_id)
    assert fields["survey"] == "nps_card" and fields["nps"] == 9 and "csat" not in fields
    assert fields["comment"].startswith("服务很好") and "13800000002" not in json.dumps(fields)
    again = console.client.post("/c/surveys/nps_card", data={**form, "nps": "0"})
    assert again.status_code == 200 and "您已提交过本次问卷，感谢" in again.text
    assert "您已提交过本次问卷，感谢" in console.client.get(path).text  # the link shows it was answered
    assert len(answers(console)) == 1 and payload_of(console.bank, event.event_id)["nps"] == 9


def test_a_bad_answer_shows_the_form_again_with_the_reason(console: Console) -> None:
    _, text = invite(console.bank)
    form = form_of(console.client.get(link_in(console.bank, text)).text)
    for data, message in (
        ({"nps": "11"}, "请点击按钮选择一个分数。"),
        ({"nps": "-1"}, "请点击按钮选择一个分数。"),
        ({"csat": "3"}, "请点击按钮选择一个分数。"),  # not asked by this survey
        ({}, "请至少回答一个问题。"),
        ({"comment": "   "}, "请至少回答一个问题。"),
        ({"comment": "好" * 1001}, "不要超过1000字"),
    ):
        r = console.client.post("/c/surveys/nps_card", data={**form, **data})
        assert r.status_code == 422 and message in r.text and 'name="nps"' in r.text, data
    assert answers(console) == []
    forged = console.client.post("/c/surveys/nps_card", data={**form, "csrf": "x" * 40, "nps": "5"})
    assert forged.status_code == 403 and answers(console) == []


def test_every_bad_link_is_the_same_not_found(console: Console) -> None:
    message_id, text = invite(console.bank)
    other_id, _ = invite(console.bank, customer="CB1", key="inv-other")
    path = link_in(console.bank, text)
    k = parse_qs(urlsplit(path).query)["k"][0]
    i = len(k) - 10
    tampered = k[:i] + ("Z" if k[i] != "Z" else "Y") + k[i + 1 :]
    settings, now = console.bank.settings, console.bank.clock()
    short = customer_link_token(settings, "CA2", now=now, days=1)
    bad = [
        {"i": message_id, "k": tampered},
        {"i": other_id, "k": k},  # an invitation to somebody else
        {"i": message_id + 999, "k": k},
        {"i": "abc", "k": k},
        {"i": message_id, "k": ""},
    ]
    pages = [console.client.get("/c/surveys/nps_card", params=p) for p in bad]
    pages.append(console.client.get(f"/c/surveys/csat_branch?i={message_id}&k={k}"))  # not this survey's
    pages.append(console.client.get(f"/c/surveys/nope?i={message_id}&k={k}"))
    console.bank.clock.advance(days=2)
    pages.append(console.client.get("/c/surveys/nps_card", params={"i": message_id, "k": short}))
    for r in pages:
        assert r.status_code == 404 and "未找到该问卷" in r.text and 'name="nps"' not in r.text
    post = console.client.post("/c/surveys/nps_card", data={"i": message_id, "k": tampered, "nps": "9"})
    assert post.status_code == 404 and answers(console) == []
    console.bank.clock.advance(days=30)  # the invitation's own link lasts 30 days
    assert console.client.get(path).status_code == 404


def test_elder_mode_for_a_customer_of_60_or_more_unless_switched_off(console: Console) -> None:
    _, text = invite(console.bank, customer="CA1", key="inv-elder")  # born 1960
    path = link_in(console.bank, text)
    assert is_elder(console.client.get(path).text)
    console.client.get("/c/elder/off", params={"next": path})
    assert not is_elder(console.client.get(path).text)
