"""Concurrency on PostgreSQL: eight workers submitting marketing sends for the same customers at once never
take more than the caps, the counters end equal to what was queued, and a key submitted by all of them is
recorded once with one decision."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from omnibank.contact.models import ContactCap, ContactMessage
from omnibank.contact.outbox import submit
from omnibank.contact.policy import CHANNELS, Decision
from omnibank.db import unit_of_work
from tests.contact.helpers import CONSENTING, MONDAY, TZ, load_bank, send

pytestmark = pytest.mark.postgres_only
T = TypeVar("T")


@pytest.fixture
def engine(env, tmp_path) -> Iterator[Engine]:
    load_bank(env.settings, tmp_path / "bank")
    assert env.database_url
    eng = create_engine(env.database_url, pool_size=10, max_overflow=0)
    yield eng
    eng.dispose()


def race(engine: Engine, workers: int, work: Callable[[Session, int], T]) -> list[T | Exception]:
    gate = threading.Barrier(workers)

    def one(i: int) -> T | Exception:
        with engine.connect() as conn:
            session = Session(bind=conn, expire_on_commit=False)
            gate.wait()
            try:
                return work(session, i)
            except Exception as exc:  # noqa: BLE001 - handed back to the test
                session.rollback()
                return exc
            finally:
                session.close()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(workers)))


def test_concurrent_submits_never_exceed_the_caps(env, engine) -> None:
    settings = env.settings
    customers = sorted(CONSENTING)

    def worker(session: Session, w: int) -> list[Decision]:
        rng = random.Random(w)
        out: list[Decision] = []
        for batch in range(6):  # six transactions of twelve sends each, over two days
            at = MONDAY + timedelta(days=batch % 2, minutes=batch)
            sends = [send(f"w{w}:{batch}:{i}", rng.choice(customers), rng.choice(CHANNELS), at=at)
                     for i in range(12)]  # fmt: skip
            sends.append(send(f"shared:{batch}", "C01", "sms", "service", at=at))  # every worker submits it
            out.extend(submit(session, settings, sends, now=at))
            session.commit()
        return out

    results = race(engine, 8, worker)
    for r in results:
        assert isinstance(r, list), r
    with unit_of_work() as session:
        queued = list(session.scalars(select(ContactMessage).where(ContactMessage.status == "queued")))
        counters = {(c.customer_id, c.scope): c.n for c in session.scalars(select(ContactCap))}
        shared = list(session.scalars(select(ContactMessage).where(ContactMessage.key.like("shared:%"))))
    per_day: Counter[tuple[str, str, object]] = Counter()
    per_week: Counter[str] = Counter()
    for m in queued:
        if m.purpose != "marketing":
            continue
        day = m.scheduled_for.astimezone(TZ).date()
        per_day[(m.customer_id, m.channel, day)] += 1
        per_week[m.customer_id] += 1
    assert per_day and max(per_day.values()) == 1
    assert per_week == Counter(dict.fromkeys(customers, 3))  # 576 attempts: every week cap filled, no more
    for (cid, channel, day), n in per_day.items():
        assert counters[(cid, f"d:{channel}:{day.isoformat()}")] == n
    assert {cid: counters[(cid, "w:2026-11-30")] for cid in customers} == dict.fromkeys(customers, 3)
    assert len(shared) == 6  # one row per shared key ...
    by_key = {m.key: m.id for m in shared}
    for r in results:
        assert isinstance(r, list)
        assert [d.message_id for d in r if d.message_id in by_key.values()] == [
            by_key[f"shared:{b}"] for b in range(6)
        ]  # ... and every worker got its decision
