"""Adding events from inside the platform (lead status changes, delivery receipts, journey exits).

They go through the same loader as ``omnibank load events`` — same checks, same deduplication by
``event_id`` — so a caller that gives its events deterministic ids (``lead:<id>:contacted``) may emit them
again after a crash and they are added once. Emit after the database transaction that caused them has
committed: the event log is not part of that transaction.
"""

from __future__ import annotations

import csv
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnibank.config import Settings


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

    folder = settings.home_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"emit-{secrets.token_hex(8)}.jsonl"
    try:
        with path.open("w", encoding="utf-8") as fh:
            for event in events:
                fh.write(json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str) + "\n")
        report = load_file("events", path, settings=settings, progress=False)
    finally:
        path.unlink(missing_ok=True)
    return Emitted(
        loaded=report.loaded,
        duplicates=report.duplicates,
        rejected=report.rejected,
        rejects=_rejects(report.rejects_path, max_rejects),
    )


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
