"""Event-log compaction: the small Parquet files of closed bank-local months merged into large ones.

**Why.** Every ``events.emit`` (receipts, lead events, tickets) publishes a file of a few rows; a month of
a live bank holds tens of thousands of them, and every reader pays each file's open and footer.

**The switch is one manifest** (``events/_compact/manifest.json``, replaced atomically with
``os.replace``). Each *group* in it names a compacted file and the originals it replaces, in one of
three states:

* ``pending``: the compacted file may be in place but is not part of the log; the originals are.
* ``switched``: the compacted file is part of the log and its originals are not (they stay on disk
  until :func:`remove_originals` finds no reader can still need them).
* ``abandoned``: a pending group of a run that was killed; its file (if any) is deleted, the entry stays
  so a reader that listed the folder a moment earlier still hides the name.

:meth:`omnibank.events.log.EventLog.files` lists ``month=*/*.parquet`` first and reads the manifest second
(:func:`visible`): a pending or abandoned group's file is left out; a switched group's originals are left
out only when its compacted file was in that same listing. A compaction writes the compacted file to
``_compact/tmp/``, records the group ``pending``, renames the file into its month, then marks the group
``switched``. Whatever moment a run is killed at, and whatever moment a reader lists the folder at, each
event of the month is seen exactly once: before the switch through the originals, after it through the
compacted file (``tests/events/test_compact.py`` kills it at every step, and in a subprocess at random).

**Consumers** (jobs that record the log files they have read: ``event_consumer_files``, journey and
campaign offsets, ticket intake, invite binding, the store's mirror) compute what is left to read with
:func:`unread`, which maps a consumer's read set through the switched groups: a consumer that read all of
a group's originals has read its compacted file; one that read none of them reads the compacted file; one
that read some (it was reading them while the switch happened) reads the rest of the originals, which are
kept on disk for as long as any consumer is in that state. Compaction never has to wait for a consumer:
the groups of a month are cut where any consumer's read set changes (:func:`plan`), so at the switch each
consumer has read all or none of each group, except one whose pass was in flight. No offset row is
rewritten, so the consumers' tables need no migration and no transaction spans the files and the store.

**Closed months.** A bank-local month is closed :data:`CLOSE_GRACE` (2 days) after it ends: late events
(card settlements, receipts) still arrive then. Events dated in a compacted month later on are published as
ordinary files beside the compacted one; a later run merges those. Compacted files are never merged again.

**Removal.** A switched group's originals are deleted once :data:`KEEP_ORIGINALS` (1 day) has passed since
the switch (a query or a consumer pass that listed the log before the switch has long finished) and no
consumer has read only some of them.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from omnibank.config import Settings
from omnibank.errors import Conflict, InputRefused
from omnibank.events.manifest import (
    COMPACT,
    Group,
    Manifest,
    _rel,
    _view,
    fsync_dir,
    read_manifest,
    visible,
    write_manifest,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from omnibank.events.log import EventLog

TMP = "tmp"
LOCK = ".lock"

#: a month is closed (may be compacted) this long after its last bank-local day ends
CLOSE_GRACE = timedelta(days=2)
#: a switched group's originals are kept at least this long after the switch
KEEP_ORIGINALS = timedelta(days=1)
#: files at least this large are left as they are (a bulk load's files are large already)
SMALL_BYTES = 32 * 1024 * 1024
#: a compacted file holds at most about this many rows (whole originals: it may go one file over)
TARGET_ROWS = 2_000_000

#: the store's tables of consumer positions in the log: (table, the column (or expression) naming the
#: consumer, or None)
CONSUMER_TABLES: tuple[tuple[str, str | None], ...] = (
    ("event_consumer_files", "consumer"),
    ("journey_offsets", "journey"),
    ("campaign_offsets", "campaign || '#' || CAST(part AS VARCHAR)"),  # each partition reads on its own
    ("ticket_intake_offsets", None),
    ("invite_offsets", None),
    ("event_mirror_files", None),
)

#: the steps a compaction may be killed after (tests inject a failure at each)
Hook = Callable[[str], None]


def unread(log: EventLog, done: Collection[str]) -> list[Path]:
    """The files a consumer that has read ``done`` (paths relative to the log folder) has still to read, in
    the log's order: the log's files it has not read, where a compacted file counts as read when all its
    originals are, and stands for those of its originals not read yet when some are."""
    if not log.dir.is_dir():
        return []
    files, manifest = _view(log.dir, sorted(log.dir.glob("month=*/*.parquet")))
    groups = manifest.switched()
    out: list[Path] = []
    for path in files:
        rel = _rel(log.dir, path)
        if rel in done:
            continue
        group = groups.get(rel)
        read = [o for o in group.replaces if o in done] if group else []
        if group is None or not read:
            out.append(path)
        elif len(read) < len(group.replaces):
            rest = [log.dir / o for o in group.replaces if o not in done]
            missing = [p for p in rest if not p.exists()]
            if missing:
                raise Conflict(
                    f"a consumer has read {len(read)} of the {len(group.replaces)} files {rel} replaced, "
                    f"and {len(missing)} of the others are deleted: rebuild that consumer's position"
                )
            out.extend(rest)
    return out


# ------------------------------------------------------------------------------------------ closed months


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(value: str) -> str:
    """``YYYY-MM`` checked."""
    try:
        day = datetime.strptime(value + "-01", "%Y-%m-%d").date()  # noqa: DTZ007 (a calendar date)
    except ValueError:
        raise InputRefused(f"--month {value!r}: a month is written YYYY-MM, e.g. 2026-03") from None
    return month_key(day)


def closes_at(settings: Settings, month: str, grace: timedelta = CLOSE_GRACE) -> datetime:
    """When ``month`` (bank-local) is closed: the start of the next month in the bank's zone, plus
    ``grace``."""
    year, mon = (int(x) for x in month.split("-"))
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    start = datetime(nxt.year, nxt.month, 1, tzinfo=settings.tz)
    return (start + grace).astimezone(UTC)


def is_closed(settings: Settings, month: str, now: datetime, grace: timedelta = CLOSE_GRACE) -> bool:
    return now >= closes_at(settings, month, grace)


# ------------------------------------------------------------------------------------------- consumers


def consumer_positions(session: Session, month: str) -> dict[str, set[str]]:
    """Each consumer's read files of ``month`` (names like ``journey_offsets:J1``), as committed now: read in
    a transaction of its own, since the session's snapshot may predate a consumer's pass (SQLite keeps a
    read transaction's snapshot), and deleting an original on a stale position would lose events."""
    from sqlalchemy import Engine, text  # not for every reader of the log

    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    out: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for table, key in CONSUMER_TABLES:
            who = key or "''"
            rows = conn.execute(
                text(f"SELECT {who}, path FROM {table} WHERE path LIKE :prefix"),  # noqa: S608 (constants)
                {"prefix": f"month={month}/%"},
            )
            for name, path in rows:
                out.setdefault(f"{table}:{name}" if key else table, set()).add(str(path))
    return out


def partial_readers(group: Group, positions: dict[str, set[str]]) -> list[str]:
    """The consumers that have read some but not all of ``group``'s originals (and not its file)."""
    wanted = set(group.replaces)
    return sorted(
        name for name, read in positions.items()
        if group.file not in read and 0 < len(read & wanted) < len(wanted)
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Part:
    month: str
    files: tuple[Path, ...]
    rows: int


@dataclass
class Report:
    """What a run did (or, dry, would do)."""

    merged: dict[str, int] = field(default_factory=dict)  # month → originals merged
    written: dict[str, int] = field(default_factory=dict)  # month → compacted files
    events: dict[str, int] = field(default_factory=dict)  # month → events in them
    removed: int = 0  # originals deleted
    kept: dict[str, list[str]] = field(default_factory=dict)  # compacted file → consumers still reading
    abandoned: int = 0  # groups of killed runs cleaned up
    open_months: list[str] = field(default_factory=list)  # asked for but not closed yet
    busy: bool = False  # another compaction was running

    def counts(self) -> dict[str, int]:
        return {"merged": sum(self.merged.values()), "written": sum(self.written.values()),
                "events": sum(self.events.values()), "removed": self.removed,
                "abandoned": self.abandoned}  # fmt: skip


def plan(
    log: EventLog, month: str, positions: dict[str, set[str]], *, small_bytes: int = SMALL_BYTES,
    target_rows: int = TARGET_ROWS,
) -> list[Part]:  # fmt: skip
    """The groups to merge in ``month``: its small protected files that are not compacted already, in the
    log's order, cut where any consumer's read set changes and at about ``target_rows``; a group of one file
    is left as it is."""
    import pyarrow.parquet as pq

    from omnibank.events.protect import protected_file

    compacted = set(read_manifest(log.dir).switched())
    files = [
        p for p in log.files()
        if p.parent.name == f"month={month}" and _rel(log.dir, p) not in compacted
        and p.stat().st_size < small_bytes and protected_file(p)
    ]  # fmt: skip
    parts: list[Part] = []
    run: list[Path] = []
    rows = 0
    previous: tuple[bool, ...] | None = None
    for path in files:
        rel = _rel(log.dir, path)
        readers = tuple(rel in read for _, read in sorted(positions.items()))
        n = pq.read_metadata(path).num_rows
        if run and (readers != previous or rows >= target_rows):
            parts.append(Part(month, tuple(run), rows))
            run, rows = [], 0
        run.append(path)
        rows += n
        previous = readers
    if run:
        parts.append(Part(month, tuple(run), rows))
    return [p for p in parts if len(p.files) > 1]


def _write(part: Part, dest: Path) -> int:
    """Merge the part's files, rows in order, into ``dest`` (durable); the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from omnibank.events.log import DICTIONARY_COLUMNS, ROW_GROUP_ROWS, arrow_schema
    from omnibank.events.protect import PROTECTED_KEY, PROTECTED_VERSION

    schema = arrow_schema().with_metadata({PROTECTED_KEY: PROTECTED_VERSION})
    written = 0
    with pq.ParquetWriter(
        dest, schema, compression="zstd", use_dictionary=DICTIONARY_COLUMNS
    ) as writer:  # fmt: skip
        buffer: list[pa.Table] = []
        buffered = 0
        for path in part.files:
            table = pq.read_table(path)
            columns = [
                table.column(f.name).cast(f.type) if f.name in table.column_names
                else pa.nulls(table.num_rows, f.type)
                for f in schema
            ]  # fmt: skip
            buffer.append(pa.Table.from_arrays(columns, schema=schema))
            buffered += table.num_rows
            if buffered >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(buffer), row_group_size=ROW_GROUP_ROWS)
                written += buffered
                buffer, buffered = [], 0
        if buffer:
            writer.write_table(pa.concat_tables(buffer), row_group_size=ROW_GROUP_ROWS)
            written += buffered
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return written


def _check(log: EventLog, part: Part, dest: Path) -> None:
    """The compacted file holds exactly the originals' events (ids and rows), or the run stops here."""
    from omnibank.events.log import sql_string

    con = log.connect()
    try:
        listing = ", ".join(sql_string(str(p)) for p in part.files)
        row = con.execute(
            f"SELECT (SELECT count(*) FROM read_parquet([{listing}], union_by_name = true)), "
            f"(SELECT count(*) FROM read_parquet({sql_string(str(dest))})), "
            f"(SELECT count(*) FROM (SELECT event_id FROM read_parquet([{listing}], union_by_name = true) "
            f"EXCEPT SELECT event_id FROM read_parquet({sql_string(str(dest))})))"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    if row[0] != row[1] or row[2] != 0:
        raise Conflict(f"compacting month {part.month}: the merged file does not hold the originals' events")


# ------------------------------------------------------------------------------------------------ runs


def _locked(log_dir: Path) -> int | None:
    """This process's hold on compaction (one at a time per log), or None if another run holds it."""
    folder = log_dir / COMPACT
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat()


def _recover(log: EventLog, now: datetime, report: Report) -> None:
    """Abandon the pending groups of killed runs (their files are not part of the log) and delete what they
    wrote. Held under the compaction lock."""
    manifest = read_manifest(log.dir)
    pending = [g for g in manifest.groups if g.state == "pending"]
    if pending:
        groups = tuple(
            replace(g, state="abandoned", at=_stamp(now)) if g.state == "pending" else g
            for g in manifest.groups
        )
        write_manifest(log.dir, Manifest(groups))
        report.abandoned += len(pending)
    for g in manifest.groups:
        if g.state != "switched":
            (log.dir / g.file).unlink(missing_ok=True)
    tmp = log.dir / COMPACT / TMP
    if tmp.is_dir():
        for leftover in tmp.iterdir():
            leftover.unlink(missing_ok=True)


def remove_originals(
    session: Session | None, log: EventLog, *, now: datetime, keep: timedelta = KEEP_ORIGINALS,
    report: Report, hook: Hook | None = None,
) -> None:  # fmt: skip
    """Delete the originals of switched groups older than ``keep`` that no consumer is still reading (without
    a session, none: the consumers cannot be asked)."""
    if session is None:
        return
    manifest = read_manifest(log.dir)
    positions: dict[str, dict[str, set[str]]] = {}
    done: list[str] = []
    for g in manifest.groups:
        if g.state != "switched" or g.removed or now - datetime.fromisoformat(g.at) < keep:
            continue
        if g.month not in positions:
            positions[g.month] = consumer_positions(session, g.month)
        readers = partial_readers(g, positions[g.month])
        if readers:
            report.kept[g.file] = readers
            continue
        for original in g.replaces:
            path = log.dir / original
            if path.exists():
                path.unlink()
                report.removed += 1
                if hook:
                    hook("removing")
        done.append(g.file)
    if done:
        marked = tuple(replace(g, removed=True) if g.file in done else g for g in manifest.groups)
        write_manifest(log.dir, Manifest(marked))
        if hook:
            hook("removed")


def closed_months(log: EventLog, now: datetime, grace: timedelta = CLOSE_GRACE) -> list[str]:
    months = sorted({p.parent.name.removeprefix("month=") for p in log.files()})
    return [m for m in months if is_closed(log.settings, m, now, grace)]


def compact(
    session: Session | None, settings: Settings, *, now: datetime, month: str | None = None,
    dry_run: bool = False, grace: timedelta = CLOSE_GRACE, keep: timedelta = KEEP_ORIGINALS,
    small_bytes: int = SMALL_BYTES, target_rows: int = TARGET_ROWS, hook: Hook | None = None,
) -> Report:  # fmt: skip
    """Compact the closed months of the log (or ``month``, refused if not closed), then delete the originals
    no reader needs any more. Reads the store (the consumers' positions), never writes it. ``hook`` is called
    after each step a process may be killed at (tests)."""
    from omnibank.events.log import EventLog

    log = EventLog(settings)
    report = Report()
    if month is not None:
        month = parse_month(month)
        if not is_closed(settings, month, now, grace):
            raise InputRefused(
                f"month {month} is not closed yet: it may be compacted from "
                f"{closes_at(settings, month, grace).astimezone(settings.tz):%Y-%m-%d %H:%M} (bank time)"
            )
    if not log.dir.is_dir():
        return report
    months = [month] if month is not None else closed_months(log, now, grace)
    if dry_run:
        for m in months:
            positions = consumer_positions(session, m) if session is not None else {}
            for part in plan(log, m, positions, small_bytes=small_bytes, target_rows=target_rows):
                _count(report, part)
        return report
    fd = _locked(log.dir)
    if fd is None:
        report.busy = True
        return report
    try:
        _recover(log, now, report)
        if hook:
            hook("recovered")
        remove_originals(session, log, now=now, keep=keep, report=report, hook=hook)
        for m in months:
            positions = consumer_positions(session, m) if session is not None else {}
            parts = plan(log, m, positions, small_bytes=small_bytes, target_rows=target_rows)
            if parts:
                _merge(log, parts, now=now, report=report, hook=hook)
        if keep <= timedelta(0):
            remove_originals(session, log, now=now, keep=keep, report=report, hook=hook)
    finally:
        os.close(fd)
    return report


def _count(report: Report, part: Part) -> None:
    report.merged[part.month] = report.merged.get(part.month, 0) + len(part.files)
    report.written[part.month] = report.written.get(part.month, 0) + 1
    report.events[part.month] = report.events.get(part.month, 0) + part.rows


def _merge(log: EventLog, parts: Iterable[Part], *, now: datetime, report: Report, hook: Hook | None) -> None:
    """Write, record pending, place, switch: the steps of the module docstring, for one month's parts."""
    run = secrets.token_hex(3)
    tmp = log.dir / COMPACT / TMP
    tmp.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Part, Path, Group]] = []
    for k, part in enumerate(parts):
        name = f"{part.files[0].stem}.compact-{run}-{k}.parquet"
        staged = tmp / name
        rows = _write(part, staged)
        _check(log, part, staged)
        group = Group(
            file=f"month={part.month}/{name}", replaces=tuple(_rel(log.dir, p) for p in part.files),
            state="pending", events=rows, at=_stamp(now),
        )  # fmt: skip
        written.append((part, staged, group))
        if hook:
            hook("written")
    manifest = read_manifest(log.dir)
    write_manifest(log.dir, Manifest(manifest.groups + tuple(g for _, _, g in written)))
    if hook:
        hook("pending")
    for _, staged, group in written:
        os.replace(staged, log.dir / group.file)
        fsync_dir((log.dir / group.file).parent)
        if hook:
            hook("placed")
    files = {g.file for _, _, g in written}
    with log.locked():  # a backup lists the log and copies the manifest under this lock
        manifest = read_manifest(log.dir)
        switched = tuple(
            replace(g, state="switched", at=_stamp(now)) if g.file in files else g for g in manifest.groups
        )
        write_manifest(log.dir, Manifest(switched))
    if hook:
        hook("switched")
    for part, _, _ in written:
        _count(report, part)


__all__ = ["CLOSE_GRACE", "KEEP_ORIGINALS", "Report", "compact", "read_manifest", "unread", "visible"]
