"""Live journeys: ``journey start`` registers a journey; ``omnibank worker`` runs every active one.

Each loop of the worker:

1. **the log** — every event-log file not applied to a journey yet is applied to it in one transaction
   (the journey's row locked): triggers make entries, awaited events and receipts move entries, conversions
   are counted; the file's offset is written in the same transaction. Killed at any moment, a file is
   applied entirely or not at all (as live campaigns do);
2. **segment triggers** — a journey whose schedule came since its last look finds who matches now
   (the segment engine) and lets them enter;
3. **due steps** — entries due by now are claimed in batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
   so several workers never hold the same entry; SQLite has one writer) and the step machine runs them:
   sends go through :func:`omnibank.contact.outbox.submit` (the one contact policy), leads through
   :func:`omnibank.leads.service.create_leads`, tags and grants in the same transaction; every step run is
   recorded under its unique key, so a step never runs twice; events (new leads) are emitted after commit.

The worker (:mod:`omnibank.worker`) runs these as the journeys' jobs (:mod:`omnibank.journeys.jobs`), and
after them the other domains' (the outbox, overdue lead escalation, audit checkpoints); its loop, leases
and back-off live there, the journeys' own logic here.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.contact.policy import Send
from omnibank.db import unit_of_work
from omnibank.db.ids import one_of
from omnibank.db.upsert import insert_for
from omnibank.errors import AppError, NotFound
from omnibank.events.compact import unread
from omnibank.events.log import EventLog
from omnibank.journeys.facts import MemoryFacts
from omnibank.journeys.machine import Action, EntryState, Outcome, decided, enter, may_enter, on_event, run
from omnibank.journeys.models import Journey, JourneyEntry, JourneyOffset, JourneyStepRun
from omnibank.journeys.simulate import VARS, next_tick
from omnibank.journeys.source import read_journey_events, types_sql
from omnibank.journeys.spec import RECEIPTS, RECOMMENDED, Compiled, JourneySpec, parse_journey
from omnibank.segments.expr import CustomerFacts, evaluate
from omnibank.segments.facts import customer_facts, identifier_kinds, load_profiles

if TYPE_CHECKING:
    from omnibank.benefits.ledger import BudgetKey

_RUNS: Table = JourneyStepRun.__table__  # type: ignore[assignment]
_CHUNK = 500
MAX_ROUNDS = 16  # sends an entry may make in one claim (a route's chain, sends in a row)

# ------------------------------------------------------------------------------------------------ control

_compiled: dict[str, Compiled] = {}


def compiled_of(row: Journey) -> Compiled:
    """The journey's definition, parsed once per process (per version of its text)."""
    digest = hashlib.sha256(row.definition.encode()).hexdigest()
    key = f"{row.id}:{digest}"
    c = _compiled.get(key)
    if c is None:
        c = _compiled[key] = Compiled(parse_journey(row.definition, source=f"journey {row.id}"))
    return c


def start(
    session: Session, settings: Settings, spec: JourneySpec, *, source_text: str, now: datetime | None = None
) -> Journey:
    """Register (or update and resume) a journey; its entries and offsets are kept across updates.
    A new journey applies only event-log files published from now on (history is for ``simulate``)."""
    now = now or datetime.now(UTC)
    parsed = parse_journey(source_text, source=f"journey {spec.id}")
    if parsed != spec:
        raise AppError("the journey's text and its definition differ")
    row = session.get(Journey, spec.id)
    if row is None:
        row = Journey(
            id=spec.id, name=spec.name, definition=source_text, status="active", started_at=now,
            updated_at=now, ticked_at=now,
        )  # fmt: skip
        session.add(row)
        session.flush()
        done = {
            o for o in session.scalars(select(JourneyOffset.path).where(JourneyOffset.journey == spec.id))
        }
        log = EventLog(settings)
        for f in log.files():
            rel = str(f.relative_to(log.dir))
            if rel not in done:
                session.add(JourneyOffset(journey=spec.id, path=rel, events=0, applied_at=now))
    row.name, row.definition, row.status, row.updated_at = spec.name, source_text, "active", now
    if any(s.tag for s in spec.steps):
        # the tags' data version row must exist before workers bump it at once (the first bump inserts it)
        from omnibank.db import versions

        versions.bump(session, "tags")
    session.flush()
    return row


