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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import yaml
from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from omnibank.benefits.grant import Grant
from omnibank.campaigns import partitions
from omnibank.campaigns.engine import CampaignState, CustomerState, Decider, Event, Refusal
from omnibank.campaigns.models import Campaign, CampaignCustomerState, CampaignGrant, CampaignOffset
from omnibank.campaigns.partitions import DEFAULT_PARTITIONS, LEASE, run_id
from omnibank.campaigns.spec import CampaignSpec, Compiled, compile_campaign
from omnibank.config import Settings
from omnibank.db.bulk import insert_rows, update_column
from omnibank.db.ids import one_of
from omnibank.db.upsert import insert_for
from omnibank.errors import AppError, Conflict, InputRefused, NotFound
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


def add_totals(text: str, state: CampaignState) -> str:
    """The stored totals ``text`` with a partition's file's counts (``state``, from zero) added."""
    total = CampaignState()
    load_totals(text, total)
    for k, n in state.rule_items.items():
        total.rule_items[k] = total.rule_items.get(k, 0) + n
    for k, v in state.rule_value.items():
        total.rule_value[k] = total.rule_value.get(k, Decimal(0)) + v
    total.campaign_items += state.campaign_items
    total.campaign_value += state.campaign_value
    return dump_totals(total)


# --------------------------------------------------------------------------------------------- control


def start(
    session: Session,
    spec: CampaignSpec,
    *,
    source_text: str,
    now: datetime | None = None,
    partitions: int | None = None,
) -> Campaign:
    """Register (or update and resume) a campaign; its state and offsets are kept across updates.

    ``partitions``: the shares of the customers runs may apply apart (default
    :data:`~omnibank.campaigns.partitions.DEFAULT_PARTITIONS`; 1, and only 1, when a budget spans customers).
    Fixed once the campaign has applied a file."""
    from omnibank.campaigns.simulate import independent

    now = now or datetime.now(UTC)
    compile_campaign(spec)
    alone = independent(spec)
    if partitions is not None and partitions < 1:
        raise InputRefused(f"--partitions {partitions}: give 1 or more")
    if partitions is not None and partitions > 1 and not alone:
        raise InputRefused(
            f"campaign {spec.id!r} has a budget across customers: it is applied in one ordered pass "
            "(one partition), so that the budget is spent in the order the events happened"
        )
    row = session.get(Campaign, spec.id)
    if row is None:
        row = Campaign(id=spec.id, started_at=now, totals="{}", events=0)
        row.partitions = partitions or (DEFAULT_PARTITIONS if alone else 1)
    else:
        wanted = partitions or (row.partitions if alone else 1)
        if wanted != row.partitions:
            applied = session.scalar(
                select(CampaignOffset.path).where(CampaignOffset.campaign == spec.id).limit(1)
            )
            if applied is not None:
                why = "" if alone else " (the new definition has a budget across customers: it needs one)"
                raise Conflict(
                    f"campaign {spec.id!r} is applied in {row.partitions} partitions and has applied files: "
                    f"its partitions cannot become {wanted}{why}; start it under a new id"
                )
            row.partitions = wanted
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
    events: int = 0
    grants: int = 0
    coupons: int = 0  # grants issued into the coupon ledger
    refusals: dict[str, int] = field(default_factory=dict)
    held: list[int] = field(default_factory=list)  # partitions left to another run that holds them
    paths: set[str] = field(default_factory=set)  # the files applied (to one partition or more)

    @property
    def files(self) -> int:
        """The log files applied, each counted once however many partitions it was applied to."""
        return len(self.paths)


def pending_files(session: Session, settings: Settings, campaign_id: str, part: int = 0) -> list[str]:
    """The log files a partition of the campaign has not applied yet, in the log's order."""
    log = EventLog(settings)
    done = set(
        session.scalars(
            select(CampaignOffset.path).where(
                CampaignOffset.campaign == campaign_id, CampaignOffset.part == part
            )
        )
    )
    return [str(f.relative_to(log.dir)) for f in unread(log, done)]  # compaction-aware


