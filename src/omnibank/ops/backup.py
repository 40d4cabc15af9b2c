"""Backup and restore of a data home: the operational store, the event log and (apart) the keys.

A backup folder holds::

    manifest.json                          # written last: time, revision, row counts, files + SHA-256
    store/omnibank.sqlite                  # SQLite: a copy made with the online backup API
    store/omnibank.pgdump                  # PostgreSQL: pg_dump custom format
    events/month=…/<load_id>-<n>.parquet   # the event log's published files

The keys never go into the backup folder: ``--keys-out`` writes the key file to a different place (keep
it apart from the backups, like any secret); without it they are left out with a warning.

The manifest is signed (HMAC-SHA-256 with a key derived from the key ring, see ``manifest_mac``): whoever
can change a backup but does not hold the keys cannot make an altered file pass by re-computing its
checksum in the manifest. ``restore`` checks the signature with the keys it restores with (``--keys-in``, or
the target's own) and refuses an unsigned or mis-signed manifest. A backup made before manifests were signed
is refused too, until someone who trusts it signs it (``sign_backup``, ``omnibank backup-sign``).

Consistency: the store is read in one snapshot, and the list of event files is taken under the event
log's lock in the same instant, so no load is half-published in it. Loads publish their files before
they commit the store's side, so the log copied may hold events the store does not know yet (a load's
re-run catches up, events are deduplicated by id) but never the other way round. Published log files are
immutable, so they are copied after the lock is released; staging folders are never copied.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from omnibank import __version__, db
from omnibank.config import Settings
from omnibank.errors import ConfigError, Conflict, InputRefused
from omnibank.events.log import EventLog
from omnibank.events.manifest import manifest_path
from omnibank.kit.crypto import KeyRing, load_or_create_key_ring
from omnibank.ops.rotate import key_usage, write_ring
from omnibank.security import reset_ciphers

FORMAT = 2  # 2: signed; 1: made before manifests were signed (restored only once signed)
MANIFEST = "manifest.json"
SIGNATURE = "signature"
_MANIFEST_LABEL = b"omnibank/backup/manifest/v1"
KEY_FILE = "master.key"
SQLITE_COPY = "store/omnibank.sqlite"
PG_DUMP = "store/omnibank.pgdump"
_CHUNK = 1 << 20
SNAPSHOTS = "snapshots"  # omnibank.segments.engine keeps its derived snapshots here


class Progress:
    """What the CLI shows while copying: a phase with a known total, advanced as work is done."""

    def phase(self, description: str, total: int) -> None:  # pragma: no cover - display only
        pass

    def advance(self, amount: int) -> None:  # pragma: no cover - display only
        pass


@dataclass
class BackupReport:
    folder: Path
    manifest: dict[str, Any]
    keys_written: Path | None
    warnings: list[str] = field(default_factory=list)


@dataclass
class RestoreReport:
    tables: dict[str, int]
    files: int
    keys_installed: Path | None
    moved_aside: list[Path] = field(default_factory=list)


# -- small helpers ------------------------------------------------------------------------------------


def _sha256(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress.advance(len(chunk))
    return digest.hexdigest()


def _copy(src: Path, dest: Path, progress: Progress) -> str:
    """Copy a file (to a temporary name, then renamed) and return the SHA-256 of what was copied."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    with src.open("rb") as fin, tmp.open("wb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            progress.advance(len(chunk))
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dest)
    return digest.hexdigest()


def _store_phase(progress: Progress, con: sqlite3.Connection, what: str) -> Callable[[int, int, int], None]:
    """Start a phase sized in bytes for copying the database of ``con`` with sqlite3's backup(), and
    the progress callback that advances it by the bytes of the pages copied since the last call."""
    page_size = int(con.execute("PRAGMA page_size").fetchone()[0])
    progress.phase(what, int(con.execute("PRAGMA page_count").fetchone()[0]) * page_size)
    done = 0

    def step(_status: int, remaining: int, total: int) -> None:
        nonlocal done
        now = total - remaining
        progress.advance(max(0, now - done) * page_size)
        done = now

    return step


