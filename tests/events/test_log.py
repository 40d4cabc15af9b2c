"""The event log: reading it, recovering from crashed loads, concurrent loads."""

from __future__ import annotations

import shutil
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from omnibank.config import Settings
from omnibank.events.loader import load_events
from omnibank.events.log import COLUMN_NAMES, FINAL, READY, STAGING, EventLog
from omnibank.events.protect import Protector
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.loading import LoadReport
from tests.events.helpers import event, files_under, jsonl, stored, txn


def test_an_empty_log_reads_as_no_events(settings: Settings) -> None:
    log = EventLog(settings)

    assert log.files() == []
    assert log.count() == 0
    assert log.recent("C0000001") == []
    con = log.connect()
    cur = con.execute(f"SELECT * FROM {log.scan_sql()}")
    assert [d[0] for d in cur.description] == [*COLUMN_NAMES, "month"]
    assert cur.fetchall() == []
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("Asia/Shanghai",)
    con.close()


def test_recent_gives_the_latest_events_first_with_their_set_fields(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    path = jsonl(
        tmp_path / "events.jsonl",
        event("old", ts="2026-01-05T09:00:00+08:00", channel="app"),
        txn("new", "9.90", ts="2026-03-02T09:00:00+08:00", merchant="美团外卖"),
        event("mid", "points.earned", ts="2026-02-01T09:00:00+08:00", points=30),
        event("other", customer_id="C0000002", ts="2026-04-01T09:00:00+08:00"),
    )
    load_events(settings, path, cipher=cipher, progress=False)
    log = EventLog(settings)

    recent = log.recent("C0000001", limit=2)

    assert [e["event_id"] for e in recent] == ["new", "mid"]
    assert recent[0] == {
        "event_id": "new",
        "type": "card.transaction",
        "customer_id": "C0000001",
        "ts": datetime.fromisoformat("2026-03-02T09:00:00+08:00"),
        "channel": None,
        "amount": Decimal("9.90"),
        "card_id": Protector(cipher).card_token("6222000012345678"),  # the log keeps the card's token
        "merchant": "美团外卖",
    }
    assert recent[1]["points"] == 30
    assert log.count() == 4


def test_recent_takes_several_customers(settings: Settings, cipher: FieldCipher, tmp_path: Path) -> None:
    # given events of a survivor, of a customer merged into it, and of someone else
    path = jsonl(
        tmp_path / "events.jsonl",
        event("a1", customer_id="A", ts="2026-03-01T09:00:00+08:00"),
        event("b1", customer_id="B", ts="2026-03-02T09:00:00+08:00"),
        event("a2", customer_id="A", ts="2026-03-03T09:00:00+08:00"),
        event("c1", customer_id="C", ts="2026-03-04T09:00:00+08:00"),
    )
    load_events(settings, path, cipher=cipher, progress=False)
    log = EventLog(settings)

    recent = log.recent(["A", "B", "A"], limit=10)

    assert [(e["event_id"], e["customer_id"]) for e in recent] == [("a2", "A"), ("b1", "B"), ("a1", "A")]
    assert [e["event_id"] for e in log.recent(["B", "A"], limit=2)] == ["a2", "b1"]
    assert log.recent([]) == []


def _crashed_load(settings: Settings, cipher: FieldCipher, tmp_path: Path, *, ready: bool) -> str:
    """Stage the files of a load the way a load does, then leave them as a crash would."""
    scratch = Settings(home=tmp_path / "scratch", timezone=settings.timezone)
    path = jsonl(tmp_path / "crashed.jsonl", event("a"), event("b", ts="2026-04-02T10:00:00+08:00"))
    report = load_events(scratch, path, cipher=cipher, progress=False)
    folder = settings.event_log_dir / STAGING / report.load_id
    for file in EventLog(scratch).files():
        target = folder / FINAL / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target)
    (folder / "tmp").mkdir()
    if ready:
        (folder / READY).write_text("\n")
    return report.load_id


def test_recover_rolls_a_ready_staging_folder_forward(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    load_id = _crashed_load(settings, cipher, tmp_path, ready=True)
    log = EventLog(settings)
    assert log.files() == []  # readers never see staging

    log.recover()

    assert sorted(stored(settings)) == ["a", "b"]
    assert {p.name for p in log.files()} == {f"{load_id}-0.parquet", f"{load_id}-1.parquet"}
    assert not files_under(settings.event_log_dir / STAGING)


def test_recover_deletes_a_staging_folder_that_was_not_ready(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    _crashed_load(settings, cipher, tmp_path, ready=False)

    EventLog(settings).recover()

    assert EventLog(settings).files() == []
    assert list((settings.event_log_dir / STAGING).iterdir()) == []


def test_a_load_finishes_a_crashed_one_first(settings: Settings, cipher: FieldCipher, tmp_path: Path) -> None:
    _crashed_load(settings, cipher, tmp_path, ready=True)

    report = load_events(
        settings, jsonl(tmp_path / "next.jsonl", event("b"), event("c")), cipher=cipher, progress=False
    )

    assert (report.loaded, report.duplicates) == (1, 1)
    assert sorted(stored(settings)) == ["a", "b", "c"]
    # the report says where the duplicates came from: the interrupted load it completed brought a and b
    assert report.recovered == 2
    assert report.summary_line().splitlines() == [
        "completed an interrupted earlier load first: it added 2 events to the log",
        "loaded 1, rejected 0, duplicates 1",
    ]


def test_recover_leaves_the_staging_folder_of_a_running_load_alone(settings: Settings) -> None:
    log = EventLog(settings)
    with log.staging("running") as folder:
        (folder / "work").write_text("in progress")

        EventLog(settings).recover()

        assert (folder / "work").exists()
    assert not folder.exists()


def test_concurrent_loads_of_overlapping_files_store_each_id_once(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    first = jsonl(tmp_path / "a.jsonl", *(event(f"e{i:04d}") for i in range(0, 600)))
    second = jsonl(tmp_path / "b.jsonl", *(event(f"e{i:04d}") for i in range(300, 900)))
    reports: list[LoadReport] = []
    errors: list[BaseException] = []

    def run(path: Path) -> None:
        try:
            reports.append(load_events(settings, path, cipher=cipher, progress=False, batch_lines=100))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(stored(settings)) == [f"e{i:04d}" for i in range(900)]
    assert sum(r.loaded for r in reports) == 900
    assert sum(r.duplicates for r in reports) == 300


def test_log_files_sort_in_the_order_their_loads_started(
    settings: Settings, cipher: FieldCipher, tmp_path: Path, time_machine
) -> None:
    # three loads into the same month, a millisecond apart: whatever the random part of their ids, the log's
    # files sort as the loads happened (campaign run and the worker apply pending files in that order)
    for i in range(3):
        time_machine.move_to(datetime.fromisoformat(f"2026-03-02T10:00:00.00{i}+08:00"), tick=False)
        load_events(settings, jsonl(tmp_path / f"l{i}.jsonl", event(f"e{i}")), cipher=cipher, progress=False)
    ids = [pq.read_table(f, columns=["event_id"]).column(0).to_pylist() for f in EventLog(settings).files()]
    assert ids == [["e0"], ["e1"], ["e2"]]
