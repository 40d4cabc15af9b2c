"""Call lists for AI outbound (K5): ranked by a model, through the one contact policy before they reach the
list (never a customer without consent or on do-not-disturb; caps spare; quiet hours defer), a deterministic
~10% holdout that the journeys report counts as control, dry runs that write nothing."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from omnibank import cli as root_cli
from omnibank.contact.models import ContactCap, ContactDnd, ContactMessage
from omnibank.contact.policy import PolicyConfig, day_scope
from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused, NotFound
from omnibank.journeys import runtime
from omnibank.journeys.models import JourneyEntry
from omnibank.journeys.report import attribution
from omnibank.journeys.spec import parse_journey
from omnibank.marketing import calllist
from omnibank.marketing.tables import CallList, CallListMember
from omnibank.worker.loop import work_once
from tests.events.helpers import event, jsonl
from tests.factories import customer_row
from tests.journeys.helpers import load_bank

NOW = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)  # 10:00 bank-local, outside the quiet hours
DAY = date(2026, 5, 10)
N = 40
IDS = [f"C{i:06d}" for i in range(N)]
JOURNEY = """\
id: installment_calls
name: 分期外呼
purpose: marketing
trigger: {event: card.issued}
conversion: {event: installment.accepted, within: 30d}
steps:
  - id: call
    send: {channel: ai_call, template: 账单分期邀约}
"""


@pytest.fixture
def small_bank(env, tmp_path) -> list[str]:
    """N customers (all with marketing consent); the model's score is stubbed: C000000 best, then down."""
    load_bank(
        env.settings, tmp_path / "bank", [customer_row(c, phone=f"138{i:08d}") for i, c in enumerate(IDS)]
    )
    return IDS


@pytest.fixture
def stub_model(monkeypatch) -> None:
    def ranking(_s: Any, _st: Any, _m: str, *, version: str, as_of: date, segment: str | None):
        scored = [(c, 1.0 - i / 100) for i, c in enumerate(IDS)]
        if segment is not None:
            from omnibank.segments.service import member_set

            members = member_set(_s, _st, segment, as_of=as_of)
            scored = [(c, s) for c, s in scored if c in members]
        return scored

    monkeypatch.setattr(calllist, "ranking", ranking)
    monkeypatch.setattr(calllist, "_live_version", lambda _s, _n, v: v or "20260501T000000Z")


def start_journey(env, text: str = JOURNEY) -> None:
    with unit_of_work(env.settings) as session:
        runtime.start(
            session, env.settings, parse_journey(text), source_text=text, now=NOW - timedelta(days=1)
        )


def dnd(session, customer_id: str, channel: str) -> None:
    since = NOW - timedelta(days=1)
    session.add(ContactDnd(customer_id=customer_id, channel=channel, reason="客户要求", since=since,
                           until=None, created_by="test"))  # fmt: skip


def no_consent(session, customer_id: str) -> None:
    session.execute(
        update(Customer).where(Customer.customer_id == customer_id).values(marketing_consent=False)
    )


def build(session, env, **kw: Any) -> calllist.CallListResult:
    args: dict[str, Any] = {"model": "installment", "top": 10, "as_of": DAY, "now": NOW, "list_id": "L1"}
    return calllist.build(session, env.settings, **{**args, **kw})


# ------------------------------------------------------------------------------------------ the policy


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    consent=st.lists(st.booleans(), min_size=N, max_size=N),
    dnds=st.lists(st.sampled_from([None, "all", "ai_call", "sms"]), min_size=N, max_size=N),
    top=st.integers(1, N),
)
def test_the_list_never_holds_a_customer_without_consent_or_on_do_not_disturb(
    env, small_bank, stub_model, consent, dnds, top
) -> None:
    with unit_of_work(env.settings) as session:
        for cid, ok, channel in zip(IDS, consent, dnds, strict=True):
            if not ok:
                no_consent(session, cid)
            if channel:
                dnd(session, cid, channel)
        session.flush()
        result = build(session, env, top=top)
        session.rollback()
    refused = {c for c, ok, ch in zip(IDS, consent, dnds, strict=True) if not ok or ch in ("all", "ai_call")}
    kept = [m for m in result.members if m.group != "spared"]
    assert not {m.customer_id for m in kept} & refused
    # every spared customer was spared for the first reason the policy gives
    for m in result.of("spared"):
        i = IDS.index(m.customer_id)
        assert m.reason == ("no_consent" if not consent[i] else "dnd")
    # filled to top from further down, in rank order, each customer looked at once
    assert len(result.of("treated")) == min(top, len([c for c in IDS if c not in refused
                                                      and not calllist.in_holdout("L1", c, 10)]))  # fmt: skip
    assert [m.rank for m in result.members] == list(range(1, len(result.members) + 1))
    assert sum(result.spared.values()) == len(result.of("spared"))