def stop(session: Session, journey_id: str, *, now: datetime | None = None) -> None:
    row = session.get(Journey, journey_id)
    if row is None:
        raise NotFound(f"no journey {journey_id!r} (omnibank journey list)")
    row.status = "stopped"
    row.updated_at = now or datetime.now(UTC)


# ------------------------------------------------------------------------------------------------ records


def run_row(a: Action, entry_id: int | None, now: datetime, *, outcome: str | None = None,
            reason: str | None = None, at: datetime | None = None, ref: str | None = None,
            control: bool = False) -> dict[str, Any]:  # fmt: skip
    return {
        "key": a.key,
        "journey": a.journey,
        "entry_id": entry_id,
        "customer_id": a.customer_id,
        "step": a.step,
        "kind": a.kind,
        "outcome": outcome,
        "channel": a.channel,
        "reason": reason if reason is not None else a.reason,
        "variant": a.detail.get("variant"),
        "control": bool(a.detail.get("control", control)),
        "ref": ref,
        "at": at or a.at,
        "recorded_at": now,
    }


def insert_runs(session: Session, rows: list[dict[str, Any]]) -> int:
    """Record step runs; a key recorded before is left as it is. Returns the rows added."""
    if not rows:
        return 0
    stmt = insert_for(session, _RUNS).on_conflict_do_nothing(index_elements=["key"])
    added = 0
    seen: set[str] = set()
    unique = [r for r in rows if not (r["key"] in seen or seen.add(r["key"]))]  # type: ignore[func-returns-value]
    for i in range(0, len(unique), _CHUNK):
        result = session.execute(stmt, unique[i : i + _CHUNK])
        added += max(result.rowcount or 0, 0)  # type: ignore[attr-defined]
    return added


def _entry_values(state: EntryState, now: datetime) -> dict[str, Any]:
    return {
        "status": state.status,
        "step": state.step,
        "state": json.dumps(state.dump(), ensure_ascii=False, separators=(",", ":")),
        "next_due_at": state.due if state.status in ("active", "control") else None,
        "converted_at": state.converted_at,
        "updated_at": now,
    }


def new_entry(state: EntryState, now: datetime) -> JourneyEntry:
    return JourneyEntry(
        journey=state.journey, customer_id=state.customer_id, entry_no=state.entry_no,
        control=state.status == "control", entered_at=state.entered_at, **_entry_values(state, now),
    )  # fmt: skip


def latest_entries(
    session: Session, journey_id: str, customer_ids: Iterable[str], *, lock: bool
) -> dict[str, JourneyEntry]:
    """Each customer's latest entry in the journey (locked for update on PostgreSQL when asked)."""
    ids = sorted(set(customer_ids))
    out: dict[str, JourneyEntry] = {}
    for which in one_of(session, JourneyEntry.customer_id, ids):
        q = (
            select(JourneyEntry)
            .where(JourneyEntry.journey == journey_id, which)
            .order_by(JourneyEntry.customer_id, JourneyEntry.entry_no)
        )
        if lock:
            q = q.with_for_update(of=JourneyEntry)
        for e in session.scalars(q):
            out[e.customer_id] = e
    return out


def _audience(
    session: Session, settings: Settings, c: Compiled, customer_ids: Sequence[str]
) -> Callable[[str, datetime], bool]:
    """Who may enter (customers the store knows, matching the audience expression at entry)."""
    profiles = load_profiles(session, customer_ids)
    if c.audience is None:
        return lambda cid, _at: cid in profiles
    expression = c.audience
    if expression.aggregates:
        facts = customer_facts(session, settings, list(profiles), profiles=profiles)
        tz = settings.tz

        def with_events(cid: str, at: datetime) -> bool:
            f: CustomerFacts | None = facts.get(cid)
            return f is not None and evaluate(expression, f, at.astimezone(tz).date())

        return with_events
    memory = MemoryFacts(profiles, settings.tz)
    return lambda cid, at: memory.matches(expression, cid, at)


# -------------------------------------------------------------------------------------------------- the log


