"""Binding customers to staff through invite codes on events: a worked example of each refusal reason,
order independence (files loaded in any order give the same bindings), waiting for a customer loaded
later, merges, and the org path kept when a member of staff moves."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from omnibank.config import Settings
from omnibank.customer_ops.merge import merge_customers
from omnibank.db import unit_of_work
from omnibank.invites import binding, codes
from omnibank.invites.binding import Coded, CodeInfo, Person, decide
from omnibank.invites.models import InviteBinding, InviteOffset, InviteRefusal, InviteWaiting
from omnibank.orgs.models import Staff
from tests.factories import customer_row, customers_csv
from tests.invites.helpers import NEW, NOW, TZ, bind, event, load_bank, load_events, state


@pytest.fixture
def bank(env, tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    settings: Settings = env.settings
    return settings, load_bank(settings, tmp_path / "bank")


def test_each_reason_with_a_worked_example(bank, tmp_path: Path) -> None:
    settings, code = bank
    with unit_of_work(settings) as session:  # E00002's code revoked on 10 November
        codes.revoke(session, "E00002", reason="lost phone", now=datetime(2026, 11, 10, tzinfo=TZ), actor="t")
    revoked = code["E00002"]
    load_events(
        settings,
        tmp_path / "e.jsonl",
        [
            event("N1", "2026-11-02T09:00:00+08:00", code["E00001"], event_id="bind-n1", channel="wechat"),
            event("N1", "2026-11-03T09:00:00+08:00", code["E00009"], event_id="later-other-code"),
            event("N1", "2026-11-04T09:00:00+08:00", code["E00001"], event_id="repeat-same-code"),
            event("N2", "2026-11-02T09:00:00+08:00", "NOSUCH2", event_id="unknown"),
            event("N2", "2026-11-05T09:00:00+08:00", revoked, event_id="before-revocation"),
            event("N3", "2026-11-12T09:00:00+08:00", revoked, event_id="after-revocation"),
            event("N5", "2026-11-02T09:00:00+08:00", code["E00001"], event_id="self"),
            event("OLD", "2026-11-02T09:00:00+08:00", code["E00002"].lower(), event_id="window"),
            event("N4", "2026-12-02T09:00:00+08:00", code["E00001"], event_id="day-31"),
            event("N4", "2026-12-01T23:59:00+08:00", code["E00009"], event_id="day-30"),
        ],
    )
    report = bind(settings)
    bound, refused, waiting = state(settings)
    assert bound == {
        "N1": (code["E00001"], "bind-n1"),
        "N2": (revoked, "before-revocation"),  # used before it was revoked: binds
        "N4": (code["E00009"], "day-30"),  # 30 days after registering, bank-local: still inside
    }
    assert refused == {
        "later-other-code": ("N1", "already_bound"),
        "unknown": ("N2", "unknown_code"),
        "after-revocation": ("N3", "revoked_code"),
        "self": ("N5", "self_referral"),
        "window": ("OLD", "outside_window"),
        "day-31": ("N4", "outside_window"),
    }
    assert "repeat-same-code" not in refused  # the binding code again is no refusal
    assert waiting == set()
    assert dict(report.refused) == {
        "already_bound": 1,
        "unknown_code": 1,
        "revoked_code": 1,
        "self_referral": 1,
        "outside_window": 2,
    }
    with unit_of_work(settings) as session:
        n1 = session.get(InviteBinding, "N1")
        assert n1 is not None
        assert (n1.staff_id, n1.org_path, n1.channel) == ("E00001", "/HQ/B001/S0101/", "wechat")
    assert bind(settings).files == 0  # nothing new: nothing read, nothing changed
    assert state(settings) == (bound, refused, waiting)


def test_an_earlier_event_loaded_later_takes_the_binding(bank, tmp_path: Path) -> None:
    settings, code = bank
    load_events(
        settings,
        tmp_path / "late.jsonl",
        [
            event("N1", "2026-11-10T09:00:00+08:00", code["E00009"], event_id="b"),
            event("N1", "2026-11-12T09:00:00+08:00", code["E00001"], event_id="c"),
        ],
    )
    bind(settings)
    assert state(settings)[0] == {"N1": (code["E00009"], "b")}
    load_events(
        settings,
        tmp_path / "early.jsonl",
        [event("N1", "2026-11-03T09:00:00+08:00", code["E00001"], event_id="a")],
    )
    bind(settings)
    bound, refused, _ = state(settings)
    assert bound == {"N1": (code["E00001"], "a")}
    assert refused == {"b": ("N1", "already_bound")}  # "c" repeats the new binding's code: no refusal


def test_a_customer_loaded_after_their_events_is_bound_then(env, tmp_path: Path) -> None:
    settings: Settings = env.settings
    code = load_bank(settings, tmp_path / "bank", customers=NEW[:1])
    load_events(
        settings,
        tmp_path / "e.jsonl",
        [event("N9", "2026-11-20T09:00:00+08:00", code["E00001"], event_id="early-bird")],
    )
    report = bind(settings)
    assert report.waiting == 1
    assert state(settings) == ({}, {}, {"early-bird"})
    customers_csv(
        tmp_path / "more.csv",
        [
            customer_row(
                "N9",
                name="迟到",
                phone="13700000019",
                branch_id="S0101",
                rm_id="",
                registered_at="2026-11-15",
            )
        ],
    )
    from omnibank.ingest.service import load_file

    load_file("customers", tmp_path / "more.csv", settings=settings, progress=False)
    bind(settings)
    assert state(settings) == ({"N9": (code["E00001"], "early-bird")}, {}, set())


def test_a_moved_member_of_staff_keeps_past_results_where_they_were(bank, tmp_path: Path) -> None:
    settings, code = bank
    load_events(settings, tmp_path / "a.jsonl", [event("N1", "2026-11-02T09:00:00+08:00", code["E00001"])])
    bind(settings)
    with unit_of_work(settings) as session:
        session.execute(update(Staff).where(Staff.staff_id == "E00001").values(org_id="S0201"))
    load_events(settings, tmp_path / "b.jsonl", [event("N2", "2026-11-05T09:00:00+08:00", code["E00001"])])
    bind(settings)
    with unit_of_work(settings) as session:
        paths = dict(session.execute(select(InviteBinding.customer_id, InviteBinding.org_path)).all())
    assert paths == {"N1": "/HQ/B001/S0101/", "N2": "/HQ/B002/S0201/"}


def test_a_merge_carries_the_binding_and_the_earliest_wins(bank, tmp_path: Path) -> None:
    settings, code = bank
    load_events(
        settings,
        tmp_path / "e.jsonl",
        [
            event("N1", "2026-11-10T09:00:00+08:00", code["E00001"], event_id="n1"),
            event("N2", "2026-11-04T09:00:00+08:00", code["E00009"], event_id="n2"),
        ],
    )
    bind(settings)
    with unit_of_work(settings) as session:  # N2 is the same person as N1: merged into N1
        merge_customers(session, merged_id="N2", survivor_id="N1", actor="test", now=NOW)
        binding.rebind(session, settings, ["N1"], now=NOW)
    bound, refused, _ = state(settings)
    assert bound == {"N1": (code["E00009"], "n2")}  # N2's binding was earlier
    assert refused == {"n1": ("N1", "already_bound")}


def test_the_pass_picks_up_a_merge_made_elsewhere(bank, tmp_path: Path) -> None:
    settings, code = bank
    load_events(
        settings,
        tmp_path / "e.jsonl",
        [event("N2", "2026-11-04T09:00:00+08:00", code["E00009"], event_id="n2")],
    )
    bind(settings)
    with unit_of_work(settings) as session:
        merge_customers(session, merged_id="N2", survivor_id="N3", actor="test", now=NOW)
    bind(settings)
    assert state(settings)[0] == {"N3": (code["E00009"], "n2")}


def _random_events(seed: int, code: dict[str, str]) -> list[dict]:
    rng = random.Random(seed)
    pool = [code["E00001"], code["E00002"], code["E00009"], "BADBAD2", code["E00001"].lower()]
    out = []
    for i in range(60):
        day = date(2026, 11, 1) + timedelta(days=rng.randrange(0, 40))
        ts = f"{day.isoformat()}T{rng.randrange(0, 24):02d}:{rng.choice([0, 30]):02d}:00+08:00"
        out.append(
            event(
                rng.choice(["N1", "N2", "N3", "N4", "N5", "OLD", "N7"]),
                ts,
                rng.choice(pool),
                event_id=f"r{seed}-{i}",
            )
        )
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_files_in_any_order_bind_as_one_file_does(bank, tmp_path: Path, seed: int) -> None:
    """Three files loaded in a shuffled order, the pass run after each, give what one pass over the whole
    log gives; and that is the pure decision over each customer's events."""
    settings, code = bank
    events = _random_events(seed, code)
    parts = [events[0::3], events[1::3], events[2::3]]
    random.Random(seed).shuffle(parts)
    for i, part in enumerate(parts):
        load_events(settings, tmp_path / f"part{i}.jsonl", part)
        bind(settings)
    incremental = state(settings)
    with unit_of_work(settings) as session:  # forget everything and bind the whole log at once
        for model in (InviteBinding, InviteRefusal, InviteWaiting, InviteOffset):
            session.execute(delete(model))
    bind(settings)
    assert state(settings) == incremental
    bound, refused, waiting = incremental
    assert {e["event_id"] for e in events if e["customer_id"] == "N7"} == waiting  # N7 is not loaded
    decided = {eid for _, eid in bound.values()} | set(refused) | waiting
    repeats = {e["event_id"] for e in events} - decided
    for eid in repeats:  # every event not kept repeats its customer's binding code
        e = next(x for x in events if x["event_id"] == eid)
        assert bound[e["customer_id"]][0] == codes.normalise(e["invite_code"])


