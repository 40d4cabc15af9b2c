"""Event-log compaction (issue 20): the small files of closed months merged into large ones; readers see
every event exactly once at every step, however a run is stopped; consumers neither apply an event twice
nor miss one; merged files are deleted only once no consumer still reads them."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.events.compact import (
    CONSUMER_TABLES,
    closes_at,
    compact,
    consumer_positions,
    read_manifest,
    unread,
)
from omnibank.events.consumers import mark_read, unread_files
from omnibank.events.log import EventLog

MAY = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)  # March is closed by then, May is not


class Killed(BaseException):
    """A process killed at a step (BaseException: nothing in the code under test catches it)."""


def build(settings: Settings, march: int = 8, per_file: int = 3, april: int = 2, may: int = 2) -> set[str]:
    """A log of small files (one per append), as emit makes them; the event ids."""
    log = EventLog(settings)
    ids: set[str] = set()
    n = 0
    for month, files in ((3, march), (4, april), (5, may)):
        for _ in range(files):
            rows = []
            for _ in range(per_file):
                n += 1
                rows.append({"event_id": f"e{n}", "type": "app.login", "customer_id": f"C{n % 5:07d}",
                             "ts": datetime(2026, month, 1 + n % 27, 4, tzinfo=UTC),
                             "payload": f'{{"event_id":"e{n}"}}'})  # fmt: skip
                ids.add(f"e{n}")
            log.append(rows)
    return ids


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int], tuple[Path, set[str]]]:
    """Logs built once (an append costs ~0.1 s), copied by the tests that need many."""
    made: dict[tuple[int, int], tuple[Path, set[str]]] = {}
    for march, per_file in ((8, 3), (30, 2)):
        home = tmp_path_factory.mktemp(f"log{march}") / "home"
        ids = build(Settings(home=home, timezone="Asia/Shanghai"), march=march, per_file=per_file)
        made[(march, per_file)] = (home, ids)
    return made


def copy_of(template: tuple[Path, set[str]], home: Path) -> tuple[Settings, set[str]]:
    shutil.copytree(template[0], home)
    return Settings(home=home, timezone="Asia/Shanghai"), template[1]


def readable(settings: Settings) -> Counter[str]:
    """Every event id as a reader of the log sees it now, with how often."""
    log = EventLog(settings)
    con = log.connect()
    try:
        rows = con.execute(f"SELECT event_id FROM {log.scan_sql()}").fetchall()
    finally:
        con.close()
    return Counter(r[0] for r in rows)


def march_files(settings: Settings) -> list[Path]:
    return [p for p in EventLog(settings).files() if p.parent.name == "month=2026-03"]


def exactly(settings: Settings, ids: set[str]) -> None:
    seen = readable(settings)
    assert set(seen) == ids, "an event is missing or foreign"
    assert max(seen.values()) == 1, "an event is seen twice"


# ------------------------------------------------------------------------------------------ closed months


def test_a_month_closes_two_days_after_its_last_bank_local_day(settings: Settings) -> None:
    # March ends at 2026-04-01 00:00 in Shanghai (2026-03-31 16:00 UTC); closed two days later
    assert closes_at(settings, "2026-03") == datetime(2026, 4, 2, 16, 0, tzinfo=UTC)
    assert closes_at(settings, "2026-12") == datetime(2027, 1, 2, 16, 0, tzinfo=UTC)
    build(settings, march=3, april=3, may=0)
    just_before = datetime(2026, 4, 2, 15, 59, tzinfo=UTC)
    assert compact(None, settings, now=just_before).merged == {}
    with pytest.raises(InputRefused, match="month 2026-03 is not closed yet"):
        compact(None, settings, now=just_before, month="2026-03")
    with pytest.raises(InputRefused, match="YYYY-MM"):
        compact(None, settings, now=MAY, month="March")
    report = compact(None, settings, now=datetime(2026, 4, 2, 16, 0, tzinfo=UTC))
    assert report.merged == {"2026-03": 3}  # April stays as it is: not closed


def test_compaction_merges_small_files_and_keeps_every_event_once(settings: Settings) -> None:
    ids = build(settings)
    before = EventLog(settings).files()
    dry = compact(None, settings, now=MAY, dry_run=True)
    assert dry.merged == {"2026-03": 8, "2026-04": 2} and EventLog(settings).files() == before
    report = compact(None, settings, now=MAY, target_rows=12)
    assert report.merged == {"2026-03": 8, "2026-04": 2}
    assert report.written == {"2026-03": 2, "2026-04": 1}  # 24 rows of March cut at about 12
    assert len(march_files(settings)) == 2
    exactly(settings, ids)
    assert EventLog(settings).count() == len(ids)
    # the event_id stays unique: an event of a compacted month given again is a duplicate
    row = {"event_id": "e1", "type": "app.login", "customer_id": "C1", "ts": datetime(2026, 3, 2, tzinfo=UTC)}
    again = EventLog(settings).append([{**row, "payload": "{}"}])
    assert again.added == 0 and again.duplicates == 1
    # compacted files are not merged again; a late small file is left alone until it has a neighbour
    assert compact(None, settings, now=MAY).merged == {}
    # the originals are still on disk (no consumer could be asked, and a day has not passed)
    assert all((EventLog(settings).dir / o).exists() for g in read_manifest(EventLog(settings).dir).groups
               for o in g.replaces)  # fmt: skip


# ------------------------------------------------------------------------------- killed at every step


def test_killed_after_any_step_readers_see_every_event_once_and_a_rerun_finishes(
    tmp_path: Path, templates: dict[tuple[int, int], tuple[Path, set[str]]]
) -> None:
    steps: list[str] = []
    probe, _ = copy_of(templates[(8, 3)], tmp_path / "probe")
    compact(None, probe, now=MAY, target_rows=12, hook=steps.append)
    assert {"recovered", "written", "pending", "placed", "switched"} <= set(steps)
    for k, step in enumerate(steps):
        settings, ids = copy_of(templates[(8, 3)], tmp_path / f"k{k}")
        calls = 0
        pending: list[int] = []

        def hook(
            name: str,
            settings: Settings = settings,
            ids: set[str] = ids,
            k: int = k,
            pending: list[int] = pending,
        ) -> None:
            nonlocal calls
            exactly(settings, ids)  # a reader at this moment
            if calls == k:
                pending.append(
                    sum(g.state == "pending" for g in read_manifest(EventLog(settings).dir).groups)
                )
                raise Killed(name)
            calls += 1

        with pytest.raises(Killed):
            compact(None, settings, now=MAY, target_rows=12, hook=hook)
        exactly(settings, ids)
        report = compact(None, settings, now=MAY, target_rows=12)  # the next run recovers and finishes
        exactly(settings, ids)
        assert len(march_files(settings)) == 2, f"killed after step {k} ({step})"
        manifest = read_manifest(EventLog(settings).dir)
        assert not [g for g in manifest.groups if g.state == "pending"]
        left = {p.name for p in (EventLog(settings).dir / "_compact" / "tmp").iterdir()}
        assert not left, "a killed run's files are cleaned up"
        assert report.abandoned == pending[0]  # the killed run's groups, recorded and not switched


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime, UTC
    from omnibank.config import Settings
    from omnibank.events.compact import compact

    settings = Settings(home=sys.argv[1], timezone="Asia/Shanghai")
    kill_at = int(sys.argv[2])
    calls = 0

    def hook(name):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    print("ready", flush=True)
    sys.stdin.readline()
    compact(None, settings, now=datetime(2026, 5, 10, 12, tzinfo=UTC), target_rows=40, hook=hook)
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_process_killed_at_random_loses_and_doubles_nothing(
    tmp_path: Path, seed: int, templates: dict[tuple[int, int], tuple[Path, set[str]]]
) -> None:
    """SIGKILL, no cleanup: at a random step boundary, or at a random moment inside a step."""
    rng = random.Random(seed)
    settings, ids = copy_of(templates[(30, 2)], tmp_path / "home")
    for attempt in range(2):
        kill_at = rng.randint(1, 8) if attempt % 2 == 0 else 0  # 0: by the clock instead
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(settings.home_dir), str(kill_at)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        if kill_at == 0:
            time.sleep(rng.uniform(0.0, 0.8))  # a run takes ~0.6 s here
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        exactly(settings, ids)
    compact(None, settings, now=MAY, target_rows=40)
    exactly(settings, ids)
    assert len(march_files(settings)) == 2


# ------------------------------------------------------------------------------------------ consumers


def _pass(settings: Settings, consumer: str, *, limit: int | None = None, now: datetime = MAY) -> list[str]:
    """One pass of a consumer (as surveys and CX alerts run): the event ids it applies."""
    with unit_of_work(settings) as session:
        files = unread_files(session, settings, consumer)[:limit]
        applied = _ids_in(settings, files)
        mark_read(session, settings, consumer, files, {}, now=now)
    return applied


def _ids_in(settings: Settings, files: list[Path]) -> list[str]:
    if not files:
        return []
    con = EventLog(settings).connect()
    try:
        listing = ", ".join(f"'{f}'" for f in files)
        return [r[0] for r in con.execute(f"SELECT event_id FROM read_parquet([{listing}])").fetchall()]
    finally:
        con.close()


def test_consumers_apply_each_event_once_whatever_they_had_read(env: Any) -> None:
    settings = env.settings
    ids = build(settings, april=0, may=0)
    applied: dict[str, list[str]] = {"all": [], "some": [], "none": [], "racing": []}
    applied["all"] += _pass(settings, "t.all")
    applied["some"] += _pass(settings, "t.some", limit=3)

    def hook(step: str) -> None:
        if (
            step == "written" and not applied["racing"]
        ):  # a pass in flight while the run switches: it reads two originals
            with unit_of_work(settings) as session:
                files = unread_files(session, settings, "t.racing")[4:6]
                applied["racing"] += _ids_in(settings, files)
                mark_read(session, settings, "t.racing", files, {}, now=MAY)

    with unit_of_work(settings) as session:
        report = compact(session, settings, now=MAY, keep=timedelta(0), hook=hook)
    # cut where "some" stopped reading: two groups, each read wholly or not at all by every consumer then
    assert report.merged == {"2026-03": 8} and report.written == {"2026-03": 2}
    groups = read_manifest(EventLog(settings).dir).groups
    assert [len(g.replaces) for g in groups] == [3, 5]
    # the racing consumer read 2 of the second group's 5 originals: those 5 are kept for it, the rest go
    assert report.kept == {groups[1].file: ["event_consumer_files:t.racing"]}
    assert report.removed == 3
    with unit_of_work(settings) as session:
        read = consumer_positions(session, "2026-03")["event_consumer_files:t.racing"]
    rest = [str(p.relative_to(EventLog(settings).dir)) for p in unread(EventLog(settings), read)]
    assert rest == [groups[0].file] + [groups[1].replaces[i] for i in (0, 3, 4)]  # the originals left
    for name in applied:
        applied[name] += _pass(settings, f"t.{name}")
        assert sorted(applied[name]) == sorted(ids), name  # every event, once
    # once nobody reads them, the next run deletes the kept originals
    with unit_of_work(settings) as session:
        later = compact(session, settings, now=MAY, keep=timedelta(0))
    assert later.removed == 5 and not later.kept
    assert all(not _pass(settings, f"t.{name}") for name in applied)  # nothing new for anyone
    assert _pass(settings, "t.late") and sorted(_ids_in(settings, EventLog(settings).files())) == sorted(ids)


def test_originals_are_kept_a_day_after_the_switch(env: Any) -> None:
    settings = env.settings
    ids = build(settings, april=0, may=0)
    with unit_of_work(settings) as session:
        assert compact(session, settings, now=MAY).removed == 0
    log = EventLog(settings)
    originals = [log.dir / o for g in read_manifest(log.dir).groups for o in g.replaces]
    with unit_of_work(settings) as session:
        assert compact(session, settings, now=MAY + timedelta(hours=23)).removed == 0
    assert all(p.exists() for p in originals)
    with unit_of_work(settings) as session:
        assert compact(session, settings, now=MAY + timedelta(days=1)).removed == len(originals) == 8
    assert not any(p.exists() for p in originals)
    exactly(settings, ids)


def test_the_mirror_copies_nothing_twice_across_a_compaction(env: Any) -> None:
    from sqlalchemy import func, select

    from omnibank.events.mirror import mirror_events
    from omnibank.events.models import EventFact

    settings = env.settings
    ids = build(settings, march=4, april=0, may=0)
    with unit_of_work(settings) as session:
        assert mirror_events(session, settings).events == len(ids)
    with unit_of_work(settings) as session:
        compact(session, settings, now=MAY, keep=timedelta(0))
    with unit_of_work(settings) as session:
        again = mirror_events(session, settings)
        assert (again.files, again.events, again.skipped_files) == (0, 0, 1)
        assert session.scalar(select(func.count()).select_from(EventFact)) == len(ids)


def test_every_consumer_table_is_known_to_compaction(env: Any) -> None:
    """The consumers' position tables exist with a path column (and the consumer column named)."""
    from omnibank.db.base import Base
    from omnibank.models import import_all_models

    import_all_models()
    for table, key in CONSUMER_TABLES:
        columns = Base.metadata.tables[table].columns
        assert "path" in columns and (key is None or key.split()[0] in columns), table
    with unit_of_work(env.settings) as session:
        assert consumer_positions(session, "2026-03") == {}
    # every table of the store with a path into the log is one of them
    paths = {t.name for t in Base.metadata.sorted_tables if "path" in t.columns and t.name.endswith(
        ("_offsets", "_files"))}  # fmt: skip
    assert paths == {t for t, _ in CONSUMER_TABLES}