@dataclass
class WorkReport:
    files: int = 0
    events: int = 0
    entered: int = 0
    steps: int = 0
    claimed: int = 0
    sends: Counter[str] = field(default_factory=Counter)  # send / defer / suppress:<reason>
    leads: int = 0
    tags: int = 0
    grants: int = 0
    converted: int = 0
    emitted: int = 0
    dispatched: int = 0
    escalated: int = 0

    def add(self, other: WorkReport) -> None:
        for k, v in vars(other).items():
            if isinstance(v, Counter):
                getattr(self, k).update(v)
            else:
                setattr(self, k, getattr(self, k) + v)


def pending_files(session: Session, settings: Settings, journey_id: str) -> list[str]:
    log = EventLog(settings)
    done = set(session.scalars(select(JourneyOffset.path).where(JourneyOffset.journey == journey_id)))
    return [str(f.relative_to(log.dir)) for f in unread(log, done)]  # compaction-aware


def apply_file(
    session: Session, settings: Settings, journey_id: str, rel_path: str, *, now: datetime, report: WorkReport
) -> None:
    """Apply one log file to a journey. The caller's transaction holds everything this writes."""
    row = session.get(Journey, journey_id, with_for_update=True)
    if row is None or row.status != "active":
        return
    if session.get(JourneyOffset, (journey_id, rel_path)) is not None:
        return  # another worker applied it meanwhile
    c = compiled_of(row)
    path = EventLog(settings).dir / rel_path
    types = c.event_types() | RECEIPTS
    events = list(read_journey_events(settings, where=types_sql(types), files=[path]))
    trigger = c.spec.trigger.event
    relevant = [
        e for e in events
        if not (e.type in RECEIPTS and e.fields.get("journey") != c.id)
    ]  # fmt: skip
    entries = latest_entries(session, c.id, {e.customer_id for e in relevant}, lock=True)
    states = {cid: EntryState.load(json.loads(e.state)) for cid, e in entries.items()}
    triggered = [
        e.customer_id for e in relevant if e.type == trigger and c.trigger_test(e.fields)
    ]  # fmt: skip
    may = _audience(session, settings, c, triggered) if triggered else (lambda _cid, _at: False)
    changed: set[str] = set()
    runs: list[tuple[Action, JourneyEntry]] = []
    for e in relevant:
        cid = e.customer_id
        state = states.get(cid)
        if state is not None and state.listening(c, e.ts):
            actions, new = on_event(c, state, e)
            runs += [(a, entries[cid]) for a in actions]
            if new != state:
                states[cid] = new
                changed.add(cid)
            state = new
        if e.type == trigger and c.trigger_test(e.fields) and may_enter(c, state, e.ts) and may(cid, e.ts):
            vars = {k: str(e.fields[k]) for k in VARS if e.fields.get(k) is not None}
            actions, new = enter(c, cid, (state.entry_no if state else 0) + 1, e.ts, vars)
            if cid in changed:  # the entry before this one: save how it ended
                _set_values(entries[cid], states[cid], now)
            row_e = new_entry(new, now)
            session.add(row_e)
            entries[cid], states[cid] = row_e, new
            changed.add(cid)
            runs += [(a, row_e) for a in actions]
            report.entered += 1
    session.flush()
    for cid in changed:
        _set_values(entries[cid], states[cid], now)
    records = []
    for a, row_e in runs:
        if a.kind == "convert":
            report.converted += 1
        outcome = a.reason if a.kind == "receipt" else None
        records.append(run_row(a, row_e.id, now, outcome=outcome))
    insert_runs(session, records)
    session.add(JourneyOffset(journey=c.id, path=rel_path, events=len(events), applied_at=now))
    session.flush()
    report.files += 1
    report.events += len(events)


def _set_values(row: JourneyEntry, state: EntryState, now: datetime) -> None:
    for k, v in _entry_values(state, now).items():
        setattr(row, k, v)


def apply_log(settings: Settings, *, now: datetime, report: WorkReport) -> None:
    """Apply every pending log file to every active journey, each file in its own transaction."""
    with unit_of_work(settings) as session:
        ids = list(session.scalars(select(Journey.id).where(Journey.status == "active").order_by(Journey.id)))
        pending = {jid: pending_files(session, settings, jid) for jid in ids}
    for jid, files in pending.items():
        for rel in files:
            with unit_of_work(settings) as session:
                apply_file(session, settings, jid, rel, now=now, report=report)


# ----------------------------------------------------------------------------------------- segment triggers