# -- the pure decision, as a property ---------------------------------------------------------------------

_CODES = {
    "AAAAAAA": CodeInfo("AAAAAAA", "S1", None, "p-staff1"),
    "BBBBBBB": CodeInfo("BBBBBBB", "S2", datetime(2026, 11, 15, tzinfo=UTC), "p-staff2"),
    "CCCCCCC": CodeInfo("CCCCCCC", "S3", None, None),
}
_PERSON = Person(date(2026, 11, 1), "p-customer", "i-customer")

coded = st.builds(
    lambda minutes, n, code: Coded(
        datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minutes), f"e{n}", "C", code
    ),
    st.integers(0, 60 * 24 * 45),
    st.integers(0, 30),
    st.sampled_from(["AAAAAAA", "bbbbbbb", "CCCCCCC", "ZZZZZZZ"]),
)


@given(st.lists(coded, max_size=12, unique_by=lambda e: e.event_id), st.randoms(use_true_random=False))
@hsettings(max_examples=300, deadline=None)
def test_the_decision_depends_on_the_set_of_events_only(events: list[Coded], rnd: random.Random) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)
    a = decide(events, _CODES, _PERSON, window_days=30, tz=TZ)
    b = decide(shuffled + events[:2], _CODES, _PERSON, window_days=30, tz=TZ)  # repeats count once
    assert a == b
    unique = {e.event_id: e for e in events}
    kept = {e.event_id for e, _, _ in a.refused} | ({a.winner.event_id} if a.winner else set())
    assert kept <= set(unique)
    if a.winner is not None:  # the winner is the earliest good event
        assert all(
            not (e < a.winner)
            for e in unique.values()
            if binding.own_reason(e, _CODES.get(e.code.upper()), _PERSON, window_days=30, tz=TZ) is None
        )


def test_the_worker_runs_the_binding_pass(bank, tmp_path: Path) -> None:
    from omnibank.invites import jobs
    from omnibank.worker.registry import Limits, load_jobs

    settings, code = bank
    assert "invites.bind" in load_jobs().names()
    load_events(settings, tmp_path / "e.jsonl", [event("N1", "2026-11-02T09:00:00+08:00", code["E00001"])])
    result = jobs.bind(settings, NOW, Limits())
    assert result.counts == {"files": 1, "bound": 1}
    assert set(state(settings)[0]) == {"N1"}
    assert jobs.bind(settings, NOW, Limits()).counts == {}