def test_caps_spare_and_quiet_hours_defer(env, small_bank, stub_model) -> None:
    config = PolicyConfig.from_settings(env.settings)
    with unit_of_work(env.settings) as session:
        session.add(ContactCap(customer_id="C000000", scope=day_scope("ai_call", DAY), n=1))  # called today
        session.add(ContactCap(customer_id="C000001", scope="w:2026-05-04", n=config.week_cap))
        session.flush()
        result = build(session, env, top=5, holdout_percent=0)
        assert dict(result.spared) == {"cap_channel_day": 1, "cap_week": 1}
        assert [m.customer_id for m in result.of("treated")] == IDS[2:7] and result.deferred == 0
        late = datetime(2026, 5, 10, 14, 30, tzinfo=UTC)  # 22:30 bank-local: the calls wait until 08:00
        result = build(session, env, top=5, holdout_percent=0, now=late)
        # the calls would go on Monday the 11th: the 10th's day cap and the week before's cap do not hold
        assert [m.customer_id for m in result.of("treated")] == IDS[:5]
        assert not result.spared and result.deferred == 5
        session.add(
            ContactCap(customer_id="C000002", scope=day_scope("ai_call", DAY + timedelta(days=1)), n=1)
        )
        session.flush()
        result = build(session, env, top=5, holdout_percent=0, now=late)
        assert (
            dict(result.spared) == {"cap_channel_day": 1} and result.of("spared")[0].customer_id == "C000002"
        )


def test_the_holdout_is_about_ten_percent_and_deterministic(env, small_bank, stub_model) -> None:
    ids = [f"C{i:06d}" for i in range(20_000)]
    held = {c for c in ids if calllist.in_holdout("installment-20260510T020000Z", c, 10)}
    assert 0.09 < len(held) / len(ids) < 0.11
    assert held == {c for c in ids if calllist.in_holdout("installment-20260510T020000Z", c, 10)}
    other = {c for c in ids if calllist.in_holdout("installment-20260511T020000Z", c, 10)}
    assert other != held and 0.09 < len(other) / len(ids) < 0.11  # seeded by the list too
    assert not any(calllist.in_holdout("L", c, 0) for c in ids[:1000])
    with unit_of_work(env.settings) as session:
        first, again = build(session, env, top=30), build(session, env, top=30)
    assert first.members == again.members
    assert len(first.of("treated")) == 30
    assert {m.customer_id for m in first.of("holdout")} == {
        c for c in IDS[: first.members[-1].rank] if calllist.in_holdout("L1", c, 10)
    }


def test_clear_errors(env, small_bank, stub_model, monkeypatch) -> None:
    with unit_of_work(env.settings) as session:
        with pytest.raises(InputRefused, match=r"--top 0: the list's size must be 1"):
            build(session, env, top=0)
        with pytest.raises(InputRefused, match=r"--holdout 95"):
            build(session, env, holdout_percent=95)
        with pytest.raises(InputRefused, match=r"--channel 'fax'"):
            build(session, env, channel="fax")
        with pytest.raises(InputRefused, match=r"--segment 'age >>= 3': syntax error"):
            build(session, env, segment="age >>= 3")
        with pytest.raises(InputRefused, match=r"--segment 'nosuch = 1'"):
            build(session, env, segment="nosuch = 1")
        with pytest.raises(NotFound, match=r"no journey 'nope'"):
            build(session, env, journey="nope")
    start_journey(env)
    with unit_of_work(env.settings) as session, pytest.raises(InputRefused, match=r"first sends by ai_call"):
        build(session, env, journey="installment_calls", channel="sms")
    monkeypatch.undo()  # the real model lookup
    with unit_of_work(env.settings) as session, pytest.raises(NotFound, match=r"no model named installment"):
        build(session, env)


