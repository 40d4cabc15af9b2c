"""Live campaigns: ``campaign start`` registers a campaign; ``campaign run`` applies it to the event log.

The live engine uses the same :class:`~omnibank.campaigns.engine.Decider` as ``campaign simulate``. It applies
the log file by file (files never change once published; a new load adds files): for each file not applied
yet, in one transaction, it loads the state of the customers the file touches, decides, and writes the
grants, the customers' new state, the budget totals and the file's offset together. Killed at any moment, a
run leaves either all of a file applied or none of it, and the next run goes on from there: nothing is lost
and nothing granted twice (grants also carry a unique deterministic key). Runs are serialised per campaign
(a row lock on PostgreSQL; SQLite allows one writer).

Within a file events are applied in time order; files in the order they were published. An event loaded
late (after later events were applied) counts when it arrives, on its own bank-local date.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import yaml
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from omnibank.benefits.grant import Grant
from omnibank.campaigns.engine import CampaignState, CustomerState, Decider, Event, Refusal
from omnibank.campaigns.models import Campaign, CampaignCustomerState, CampaignGrant, CampaignOffset
from omnibank.campaigns.spec import CampaignSpec, Compiled, compile_campaign
from omnibank.config import Settings
from omnibank.db.ids import one_of
from omnibank.errors import AppError, NotFound
from omnibank.events.compact import unread
from omnibank.events.log import EventLog
from omnibank.events.reader import read_rows

# ------------------------------------------------------------------------------------------------ state


def _key(parts: tuple[str, ...]) -> str:
    return "\x1f".join(parts)


def _unkey(text: str) -> tuple[str, ...]:
    return tuple(text.split("\x1f"))


def _number(value: int | Decimal) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _parse_number(value: Any) -> int | Decimal:
    return Decimal(value) if isinstance(value, str) else int(value)


def dump_customer(state: CustomerState) -> str:
    return json.dumps(
        {
            "cards": [
                [c.event_id, c.ts_us, c.local_date.isoformat(), {k: _plain(v) for k, v in c.fields.items()}]
                for c in state.cards
            ],
            "counters": {_key(k): _number(v) for k, v in state.counters.items()},
            "fired": sorted(_key(k) for k in state.fired),
            "items": {_key(k): v for k, v in state.items.items()},
            "activated": {_key(k): v for k, v in state.activated.items()},
            "points": state.points,
            "icons": state.icons,
            "stages": state.stages,
            "grants": state.grants,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"d": str(value)}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    return value


def _unplain(value: Any) -> Any:
    if isinstance(value, dict):
        return Decimal(value["d"]) if "d" in value else date.fromisoformat(value["date"])
    return value


def load_customer(customer_id: str, text: str) -> CustomerState:
    raw = json.loads(text)
    return CustomerState(
        cards=[
            Event(
                eid,
                "card.issued",
                customer_id,
                int(ts),
                date.fromisoformat(day),
                {k: _unplain(v) for k, v in fields.items()},
            )
            for eid, ts, day, fields in raw["cards"]
        ],  # fmt: skip
        counters={_unkey(k): _parse_number(v) for k, v in raw["counters"].items()},  # type: ignore[misc]
        fired={_unkey(k) for k in raw["fired"]},  # type: ignore[misc]
        items={_unkey(k): int(v) for k, v in raw["items"].items()},  # type: ignore[misc]
        activated={_unkey(k): int(v) for k, v in raw["activated"].items()},  # type: ignore[misc]
        points=int(raw["points"]),
        icons={k: int(v) for k, v in raw["icons"].items()},
        stages={k: int(v) for k, v in raw["stages"].items()},
        grants=int(raw["grants"]),
    )


def dump_totals(state: CampaignState) -> str:
    return json.dumps(
        {
            "rule_items": state.rule_items,
            "rule_value": {k: str(v) for k, v in state.rule_value.items()},
            "campaign_items": state.campaign_items,
            "campaign_value": str(state.campaign_value),
        },
        sort_keys=True,
    )


def load_totals(text: str, state: CampaignState) -> None:
    raw = json.loads(text or "{}")
    state.rule_items = {k: int(v) for k, v in raw.get("rule_items", {}).items()}
    state.rule_value = {k: Decimal(v) for k, v in raw.get("rule_value", {}).items()}
    state.campaign_items = int(raw.get("campaign_items", 0))
    state.campaign_value = Decimal(raw.get("campaign_value", "0"))


# --------------------------------------------------------------------------------------------- control


def start(session: Session, spec: CampaignSpec, *, source_text: str, now: datetime | None = None) -> Campaign:
    """Register (or update and resume) a campaign; its state and offsets are kept across updates."""
    now = now or datetime.now(UTC)
    compile_campaign(spec)
    row = session.get(Campaign, spec.id)
    if row is None:
        row = Campaign(id=spec.id, started_at=now, totals="{}", events=0)
    row.name, row.definition, row.status, row.updated_at = spec.name, source_text, "active", now
    session.add(row)
    session.flush()
    return row


def stop(session: Session, campaign_id: str) -> None:
    row = session.get(Campaign, campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r} (omnibank campaign list)")
    row.status = "stopped"
    row.updated_at = datetime.now(UTC)


def spec_of(row: Campaign) -> CampaignSpec:
    return _definition(row.definition)[0]


@functools.lru_cache(maxsize=64)
def _definition(text: str) -> tuple[CampaignSpec, Compiled]:
    """A stored definition parsed and compiled, once per process: a live run applies the log file by file,
    and parsing the YAML again for each (~0.1 s in pure-Python YAML) was most of a small file's cost. Both
    are frozen, so sharing them is safe."""
    spec = CampaignSpec.model_validate(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    return spec, compile_campaign(spec)


@dataclass
class RunReport:
    campaign: str
    files: int = 0
    events: int = 0
    grants: int = 0
    coupons: int = 0  # grants issued into the coupon ledger
    refusals: dict[str, int] = field(default_factory=dict)


def pending_files(session: Session, settings: Settings, campaign_id: str) -> list[str]:
    log = EventLog(settings)
    done = set(session.scalars(select(CampaignOffset.path).where(CampaignOffset.campaign == campaign_id)))
    return [str(f.relative_to(log.dir)) for f in unread(log, done)]  # compaction-aware


def apply_file(
    session: Session, settings: Settings, campaign_id: str, rel_path: str, *, eligible: frozenset[str] | None,
    report: RunReport, fail_after: int | None = None,
) -> None:  # fmt: skip
    """Apply one log file to a campaign. The caller's transaction holds everything this writes."""
    row = session.get(Campaign, campaign_id, with_for_update=True)
    if row is None or row.status != "active":
        raise AppError(f"campaign {campaign_id!r} is not active")
    if session.get(CampaignOffset, (campaign_id, rel_path)) is not None:
        return  # another run applied it meanwhile
    decider = Decider(_definition(row.definition)[1], settings.tz, eligible=eligible)
    state = CampaignState()
    load_totals(row.totals, state)
    path = EventLog(settings).dir / rel_path
    events = list(read_rows(settings, Event, types=decider.types, fields=decider.columns, files=[path]))
    touched = sorted({e.customer_id for e in events})
    stored = _stored_states(session, campaign_id, touched)
    for cid, text in stored.items():
        state.customers[cid] = load_customer(cid, text)
    new_grants: list[tuple[Grant, date]] = []  # with the bank-local day of the event that earned it
    for n, event in enumerate(events, 1):
        if fail_after is not None and n > fail_after:
            raise RuntimeError("simulated crash")  # tests: a run killed in the middle of a file
        for d in decider.decide(state, event):
            if isinstance(d, Refusal):
                report.refusals[d.reason] = report.refusals.get(d.reason, 0) + d.items
            else:
                new_grants.append((d, event.local_date))
    existing = {
        k
        for chunk in _chunks([g.key for g, _ in new_grants])
        for k in session.scalars(select(CampaignGrant.key).where(CampaignGrant.key.in_(chunk)))
    }
    fresh = [(g, day) for g, day in new_grants if g.key not in existing]
    answers = _issue(session, [g for g, _ in fresh], settings, report)
    # plain bulk statements, not the ORM's unit of work: a file of a large bank writes 100k+ rows here
    if fresh:
        session.execute(
            insert(CampaignGrant),
            [_row(g, day, *answer) for (g, day), answer in zip(fresh, answers, strict=True)],
        )
    added, changed = [], []
    for cid, cust in state.customers.items():
        text = dump_customer(cust)
        before = stored.get(cid)
        if before is None:
            added.append({"campaign": campaign_id, "customer_id": cid, "state": text})
        elif before != text:
            changed.append({"campaign": campaign_id, "customer_id": cid, "state": text})
    if added:
        session.execute(insert(CampaignCustomerState), added)
    if changed:
        session.execute(update(CampaignCustomerState), changed)  # by primary key, executemany
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(totals=dump_totals(state), events=Campaign.events + len(events), updated_at=datetime.now(UTC))
    )
    session.add(
        CampaignOffset(campaign=campaign_id, path=rel_path, events=len(events), applied_at=datetime.now(UTC))
    )
    session.flush()
    report.files += 1
    report.events += len(events)
    report.grants += len(new_grants) - len(existing)


