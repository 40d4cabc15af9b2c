"""Backtest a campaign: apply it to a year of events from empty state, in memory, touching nothing, and
write every grant (``grants.jsonl``) with a cost summary. Each customer is assumed to claim a grant the
moment it is granted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from omnibank.campaigns.engine import CampaignState, Decider, Grant, Refusal
from omnibank.campaigns.source import SourceStats, read_events
from omnibank.campaigns.spec import CampaignSpec, compile_campaign
from omnibank.config import Settings


@dataclass
class SimulationReport:
    campaign: str
    events: int = 0
    grants: int = 0
    face_value: Decimal = Decimal(0)
    by_rule_month: dict[tuple[str, str], list[Any]] = field(default_factory=dict)  # → [items, face value]
    refusals: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, reason) → items
    customers: int = 0
    source: SourceStats = field(default_factory=SourceStats)


def simulate(
    spec: CampaignSpec,
    settings: Settings,
    *,
    events: Path | None,
    out: IO[bytes] | None = None,
    eligible: frozenset[str] | None = None,
    on_progress: Callable[[int], Any] | None = None,
) -> SimulationReport:
    """Run ``spec`` over ``events`` (a JSONL file; None: the data home's event log)."""
    decider = Decider(compile_campaign(spec), settings.tz, eligible=eligible)
    state = CampaignState()
    report = SimulationReport(campaign=spec.id)
    granted: set[str] = set()
    n = 0
    source = read_events(
        settings,
        types=decider.types,
        fields=decider.columns,
        holders=decider.holders_sql(),
        path=events,
        stats=report.source,
    )
    for event in source:
        n += 1
        if on_progress and n % 100_000 == 0:
            on_progress(n)
        for d in decider.decide(state, event):
            if isinstance(d, Refusal):
                report.refusals[(d.rule, d.reason)] += d.items
                continue
            _count(report, d)
            granted.add(d.customer_id)
            if out is not None:
                out.write(orjson.dumps(d.to_contract()) + b"\n")
    report.events = n
    report.customers = len(granted)
    return report


def _count(report: SimulationReport, g: Grant) -> None:
    report.grants += 1
    value = g.face_value or Decimal(0)
    report.face_value += value
    cell = report.by_rule_month.setdefault((g.rule, f"{g.granted_at:%Y-%m}"), [0, Decimal(0)])
    cell[0] += 1
    cell[1] += value