def last_tick(c: Compiled, now: datetime, tz: Any) -> datetime:
    """The latest moment of the schedule at or before ``now``."""
    return max(t for t in (next_tick(c, now - timedelta(days=8 - i), tz) for i in range(8)) if t <= now)


def tick_segments(settings: Settings, *, now: datetime, report: WorkReport) -> None:
    """Segment triggers whose schedule came since their last look let matching customers enter."""
    with unit_of_work(settings) as session:
        rows = list(session.scalars(select(Journey).where(Journey.status == "active").order_by(Journey.id)))
        due = [r.id for r in rows if compiled_of(r).schedule is not None]
    for jid in due:
        with unit_of_work(settings) as session:
            row = session.get(Journey, jid, with_for_update=True)
            if row is None or row.status != "active":
                continue
            c = compiled_of(row)
            moment = last_tick(c, now, settings.tz)
            if row.ticked_at is not None and row.ticked_at >= moment:
                continue
            from omnibank.segments.service import member_set

            assert c.spec.trigger.segment is not None
            text_ = f"({c.spec.trigger.segment})"
            if c.spec.audience:
                text_ += f" AND ({c.spec.audience})"
            members = sorted(
                member_set(session, settings, text_, as_of=moment.astimezone(settings.tz).date())
            )
            latest = latest_entries(session, c.id, members, lock=True)
            made: list[tuple[list[Action], JourneyEntry]] = []
            for cid in members:
                prev_row = latest.get(cid)
                prev = EntryState.load(json.loads(prev_row.state)) if prev_row else None
                if not may_enter(c, prev, moment):
                    continue
                actions, state = enter(c, cid, (prev.entry_no if prev else 0) + 1, moment)
                entry = new_entry(state, now)
                session.add(entry)
                made.append((actions, entry))
            session.flush()
            insert_runs(session, [run_row(a, e.id, now) for actions, e in made for a in actions])
            report.entered += len(made)
            row.ticked_at = moment


# -------------------------------------------------------------------------------------------------- steps


def _claim(session: Session, *, now: datetime, batch: int) -> list[JourneyEntry]:
    if session.get_bind().dialect.name == "sqlite":
        # take SQLite's write lock before reading, so that two workers cannot claim the same entries
        session.execute(text("UPDATE journeys SET id = id WHERE 0 = 1"))
    q = (
        select(JourneyEntry)
        .join(Journey, Journey.id == JourneyEntry.journey)
        .where(
            Journey.status == "active",
            JourneyEntry.status.in_(("active", "control")),
            JourneyEntry.next_due_at <= now,
        )
        .order_by(JourneyEntry.next_due_at, JourneyEntry.id)
        .limit(batch)
        .with_for_update(skip_locked=True, of=JourneyEntry)
    )
    return list(session.scalars(q))


class _StoreFacts:
    """Facts for a claimed batch: profiles from the store, events from the log when expressions count
    them (loaded on first use)."""

    def __init__(self, session: Session, settings: Settings, customer_ids: list[str], needs_events: bool):
        self.session, self.settings = session, settings
        self.ids = customer_ids
        self.needs_events = needs_events
        self._memory: MemoryFacts | None = None

    def memory(self) -> MemoryFacts:
        if self._memory is None:
            profiles = load_profiles(self.session, self.ids)
            m = MemoryFacts(profiles, self.settings.tz, identifiers=identifier_kinds(self.session, self.ids))
            if self.needs_events:
                facts = customer_facts(self.session, self.settings, list(profiles), profiles=profiles)
                for cid, f in facts.items():
                    m.events[cid] = list(f.events)
            self._memory = m
        return self._memory

    def matches(self, expression: Any, customer_id: str, at: datetime) -> bool:
        return self.memory().matches(expression, customer_id, at)

    def route(self, route: Any, customer_id: str, at: datetime) -> tuple[str, ...]:
        return self.memory().route(route, customer_id, at)