def _issue(
    session: Session, grants: list[Grant], settings: Settings, report: RunReport
) -> list[tuple[str, int | None]]:
    """Issue each grant whose benefit is in the catalogue as a coupon, in this same transaction (same key:
    never twice), counted against the campaign's and the rule's budgets in the ledger. A refusal of the
    ledger (out of stock, a budget set with `omnibank budgets set`, a suspended supplier) is kept on the
    grant and counted; the campaign's own caps and budgets were applied by the decision already. Returns
    each grant's answer, in order: ``("issued", coupon id)``, ``("refused:<reason>", None)`` or
    ``("not_in_catalogue", None)``."""
    from omnibank.benefits.batch import grant_many
    from omnibank.benefits.ledger import BudgetKey
    from omnibank.benefits.models import Benefit

    catalogue = set(session.scalars(select(Benefit.id).where(Benefit.id.in_({g.benefit_id for g in grants}))))
    issuable = [
        replace(g, budgets=(BudgetKey(g.campaign), BudgetKey(g.campaign, rule=g.rule)))
        for g in grants
        if g.benefit_id in catalogue
    ]
    results = iter(
        grant_many(session, issuable, tz=settings.tz, actor=f"campaign:{issuable[0].campaign}")
        if issuable
        else []
    )
    answers: list[tuple[str, int | None]] = []
    for g in grants:
        if g.benefit_id not in catalogue:
            answers.append(("not_in_catalogue", None))
            continue
        result = next(results)
        if result.outcome == "refused":
            answers.append((f"refused:{result.reason}", None))
            report.refusals[f"ledger:{result.reason}"] = report.refusals.get(f"ledger:{result.reason}", 0) + 1
        else:
            answers.append(("issued", result.coupon.id if result.coupon else None))
            report.coupons += 1
    return answers