# ------------------------------------------------------------------------------------ journey and outbox


def test_the_list_enters_a_journey_whose_report_counts_the_holdout_as_control(env, small_bank, stub_model,
                                                                              tmp_path) -> None:  # fmt: skip
    start_journey(env)
    with unit_of_work(env.settings) as session:
        no_consent(session, "C000001")
        dnd(session, "C000002", "ai_call")
        dnd(session, "C000003", "sms")  # another channel: still called
        session.flush()
        result = calllist.make(session, env.settings, model="installment", top=20, as_of=DAY, now=NOW,
                               journey="installment_calls", holdout_percent=30, list_id="L1")  # fmt: skip
    treated = [m.customer_id for m in result.of("treated")]
    holdout = [m.customer_id for m in result.of("holdout")]
    assert len(treated) == 20 and holdout and dict(result.spared) == {"dnd": 1, "no_consent": 1}
    assert "C000003" in treated + holdout and result.entered == (20, len(holdout))

    with unit_of_work(env.settings) as session:
        entries = {e.customer_id: (e.status, e.control) for e in session.scalars(select(JourneyEntry))}
        stored = session.get(CallList, "L1")
        assert stored is not None and (stored.listed, stored.held_out) == (20, len(holdout))
        assert stored.spared == '{"dnd": 1, "no_consent": 1}'
        groups = {m.customer_id: m.grp for m in session.scalars(select(CallListMember))}
    assert entries == {**{c: ("active", False) for c in treated}, **{c: ("control", True) for c in holdout}}
    assert groups == {**{c: "treated" for c in treated}, **{c: "holdout" for c in holdout},
                      "C000001": "spared", "C000002": "spared"}  # fmt: skip

    # the worker makes the calls: journey step → outbox → dispatch → the ai_call adapter
    work_once(env.settings, now=NOW + timedelta(minutes=1))
    with unit_of_work(env.settings) as session:
        calls = list(session.scalars(select(ContactMessage)))
    assert sorted(m.customer_id for m in calls) == sorted(treated)
    assert {(m.channel, m.journey, m.purpose) for m in calls} == {
        ("ai_call", "installment_calls", "marketing")
    }
    assert {m.status for m in calls} <= {"sent", "delivered"}

    # conversions: 10 of the treated, 1 of the holdout
    accepted = [event(f"a{c}", "installment.accepted", customer_id=c, ts="2026-05-15T10:00:00+08:00",
                      card_id=f"6222{c[1:]:0>12}", amount="3000.00", terms=12)
                for c in treated[:10] + holdout[:1]]  # fmt: skip
    from omnibank.ingest.service import load_file

    assert load_file("events", jsonl(tmp_path / "acc.jsonl", *accepted), settings=env.settings,
                     progress=False).rejected == 0  # fmt: skip
    work_once(env.settings, now=NOW + timedelta(days=6), dispatch=False)
    with unit_of_work(env.settings) as session:
        (figures,) = attribution(session, "installment_calls")
    assert (figures.entered, figures.control, figures.converted, figures.converted_control) == (
        20 + len(holdout),
        len(holdout),
        10,
        1,
    )
    assert figures.uplift == pytest.approx(10 / 20 - 1 / len(holdout))

    # listed again at once: those in the journey are spared (in_journey), the list filled from further down
    with unit_of_work(env.settings) as session:
        again = calllist.make(session, env.settings, model="installment", top=5, as_of=DAY, now=NOW,
                              journey="installment_calls", list_id="L2")  # fmt: skip
    assert again.spared["in_journey"] > 0 and not set(treated + holdout) & {
        m.customer_id for m in again.of("treated")
    }


def test_without_a_journey_the_calls_go_to_the_outbox(env, small_bank, stub_model) -> None:
    with unit_of_work(env.settings) as session:
        result = calllist.make(session, env.settings, model="installment", top=8, as_of=DAY, now=NOW,
                               segment="customer_id >= 'C000010'", list_id="L1")  # fmt: skip
    assert result.sends == {"send": 8}
    with unit_of_work(env.settings) as session:
        calls = list(session.scalars(select(ContactMessage)))
        held = list(session.scalars(select(CallListMember).where(CallListMember.grp == "holdout")))
    assert sorted(m.customer_id for m in calls) == sorted(m.customer_id for m in result.of("treated"))
    assert all(m.customer_id >= "C000010" for m in result.members)
    assert {m.channel for m in calls} == {"ai_call"} and calls[0].key.startswith("calllist:L1:")
    assert {m.customer_id for m in held} == {m.customer_id for m in result.of("holdout")}


