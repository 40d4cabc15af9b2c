"""The feedback report (X4): top topics among negative comments per branch (the event's branch_id, else the
customer's home branch) or channel, per bank-local month, over events loaded into the log for real."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from omnibank.cx.feedback import UNKNOWN, TopicCount, negative_topics, rows_for_output
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.ingest.service import load_file
from tests.events.helpers import event, jsonl
from tests.factories import ORGS, STAFF, customer_row, customers_csv

QUEUE = "网点排队等了一个多小时，窗口只开了一个，太慢了"
APP = "手机银行又闪退了，转账失败，非常失望"
FEES = "年费乱扣，打客服也不给解释，太差了"
PRAISE = "柜员很耐心，服务很好，非常满意"


def survey(eid: str, customer: str, ts: str, comment: str, **fields: Any) -> dict[str, Any]:
    return event(eid, "survey.response", customer_id=customer, ts=ts, survey="branch_csat", csat=2,
                 comment=comment, **fields)  # fmt: skip


def complaint(eid: str, customer: str, ts: str, description: str, **fields: Any) -> dict[str, Any]:
    return event(eid, "complaint.filed", customer_id=customer, ts=ts, category="branch", subject="投诉",
                 description=description, **fields)  # fmt: skip


@pytest.fixture
def bank(env: Any, tmp_path: Path) -> Any:
    """C01 lives at S0101, C02 at S0201. November 2026: at S0102 (the visited branch, by branch_id) two
    complaints about the queue and one about the app, one praise; at C01's home S0101 (no branch_id) one
    complaint about fees, one praise; C02 at S0201 an app complaint by the app channel. A response at
    00:30 bank-local on 1 December (16:30 UTC on 30 November) belongs to December; a login has no text; a
    survey response without a comment is left out; an unknown customer falls in the unknown group."""
    (tmp_path / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp_path / "staff.csv").write_text(STAFF, encoding="utf-8")
    customers_csv(tmp_path / "customers.csv", [
        customer_row("C01", branch_id="S0101", phone="13800000001"),
        customer_row("C02", branch_id="S0201", phone="13800000002"),
    ])  # fmt: skip
    for kind in ("orgs", "staff", "customers"):
        assert load_file(kind, tmp_path / f"{kind}.csv", settings=env.settings, progress=False).rejected == 0
    events = [
        survey("s1", "C01", "2026-11-03T10:00:00+08:00", QUEUE, branch_id="S0102", channel="sms"),
        complaint("c1", "C02", "2026-11-04T10:00:00+08:00", "排队两个小时还没办上，叫号乱七八糟，太差了",
                  branch_id="S0102", channel="branch"),
        survey("s2", "C02", "2026-11-05T10:00:00+08:00", APP, branch_id="S0102", channel="app"),
        survey("s3", "C01", "2026-11-06T10:00:00+08:00", PRAISE, branch_id="S0102", channel="app"),
        survey("s4", "C01", "2026-11-07T10:00:00+08:00", FEES, channel="wechat"),
        survey("s5", "C01", "2026-11-08T10:00:00+08:00", "客服很专业，点赞", channel="wechat"),
        complaint("c2", "C02", "2026-11-09T10:00:00+08:00", APP, channel="app"),
        survey("s6", "C01", "2026-11-30T16:30:00Z", QUEUE, branch_id="S0102", channel="sms"),
        event("l1", "app.login", customer_id="C01", ts="2026-11-10T10:00:00+08:00"),
        event("s7", "survey.response", customer_id="C01", ts="2026-11-11T10:00:00+08:00", survey="nps",
              nps=3),
        survey("s8", "C99", "2026-11-12T10:00:00+08:00", APP, channel="app"),
    ]  # fmt: skip
    report = load_file("events", jsonl(tmp_path / "events.jsonl", *events), settings=env.settings,
                       progress=False)  # fmt: skip
    assert report.rejected == 0
    return env


def test_by_branch_uses_the_events_branch_else_the_home_branch_and_plain_rows(bank: Any) -> None:
    with unit_of_work(bank.settings) as session:
        rows = negative_topics(session, bank.settings, period="2026-11")
    by_group = {r.group: r for r in rows}
    assert list(by_group) == ["S0101", "S0102", "S0201", UNKNOWN]  # sorted; December's response is not here
    s0102 = by_group["S0102"]
    assert (s0102.period, s0102.comments, s0102.negative) == ("2026-11", 4, 3)
    assert s0102.share_negative == Decimal("0.750")
    assert s0102.top_topics == (TopicCount("queue", "排队等候", 2), TopicCount("app", "手机银行", 1))
    s0101 = by_group["S0101"]
    assert (s0101.comments, s0101.negative) == (2, 1)
    assert [(t.topic, t.count) for t in s0101.top_topics] == [("fees", 1), ("hotline", 1)]
    assert by_group["S0201"].top_topics[0].topic == "app"
    assert by_group[UNKNOWN].comments == 1

    plain = rows_for_output(rows)
    assert set(plain[0]) == {"branch", "period", "comments", "negative", "share_negative", "topic_1",
                             "topic_1_n", "topic_2", "topic_2_n", "topic_3", "topic_3_n"}  # fmt: skip
    assert all(not isinstance(v, float) for row in plain for v in row.values())
    s0102_plain = next(r for r in plain if r["branch"] == "S0102")
    assert (s0102_plain["topic_1"], s0102_plain["topic_1_n"], s0102_plain["topic_3"]) == ("排队等候", 2, None)


def test_all_periods_and_by_channel(bank: Any) -> None:
    with unit_of_work(bank.settings) as session:
        every = negative_topics(session, bank.settings)
        channels = negative_topics(session, bank.settings, period="2026-11", by="channel")
    assert [(r.period, r.group) for r in every if r.period == "2026-12"] == [("2026-12", "S0102")]
    by_channel = {r.group: r for r in channels}
    assert by_channel["app"].comments == 4 and by_channel["app"].negative == 3
    assert by_channel["app"].top_topics[0] == TopicCount("app", "手机银行", 3)
    assert by_channel["wechat"].negative == 1


def test_bad_options_are_refused(env: Any) -> None:
    with unit_of_work(env.settings) as session:
        with pytest.raises(InputRefused, match="--period"):
            negative_topics(session, env.settings, period="2026-13")
        with pytest.raises(InputRefused, match="--by"):
            negative_topics(session, env.settings, by="segment")
        assert negative_topics(session, env.settings, period="2026-11") == []