def _is_within(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.db_url).database
    if not database or database == ":memory:":
        raise ConfigError("backup needs a SQLite file, not an in-memory database (OMNIBANK_DATABASE_URL)")
    return Path(database)


def _dialect(settings: Settings) -> str:
    url = settings.db_url
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    raise ConfigError(f"OMNIBANK_DATABASE_URL: unsupported database {url.split(':', 1)[0]!r}")


def _count_rows(conn: Connection) -> dict[str, int]:
    tables = sorted(inspect(conn).get_table_names())
    return {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in tables}


def _revision(counts: dict[str, int], conn: Connection) -> str | None:
    if "alembic_version" not in counts:
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


def _store_facts(conn: Connection, ring: KeyRing | None) -> dict[str, Any]:
    """Row counts, revision, data versions and key ids in use, all read in the caller's snapshot."""
    counts = _count_rows(conn)
    facts: dict[str, Any] = {"revision": _revision(counts, conn), "tables": counts}
    if "data_versions" in counts:
        facts["data_versions"] = {
            str(n): int(v) for n, v in conn.execute(text("SELECT name, version FROM data_versions"))
        }
    if ring is not None and "customers" in counts and "staff" in counts:
        usage = key_usage(Session(bind=conn), ring)
        facts["ciphertexts_by_key"] = {k: n for k, n in usage.by_key.items() if n}
        if usage.other:
            facts["ciphertexts_by_key"]["?"] = usage.other
    return facts


def _key_material(settings: Settings) -> tuple[KeyRing | None, bytes | None]:
    """The home's key ring and the key file's bytes, read now (after the store's snapshot was taken, so
    that a key added by a rotation meanwhile is in it); never creates a key file."""
    if settings.master_key is not None:
        return KeyRing.from_master_secret(settings.master_key.get_secret_value()), None
    try:
        data = settings.key_file.read_bytes()
    except FileNotFoundError:
        return None, None
    return KeyRing.from_json(data.decode("utf-8", "replace"), source=str(settings.key_file)), data


def _existing_ring(settings: Settings) -> KeyRing | None:
    """The home's key ring if there is one; never creates a key file (unlike get_cipher)."""
    if settings.master_key is not None:
        return KeyRing.from_master_secret(settings.master_key.get_secret_value())
    if settings.key_file.exists():
        return KeyRing.from_json(settings.key_file.read_text(), source=str(settings.key_file))
    return None


def _manifest_key(ring: KeyRing) -> bytes:
    """The manifests' HMAC key: derived (HKDF-SHA-256, its own label) from the ring's index key, which is
    never rotated, so a backup stays verifiable after key rotations."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MANIFEST_LABEL).derive(ring.index_key)


def manifest_mac(manifest: dict[str, Any], ring: KeyRing) -> str:
    """The HMAC-SHA-256 of a manifest (everything but its signature, as canonical JSON)."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hmac.new(_manifest_key(ring), data, hashlib.sha256).hexdigest()


def _signed(manifest: dict[str, Any], ring: KeyRing) -> dict[str, Any]:
    body = {k: v for k, v in manifest.items() if k != SIGNATURE}
    body["format"] = FORMAT
    return {**body, SIGNATURE: {"alg": "HMAC-SHA256", "key": "index-key/manifest-v1",
                                "mac": manifest_mac(body, ring)}}  # fmt: skip