def _stored_states(session: Session, campaign_id: str, customer_ids: list[str]) -> dict[str, str]:
    """The stored state of these customers in the campaign."""
    table = CampaignCustomerState
    cols = select(table.customer_id, table.state).where(table.campaign == campaign_id)
    return {
        cid: text
        for which in one_of(session, table.customer_id, customer_ids)
        for cid, text in session.execute(cols.where(which))
    }


def _row(g: Grant, local_date: date, ledger: str, coupon_id: int | None) -> dict[str, Any]:
    """The ``campaign_grants`` row of a grant (its values, for a bulk insert): the one place a grant
    becomes the stored row, with the day of its event and the coupon ledger's answer."""
    return {
        "key": g.key,
        "campaign": g.campaign,
        "rule": g.rule,
        "customer_id": g.customer_id,
        "benefit": g.benefit_id,
        "granted_at": g.granted_at,
        "valid_from": g.valid_from or g.granted_at,
        "valid_to": g.valid_to,
        "claim_by": g.claim_by,
        "face_value_fen": g.face_value_fen,
        "discount_rate": g.discount_rate,
        "stage": g.stage,
        "points": g.points_spent,
        "event_id": g.event_id,
        "local_date": local_date,
        "ledger": ledger,
        "coupon_id": coupon_id,
    }


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def run_once(
    settings: Settings,
    *,
    campaign_id: str | None = None,
    eligible_for: Callable[[Session, CampaignSpec], frozenset[str] | None] | None = None,
    on_file: Callable[[str, str, RunReport], Any] | None = None,
) -> list[RunReport]:
    """Apply every pending log file to every active campaign (or one), each file in its own transaction."""
    from omnibank.db import unit_of_work

    with unit_of_work(settings) as session:
        query = select(Campaign.id).where(Campaign.status == "active").order_by(Campaign.id)
        if campaign_id:
            if session.get(Campaign, campaign_id) is None:
                raise NotFound(f"no campaign {campaign_id!r} (omnibank campaign start FILE.yaml)")
            query = query.where(Campaign.id == campaign_id)
        ids = list(session.scalars(query))
    reports = []
    for cid in ids:
        report = RunReport(campaign=cid)
        with unit_of_work(settings) as session:
            files = pending_files(session, settings, cid)
            row = session.get(Campaign, cid)
            assert row is not None
            eligible = eligible_for(session, spec_of(row)) if eligible_for else None
        for rel in files:
            with unit_of_work(settings) as session:
                apply_file(session, settings, cid, rel, eligible=eligible, report=report)
            if on_file:
                on_file(cid, rel, report)
        reports.append(report)
    return reports
