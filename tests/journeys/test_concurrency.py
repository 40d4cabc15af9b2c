"""Several workers at once (PostgreSQL): every due step runs exactly once, and the caps hold across
journeys and workers."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from omnibank.contact.models import ContactMessage
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.journeys import runtime
from omnibank.journeys.models import JourneyEntry, JourneyStepRun
from omnibank.journeys.spec import parse_journey
from tests.events.helpers import jsonl
from tests.factories import ORGS, customer_row, customers_csv, id_number
from tests.journeys.helpers import STAFF, login

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)
JOURNEY = """\
id: {id}
name: 并发测试
trigger: {{event: app.login}}
steps:
  - {{id: push, send: {{channel: app_push, template: 欢迎}}}}
  - {{id: tag, tag: {{add: [{id}_seen]}}}}
  - {{id: wait, wait: 1h}}
  - {{id: sms, send: {{channel: sms, template: 推荐}}}}
  - {{id: wechat, send: {{channel: wechat, template: 推荐}}}}
"""
N = 150


def bank(env, tmp) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    rows = [
        customer_row(f"P{i:04d}", phone=f"139{i:08d}", id_no=id_number("131102", "19800517", f"{i:03d}"))
        for i in range(N)
    ]
    customers_csv(tmp / "customers.csv", rows)
    for kind in ("orgs", "staff", "customers"):
        assert load_file(kind, tmp / f"{kind}.csv", settings=env.settings, progress=False).rejected == 0


@pytest.mark.postgres_only
def test_two_workers_never_run_a_step_twice_and_caps_hold(env, tmp_path) -> None:
    bank(env, tmp_path / "bank")
    with unit_of_work(env.settings) as session:
        for jid in ("alpha", "beta"):
            text = JOURNEY.format(id=jid)
            runtime.start(session, env.settings, parse_journey(text), source_text=text, now=T0)
    events = [login(f"l{i}", f"P{i:04d}", (T0 + timedelta(minutes=i % 50)).isoformat()) for i in range(N)]
    assert load_file("events", jsonl(tmp_path / "ev.jsonl", *events), settings=env.settings,
                     progress=False).loaded == N  # fmt: skip
    report = runtime.WorkReport()
    runtime.apply_log(env.settings, now=T0, report=report)
    assert report.entered == 2 * N
    now = T0 + timedelta(hours=3)
    reports = [runtime.WorkReport(), runtime.WorkReport()]
    errors: list[BaseException] = []

    def worker(r: runtime.WorkReport) -> None:
        try:
            while runtime.run_due(env.settings, now=now, batch=7, report=r):
                pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(r,)) for r in reports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(r.claimed > 0 for r in reports), "both workers took part"
    assert sum(r.steps for r in reports) == 2 * N * 5
    with unit_of_work(env.settings) as session:
        sends = select(JourneyStepRun.entry_id, JourneyStepRun.step).where(JourneyStepRun.kind == "send")
        per_step = Counter(session.execute(sends))
        assert set(per_step.values()) == {1} and len(per_step) == 2 * N * 3
        assert session.scalar(select(func.count()).select_from(ContactMessage)) == 2 * N * 3
        sent = Counter(
            session.execute(
                select(ContactMessage.customer_id, ContactMessage.channel).where(
                    ContactMessage.status != "suppressed"
                )
            ).all()
        )
        statuses = set(session.scalars(select(JourneyEntry.status)))
    assert statuses == {"done"}
    assert max(sent.values()) == 1  # one marketing send per channel per day, over both journeys
    assert all(n == 3 for n in Counter(c for c, _ in sent).values())  # 3 a week: each customer's 3 channels
