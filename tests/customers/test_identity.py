"""One customer behind many identifiers: learning them from events, finding the customer of events that
carry only an identifier, merging two customers, and the identifiers in the customer 360."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from omnibank.audit.models import AuditEntry
from omnibank.customers.identity import merged_ids_of, survivor_of
from omnibank.customers.models import CustomerIdentifier, CustomerMerge
from omnibank.db import unit_of_work, versions
from omnibank.events.loader import load_events
from omnibank.events.protect import Protector
from omnibank.kit.idcard import id_check_digit
from omnibank.kit.loading import LoadReport
from omnibank.kit.masking import mask_card_id
from omnibank.security import get_cipher
from omnibank.segments.models import Segment, SegmentMember
from omnibank.tags.models import CustomerTag
from tests.conftest import write
from tests.events.helpers import event, jsonl, rejects, stored, txn
from tests.factories import ORGS, STAFF, customer_row, customers_csv

CARD_1 = "6225880011112222"
CARD_2 = "6225880033334444"
PHONE_1, PHONE_2, PHONE_3 = "13812345678", "13900001111", "13700002222"


def _id_number_ending_in_x() -> str:
    for seq in range(100, 1000):
        first17 = f"13110219800517{seq}"
        if id_check_digit(first17) == "X":
            return first17 + "X"
    raise AssertionError("no sequence gives an X")


ID_3 = _id_number_ending_in_x()


@pytest.fixture
def bank(cli, tmp_path: Path) -> None:
    """Three customers; C000003 has an ID number ending in X."""
    assert cli("load", "orgs", str(write(tmp_path / "orgs.csv", ORGS))).exit_code == 0
    assert cli("load", "staff", str(write(tmp_path / "staff.csv", STAFF))).exit_code == 0
    rows = [
        customer_row("C000001", phone=PHONE_1),
        customer_row("C000002", phone=PHONE_2, name="李秀英"),
        customer_row("C000003", phone=PHONE_3, id_no=ID_3),
    ]
    assert cli("load", "customers", str(customers_csv(tmp_path / "customers.csv", rows))).exit_code == 0


def load(env: Any, path: Path, *, batch_lines: int = 500_000) -> LoadReport:
    return load_events(env.settings, path, cipher=get_cipher(), progress=False, batch_lines=batch_lines)


def issued(event_id: str, customer_id: str | None, card_id: str, **fields: Any) -> dict[str, Any]:
    return event(
        event_id,
        "card.issued",
        customer_id=customer_id,
        card_id=card_id,
        product="luckin_cobrand",
        tier="gold",
        primary=True,
        new_customer=False,
        **fields,
    )


def linked(event_id: str, customer_id: str | None, **ids: str) -> dict[str, Any]:
    return event(event_id, "identity.linked", customer_id=customer_id, **ids)


def anonymous(event_id: str, type_: str = "app.login", **fields: Any) -> dict[str, Any]:
    """An event without customer_id."""
    return event(event_id, type_, customer_id=None, **fields)


def card_token(number: str) -> str:
    return Protector(get_cipher()).card_token(number)


def bindings() -> dict[tuple[str, str], tuple[str, str]]:
    """The store's bindings, a card by its number: the store holds its token and the number encrypted (and
    only so)."""
    cipher = get_cipher()
    out = {}
    with unit_of_work() as s:
        for r in s.scalars(select(CustomerIdentifier)):
            value = r.value
            if r.kind == "card_id":
                assert r.value_enc is not None and r.value.startswith("⟨card:")
                value = cipher.decrypt(r.value_enc, context=f"customer_identifiers.value:{r.value}")
                assert r.value == card_token(value)
            out[(r.kind, value)] = (r.customer_id, r.source)
    return out


# -- learning ------------------------------------------------------------------------------------------------


def test_card_issued_and_identity_linked_teach_identifiers(env, bank, tmp_path: Path) -> None:
    # given card issuing and identity linking events (for loaded customers and one not loaded yet)
    path = jsonl(
        tmp_path / "events.jsonl",
        issued("i1", "C000001", CARD_1, ts="2026-03-01T10:00:00+08:00"),
        linked("l1", "C000002", wechat_openid="oWx-2", app_user_id="app-2"),
        linked("l2", "C000001", app_user_id="app-1"),
        issued("i2", "C000999", CARD_2),  # files arrive in any order: the customer may come later
        txn("t1", card_id="6225999900000000"),  # a transaction teaches nothing
    )

    report = load(env, path)

    # then each identifier points at the event's customer, learnt from that event
    assert (report.loaded, report.rejected) == (5, 0)
    assert bindings() == {
        ("card_id", CARD_1): ("C000001", "event:i1"),
        ("card_id", CARD_2): ("C000999", "event:i2"),
        ("wechat_openid", "oWx-2"): ("C000002", "event:l1"),
        ("app_user_id", "app-2"): ("C000002", "event:l1"),
        ("app_user_id", "app-1"): ("C000001", "event:l2"),
    }
    assert report.extra["identity"] == {
        "learnt": {"card_id": 2, "wechat_openid": 1, "app_user_id": 2},
        "conflicts": {},
        "skipped": 0,
    }
    with unit_of_work() as s:
        card = s.get(CustomerIdentifier, ("card_id", card_token(CARD_1)))
        assert card is not None
        assert card.first_seen_at == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # the event's time
    # the identity.linked event is in the log like any other
    assert stored(env.settings)["l1"]["customer_id"] == "C000002"

    # and loading the same file again changes nothing
    again = load(env, path)
    assert (again.loaded, again.duplicates) == (0, 5)
    assert again.extra["identity"]["learnt"] == {}
    assert len(bindings()) == 5


def test_a_binding_already_made_is_kept_and_the_conflict_counted(env, bank, tmp_path: Path) -> None:
    # given a card and an openid bound to C000001
    load(
        env,
        jsonl(
            tmp_path / "a.jsonl", issued("i1", "C000001", CARD_1), linked("l1", "C000001", wechat_openid="wx")
        ),
    )

    # when later events bind them to C000002 (in a later file, and twice within one file)
    report = load(
        env,
        jsonl(
            tmp_path / "b.jsonl",
            issued("i2", "C000002", CARD_1),
            linked("l2", "C000003", app_user_id="app-3"),
            linked("l3", "C000002", app_user_id="app-3"),  # the same file: the earlier line wins
            linked("l4", "C000002", wechat_openid="wx"),
        ),
    )

    # then the first binding stands, and each conflict is counted (counts only: no identifier values)
    assert bindings() == {
        ("card_id", CARD_1): ("C000001", "event:i1"),
        ("wechat_openid", "wx"): ("C000001", "event:l1"),
        ("app_user_id", "app-3"): ("C000003", "event:l2"),
    }
    assert report.extra["identity"]["conflicts"] == {"card_id": 1, "app_user_id": 1, "wechat_openid": 1}
    assert report.extra["identity"]["learnt"] == {"app_user_id": 1}
    assert CARD_1 not in json.dumps(report.extra) and "app-3" not in json.dumps(report.extra)
    # the events themselves are stored as they came
    assert stored(env.settings)["i2"]["customer_id"] == "C000002"


def test_conflicts_are_counted_against_the_binding_that_stays(env, bank, tmp_path: Path) -> None:
    load(env, jsonl(tmp_path / "a.jsonl", issued("i1", "C000001", CARD_1)))

    # a file whose first line binds the card to C000002, its second to C000001 (as the store does)
    report = load(
        env,
        jsonl(
            tmp_path / "b.jsonl",
            issued("i2", "C000002", CARD_1),
            issued("i3", "C000001", CARD_1),
            issued("i4", "C000003", CARD_2),
            issued("i5", "C000003", CARD_2),
        ),
    )

    assert report.extra["identity"]["conflicts"] == {"card_id": 1}  # only i2 disagrees with C000001
    assert report.extra["identity"]["learnt"] == {"card_id": 1}
    assert bindings()[("card_id", CARD_1)] == ("C000001", "event:i1")
    assert bindings()[("card_id", CARD_2)] == ("C000003", "event:i4")


def test_identifiers_of_a_merged_customer_are_learnt_for_its_survivor(cli, env, bank, tmp_path: Path) -> None:
    assert cli("customer", "merge", "C000002", "C000001").exit_code == 0

    load(env, jsonl(tmp_path / "e.jsonl", issued("i1", "C000002", CARD_1)))

    assert bindings() == {("card_id", CARD_1): ("C000001", "event:i1")}
    assert stored(env.settings)["i1"]["customer_id"] == "C000002"  # the log is never rewritten


# -- resolution ----------------------------------------------------------------------------------------------


def test_events_with_only_an_identifier_are_stored_under_its_customer(env, bank, tmp_path: Path) -> None:
    # given identifiers learnt from an earlier file
    load(
        env,
        jsonl(
            tmp_path / "a.jsonl",
            issued("i1", "C000001", CARD_1),
            linked("l1", "C000002", wechat_openid="oWx-2"),
            linked("l2", "C000003", app_user_id="app-3"),
        ),
    )

    # when events come without customer_id but with a card id, an openid, an app user id, a phone (also
    # as "mobile", as a JSON number) or an ID number (in lower case)
    report = load(
        env,
        jsonl(
            tmp_path / "b.jsonl",
            txn("t1", "19.90", customer_id=None, card_id=CARD_1, merchant="瑞幸咖啡"),
            anonymous("w1", wechat_openid="oWx-2", channel="wechat"),
            anonymous("a1", "app.product_view", app_user_id="app-3", product_id="FUND0001", duration_s=30),
            anonymous("p1", "service.callback_requested", phone=PHONE_2, topic="账单"),
            anonymous("p2", "service.callback_requested", mobile=int(PHONE_3)),
            anonymous("n1", "service.visit", id_number=ID_3.lower()),
            # several identifiers: the card id is tried first
            txn("t2", customer_id=None, card_id=CARD_1, phone=PHONE_3),
        ),
    )

    # then each is stored with the customer found, and the report says how they were found
    assert (report.loaded, report.rejected) == (7, 0), rejects(report)
    log = stored(env.settings)
    assert {e: log[e]["customer_id"] for e in ("t1", "w1", "a1", "p1", "p2", "n1", "t2")} == {
        "t1": "C000001",
        "w1": "C000002",
        "a1": "C000003",
        "p1": "C000002",
        "p2": "C000003",
        "n1": "C000003",
        "t2": "C000001",
    }
    assert report.extra["identity"]["resolved"] == {
        "card_id": 2,
        "wechat_openid": 1,
        "app_user_id": 1,
        "phone": 1,
        "mobile": 1,
        "id_number": 1,
    }
    # the typed fields are checked as for any event, and personal fields are still replaced
    assert log["t1"]["amount"] == Decimal("19.90") and log["t1"]["merchant"] == "瑞幸咖啡"
    payload = json.loads(log["p1"]["payload"])
    assert "customer_id" not in payload and payload["phone_bidx"] == get_cipher().blind_index(
        "phone", PHONE_2
    )
    for secret in (PHONE_2, PHONE_3, ID_3, ID_3.lower()):
        assert all(secret not in (r["payload"] or "") for r in log.values())
        for file in env.home.rglob("*"):
            if file.is_file():
                assert secret.encode() not in file.read_bytes(), file
    # no phone or ID number ever goes into customer_identifiers
    assert {kind for kind, _ in bindings()} == {"card_id", "wechat_openid", "app_user_id"}


@pytest.mark.parametrize("batch_lines", [500_000, 1])
def test_an_identifier_learnt_earlier_in_the_same_file_resolves_later_lines(
    env, bank, tmp_path: Path, batch_lines: int
) -> None:
    path = jsonl(
        tmp_path / "e.jsonl",
        txn("t0", customer_id=None, card_id=CARD_2),  # before its card is issued: not resolvable
        issued("i1", "C000001", CARD_1),
        txn("t1", customer_id=None, card_id=CARD_1),
        linked("l1", "C000002", wechat_openid="oWx-2", app_user_id="app-2"),
        anonymous("w1", wechat_openid="oWx-2"),
        anonymous("a1", app_user_id="app-2"),
        issued("i2", "C000003", CARD_2),
    )

    report = load(env, path, batch_lines=batch_lines)

    log = stored(env.settings)
    assert {e: r["customer_id"] for e, r in log.items() if e != "t0"} == {
        "i1": "C000001",
        "t1": "C000001",
        "l1": "C000002",
        "w1": "C000002",
        "a1": "C000002",
        "i2": "C000003",
    }
    assert [(line, reason) for line, reason, _ in rejects(report)] == [
        (1, "customer_id: missing, and no loaded customer has this card_id")
    ]
    # the card is learnt all the same, so the next file resolves it
    again = load(env, jsonl(tmp_path / "f.jsonl", txn("t0", customer_id=None, card_id=CARD_2)))
    assert again.loaded == 1 and stored(env.settings)["t0"]["customer_id"] == "C000003"


def test_an_event_whose_customer_cannot_be_found_is_rejected_with_the_reason(
    env, bank, tmp_path: Path
) -> None:
    # given two customers sharing a phone (a family number)
    rows = [customer_row("C000004", phone=PHONE_1), customer_row("C000005", phone=PHONE_1)]
    assert load_customers(env, tmp_path, rows)
    load(env, jsonl(tmp_path / "a.jsonl", issued("i1", "C000001", CARD_1)))

    report = load(
        env,
        jsonl(
            tmp_path / "b.jsonl",
            txn("t1", customer_id=None, card_id="6225000000009999"),
            anonymous("x1", app_user_id="nobody", phone="13600000000"),
            anonymous("x2", phone=PHONE_1),
            anonymous("x3", "identity.linked", wechat_openid="wx", phone=PHONE_2),  # must name its customer
            anonymous("x4"),
            anonymous("x5", phone=PHONE_1, card_id=CARD_1),  # the card decides
        ),
    )

    assert [(line, reason) for line, reason, _ in rejects(report)] == [
        (1, "customer_id: missing, and no loaded customer has this card_id"),
        (2, "customer_id: missing, and no loaded customer has this app_user_id or phone"),
        (3, "customer_id: missing, and 3 loaded customers have this phone"),
        (4, "customer_id: missing"),
        (5, "customer_id: missing"),
    ]
    assert (report.loaded, report.rejected) == (1, 5)
    assert stored(env.settings)["x5"]["customer_id"] == "C000001"
    raw = " ".join(r for _, _, r in rejects(report))
    assert PHONE_1 not in raw and PHONE_2 not in raw and "138****5678" in raw  # masked in the rejects file


def test_a_phone_shared_with_a_merged_customer_resolves_to_the_survivor(
    cli, env, bank, tmp_path: Path
) -> None:
    assert load_customers(env, tmp_path, [customer_row("C000004", phone=PHONE_1)])
    assert cli("customer", "merge", "C000004", "C000001").exit_code == 0

    report = load(env, jsonl(tmp_path / "b.jsonl", anonymous("x1", phone=PHONE_1)))

    assert report.loaded == 1 and stored(env.settings)["x1"]["customer_id"] == "C000001"


def load_customers(env: Any, tmp_path: Path, rows: list[dict[str, str]]) -> bool:
    from omnibank.ingest.service import load_file

    report = load_file(
        "customers", customers_csv(tmp_path / "more.csv", rows), settings=env.settings, progress=False
    )
    return report.rejected == 0


# -- merge ---------------------------------------------------------------------------------------------------


def _tags(customer_id: str) -> dict[str, date]:
    with unit_of_work() as s:
        return {
            t.tag: t.since
            for t in s.scalars(select(CustomerTag).where(CustomerTag.customer_id == customer_id))
        }


def test_merge_moves_identifiers_and_tags_and_records_it(cli, env, bank, tmp_path: Path) -> None:
    # given C000002 with a card, an openid, tags and a segment; C000001 with tags of its own
    load(
        env,
        jsonl(
            tmp_path / "a.jsonl", issued("i1", "C000002", CARD_2), linked("l1", "C000002", wechat_openid="wx")
        ),
    )
    now = datetime(2026, 3, 2, 2, tzinfo=UTC)
    with unit_of_work() as s:
        s.add_all(
            [
                CustomerTag(customer_id="C000002", tag="silver_60_69", since=date(2026, 1, 1)),
                CustomerTag(customer_id="C000002", tag="wealth_affluent", since=date(2026, 2, 1)),
                CustomerTag(customer_id="C000002", tag="digital_active", since=date(2026, 5, 1)),
                CustomerTag(customer_id="C000001", tag="wealth_affluent", since=date(2026, 3, 1)),
                CustomerTag(customer_id="C000001", tag="digital_active", since=date(2026, 4, 1)),
                Segment(name="s1", expression="age >= 60", created_by="t", created_at=now, updated_at=now),
            ]
        )
        s.flush()
        s.add_all(
            [
                SegmentMember(segment="s1", customer_id="C000002", snapshot_id=1),
                SegmentMember(segment="s1", customer_id="C000001", snapshot_id=1),
            ]
        )
    with unit_of_work() as s:
        before = versions.current(s)["merges"]

    # when C000002 is merged into C000001
    res = cli("customer", "merge", "C000002", "C000001", "--reason", f"同一客户, phone {PHONE_2}")

    # then
    assert res.exit_code == 0, res.stderr
    assert res.last_line == (
        "merged C000002 into C000001: 2 identifiers moved, 2 tags united, left 1 segments, "
        "0 earlier merges re-pointed"
    )
    assert bindings() == {
        ("card_id", CARD_2): ("C000001", "merge:C000002"),
        ("wechat_openid", "wx"): ("C000001", "merge:C000002"),
    }
    # tags united, the earlier since kept
    assert _tags("C000001") == {
        "silver_60_69": date(2026, 1, 1),
        "wealth_affluent": date(2026, 2, 1),
        "digital_active": date(2026, 4, 1),
    }
    assert _tags("C000002") == {}
    with unit_of_work() as s:
        members = set(s.execute(select(SegmentMember.segment, SegmentMember.customer_id)).all())
        assert members == {("s1", "C000001")}
        merge = s.get(CustomerMerge, "C000002")
        assert merge is not None
        assert (merge.survivor_id, merge.actor) == ("C000001", "test:pytest")
        assert merge.reason == "同一客户, phone 139****1111"  # a phone in the reason is masked
        assert versions.current(s)["merges"] == before + 1
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "customer.merge"))
        assert entry.subject_id == "C000002" and entry.actor == "test:pytest"
        detail = json.loads(entry.detail)
        assert (detail["merged_id"], detail["survivor_id"], detail["identifiers_moved"]) == (
            "C000002",
            "C000001",
            2,
        )
        assert PHONE_2 not in entry.detail and "139" not in entry.detail
        assert survivor_of(s, "C000002") == "C000001"
        assert survivor_of(s, "C000001") == "C000001"
        assert merged_ids_of(s, "C000001") == ["C000002"]
    # and the card now finds the survivor
    report = load(env, jsonl(tmp_path / "b.jsonl", txn("t1", customer_id=None, card_id=CARD_2)))
    assert report.loaded == 1 and stored(env.settings)["t1"]["customer_id"] == "C000001"


def test_chained_merges_stay_one_hop(cli, env, bank, tmp_path: Path) -> None:
    load(env, jsonl(tmp_path / "a.jsonl", issued("i1", "C000003", CARD_1)))

    assert cli("customer", "merge", "C000003", "C000002").exit_code == 0
    res = cli("customer", "merge", "C000002", "C000001")

    assert res.exit_code == 0, res.stderr
    assert res.last_line.endswith("1 earlier merges re-pointed")
    with unit_of_work() as s:
        merges = dict(s.execute(select(CustomerMerge.merged_id, CustomerMerge.survivor_id)).all())
        assert merges == {"C000003": "C000001", "C000002": "C000001"}
        assert survivor_of(s, "C000003") == "C000001"
        assert merged_ids_of(s, "C000001") == ["C000002", "C000003"]
        assert merged_ids_of(s, "C000002") == []
    assert bindings() == {("card_id", CARD_1): ("C000001", "merge:C000002")}


def test_merges_that_cannot_be_are_refused_and_change_nothing(cli, env, bank) -> None:
    assert cli("customer", "merge", "C000003", "C000002").exit_code == 0
    with unit_of_work() as s:
        before = (versions.current(s), s.scalar(select(func.count()).select_from(AuditEntry)))

    cases = [
        (("C404", "C000001"), "no customer C404"),
        (("C000001", "C405"), "no customer C405"),
        (("C000001", "C000001"), "cannot merge C000001 into itself"),
        (("C000003", "C000001"), "C000003 was already merged into C000002"),
        (("C000001", "C000003"), "C000003 was merged into C000002; merge C000001 into C000002 instead"),
    ]
    for args, message in cases:
        res = cli("customer", "merge", *args)
        assert res.exit_code == 1, args
        assert message in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr

    with unit_of_work() as s:
        assert dict(s.execute(select(CustomerMerge.merged_id, CustomerMerge.survivor_id)).all()) == {
            "C000003": "C000002"
        }
        assert (versions.current(s), s.scalar(select(func.count()).select_from(AuditEntry))) == before


# -- the customer 360 ----------------------------------------------------------------------------------------


def test_show_lists_identifiers_masked_and_the_events_of_merged_customers(
    cli, env, bank, tmp_path: Path
) -> None:
    load(
        env,
        jsonl(
            tmp_path / "a.jsonl",
            issued("i1", "C000001", CARD_1, ts="2026-03-01T10:00:00+08:00"),
            linked("l1", "C000002", wechat_openid="oWx-2", app_user_id="app-2"),
            event("f1", "wealth.fund_purchase", customer_id="C000002", ts="2026-03-05T10:00:00+08:00"),
            event("v1", "app.login", customer_id="C000003", ts="2026-03-06T10:00:00+08:00"),
        ),
    )
    assert cli("customer", "merge", "C000002", "C000001").exit_code == 0

    shown = cli("customer", "show", "C000001")

    assert shown.exit_code == 0, shown.stderr
    out = shown.stdout
    assert "identifiers" in out
    assert "6225********2222" in out and CARD_1 not in out  # in the identifiers and the events alike
    assert "oWx-2" in out and "app-2" in out
    assert "138****5678" in out and "139****1111" in out  # its phone and the merged customer's, masked
    assert PHONE_1 not in out and PHONE_2 not in out
    assert "merged from" in out and "C000002" in out
    # recent events: its own and the merged customer's, not others'
    assert "card.issued" in out and "wealth.fund_purchase" in out and "(merged C000002)" in out
    assert "app.login" not in out

    merged = cli("customer", "show", "C000002")
    assert merged.exit_code == 0, merged.stderr
    assert "merged into" in merged.stdout and "C000001" in merged.stdout
    with unit_of_work() as s:
        views = [
            (e.subject_id, json.loads(e.detail).get("via"))
            for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "customer.view"))
        ]
    # viewing the survivor shows the merged customer's personal fields (masked): that view is audited too
    assert views == [("C000001", None), ("C000002", "C000001"), ("C000002", None)]


@pytest.mark.parametrize(
    ("card", "masked"),
    [
        ("6225880011112222", "6225********2222"),
        ("622588001", "6225*8001"),
        ("62258800", "********"),
        ("K1", "**"),
    ],
)
def test_card_ids_keep_their_first_and_last_four_when_longer_than_eight(card: str, masked: str) -> None:
    assert mask_card_id(card) == masked