def apply_file(
    session: Session, settings: Settings, campaign_id: str, rel_path: str, *, eligible: frozenset[str] | None,
    report: RunReport, part: int = 0, fail_after: int | None = None,
) -> None:  # fmt: skip
    """Apply one log file to one partition of a campaign's customers. The caller's transaction holds
    everything this writes. Its first statement inserts the offset row (campaign, partition, file): a run
    applying the same file to the same partition at the same moment waits on it and then finds it applied.
    A campaign in one partition (a budget across customers) is locked for the whole file; one in several
    adds its counts to the campaign's totals at the end, under a lock held only until the commit."""
    try:  # the first statement a write (SQLite: a transaction that read first may not write after another)
        with session.begin_nested():
            session.execute(
                insert(CampaignOffset).values(
                    campaign=campaign_id, part=part, path=rel_path, events=0, applied_at=datetime.now(UTC)
                )
            )
    except IntegrityError:
        return  # another run applied it meanwhile
    count = session.scalar(select(Campaign.partitions).where(Campaign.id == campaign_id))
    single = count is None or count <= 1
    # FOR NO KEY UPDATE, not FOR UPDATE: the offset, grant and state rows inserted here hold a KEY SHARE lock
    # on the campaign's row (their foreign key), which FOR UPDATE would wait on in two runs at once: deadlock
    row = session.get(Campaign, campaign_id, with_for_update={"key_share": True} if single else None)
    if row is None or row.status != "active":
        raise AppError(f"campaign {campaign_id!r} is not active")
    decider = Decider(_definition(row.definition)[1], settings.tz, eligible=eligible)
    state = CampaignState()
    if single:
        load_totals(row.totals, state)
    path = EventLog(settings).dir / rel_path
    share = None if single else partitions.customers_in(settings, path, row.partitions, part)
    if share is not None and not share:
        report.paths.add(rel_path)  # none of the partition's customers in the file: the offset row is all
        return
    events = list(
        read_rows(settings, Event, types=decider.types, fields=decider.columns, files=[path], customers=share)
    )
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
    # the partition's own rows first; the rows runs of other partitions share (stock, budgets, the
    # campaign's totals) last, so that their locks are held only until the commit
    # (the driver's bulk paths, not the ORM's unit of work nor a statement a row: a file of a large bank
    # writes 100k+ rows here; PostgreSQL: COPY, and one UPDATE from a COPY'd temporary table)
    added, changed = [], []
    for cid, cust in state.customers.items():
        text = dump_customer(cust)
        before = stored.get(cid)
        if before is None:
            added.append((campaign_id, cid, text))
        elif before != text:
            changed.append((campaign_id, cid, text))
    states: Table = CampaignCustomerState.__table__  # type: ignore[assignment]
    insert_rows(session, states, ("campaign", "customer_id", "state"), added)
    update_column(session, states, ("campaign", "customer_id"), "state", changed)
    session.execute(
        update(CampaignOffset)
        .where(
            CampaignOffset.campaign == campaign_id,
            CampaignOffset.part == part,
            CampaignOffset.path == rel_path,
        )
        .values(events=len(events), applied_at=datetime.now(UTC))
    )
    answers = _issue(session, [g for g, _ in fresh], settings, report)
    grants: Table = CampaignGrant.__table__  # type: ignore[assignment]
    insert_rows(
        session, grants, GRANT_COLUMNS,
        (_row(g, day, *answer) for (g, day), answer in zip(fresh, answers, strict=True)),
    )  # fmt: skip
    if single:
        totals = dump_totals(state)
    else:  # the campaign's row locked last and briefly: runs of other partitions commit meanwhile
        before_totals = session.scalar(
            select(Campaign.totals).where(Campaign.id == campaign_id).with_for_update(key_share=True)
        )
        totals = add_totals(before_totals or "{}", state)
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(totals=totals, events=Campaign.events + len(events), updated_at=datetime.now(UTC))
    )
    session.flush()
    report.paths.add(rel_path)
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


#: the ``campaign_grants`` columns :func:`_row` gives, in order
GRANT_COLUMNS = (
    "key", "campaign", "rule", "customer_id", "benefit", "granted_at", "valid_from", "valid_to", "claim_by",
    "face_value_fen", "discount_rate", "stage", "points", "event_id", "local_date", "ledger", "coupon_id",
)  # fmt: skip


