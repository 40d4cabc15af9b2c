"""The step machine: an entry's state and what happened in, actions and the new state out.

It reads nothing and writes nothing, so ``journey simulate`` (a virtual clock over a file) and the worker
(the store, the event log, real time) drive the very same function:

* :func:`enter` — a customer enters (or is held out in the control group);
* :func:`run` — time has come to ``now``: execute every step that is due, stopping at a send (the caller
  asks the contact policy and feeds the answer back with :func:`decided`), a wait, or the end;
* :func:`on_event` — an event of the customer arrived: a conversion, the event a ``wait_for`` waits for,
  or a delivery receipt of a send by route. It never executes a step itself: it moves the entry and makes
  it due, and the next :func:`run` goes on from there.

Every action carries the logical time it happens at (a wait that ends at 10:00 sends at 10:00 even if the
worker looks at 10:02) and a deterministic key (journey, customer, entry, step run), so that an action is
recorded once whoever runs it. Fallback chains: a send by ``route`` tries the chain's next channel at once
when the policy suppresses it, and — with ``until: delivered`` or ``clicked`` — when ``message.failed``
comes or nothing comes within ``fallback_after``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from omnibank.contact.routing import Route
from omnibank.journeys.spec import END, Compiled, Step
from omnibank.segments.expr import Expression

Status = Literal["active", "control", "done", "exited", "converted"]
ActionKind = Literal["enter", "send", "lead", "tag", "grant", "split", "exit", "convert", "receipt"]
MAX_STEPS_PER_RUN = 64  # a journey whose branches loop without a wait is stopped, not spun forever


@dataclass
class EntryState:
    """One customer's pass through a journey (JSON-serialisable with :meth:`dump`/:meth:`load`)."""

    journey: str
    customer_id: str
    entry_no: int
    entered_at: datetime
    status: Status
    step: str | None  # the current step; None when finished (or in the control group)
    at: datetime  # when the entry reached the current step (the logical clock)
    due: datetime | None  # when run() has something to do (None: waiting for an event only)
    started: bool = False  # the current step began (a wait's deadline is set)
    runs: int = 0  # steps begun so far: the step run's number in keys
    attempt: int = 0  # the channel of a route's chain being tried
    chain: tuple[str, ...] = ()
    awaiting: Literal["decision", "receipt"] | None = None
    variant: str | None = None
    converted_at: datetime | None = None
    vars: dict[str, str] = field(default_factory=dict)  # from the trigger event (product_id, …)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "exited", "converted")

    def listening(self, c: Compiled, at: datetime) -> bool:
        """Whether events at ``at`` can still matter: the entry runs, or its conversion window is open."""
        if self.status in ("active", "control"):
            return True
        conv = c.spec.conversion
        return (
            conv is not None and self.status != "converted" and self.converted_at is None
            and at <= self.entered_at + conv.within
        )  # fmt: skip

    def dump(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("entered_at", "at", "due", "converted_at"):
            out[k] = out[k].isoformat() if out[k] is not None else None
        out["chain"] = list(self.chain)
        return out

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> EntryState:
        data = dict(raw)
        for k in ("entered_at", "at", "due", "converted_at"):
            data[k] = datetime.fromisoformat(data[k]) if data.get(k) else None
        data["chain"] = tuple(data.get("chain") or ())
        return cls(**data)


@dataclass(frozen=True)
class Action:
    """Something the journey does or records. ``send``, ``lead``, ``tag`` and ``grant`` have effects
    (the caller applies them); the others are records for the actions file and attribution."""

    kind: ActionKind
    key: str
    journey: str
    customer_id: str
    step: str | None
    at: datetime
    channel: str | None = None
    purpose: str | None = None
    template: str | None = None
    reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """The contact policy's answer to a send (``send``, ``defer``, ``suppress``)."""

    action: str
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class JourneyEvent:
    """An event as the machine sees it: ``fields`` are the log's typed columns and, for platform events
    (receipts, leads), their own fields (``journey``, ``step``, ``lead_id`` …)."""

    event_id: str
    type: str
    customer_id: str
    ts: datetime
    fields: Mapping[str, Any]


class Facts(Protocol):
    """Answers expressions about a customer at a moment (branch conditions, route rules)."""

    def matches(self, expression: Expression, customer_id: str, at: datetime) -> bool: ...

    def route(self, route: Route, customer_id: str, at: datetime) -> tuple[str, ...]:
        """The channel chain for the customer at ``at`` (:func:`omnibank.contact.routing.choose`)."""
        ...


# ------------------------------------------------------------------------------------------------ enter


def enter(
    c: Compiled, customer_id: str, entry_no: int, at: datetime, vars: Mapping[str, str] | None = None
) -> tuple[list[Action], EntryState]:
    """A customer enters at ``at``; the control group's entries get nothing but are watched for the
    conversion until its window ends."""
    control = c.in_control(customer_id)
    conv = c.spec.conversion
    state = EntryState(
        journey=c.id,
        customer_id=customer_id,
        entry_no=entry_no,
        entered_at=at,
        status="control" if control else "active",
        step=None if control else c.first,
        at=at,
        due=(at + conv.within if conv else at) if control else at,
        vars=dict(vars or {}),
    )
    key = f"{c.id}:{customer_id}:{entry_no}:enter"
    detail = {"control": control, **state.vars}
    return [Action("enter", key, c.id, customer_id, None, at, detail=detail)], state


def may_enter(c: Compiled, previous: EntryState | None, at: datetime) -> bool:
    """The re-entry rule: a customer in the journey (or its control group) does not enter again; after a
    finished entry, only with ``reentry`` set and that long after the last entry."""
    if previous is None:
        return True
    if not previous.finished and not (previous.status == "control" and previous.due and previous.due <= at):
        return False
    if c.spec.reentry == "never":
        return False
    return at >= previous.entered_at + c.spec.reentry


# -------------------------------------------------------------------------------------------------- run


def _key(state: EntryState, suffix: str = "") -> str:
    return f"{state.journey}:{state.customer_id}:{state.entry_no}:{state.runs}:{state.step}{suffix}"


def _goto(state: EntryState, target: str | None, c: Compiled, at: datetime) -> None:
    assert state.step is not None
    nxt = target or c.spec.after(state.step)
    state.at = at
    state.due = at
    state.started = False
    state.attempt = 0
    state.chain = ()
    state.awaiting = None
    state.step = nxt  # END: run() finishes the entry (and records it) when it looks next


def _finish_record(c: Compiled, state: EntryState, reason: str) -> Action:
    return Action(
        "exit", f"{c.id}:{state.customer_id}:{state.entry_no}:exit", c.id, state.customer_id, None, state.at,
        reason=reason,
    )  # fmt: skip


def _template(text: str, vars: Mapping[str, str]) -> str:
    out = text
    for k, v in vars.items():
        out = out.replace("{" + k + "}", v)
    return out


MESSAGE_CHARS = 500  # an outbox message's text (contact.models)


def _message(step: Step, state: EntryState) -> str:
    """What the customer gets: the send's template with the trigger event's fields filled in."""
    assert step.send is not None
    return _template(step.send.template, state.vars)[:MESSAGE_CHARS]


def run(c: Compiled, state: EntryState, now: datetime, facts: Facts) -> tuple[list[Action], EntryState]:
    """Execute what is due at ``now``. Stops at a send (``state.awaiting == 'decision'``: feed the
    policy's answer with :func:`decided`), at a wait, or when the entry finishes."""
    state = copy.copy(state)
    actions: list[Action] = []
    if state.status == "control":
        if state.due is not None and state.due <= now:
            state.status, state.due = "done", None
        return actions, state
    for _ in range(MAX_STEPS_PER_RUN):
        if state.status != "active" or state.awaiting == "decision":
            return actions, state
        if state.due is None or state.due > now:
            return actions, state
        assert state.step is not None
        if state.step == END:
            state.status, state.step, state.due = "done", None, None
            actions.append(_finish_record(c, state, "completed"))
            return actions, state
        step = c.index[state.step]
        if state.awaiting == "receipt":  # nothing came within fallback_after: the next channel
            _fallback(c, state, step, state.due)
            continue
        if not state.started:
            state.runs += 1
            state.started = True
        _execute(c, state, step, facts, actions)
    if state.status == "active":
        state.status, state.due, state.step = "exited", None, None
        actions.append(_finish_record(c, state, "loop"))
    return actions, state


def _execute(c: Compiled, state: EntryState, step: Step, facts: Facts, actions: list[Action]) -> bool:
    """Do the current step (its time is ``state.at``); True when the entry moved on or finished."""
    at = state.at
    cid = state.customer_id
    if step.wait is not None:
        until = at + step.wait
        if state.due is not None and state.due >= until:
            _goto(state, step.next, c, until)
            return True
        state.due = until
        return False
    if step.wait_for is not None:
        until = at + step.wait_for.timeout
        if state.due is not None and state.due >= until:  # the event did not come in time
            _goto(state, step.wait_for.on_timeout, c, until)
            return True
        state.due = until
        return False
    if step.branch is not None:
        expr = c.branches[step.id]
        _goto(state, step.branch.then if facts.matches(expr, cid, at) else step.branch.else_, c, at)
        return True
    if step.split is not None:
        name = c.variant(cid, step)
        state.variant = name
        target = next(v.next for v in step.split.variants if v.name == name)
        actions.append(Action("split", _key(state), c.id, cid, step.id, at, detail={"variant": name}))
        _goto(state, target, c, at)
        return True
    if step.send is not None:
        if not state.chain:
            state.chain = _chain(c, step, cid, at, facts)
        if not state.chain:
            actions.append(
                Action("send", _key(state, ":0"), c.id, cid, step.id, at, reason="no_route",
                       purpose=step.send.purpose or c.spec.purpose, template=_message(step, state))
            )  # fmt: skip
            _goto(state, step.next, c, at)
            return True
        actions.append(
            Action(
                "send", _key(state, f":{state.attempt}"), c.id, cid, step.id, at,
                channel=state.chain[state.attempt], purpose=step.send.purpose or c.spec.purpose,
                template=_message(step, state),
                detail={
                    **state.vars,
                    **({"variant": state.variant} if state.variant else {}),
                    **({"survey": step.send.survey} if step.send.survey else {}),
                },
            )
        )  # fmt: skip
        state.awaiting = "decision"
        return False
    if step.lead is not None:
        product = _template(step.lead.product, state.vars)
        actions.append(
            Action(
                "lead", _key(state), c.id, cid, step.id, at, channel="branch_task",
                detail={"product_id": product, "due_at": (at + step.lead.due_in).isoformat(),
                        "note": _template(step.lead.note, state.vars)},
            )
        )  # fmt: skip
        _goto(state, step.next, c, at)
        return True
    if step.tag is not None:
        actions.append(
            Action("tag", _key(state), c.id, cid, step.id, at,
                   detail={"add": list(step.tag.add), "remove": list(step.tag.remove)})
        )  # fmt: skip
        _goto(state, step.next, c, at)
        return True
    if step.grant is not None:
        g = step.grant
        actions.append(
            Action(
                "grant", _key(state), c.id, cid, step.id, at,
                detail={"benefit": g.benefit, "quantity": g.quantity,
                        "face_value": str(g.face_value) if g.face_value is not None else None,
                        "valid_days": g.valid_days},
            )
        )  # fmt: skip
        _goto(state, step.next, c, at)
        return True
    assert step.exit is not None
    state.status, state.step, state.due = "exited", None, None
    actions.append(_finish_record(c, state, step.exit.reason))
    return True


def _chain(c: Compiled, step: Step, customer_id: str, at: datetime, facts: Facts) -> tuple[str, ...]:
    assert step.send is not None
    if step.send.channel is not None:
        return (step.send.channel,)
    return facts.route(c.routes[step.id], customer_id, at)


def _fallback(c: Compiled, state: EntryState, step: Step, at: datetime) -> None:
    """Try the chain's next channel now, or go on when there is none."""
    if state.attempt + 1 < len(state.chain):
        state.attempt += 1
        state.awaiting = None
        state.at = at
        state.due = at
    else:
        _goto(state, step.next, c, at)


def decided(c: Compiled, state: EntryState, outcome: Outcome) -> EntryState:
    """Feed the policy's answer to the send the entry is waiting on; then :func:`run` again."""
    state = copy.copy(state)
    if state.awaiting != "decision" or state.step is None or state.step == END:
        return state
    step = c.index[state.step]
    assert step.send is not None
    routed = step.send.route is not None
    if outcome.action == "suppress":
        if routed:
            _fallback(c, state, step, state.at)
        else:
            _goto(state, step.next, c, state.at)
        return state
    if routed and step.send.until != "sent" and state.attempt + 1 < len(state.chain):
        state.awaiting = "receipt"
        state.due = max(outcome.at, state.at) + step.send.fallback_after
        return state
    _goto(state, step.next, c, state.at)
    return state


# ------------------------------------------------------------------------------------------------ events


def on_event(c: Compiled, state: EntryState, event: JourneyEvent) -> tuple[list[Action], EntryState]:
    """An event of this customer: conversion, the awaited event, or a receipt. Moves the entry (due at
    the event's time); never executes a step."""
    state = copy.copy(state)
    actions: list[Action] = []
    conv = c.spec.conversion
    if (
        conv is not None
        and state.converted_at is None
        and event.type == conv.event
        and state.entered_at <= event.ts <= state.entered_at + conv.within
        and c.conversion_test(event.fields)
    ):
        state.converted_at = event.ts
        key = f"{c.id}:{state.customer_id}:{state.entry_no}:convert"
        actions.append(
            Action("convert", key, c.id, state.customer_id, state.step, event.ts,
                   detail={"control": state.status == "control", "event_id": event.event_id,
                           **({"variant": state.variant} if state.variant else {})})
        )  # fmt: skip
        if conv.exit and state.status == "active":
            state.status, state.step, state.due, state.awaiting = "converted", None, None, None
            state.at = event.ts
            actions.append(_finish_record(c, state, "converted"))
            return actions, state
    if event.type.startswith("message.") and event.fields.get("journey") == c.id:
        actions.append(
            Action("receipt", f"{event.event_id}:{c.id}", c.id, state.customer_id,
                   str(event.fields.get("step") or ""), event.ts,
                   channel=event.fields.get("channel"), reason=event.type.removeprefix("message."))
        )  # fmt: skip
    if state.status != "active" or state.step is None or state.step == END:
        return actions, state
    step = c.index[state.step]
    if step.wait_for is not None and event.type == step.wait_for.event:
        until = state.at + step.wait_for.timeout
        if state.at <= event.ts <= until and c.wait_tests[step.id](event.fields):
            if not state.started:
                state.runs += 1
            _goto(state, step.wait_for.on_event, c, event.ts)
        return actions, state
    if (
        state.awaiting == "receipt"
        and step.send is not None
        and event.fields.get("journey") == c.id
        and event.fields.get("step") == step.id
        and event.ts >= state.at
    ):
        kind = event.type.removeprefix("message.")
        enough = {"delivered": ("delivered", "clicked"), "clicked": ("clicked",)}.get(step.send.until, ())
        if kind == "failed":
            _fallback(c, state, step, event.ts)
        elif kind in enough:
            _goto(state, step.next, c, event.ts)
    return actions, state