def check_signature(folder: Path, manifest: dict[str, Any], ring: KeyRing, keys: str) -> None:
    """Refuse a manifest that is unsigned, or whose signature the ring ``keys`` names does not verify."""
    signature = manifest.get(SIGNATURE)
    if not isinstance(signature, dict) or not isinstance(signature.get("mac"), str):
        raise InputRefused(
            f"restore refused: {folder / MANIFEST} is not signed (a backup made before backups were signed, "
            "or its signature was removed); nothing was restored. If you trust this backup, sign it with its "
            "keys first: omnibank backup-sign DIR --keys-in VAULT"
        )
    if not hmac.compare_digest(signature["mac"], manifest_mac(manifest, ring)):
        raise InputRefused(
            f"restore refused: the signature of {folder / MANIFEST} does not verify with the keys of {keys}: "
            "the backup was altered (a file changed and its checksum re-computed?) or made with other keys; "
            "nothing was restored"
        )


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / (MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


# -- PostgreSQL tools -----------------------------------------------------------------------------------


def _libpq(url_text: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and an environment carrying the password."""
    url: URL = make_url(url_text)
    environ = dict(os.environ)
    if url.password is not None:
        environ["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), environ


def find_pg_tool(name: str, major: int, pg_bin: Path | None = None) -> Path:
    """``pg_dump``/``pg_restore`` of the server's major version: from ``--pg-bin``, beside the server's
    binaries (Debian /usr/lib/postgresql/N/bin, RHEL /usr/pgsql-N/bin) or on PATH."""
    candidates: list[Path] = []
    if pg_bin is not None:
        candidates.append(pg_bin / name)
    candidates += [Path(f"/usr/lib/postgresql/{major}/bin/{name}"), Path(f"/usr/pgsql-{major}/bin/{name}")]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    seen: list[str] = []
    for path in candidates:
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        result = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
        found = re.search(r"\s(\d+)(?:\.\d+)*", result.stdout)
        if found and int(found.group(1)) == major:
            return path
        seen.append(f"{path} ({result.stdout.strip()})")
    tried = "; found only " + ", ".join(seen) if seen else ""
    raise ConfigError(
        f"no {name} for PostgreSQL {major} (the server's version){tried}; install the PostgreSQL {major} "
        f"client tools or give their folder with --pg-bin"
    )


def _pg_major(conn: Connection) -> int:
    return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _run(cmd: list[str], environ: dict[str, str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, env=environ, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ConfigError(f"{what} failed: {detail[-1] if detail else f'exit code {result.returncode}'}")


# -- backup ---------------------------------------------------------------------------------------------


@contextmanager
def _sqlite_snapshot(settings: Settings, log: EventLog) -> Iterator[tuple[sqlite3.Connection, list[Path]]]:
    """A connection holding one read transaction on the store, and the event files published at its start."""
    source = _sqlite_path(settings)
    if not source.exists():
        raise InputRefused(f"nothing to back up: no database at {source}")
    con = sqlite3.connect(source, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout=30000")
        with log.locked():
            con.execute("BEGIN")
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
            files = log.files()
        yield con, files
    finally:
        with suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        con.close()


def _backup_sqlite(
    settings: Settings, log: EventLog, folder: Path, progress: Progress
) -> tuple[dict[str, Any], list[Path], bytes | None]:
    dest = folder / SQLITE_COPY
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _sqlite_snapshot(settings, log) as (con, files):
        step = _store_phase(progress, con, "copying the store")
        target = sqlite3.connect(dest)
        try:
            # the copy reads through ``con``, whose open read transaction fixes the snapshot: writers go
            # on meanwhile (WAL) and the copy shows the store as it was when the transaction began
            con.backup(target, pages=256, progress=step)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            target.close()
        ring, key_data = _key_material(settings)
    engine = create_engine(f"sqlite:///{dest}")
    try:
        with engine.connect() as conn:
            facts = _store_facts(conn, ring)
    finally:
        engine.dispose()
    return facts, files, key_data


def _backup_postgres(
    settings: Settings,
    log: EventLog,
    folder: Path,
    progress: Progress,
    pg_bin: Path | None,
) -> tuple[dict[str, Any], list[Path], bytes | None]:
    # pg_dump rather than a home-made logical copy of every table: it reads the whole database in one
    # snapshot, carries types, sequences and constraints exactly, and pg_restore loads the rows before it
    # creates the foreign keys, so self-referencing rows (the org tree) need no ordering. Its cost is
    # needing the client tools of the server's major version; they are looked for beside the server's
    # binaries and their absence is a clear error. The snapshot is exported from our own REPEATABLE READ
    # transaction, taken under the event log's lock: the dump, the row counts of the manifest and the
    # list of event files all describe the same instant.
    engine = db.get_engine(settings)
    dest = folder / PG_DUMP
    dest.parent.mkdir(parents=True, exist_ok=True)
    with engine.connect() as raw:
        conn = raw.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            with log.locked():
                snapshot = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
                files = log.files()
            ring, key_data = _key_material(settings)
            facts = _store_facts(conn, ring)
            pg_dump = find_pg_tool("pg_dump", _pg_major(conn), pg_bin)
            progress.phase("dumping the store (pg_dump)", 1)
            uri, environ = _libpq(settings.db_url)
            _run(
                [str(pg_dump), "--format=custom", f"--snapshot={snapshot}", "--no-owner", "--no-privileges",
                 f"--file={dest}", f"--dbname={uri}"],
                environ,
                "pg_dump",
            )  # fmt: skip
            progress.advance(1)
    return facts, files, key_data


def _signing_ring(settings: Settings, key_data: bytes | None) -> KeyRing:
    """The ring that signs the manifest: the one copied to the vault (or derived from the master key); a
    home that has none yet gets its key file now (what it would get on first use)."""
    if settings.master_key is not None:
        return KeyRing.from_master_secret(settings.master_key.get_secret_value())
    if key_data is not None:
        return KeyRing.from_json(key_data.decode("utf-8", "replace"), source=str(settings.key_file))
    return load_or_create_key_ring(settings.key_file, None)


def backup(
    settings: Settings,
    folder: Path,
    *,
    keys_out: Path | None = None,
    progress: Progress | None = None,
    pg_bin: Path | None = None,
) -> BackupReport:
    """Write a backup of the data home into ``folder`` (new or empty); the keys to ``keys_out``."""
    progress = progress or Progress()
    folder = folder.expanduser().resolve()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputRefused(f"backup refused: {folder} exists and is not an empty folder")
    if _is_within(folder, settings.home_dir):
        raise InputRefused(f"backup refused: {folder} is inside the data home {settings.home_dir}")
    if keys_out is not None:
        keys_out = keys_out.expanduser().resolve()
        if _is_within(keys_out, folder) or _is_within(folder, keys_out):
            raise InputRefused(
                f"backup refused: --keys-out {keys_out} must be apart from the backup folder {folder}: "
                "whoever holds both can read every customer's personal data"
            )
        if (keys_out / KEY_FILE).exists():
            raise InputRefused(f"backup refused: {keys_out / KEY_FILE} already exists; it was left unchanged")
    dialect = _dialect(settings)
    db.ensure_schema(settings)
    log = EventLog(settings)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    keys_written: Path | None = None
    try:
        if dialect == "sqlite":
            facts, files, key_data = _backup_sqlite(settings, log, folder, progress)
            store_file = folder / SQLITE_COPY
        else:
            facts, files, key_data = _backup_postgres(settings, log, folder, progress, pg_bin)
            store_file = folder / PG_DUMP
        if "?" in facts.get("ciphertexts_by_key", {}):
            raise ConfigError(
                f"backup failed: the store holds ciphertexts under a key that is not in {settings.key_file} "
                "(was a key retired while the backup ran?); run the backup again"
            )
        entries = [{"path": store_file.relative_to(folder).as_posix(), "bytes": store_file.stat().st_size,
                    "sha256": _sha256(store_file)}]  # fmt: skip
        progress.phase("copying the event log", sum(f.stat().st_size for f in files))
        # the compaction manifest too (read after the listing: any later version reads the copied files
        # right), else the consumers' positions in the copied store would not match compacted files
        compacted = [m for m in (manifest_path(log.dir),) if m.exists()]
        for src in [*files, *compacted]:
            rel = Path("events") / src.relative_to(log.dir)
            digest = _copy(src, folder / rel, progress)
            entries.append({"path": rel.as_posix(), "bytes": (folder / rel).stat().st_size, "sha256": digest})
        keys: dict[str, Any] = {"source": "env" if settings.master_key else "file", "included": False}
        if settings.master_key is not None:
            warnings.append(
                "keys not copied: they come from OMNIBANK_MASTER_KEY; keep that secret safe, the backup "
                "cannot be read without it"
            )
        elif key_data is None:
            warnings.append(f"keys not copied: there is no key file at {settings.key_file}")
        elif keys_out is None:
            warnings.append(
                f"keys not copied (give --keys-out DIR, apart from the backup): the backup cannot be read "
                f"without the key file {settings.key_file}"
            )
        else:
            keys_out.mkdir(parents=True, exist_ok=True)
            os.chmod(keys_out, 0o700)
            fd = os.open(keys_out / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                keys_written = keys_out / KEY_FILE
                fh.write(key_data)
                fh.flush()
                os.fsync(fh.fileno())
            keys.update(included=True, sha256=hashlib.sha256(key_data).hexdigest())
        ring = _signing_ring(settings, key_data)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "omnibank_version": __version__,
            "dialect": dialect,
            **facts,
            "event_files": len(files),
            "keys": keys,
            "files": entries,
        }
        manifest = _signed(manifest, ring)
        _write_manifest(folder, manifest)  # last: a folder without a manifest is not a backup
    except BaseException:
        if keys_written is not None:
            keys_written.unlink(missing_ok=True)
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for child in folder.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return BackupReport(folder=folder, manifest=manifest, keys_written=keys_written, warnings=warnings)


# -- restore --------------------------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise InputRefused(
            f"restore refused: {folder} is not a backup (no {MANIFEST}; an interrupted backup?)"
        )
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") not in (1, FORMAT) or not isinstance(files, list):
            raise ValueError(f"unknown format {manifest.get('format')!r}")
        for entry in files:
            if not isinstance(entry, dict) or not {"path", "sha256", "bytes"} <= entry.keys():
                raise ValueError("a file entry lacks path, bytes or sha256")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputRefused(f"restore refused: {path} is damaged: {exc}") from None
    return manifest


def verify(folder: Path, manifest: dict[str, Any], progress: Progress | None = None) -> None:
    """Every file of the manifest is there with its size and SHA-256, and nothing else is."""
    progress = progress or Progress()
    expected = {str(e["path"]): e for e in manifest["files"]}
    for rel in expected:
        path = (folder / rel).resolve()
        if not _is_within(path, folder) or ".." in Path(rel).parts:
            raise InputRefused(f"restore refused: {folder / MANIFEST} names a file outside the backup: {rel}")
    present = {
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST
    }
    extra = sorted(present - expected.keys())
    if extra:
        raise InputRefused(
            f"restore refused: {folder} holds files its manifest does not list: {', '.join(extra)}"
        )
    progress.phase("verifying the backup", sum(int(e["bytes"]) for e in expected.values()))
    for rel, entry in expected.items():
        path = folder / rel
        if not path.is_file():
            raise InputRefused(f"restore refused: {path} is missing from the backup")
        if path.stat().st_size != int(entry["bytes"]) or _sha256(path, progress) != entry["sha256"]:
            raise InputRefused(
                f"restore refused: {path} does not match its checksum in {MANIFEST} (damaged or altered); "
                "nothing was restored"
            )


def _load_keys_in(keys_in: Path, manifest: dict[str, Any]) -> tuple[KeyRing, bytes]:
    path = keys_in / KEY_FILE if keys_in.is_dir() else keys_in
    if not path.is_file():
        raise InputRefused(
            f"restore refused: no key file at {path} (--keys-in: the folder given to --keys-out)"
        )
    data = path.read_bytes()
    wanted = manifest.get("keys", {}).get("sha256")
    if wanted and hashlib.sha256(data).hexdigest() != wanted:
        raise InputRefused(f"restore refused: the key file {path} is not the one written with this backup")
    return KeyRing.from_json(data.decode("utf-8", "replace"), source=str(path)), data


def _keys_named(settings: Settings, keys_in: Path | None) -> str:
    if keys_in is not None:
        return str(keys_in)
    return "OMNIBANK_MASTER_KEY" if settings.master_key is not None else str(settings.key_file)


def sign_backup(settings: Settings, folder: Path, *, keys_in: Path | None = None) -> dict[str, Any]:
    """Sign the manifest of a backup made before manifests were signed, after checking every file against
    it (``omnibank backup-sign``): whoever runs it vouches that the backup was kept where nobody could alter
    it. The keys: ``keys_in`` (the backup's vault) or the home's. A manifest signed already is checked,
    never signed again."""
    folder = folder.expanduser().resolve()
    manifest = read_manifest(folder)
    if keys_in is not None:
        ring, _ = _load_keys_in(keys_in.expanduser().resolve(), manifest)
    else:
        found = _existing_ring(settings)
        if found is None:
            raise InputRefused("no keys to sign with: give --keys-in (the backup's vault)")
        ring = found
    if manifest.get(SIGNATURE) is not None:
        check_signature(folder, manifest, ring, _keys_named(settings, keys_in))
        raise Conflict(f"{folder / MANIFEST} is signed already, and its signature verifies")
    verify(folder, manifest)
    signed = _signed(manifest, ring)
    _write_manifest(folder, signed)
    return signed


def _store_rows(settings: Settings) -> int:
    """Rows in the target store (0 when it does not exist yet)."""
    if _dialect(settings) == "sqlite" and not _sqlite_path(settings).exists():
        return 0
    engine = db.get_engine(settings)
    with engine.connect() as conn:
        counts = _count_rows(conn)
    counts.pop("alembic_version", None)
    return sum(counts.values())


def _aside(path: Path, stamp: str) -> Path:
    moved = path.with_name(f"{path.name}.replaced-{stamp}")
    os.replace(path, moved)
    return moved


def restore(
    settings: Settings,
    folder: Path,
    *,
    keys_in: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    pg_bin: Path | None = None,
) -> RestoreReport:
    """Restore a backup into the configured data home and store. Everything is checked first (manifest,
    checksums, keys, an empty target); a refusal changes nothing. Run it with the platform stopped."""
    progress = progress or Progress()
    folder = folder.expanduser().resolve()
    manifest = read_manifest(folder)
    dialect = _dialect(settings)
    if manifest.get("dialect") != dialect:
        raise InputRefused(
            f"restore refused: the backup is of a {manifest.get('dialect')} store, the target "
            f"(OMNIBANK_DATABASE_URL) is {dialect}"
        )
    store_file = SQLITE_COPY if dialect == "sqlite" else PG_DUMP
    if store_file not in {str(e["path"]) for e in manifest["files"]}:
        raise InputRefused(f"restore refused: {folder / MANIFEST} lists no {store_file}")

    # keys: the given key file, or the target's own ring, must verify the manifest's signature and hold
    # every key the ciphertexts use
    key_data: bytes | None = None
    if keys_in is not None:
        ring, key_data = _load_keys_in(keys_in.expanduser().resolve(), manifest)
        if settings.master_key is not None:
            raise InputRefused(
                "restore refused: --keys-in given, but OMNIBANK_MASTER_KEY is set and would win"
            )
    else:
        found = _existing_ring(settings)
        if found is None:
            raise InputRefused(
                f"restore refused: no keys: give --keys-in (the folder written by backup --keys-out); "
                f"there is no key file at {settings.key_file}"
            )
        ring = found
    check_signature(folder, manifest, ring, _keys_named(settings, keys_in))
    verify(folder, manifest, progress)
    missing = sorted(set(manifest.get("ciphertexts_by_key", {})) - set(ring.data_keys))
    if missing:
        raise InputRefused(
            f"restore refused: the backup's personal data needs key(s) {', '.join(missing)}, which the key "
            f"ring ({keys_in or settings.key_file}) does not hold"
        )

    # the target must be empty unless --force
    log = EventLog(settings)
    rows = _store_rows(settings)
    events = log.files()
    key_clash = (
        key_data is not None and settings.key_file.exists() and settings.key_file.read_bytes() != key_data
    )
    if not force and (rows or events or key_clash):
        what = []
        if rows:
            what.append(f"its store holds {rows} rows ({make_url(settings.db_url).render_as_string()})")
        if events:
            what.append(f"its event log holds {len(events)} files ({log.dir})")
        if key_clash:
            what.append(f"it has a different key file ({settings.key_file})")
        raise Conflict(
            f"restore refused: the target is not empty: {'; '.join(what)}; use --force to replace it"
        )

    # apply: keys, store, event log
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = RestoreReport(tables={}, files=0, keys_installed=None)
    if key_data is not None and key_clash:
        report.moved_aside.append(_aside(settings.key_file, stamp))
    if key_data is not None and not settings.key_file.exists():
        write_ring(settings.key_file, KeyRing.from_json(key_data.decode(), source=str(keys_in)))
        report.keys_installed = settings.key_file
    reset_ciphers()
    db.dispose_engines()
    if dialect == "sqlite":
        _restore_sqlite(settings, folder, progress)
    else:
        _restore_postgres(settings, folder, progress, pg_bin)
    db.dispose_engines()

    if log.dir.exists() and any(log.dir.iterdir()):
        report.moved_aside.append(_aside(log.dir, stamp))
    # derived snapshots (segments) are keyed by data versions, which the restored store may repeat with
    # other data: they must not survive a replaced store (they are rebuilt on demand)
    snapshots = settings.home_dir / SNAPSHOTS
    if snapshots.exists():
        report.moved_aside.append(_aside(snapshots, stamp))
    entries = [e for e in manifest["files"] if str(e["path"]).startswith("events/")]
    progress.phase("copying the event log", sum(int(e["bytes"]) for e in entries))
    for entry in entries:
        rel = Path(str(entry["path"]))
        digest = _copy(folder / rel, log.dir / rel.relative_to("events"), progress)
        if digest != entry["sha256"]:
            raise InputRefused(f"restore failed: {folder / rel} changed while it was being restored")
        report.files += 1

    with db.get_engine(settings).connect() as conn:
        report.tables = _count_rows(conn)
    wrong = {
        t: (n, report.tables.get(t))
        for t, n in manifest.get("tables", {}).items()
        if report.tables.get(t) != n
    }
    if wrong:
        detail = ", ".join(f"{t} {got} rows instead of {want}" for t, (want, got) in wrong.items())
        raise ConfigError(f"restore incomplete: the restored store does not match the manifest: {detail}")
    return report


def _restore_sqlite(settings: Settings, folder: Path, progress: Progress) -> None:
    target = _sqlite_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{folder / SQLITE_COPY}?mode=ro", uri=True)
    try:
        step = _store_phase(progress, source, "restoring the store")
        dest = sqlite3.connect(target, isolation_level=None)
        try:
            dest.execute("PRAGMA busy_timeout=30000")
            # the backup API replaces the target's pages in one write transaction: all or nothing
            source.backup(dest, pages=256, progress=step)
        finally:
            dest.close()
    finally:
        source.close()


def _restore_postgres(settings: Settings, folder: Path, progress: Progress, pg_bin: Path | None) -> None:
    engine = db.get_engine(settings)
    with engine.connect() as conn:
        pg_restore = find_pg_tool("pg_restore", _pg_major(conn), pg_bin)
    db.dispose_engines()
    uri, environ = _libpq(settings.db_url)
    progress.phase("restoring the store (pg_restore)", 1)
    # one transaction: --clean drops what the dump holds (tables of an empty or --force target), then
    # recreates and loads it; a failure leaves the target as it was
    _run(
        [str(pg_restore), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
         "--exit-on-error", f"--dbname={uri}", str(folder / PG_DUMP)],
        environ,
        "pg_restore",
    )  # fmt: skip
    progress.advance(1)