# ---------------------------------------------------------------------------------- the command, the job


def test_the_command_and_the_worker_job(cli: Any, env: Any, pinned_clock: datetime) -> None:
    settings = env.settings
    log = EventLog(settings)
    for n in range(3):  # January: closed at the pinned moment (2026-03-02)
        log.append([{"event_id": f"j{n}", "type": "app.login", "customer_id": "C1",
                     "ts": datetime(2026, 1, 5 + n, tzinfo=UTC), "payload": "{}"}])  # fmt: skip
    dry = cli("events", "compact", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "2026-01: would merge 3 files into 1 (3 events)" in dry.stdout
    assert len(log.files()) == 3
    refused = cli("events", "compact", "--month", "2026-03")
    assert refused.exit_code != 0 and "not closed yet" in refused.stderr + refused.stdout
    done = cli("events", "compact", "--month", "2026-01")
    assert done.exit_code == 0 and "2026-01: merged 3 files into 1 (3 events)" in done.stdout
    assert len(log.files()) == 1
    for n in range(2):
        log.append([{"event_id": f"k{n}", "type": "app.login", "customer_id": "C1",
                     "ts": datetime(2026, 1, 20, tzinfo=UTC), "payload": "{}"}])  # fmt: skip
    from omnibank.events.jobs import run
    from omnibank.worker.registry import Limits

    result = run(settings, pinned_clock, Limits())
    assert result.counts == {"merged": 2, "written": 1, "events": 2}
    assert len(log.files()) == 2 and log.count() == 5


def test_a_second_compaction_waits_for_the_first(settings: Settings) -> None:
    import fcntl

    build(settings, march=3, april=0, may=0)
    folder = EventLog(settings).dir / "_compact"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert compact(None, settings, now=MAY).busy
    finally:
        os.close(fd)
    assert compact(None, settings, now=MAY).merged == {"2026-03": 3}


def test_a_backup_carries_the_compaction_so_a_restored_consumer_reads_nothing_twice(
    env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnibank import config, db
    from omnibank.ops import backup as ops

    settings = env.settings
    ids = build(settings, march=4, april=0, may=0)
    assert sorted(_pass(settings, "t.all")) == sorted(ids)
    with unit_of_work(settings) as session:
        compact(session, settings, now=MAY, keep=timedelta(0))
    from omnibank.security import get_cipher

    get_cipher(settings)  # the key file a backup carries apart
    ops.backup(settings, tmp_path / "bk", keys_out=tmp_path / "vault")
    monkeypatch.setenv("OMNIBANK_HOME", str(tmp_path / "restored"))
    config.reset_settings()
    db.dispose_engines()
    if env.database_url:
        pytest.skip("the restore into a fresh PostgreSQL database is tested in tests/ops")
    ops.restore(config.get_settings(), tmp_path / "bk", keys_in=tmp_path / "vault")
    restored = config.get_settings()
    assert restored.home_dir == (tmp_path / "restored").resolve()
    exactly(restored, ids)
    assert _pass(restored, "t.all") == []  # it had read the originals: the compacted file is read
    assert sorted(_pass(restored, "t.new")) == sorted(ids)
    db.dispose_engines()