# ------------------------------------------------------------------------------------------------ CLI


def register(monkeypatch) -> None:
    """The root command as the lead registers it in omnibank.cli.COMMANDS."""
    entry = root_cli.Lazy("omnibank.marketing.calllist_cli:calllist_cmd", "Call lists for AI outbound.")
    monkeypatch.setitem(root_cli.COMMANDS, "calllist", entry)


def counts(env) -> tuple[int, ...]:
    with unit_of_work(env.settings) as session:
        return tuple(
            session.scalar(select(func.count()).select_from(t)) or 0
            for t in (CallList, CallListMember, ContactMessage, JourneyEntry)
        )


def test_the_cli_prints_counts_writes_the_csv_and_a_dry_run_writes_nothing(
    env, cli, small_bank, stub_model, monkeypatch, tmp_path, time_machine
) -> None:
    time_machine.move_to(NOW, tick=False)
    register(monkeypatch)
    start_journey(env)
    with unit_of_work(env.settings) as session:
        no_consent(session, "C000000")
    out = tmp_path / "list.csv"
    res = cli("calllist", "installment", "--top", "10", "--journey", "installment_calls", "--out", str(out),
              "--dry-run")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "dry run, nothing written" in res.stdout and "listed 10 to call" in res.stdout
    assert "spared 1: no_consent 1" in res.stdout
    assert counts(env) == (0, 0, 0, 0) and not out.exists()

    res = cli("calllist", "installment", "--top", "10", "--journey", "installment_calls", "--out", str(out))
    assert res.exit_code == 0, res.stderr
    assert "entered journey installment_calls: 10 to call" in res.stdout
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["customer_id", "rank", "score", "group"]
    assert sum(r["group"] == "treated" for r in rows) == 10 and {r["group"] for r in rows} <= {
        "treated",
        "holdout",
    }
    assert counts(env)[0] == 1

    for args, message in (
        (("--top", "0"), "--top 0"),
        (("--top", "5", "--segment", "age >>= 3"), "--segment 'age >>= 3'"),
        (("--top", "5", "--journey", "nope"), "no journey 'nope'"),
    ):
        res = cli("calllist", "installment", *args)
        assert res.exit_code == 1 and message in res.stderr, res.stderr
    monkeypatch.undo()
    register(monkeypatch)
    res = cli("calllist", "nomodel", "--top", "5")
    assert res.exit_code == 1 and "no model named nomodel" in res.stderr


# ------------------------------------------------------------------------------------------ a real model


def planted_bank(env, tmp_path: Path) -> dict[str, Any]:
    """test_models' bank (fans of product X accept installments; acceptances in the contract's shape)."""
    from tests.marketing.test_models import load_bank as load_planted

    return load_planted(env, tmp_path, 200)


def test_a_trained_model_ranks_the_list_and_spared_fans_are_replaced_from_further_down(env, tmp_path) -> None:
    from tests.marketing.test_models import CUT, train

    bank = planted_bank(env, tmp_path)
    card = train(env, bank["features"])
    with unit_of_work(env.settings) as session:
        best = [c for c, _ in calllist.ranking(session, env.settings, "installment", version=card.version,
                                               as_of=CUT, segment=None)[:4]]  # fmt: skip
        for cid in best[:3]:
            no_consent(session, cid)
        dnd(session, best[3], "all")
        session.flush()
        result = calllist.make(session, env.settings, model="installment", top=15, as_of=CUT, now=NOW,
                               holdout_percent=10, list_id="L1")  # fmt: skip
    assert result.version == card.version
    kept = {m.customer_id for m in result.members if m.group != "spared"}
    assert not kept & set(best) and {m.customer_id for m in result.of("spared")} == set(best)
    assert result.spared == {"no_consent": 3, "dnd": 1}
    assert len(result.of("treated")) == 15 and kept <= bank["fans"]  # the planted signal ranks first
    scores = [m.score for m in result.members]
    assert scores == sorted(scores, reverse=True)
