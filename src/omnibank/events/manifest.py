"""The compaction manifest of the event log (``events/_compact/manifest.json``): which compacted files
replace which originals, and :func:`visible`, the rule :meth:`omnibank.events.log.EventLog.files` applies to a
folder listing. Apart from :mod:`omnibank.events.compact` (which writes it) so that the log reads it
without importing the compactor. See that module's docstring for the scheme."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

COMPACT = "_compact"
MANIFEST = "manifest.json"

State = Literal["pending", "switched", "abandoned"]


@dataclass(frozen=True)
class Group:
    """A compacted file (``file``, relative to the log folder) and the originals it replaces."""

    file: str
    replaces: tuple[str, ...]
    state: State
    events: int
    at: str  # when it took this state (ISO instant)
    removed: bool = False  # its originals are deleted

    @property
    def month(self) -> str:
        return self.file.split("/", 1)[0].removeprefix("month=")

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "replaces": list(self.replaces), "state": self.state,
                "events": self.events, "at": self.at, "removed": self.removed}  # fmt: skip


@dataclass(frozen=True)
class Manifest:
    groups: tuple[Group, ...] = ()

    def switched(self) -> dict[str, Group]:
        return {g.file: g for g in self.groups if g.state == "switched"}


_cache: dict[Path, tuple[tuple[int, int, int], Manifest]] = {}


def manifest_path(log_dir: Path) -> Path:
    return log_dir / COMPACT / MANIFEST


def read_manifest(log_dir: Path) -> Manifest:
    """The manifest as it stands (cached while the file is the same one: it is only ever replaced)."""
    path = manifest_path(log_dir)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Manifest()
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _cache.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    data = json.loads(path.read_text(encoding="utf-8"))
    groups = tuple(
        Group(
            file=g["file"],
            replaces=tuple(g["replaces"]),
            state=g["state"],
            events=int(g["events"]),
            at=g["at"],
            removed=bool(g.get("removed", False)),
        )  # fmt: skip
        for g in data["groups"]
    )
    manifest = Manifest(groups)
    _cache[path] = (key, manifest)
    return manifest


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(log_dir: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically (a reader sees the old one or the new one, never a mix)."""
    path = manifest_path(log_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{MANIFEST}.{secrets.token_hex(4)}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump({"version": 1, "groups": [g.to_json() for g in manifest.groups]}, fh, indent=0)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _rel(log_dir: Path, path: Path) -> str:
    """A log file's path relative to the log folder (``month=2026-03/<name>``), as consumers record it;
    by name: half the cost of ``relative_to``, and files() may list tens of thousands."""
    return (
        f"{path.parent.name}/{path.name}" if path.parent.parent == log_dir else str(path.relative_to(log_dir))
    )


def visible(log_dir: Path, found: Sequence[Path]) -> list[Path]:
    """Of the files a listing ``found`` (taken *before* this call reads the manifest), those that make the
    log: see the module docstring."""
    return _view(log_dir, found)[0]


def _view(log_dir: Path, found: Sequence[Path]) -> tuple[list[Path], Manifest]:
    manifest = read_manifest(log_dir)
    if not manifest.groups:
        return list(found), manifest
    listed = {_rel(log_dir, p) for p in found}
    hidden: set[str] = set()
    for g in manifest.groups:
        if g.state != "switched":
            hidden.add(g.file)
        elif g.file in listed:
            hidden.update(g.replaces)
    return [p for p in found if _rel(log_dir, p) not in hidden], manifest