def run_due(settings: Settings, *, now: datetime, batch: int = 500, report: WorkReport) -> int:
    """Claim up to ``batch`` due entries and run their steps, in one transaction; the entries claimed."""
    from omnibank.contact import outbox
    from omnibank.leads import service as leads

    lead_events: list[dict[str, Any]] = []
    with unit_of_work(settings) as session:
        rows = _claim(session, now=now, batch=batch)
        if not rows:
            return 0
        report.claimed += len(rows)
        journeys = {
            j.id: compiled_of(j)
            for j in session.scalars(select(Journey).where(Journey.id.in_({r.journey for r in rows})))
        }
        needs_events = any(e.aggregates for c in journeys.values() for e in c.step_expressions())
        facts = _StoreFacts(session, settings, sorted({r.customer_id for r in rows}), needs_events)
        states = {r.id: EntryState.load(json.loads(r.state)) for r in rows}
        by_id = {r.id: r for r in rows}
        records: list[dict[str, Any]] = []
        effects: list[tuple[Action, int]] = []
        pending = list(states)
        for _ in range(MAX_ROUNDS):
            asks: list[tuple[int, Action]] = []
            for eid in pending:
                c = journeys[by_id[eid].journey]
                before = states[eid].runs
                actions, st = run(c, states[eid], now, facts)
                report.steps += st.runs - before
                states[eid] = st
                for a in actions:
                    if a.kind == "send":
                        if a.reason == "no_route":
                            records.append(run_row(a, eid, now, outcome="suppress", reason="no_route"))
                        else:
                            asks.append((eid, a))
                    elif a.kind in ("lead", "tag", "grant"):
                        effects.append((a, eid))
                    else:
                        records.append(run_row(a, eid, now, control=by_id[eid].control))
            if not asks:
                break
            sends = [
                Send(
                    key=a.key, customer_id=a.customer_id, channel=a.channel or "", purpose=a.purpose,  # type: ignore[arg-type]
                    at=max(a.at, now), journey=a.journey, step=a.step, template=a.template,
                    payload={k: str(v) for k, v in a.detail.items() if k in VARS},
                )
                for _, a in asks
            ]  # fmt: skip
            decisions = outbox.submit(session, settings, sends, now=now)
            pending = []
            for (eid, a), d in zip(asks, decisions, strict=True):
                report.sends[d.action if d.action != "suppress" else f"suppress:{d.reason}"] += 1
                ref = str(d.message_id) if d.message_id is not None else None
                records.append(run_row(a, eid, now, outcome=d.action, reason=d.reason, at=d.at, ref=ref))
                c = journeys[by_id[eid].journey]
                states[eid] = decided(c, states[eid], Outcome(d.action, d.reason, d.at))
                pending.append(eid)
        lead_events += _effects(session, settings, journeys, effects, records, now, report)
        insert_runs(session, records)
        for eid, st in states.items():
            for k, v in _entry_values(st, now).items():
                setattr(by_id[eid], k, v)
        session.flush()
    if lead_events:
        report.emitted += leads.emit_events(settings, lead_events, now=now).loaded
    return len(rows)


def _effects(
    session: Session,
    settings: Settings,
    journeys: dict[str, Compiled],
    effects: list[tuple[Action, int]],
    records: list[dict[str, Any]],
    now: datetime,
    report: WorkReport,
) -> list[dict[str, Any]]:
    """Leads, tags and grants of a batch (marketing leads only with marketing consent); their records;
    the lead events to emit after commit."""
    from omnibank.consent.service import allowed_many
    from omnibank.leads.service import LeadRequest, create_leads

    if not effects:
        return []
    marketing_leads = {
        a.customer_id
        for a, _ in effects
        if a.kind == "lead" and journeys[a.journey].spec.purpose == "marketing"
    }
    consent = allowed_many(session, marketing_leads, "marketing") if marketing_leads else {}
    lead_reqs: list[tuple[LeadRequest, Action, int]] = []
    tags: list[tuple[Action, int]] = []
    grants: list[tuple[Action, int]] = []
    for a, eid in effects:
        if a.kind == "lead":
            if a.customer_id in marketing_leads and not consent.get(a.customer_id, False):
                records.append(run_row(a, eid, now, outcome="suppress", reason="no_consent"))
                continue
            lead_reqs.append((
                LeadRequest(
                    key=a.key[:200], customer_id=a.customer_id, source=f"journey:{a.journey}",
                    journey=a.journey, step=a.step, product_id=a.detail.get("product_id"),
                    note=a.detail.get("note") or None,
                    due_at=datetime.fromisoformat(a.detail["due_at"]),
                ), a, eid,
            ))  # fmt: skip
        elif a.kind == "tag":
            tags.append((a, eid))
        else:
            grants.append((a, eid))
    events: list[dict[str, Any]] = []
    if lead_reqs:
        created = create_leads(session, [r for r, _, _ in lead_reqs], now=now)
        events = list(created.events)
        for (_, a, eid), lead in zip(lead_reqs, created, strict=True):
            records.append(run_row(a, eid, now, outcome="created", ref=lead.lead_id))
            report.leads += 1
    if tags:
        _apply_tags(session, tags, records, now, settings)
        report.tags += len(tags)
    if grants:
        report.grants += _apply_grants(session, settings, grants, records, now)
    return events