def _row(g: Grant, local_date: date, ledger: str, coupon_id: int | None) -> tuple[Any, ...]:
    """The ``campaign_grants`` row of a grant (its values in :data:`GRANT_COLUMNS` order): the one place a
    grant becomes the stored row, with the day of its event and the coupon ledger's answer."""
    return (
        g.key, g.campaign, g.rule, g.customer_id, g.benefit_id, g.granted_at, g.valid_from or g.granted_at,
        g.valid_to, g.claim_by, g.face_value_fen, g.discount_rate, g.stage, g.points_spent, g.event_id,
        local_date, ledger, coupon_id,
    )  # fmt: skip


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def run_once(
    settings: Settings,
    *,
    campaign_id: str | None = None,
    eligible_for: Callable[[Session, CampaignSpec], frozenset[str] | None] | None = None,
    on_file: Callable[[str, str, RunReport], Any] | None = None,
    holder: str | None = None,
    lease: timedelta = LEASE,
    clock: Callable[[], datetime] | None = None,
    stop: threading.Event | None = None,
) -> list[RunReport]:
    """Apply every pending log file to every active campaign (or one): partition by partition, each taken
    with a lease (:mod:`omnibank.campaigns.partitions`), each file of a partition in its own transaction.
    Partitions another run holds are left to it (``RunReport.held``); one whose holder was killed is taken
    over once its lease has expired. Several runs at once share the partitions."""
    from omnibank.db import unit_of_work

    holder = holder or run_id()
    clock = clock or (lambda: datetime.now(UTC))
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
            row = session.get(Campaign, cid)
            assert row is not None
            count = row.partitions
            pending = _pending_parts(session, settings, cid, count)
            eligible = eligible_for(session, spec_of(row)) if pending and eligible_for else None
        if pending:
            partitions.ensure(settings, cid, count)
        # in order (one run alone grants the same coupons each time, stock running out or not); a run
        # starting beside another skips the partition that one holds and takes the next
        for part in pending:
            if stop is not None and stop.is_set():
                break
            if not partitions.take(settings, cid, part, holder, now=clock(), lease=lease):
                report.held.append(part)
                continue
            renewer = partitions.Renewer(settings, cid, part, holder, now=clock(), lease=lease)
            try:
                with unit_of_work(settings) as session:  # again, under the lease: another run may have been
                    files = pending_files(session, settings, cid, part)
                log_dir = EventLog(settings).dir
                idle: list[str] = []  # files with none of the partition's customers: offsets only, together
                for rel in files:
                    if count > 1 and not partitions.customers_in(settings, log_dir / rel, count, part):
                        idle.append(rel)
                        continue
                    _skip(settings, cid, part, idle, report)
                    idle = []
                    _apply_retrying(settings, cid, rel, part=part, eligible=eligible, report=report)
                    if on_file:
                        on_file(cid, rel, report)
                    if renewer.lost.is_set() or (stop is not None and stop.is_set()):
                        break
                _skip(settings, cid, part, idle, report)
            finally:
                renewer.stop()
                partitions.release(settings, cid, part, holder)
        reports.append(report)
    return reports


def _skip(settings: Settings, campaign_id: str, part: int, rels: list[str], report: RunReport) -> None:
    """Mark files none of a partition's customers is in as applied to it, in one transaction (a row each,
    none written twice: another run may have marked or applied one meanwhile)."""
    if not rels:
        return
    from omnibank.db import unit_of_work

    now = datetime.now(UTC)
    with unit_of_work(settings) as session:
        for rel in rels:
            stmt = insert_for(session, CampaignOffset).values(
                campaign=campaign_id, part=part, path=rel, events=0, applied_at=now
            )
            session.execute(stmt.on_conflict_do_nothing(index_elements=["campaign", "part", "path"]))
    report.paths.update(rels)


#: PostgreSQL's answers that mean "try the transaction again": a deadlock, a serialisation failure
RETRY_STATES = frozenset({"40P01", "40001"})


def _apply_retrying(
    settings: Settings, campaign_id: str, rel: str, *, part: int, eligible: frozenset[str] | None,
    report: RunReport, attempts: int = 5,
) -> None:  # fmt: skip
    """:func:`apply_file` in a transaction of its own, made again when PostgreSQL chose it as a deadlock's
    victim (two runs issuing coupons of the same benefits item by item, in different orders): the rolled-back
    transaction left nothing, so the file is applied again from the start."""
    from omnibank.db import unit_of_work

    for attempt in range(1, attempts + 1):
        trial = replace(
            report, refusals=dict(report.refusals), held=list(report.held), paths=set(report.paths)
        )
        try:
            with unit_of_work(settings) as session:
                apply_file(session, settings, campaign_id, rel, part=part, eligible=eligible, report=trial)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in RETRY_STATES or attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
            continue
        for name in ("events", "grants", "coupons", "refusals", "paths"):
            setattr(report, name, getattr(trial, name))
        return


def _pending_parts(session: Session, settings: Settings, campaign_id: str, count: int) -> list[int]:
    """The partitions with log files left to apply (one read of the offsets and one listing of the log)."""
    log = EventLog(settings)
    done: dict[int, set[str]] = {p: set() for p in range(count)}
    for part, path in session.execute(
        select(CampaignOffset.part, CampaignOffset.path).where(CampaignOffset.campaign == campaign_id)
    ):
        done.setdefault(part, set()).add(path)
    return [p for p in range(count) if unread(log, done[p])]
