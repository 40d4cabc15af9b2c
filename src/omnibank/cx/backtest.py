"""Backtest alert rules over a file of events (``omnibank cx alerts test RULES.yaml EVENTS.jsonl``): each line
checked as the loader checks it, then the same pure :func:`omnibank.cx.alerts.evaluate` the worker runs, from
an empty dedupe state, with owners as the store has them now. Nothing is stored."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path

from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.cx.alerts import (
    Alert,
    AlertEvent,
    AlertState,
    IndexDropRule,
    RuleSet,
    Sentiment,
    evaluate,
    event_of,
)
from omnibank.cx.owners import default_queue, owner_lookup
from omnibank.errors import InputRefused


@dataclass
class BacktestResult:
    lines: int = 0  # non-blank lines of the file
    events: int = 0  # good events of the types the rules read
    rejected: int = 0  # lines that break the data contract
    duplicates: int = 0  # a repeated event_id (its first line counts, as in the log)
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), the first 20
    alerts: int = 0
    per_rule: dict[str, int] = field(default_factory=dict)
    per_owner: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, str]] = field(default_factory=list)  # a few alerts, no personal data
    notes: list[str] = field(default_factory=list)
    raised: list[Alert] = field(default_factory=list)


def sample_of(alert: Alert) -> dict[str, str]:
    """An alert as a row to show: ids, the owner and a few words (never a name, phone or comment)."""
    return {
        "rule": alert.rule_id, "subject": f"{alert.subject_kind}:{alert.subject_id}", "owner": alert.owner,
        "event": alert.event_id or "", "raised_at": alert.raised_at.isoformat(), "context": alert.context,
        "key": alert.key,
    }  # fmt: skip


def read_file(path: Path, types: frozenset[str], tz: tzinfo, result: BacktestResult) -> list[AlertEvent]:
    """The events of ``types`` in an ``events.jsonl`` file, checked line by line as the loader checks them
    (:func:`omnibank.events.columns.check`); in time order, then by id; a repeated id counts once."""
    from omnibank.events.columns import Checked, check, loads
    from omnibank.events.lines import LineReader

    if not path.is_file():
        raise InputRefused(f"{path}: no such file")
    found: list[AlertEvent] = []
    seen: set[str] = set()
    with path.open("rb") as fh:
        reader = LineReader(fh, 200_000)
        while (batch := reader.next()) is not None:
            for no, text in batch.bad_utf8:
                _reject(result, no, "not valid UTF-8")
                del text
            numbers = batch.table.column("line_no").to_pylist()
            raws = batch.table.column("raw").to_pylist()
            for no, raw in zip(numbers, raws, strict=True):
                if not raw.strip():
                    continue
                result.lines += 1
                try:
                    obj = loads(raw)
                except (json.JSONDecodeError, RecursionError):
                    _reject(result, no, "not valid JSON")
                    continue
                checked = check(obj, tz)
                if isinstance(checked, str):
                    _reject(result, no, checked)
                    continue
                assert isinstance(checked, Checked)
                if checked.customer_id is None:
                    _reject(result, no, "customer_id: missing (a backtest does not resolve identifiers)")
                    continue
                if checked.event_id in seen:
                    result.duplicates += 1
                    continue
                seen.add(checked.event_id)
                if checked.type not in types:
                    continue
                found.append(
                    event_of(
                        checked.event_id,
                        checked.type,
                        checked.customer_id,
                        checked.ts,
                        checked.channel,
                        obj,
                        checked.columns,
                    )  # fmt: skip
                )
    found.sort(key=lambda e: (e.ts, e.event_id))
    result.events = len(found)
    return found


def _reject(result: BacktestResult, line: int, reason: str) -> None:
    result.rejected += 1
    if len(result.rejects) < 20:
        result.rejects.append((line, reason))


def backtest(
    rules: RuleSet,
    events_path: Path,
    session: Session,
    settings: Settings,
    *,
    sentiment: Sentiment | None = None,
    samples: int = 10,
) -> BacktestResult:
    """How many alerts ``rules`` would raise on the events of a file, and for whom (nothing is stored):
    the same :func:`evaluate` as the worker, from an empty dedupe state, owners as the store has them now.
    Index-drop rules read the event log's index, not a file: they are skipped, with a note."""
    result = BacktestResult()
    tz = settings.tz
    events = read_file(events_path, rules.types, tz, result)
    queue, queue_org = default_queue(settings)
    customers = {e.customer_id for e in events}
    owners = owner_lookup(session, customers=customers, queue=queue, queue_org=queue_org)
    for rule in rules.rules:
        if isinstance(rule, IndexDropRule):
            result.notes.append(
                f"{rule.id}: skipped: an index drop is computed from the event log's weekly index, "
                "not from a file (the worker evaluates it every Monday)"
            )
    alerts = evaluate(rules, events, owners=owners, state=AlertState(), tz=tz, sentiment=sentiment)
    result.alerts = len(alerts)
    result.per_rule = dict(Counter(a.rule_id for a in alerts))
    for rule in rules.rules:
        result.per_rule.setdefault(rule.id, 0)
    result.per_owner = dict(Counter(a.owner for a in alerts).most_common())
    result.samples = [sample_of(a) for a in alerts[:samples]]
    result.raised = alerts
    return result
