"""Property (hypothesis): random sequences of status moves and escalation runs over a few leads, each in its
own transaction, agree with a plain model of the status machine; the history of every lead is a chain
(each row starts where the previous ended), closed leads never reopen, and nothing escalates twice."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from omnibank.db import unit_of_work
from omnibank.leads import service
from omnibank.leads.models import Lead, LeadHistory
from omnibank.leads.service import TRANSITIONS, TransitionRefused
from tests.leads.helpers import NOW, request

LEADS = 3
SEEN: Counter[str] = Counter()

ops = st.lists(
    st.one_of(
        st.tuples(st.just("move"), st.integers(0, LEADS - 1), st.sampled_from(["contacted", "won", "lost"])),
        st.tuples(st.just("escalate"), st.integers(0, 3), st.just("")),
    ),
    min_size=1,
    max_size=25,
)


def test_random_moves_keep_the_status_machine_and_history_consistent(env, tmp_path) -> None:
    from tests.leads.helpers import load_bank

    load_bank(env.settings, tmp_path / "bank")

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(sequence=ops)
    def run(sequence: list[tuple[str, int, str]]) -> None:
        with unit_of_work() as session:
            for model in (LeadHistory, Lead):
                session.execute(delete(model))
        wanted = [
            request(c, f"p{i}", due_in=timedelta(hours=i + 1)) for i, c in enumerate(["CA1", "CA3", "CB2"])
        ]
        with unit_of_work() as session:
            leads = service.create_leads(session, wanted, now=NOW)
        ids = [x.lead_id for x in leads]
        status = dict.fromkeys(ids, "new")
        escalated: set[str] = set()
        clock = NOW
        for op, n, target in sequence:
            clock += timedelta(minutes=20)
            if op == "move":
                lead_id = ids[n]
                legal = target in TRANSITIONS[status[lead_id]]
                try:
                    with unit_of_work() as session:
                        change = service.set_status(session, lead_id, target, by="prop", now=clock)
                except TransitionRefused:
                    SEEN["refused"] += 1
                    assert not legal, f"{status[lead_id]} → {target} was refused"
                else:
                    SEEN["moved"] += 1
                    assert legal, f"{status[lead_id]} → {target} was allowed"
                    assert change.lead.status == target
                    status[lead_id] = target
            else:
                with unit_of_work() as session:
                    result = service.escalate_overdue(session, now=clock)
                expected = {
                    x.lead_id for x in leads if status[x.lead_id] == "new" and x.due_at <= clock
                } - escalated  # fmt: skip
                assert {x.lead_id for x in result.escalated} == expected
                SEEN["escalated"] += len(expected)
                escalated |= expected
        with unit_of_work() as session:
            for lead_id in ids:
                lead = session.get(Lead, lead_id)
                assert lead is not None and lead.status == status[lead_id]
                assert (lead.closed_at is not None) == (lead.status in ("won", "lost"))
                assert (lead.escalated_at is not None) == (lead_id in escalated)
                rows = service.history(session, lead_id)
                assert rows[0].action == "created" and rows[0].from_status is None
                for before, after in zip(rows, rows[1:], strict=False):
                    assert after.from_status == before.to_status  # a chain
                    assert before.to_status not in ("won", "lost")  # nothing after a close
                    assert after.at >= before.at
                assert rows[-1].to_status == status[lead_id]
                assert [r.action for r in rows].count("escalated") == (lead_id in escalated)

    run()
    assert SEEN["refused"] and SEEN["moved"] and SEEN["escalated"]