def _apply_tags(
    session: Session, tags: list[tuple[Action, int]], records: list[dict[str, Any]], now: datetime,
    settings: Settings,
) -> None:  # fmt: skip
    """Journey tags (not computed ones): added with the day they were set, removed; history kept."""
    from omnibank.db import versions
    from omnibank.tags.models import CustomerTag, CustomerTagChange, TagDefinition

    names = {n for a, _ in tags for n in [*a.detail["add"], *a.detail["remove"]]}
    computed = set(session.scalars(select(TagDefinition.name).where(TagDefinition.name.in_(names))))
    customers = sorted({a.customer_id for a, _ in tags})
    held: dict[tuple[str, str], CustomerTag] = {}
    for i in range(0, len(customers), _CHUNK):
        q = select(CustomerTag).where(
            CustomerTag.customer_id.in_(customers[i : i + _CHUNK]), CustomerTag.tag.in_(names)
        )
        held.update({(t.customer_id, t.tag): t for t in session.scalars(q)})
    for a, eid in tags:
        day = a.at.astimezone(settings.tz).date()
        skipped = []
        for name in a.detail["add"]:
            if name in computed:
                skipped.append(name)
                continue
            if (a.customer_id, name) not in held:
                held[(a.customer_id, name)] = tag = CustomerTag(
                    customer_id=a.customer_id, tag=name, since=day
                )
                session.add(tag)
                session.add(CustomerTagChange(customer_id=a.customer_id, tag=name, change="gained", as_of=day,
                                              computed_at=now))  # fmt: skip
        for name in a.detail["remove"]:
            if name in computed:
                skipped.append(name)
                continue
            existing = held.pop((a.customer_id, name), None)
            if existing is not None:
                session.delete(existing)
                session.add(CustomerTagChange(customer_id=a.customer_id, tag=name, change="lost", as_of=day,
                                              computed_at=now))  # fmt: skip
        reason = f"computed:{','.join(sorted(skipped))}"[:64] if skipped else None
        records.append(run_row(a, eid, now, outcome="set", reason=reason))
    versions.bump(session, "tags")


def _apply_grants(
    session: Session, settings: Settings, grants: list[tuple[Action, int]], records: list[dict[str, Any]],
    now: datetime,
) -> int:  # fmt: skip
    """A batch's grant steps: the items issued. A journey's grants count against the budgets set for
    ``journey:<id>`` and for its step (``omnibank budgets set --campaign journey:<id> [--rule STEP]``), when
    set. ``benefit: recommended`` steps: :func:`_grant_recommended`."""
    from decimal import Decimal

    from omnibank.benefits.batch import grant_many
    from omnibank.benefits.grant import Grant
    from omnibank.kit.money import to_fen

    fixed = [(a, eid) for a, eid in grants if a.detail["benefit"] != RECOMMENDED]
    chosen = [(a, eid) for a, eid in grants if a.detail["benefit"] == RECOMMENDED]
    budgets = _GrantBudgets(session)
    requests = []
    for a, _ in fixed:
        d = a.detail
        valid_to = a.at + timedelta(days=int(d["valid_days"])) if d.get("valid_days") else None
        for i in range(int(d["quantity"])):
            requests.append(
                Grant(
                    key=f"{a.key}:{i}"[:200], campaign=f"journey:{a.journey}", rule=a.step or "",
                    customer_id=a.customer_id, benefit_id=d["benefit"], granted_at=a.at,
                    face_value_fen=to_fen(Decimal(d["face_value"])) if d.get("face_value") else None,
                    valid_from=a.at, valid_to=valid_to, budgets=budgets.of(a),
                )
            )  # fmt: skip
    results = grant_many(session, requests, tz=settings.tz, actor="journeys") if requests else []
    issued = 0
    i = 0
    for a, eid in fixed:
        mine = results[i : i + int(a.detail["quantity"])]
        i += len(mine)
        refused = [r.reason for r in mine if r.outcome == "refused"]
        issued += sum(r.outcome == "granted" for r in mine)
        records.append(
            run_row(a, eid, now, outcome="refused" if refused else "granted", reason=(refused[0] or "")[:64]
                     if refused else None)
        )  # fmt: skip
    if chosen:
        issued += _grant_recommended(session, settings, chosen, records, now, budgets)
    return issued


