"""Adding events from inside the platform (lead status changes, delivery receipts, journey exits).

They go through the same loader as ``omnibank load events`` — same checks, same deduplication by
``event_id`` — so a caller that gives its events deterministic ids (``lead:<id>:contacted``) may emit them
again after a crash and they are added once. Emit after the database transaction that caused them has
committed: the event log is not part of that transaction.
"""

from __future__ import annotations

import csv
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnibank.config import Settings
from omnibank.kit.private import ensure_home


@dataclass(frozen=True)
class Rejected:
    index: int  # 0-based position in the batch
    reason: str


@dataclass(frozen=True)
class Emitted:
    loaded: int
    duplicates: int
    rejected: int
    rejects: list[Rejected] = field(default_factory=list)


def emit(settings: Settings, events: Sequence[Mapping[str, Any]], *, max_rejects: int = 100) -> Emitted:
    """Append ``events`` (data-contract event objects) to the event log; what happened to them."""
    if not events:
        return Emitted(0, 0, 0)
    from omnibank.ingest.service import load_file

    # a string holding half a surrogate pair (JSON's "\ud800") cannot be written as UTF-8: refused here,
    # its line left blank so that the loader's line numbers still give each event's position
    refused = [Rejected(i, why) for i, event in enumerate(events) if (why := _not_text(event)) is not None]
    if len(refused) == len(events):
        return Emitted(0, 0, len(refused), refused[:max_rejects])
    skip = {r.index for r in refused}
    folder = ensure_home(settings.home_dir) / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"emit-{secrets.token_hex(8)}.jsonl"
    try:
        with path.open("w", encoding="utf-8") as fh:
            for i, event in enumerate(events):
                if i not in skip:
                    fh.write(json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str))
                fh.write("\n")
        report = load_file("events", path, settings=settings, progress=False)
    finally:
        path.unlink(missing_ok=True)
    rejects = sorted([*refused, *_rejects(report.rejects_path, max_rejects)], key=lambda r: r.index)
    return Emitted(
        loaded=report.loaded,
        duplicates=report.duplicates,
        rejected=report.rejected + len(refused),
        rejects=rejects[:max_rejects],
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_text(event: Any) -> str | None:
    """Why an event cannot be stored as text (a key or string holding a lone surrogate), or None. Walks
    the event without recursing (a request may nest as deep as its JSON parser allows)."""
    pending: list[tuple[str, Any]] = [("", event)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            bad = _SURROGATE.search(value)
            if bad is not None:
                field = _SURROGATE.sub("\ufffd", where) or "the event"  # a key may be the culprit
                code = f"U+{ord(bad.group()):04X}"
                return f"not valid JSON: {field} holds a lone surrogate ({code}), which is not a character"
        elif isinstance(value, Mapping):
            for key, item in reversed(list(value.items())):
                path = f"{where}.{key}" if where else str(key)
                pending += [(path, item), (path, str(key))]
        elif isinstance(value, list | tuple):
            pending += reversed([(f"{where}[{n}]", item) for n, item in enumerate(value)])
    return None


def _rejects(path: str | None, limit: int) -> list[Rejected]:
    if not path:
        return []
    out = []
    with Path(path).open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            out.append(Rejected(index=int(row["line"]) - 1, reason=row["reason"]))
            if len(out) >= limit:
                break
    return out