class _GrantBudgets:
    """The budgets defined for a journey's grant steps (``journey:<id>``, and per step as its rule)."""

    def __init__(self, session: Session):
        self.session = session
        self.found: dict[tuple[str, str], tuple[BudgetKey, ...]] = {}

    def of(self, a: Action) -> tuple[BudgetKey, ...]:
        from omnibank.benefits.ledger import defined_budgets

        key = (a.journey, a.step or "")
        if key not in self.found:
            self.found[key] = tuple(defined_budgets(self.session, f"journey:{a.journey}", a.step or ""))
        return self.found[key]


RECOMMENDED_TRIES = (
    10  # recommendations tried in turn when a grant refuses (stock or budget ran out meanwhile)
)


def _grant_recommended(
    session: Session, settings: Settings, chosen: list[tuple[Action, int]], records: list[dict[str, Any]],
    now: datetime, budgets: _GrantBudgets,
) -> int:  # fmt: skip
    """``grant: {benefit: recommended}``: each customer's best recommendation that a grant accepts now
    (:mod:`omnibank.benefits.recommend`: active, in stock, within the journey's budgets, not held unused),
    one item under the step's key ``<step run key>:0``; when a grant refuses (the batch took the last item
    or the budget), the next recommendation is tried. A key granted before keeps its benefit (a replay
    issues nothing). None to grant: the run is recorded ``skipped`` / ``no_recommendation`` and the entry
    goes on. The chosen benefit is the run's ``ref``."""
    from omnibank.benefits.granting import grant
    from omnibank.benefits.models import Coupon
    from omnibank.benefits.recommend import ranker

    keys = [f"{a.key}:0"[:200] for a, _ in chosen]
    before: dict[str, str] = {}
    for i in range(0, len(keys), _CHUNK):
        q = select(Coupon.grant_key, Coupon.benefit_id).where(Coupon.grant_key.in_(keys[i : i + _CHUNK]))
        before.update({k: b for k, b in session.execute(q)})
    groups: dict[tuple[BudgetKey, ...], list[tuple[Action, int, str]]] = {}
    for (a, eid), key in zip(chosen, keys, strict=True):
        if key in before:  # granted by an earlier run of this step: nothing again
            records.append(run_row(a, eid, now, outcome="granted", ref=before[key][:64]))
        else:
            groups.setdefault(budgets.of(a), []).append((a, eid, key))
    issued = 0
    for keys_of, todo in groups.items():
        r = ranker(session, settings, sorted({a.customer_id for a, _, _ in todo}), budgets=keys_of)
        for a, eid, key in todo:
            valid_to = (
                a.at + timedelta(days=int(a.detail["valid_days"])) if a.detail.get("valid_days") else None
            )
            given: str | None = None
            for rec in r.top(a.customer_id, RECOMMENDED_TRIES):
                result = grant(
                    session, key=key, campaign=f"journey:{a.journey}", rule=a.step or "",
                    customer_id=a.customer_id, benefit_id=rec.benefit_id, granted_at=a.at, valid_from=a.at,
                    valid_to=valid_to, budgets=keys_of, tz=settings.tz, actor="journeys",
                )  # fmt: skip
                if result.outcome != "refused":
                    given = rec.benefit_id
                    issued += result.outcome == "granted"
                    r.held.setdefault(a.customer_id, set()).add(given)  # not again in this batch
                    break
            if given is None:
                records.append(run_row(a, eid, now, outcome="skipped", reason="no_recommendation"))
            else:
                records.append(run_row(a, eid, now, outcome="granted", ref=given[:64]))
    return issued
