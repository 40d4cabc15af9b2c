"""The typed append (issue 21): events the platform produces itself, and single API events, go straight into
the log's columns — checked by the contract's mapping with the loader's reasons, protected as the loader
protects them, deduplicated by event_id against the whole log, one file per month a call touches, nothing
visible before it publishes, and no temporary file or loader run on the way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from argon2 import PasswordHasher

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.events.emit import Emitted, Rejected, emit
from omnibank.events.loader import load_events
from omnibank.events.log import READY, STAGING, EventLog
from omnibank.events.protect import protected_file
from omnibank.kit.crypto import FieldCipher
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank
from tests.events.helpers import event, files_under, jsonl, rejects, stored, txn

MARCH = "2026-03-01T10:00:00+08:00"
APRIL = "2026-04-01T00:30:00+08:00"  # 2026-03-31 16:30 UTC: April in the bank's zone
MAR1 = datetime(2026, 3, 1, tzinfo=UTC)


def receipt(i: int, ts: str = MARCH) -> dict[str, Any]:
    return event(f"msg:{i}:delivered", "message.delivered", customer_id=f"C{i % 7:07d}", ts=ts,
                 channel="sms", message_id=i, contact_channel="sms", journey="生日关怀", step="s1",
                 send_key=f"k{i}")  # fmt: skip


def new_files(settings: Settings, before: list[Path]) -> list[Path]:
    return sorted(set(EventLog(settings).files()) - set(before))


# ----------------------------------------------------------------------------------------- the log's batch


def _killed(self: EventLog, folder: Path) -> int:
    """publish_locked of a process killed once the folder is READY, before any file was renamed."""
    assert (folder / READY).exists()
    raise OSError("killed")


def _row(event_id: str, ts: datetime, **columns: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "app.login", "customer_id": "C1", "ts": ts,
            "payload": f'{{"event_id":"{event_id}"}}', **columns}  # fmt: skip


def test_a_batch_makes_one_protected_file_per_month_and_keeps_each_event_id_once(settings: Settings) -> None:
    log = EventLog(settings)
    march, april = datetime(2026, 3, 31, 15, 59, tzinfo=UTC), datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
    # given rows of two bank-local months (16:00 UTC on 31 March is 1 April in Shanghai), one repeated
    with log.batch() as batch:
        for i in range(300):
            batch.add(_row(f"m{i}", march))
        batch.add(_row("a1", april))
        batch.add(_row("m0", april))  # a repeat within the batch: the first one wins
    # then one file per month, marked protected, and each id once
    assert batch.result is not None
    assert (batch.result.added, batch.result.duplicates, batch.result.files) == (301, 1, 2)
    assert [f.parent.name for f in log.files()] == ["month=2026-03", "month=2026-04"]
    assert all(protected_file(f) for f in log.files())
    rows = stored(settings)
    assert len(rows) == 301 and rows["m0"]["local_date"].isoformat() == "2026-03-31"
    assert rows["a1"]["local_date"].isoformat() == "2026-04-01"
    # when the same ids come again, with new ones, only the new ones are added, in one more file
    again = log.append([_row("m5", march), _row("a1", march), _row("n1", march)])
    assert (again.added, again.duplicates, again.files) == (1, 2, 1)
    assert len(log.files()) == 3 and len(stored(settings)) == 302
    # an id known in another month is a duplicate too (the loader's rule: unique in the whole log)
    assert log.append([_row("a1", datetime(2026, 5, 2, tzinfo=UTC))]).added == 0


def test_a_row_the_log_cannot_hold_is_refused_before_anything_is_written(settings: Settings) -> None:
    log = EventLog(settings)
    with pytest.raises(ValueError, match="aware datetime"), log.batch() as batch:
        batch.add(_row("x", datetime(2026, 3, 1)))  # noqa: DTZ001 - the naive time is the point
    with pytest.raises(ValueError, match="not columns of the event log: phone"), log.batch() as batch:
        batch.add(_row("x", MAR1, phone="13800138000"))
    assert log.files() == [] and not files_under(settings.event_log_dir / STAGING)


def test_a_batch_that_raises_before_it_commits_leaves_nothing(settings: Settings) -> None:
    log = EventLog(settings)

    def killed() -> None:
        with log.batch() as batch:
            batch.add(_row("e1", MAR1))
            raise RuntimeError("killed between staging and publishing")

    with pytest.raises(RuntimeError, match="killed"):
        killed()
    assert log.files() == [] and log.count() == 0
    assert not files_under(settings.event_log_dir / STAGING)


def test_a_crash_while_writing_before_ready_leaves_nothing_visible(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self: EventLog, folder: Path) -> list[Path]:
        assert list((folder / "final").glob("month=*/*.parquet"))  # the files were staged
        raise OSError("disk gone")

    monkeypatch.setattr(EventLog, "mark_ready", crash)
    with pytest.raises(OSError, match="disk gone"):
        EventLog(settings).append([_row("e1", MAR1)])
    monkeypatch.undo()
    log = EventLog(settings)
    assert log.files() == [] and not files_under(settings.event_log_dir / STAGING)
    assert log.recover() == 0 and log.files() == []


def test_a_crash_after_ready_is_rolled_forward_by_recover_and_by_the_next_append(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EventLog, "publish_locked", _killed)
    with pytest.raises(OSError, match="killed"):
        EventLog(settings).append([_row("e1", MAR1), _row("e2", datetime(2026, 4, 2, tzinfo=UTC))])
    monkeypatch.undo()
    log = EventLog(settings)
    # the folder is READY but nothing is visible yet
    assert log.files() == []
    assert [p.name for p in (settings.event_log_dir / STAGING).glob(f"*/{READY}")] == [READY]
    assert log.recover() == 2
    assert sorted(stored(settings)) == ["e1", "e2"] and len(log.files()) == 2
    assert not files_under(settings.event_log_dir / STAGING)


def test_the_next_append_finishes_a_ready_batch_first_and_drops_its_ids(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EventLog, "publish_locked", _killed)
    with pytest.raises(OSError, match="killed"):
        EventLog(settings).append([_row("e1", MAR1)])
    monkeypatch.undo()
    done = EventLog(settings).append([_row("e1", MAR1), _row("e3", MAR1)])
    assert (done.added, done.duplicates) == (1, 1)
    assert sorted(stored(settings)) == ["e1", "e3"]


# -------------------------------------------------------------------------------------------------- emit


def test_emit_adds_each_event_once_across_calls_with_one_file_per_call_and_month(
    settings: Settings, cipher: FieldCipher
) -> None:
    home_tmp = settings.home_dir / "tmp"
    # given 1,000 receipts of March and one of April
    events = [receipt(i) for i in range(1000)] + [receipt(5000, APRIL)]
    done = emit(settings, events, cipher=cipher)
    # then they are in the log, in one file per month, and nothing was written on the way
    assert (done.loaded, done.duplicates, done.rejected, done.files) == (1001, 0, 0, 2)
    assert len(EventLog(settings).files()) == 2
    assert not files_under(home_tmp) and not files_under(settings.loads_dir)
    # when the same events are emitted again, with one new one, only that one is added, in one new file
    before = EventLog(settings).files()
    again = emit(settings, [*events, receipt(1000)], cipher=cipher)
    assert (again.loaded, again.duplicates, again.files) == (1, 1001, 1)
    assert len(new_files(settings, before)) == 1
    # and a call that adds nothing writes nothing
    assert emit(settings, events, cipher=cipher) == Emitted(0, 1001, 0, [], 0)
    assert len(EventLog(settings).files()) == 3 and len(stored(settings)) == 1002


def test_emit_rejects_with_the_position_and_the_reason_and_adds_the_rest(
    settings: Settings, cipher: FieldCipher
) -> None:
    events = [
        receipt(1),
        event("x1", "card.transaction", card_id="6222000012345678", amount="-1"),
        event("x2", ts="2026-02-30T10:00:00+08:00"),
        {"type": "lead.created", "customer_id": "C1", "ts": MARCH, "phone": "13800138000"},
        event("x4", channel="fax"),
        ["not", "an", "object"],
        event("x6", nested={"note": "\ud800"}),
        event("x7", score=float("nan")),
        receipt(2),
    ]
    done = emit(settings, events, cipher=cipher)  # type: ignore[arg-type]
    assert (done.loaded, done.rejected) == (2, 7)
    assert done.rejects == [
        Rejected(1, "amount: must be a decimal > 0 with at most 2 decimals"),
        Rejected(2, "ts: not a real date and time"),
        Rejected(3, "event_id: missing"),
        Rejected(4, "channel: must be one of app, wechat, sms, phone, branch, wecom, web, partner"),
        Rejected(5, "not a JSON object"),
        Rejected(6, "not valid JSON: nested.note holds a lone surrogate (U+D800), which is not a character"),
        Rejected(7, "not valid JSON"),
    ]
    assert "13800138000" not in repr(done)  # reasons name fields, never values
    assert emit(settings, events, cipher=cipher, max_rejects=2).rejects == done.rejects[:2]  # type: ignore[arg-type]


# the same events through the file loader and through emit: the same rows, the same rejects
SAME_AS_LOADER: list[dict[str, Any]] = [
    event("g1"),
    txn("g2", ts="2026-03-31T23:30:00+08:00", merchant="超市 13800138000", mcc="5411"),
    txn("g3", amount=12.5, ts=APRIL),
    txn("g4", amount="100.500"),
    event("g5", "points.earned", points=10, channel="app", ts="2026-03-01T10:00:00Z"),
    event("g6", "points.redeem", reward="杯子", quantity=2, ts="2026-03-01 10:00"),
    event(
        "g7", "app.product_view", product_id="p1", duration_s=3.25, ts="2026-03-01T10:00:00.123456789+0800"
    ),
    event(
        "g8",
        "card.issued",
        card_id="6222000012345678",
        product="白金卡",
        tier="gold",
        primary=True,
        new_customer=False,
    ),  # fmt: skip
    event(
        9,
        "lead.created",
        note="call 13812345678 or 11010519491231002X",
        phone="13812345678",
        detail={"id_number": "11010519491231002X", "card": "4111111111111111"},
    ),  # fmt: skip
    event("g10", "identity.linked", wechat_openid="o-abc"),
    event("b1", "card.transaction", card_id="6222000012345678", amount="1.234"),
    event("b2", "card.transaction", card_id=" ", amount="1"),
    event("b3", "card.transaction", amount="1"),
    event("b4", "card.issued", card_id="6222", product="p", tier="silver", primary=True, new_customer=False),
    event("b5", "card.issued", card_id="6222", product="p", tier="gold", primary="yes", new_customer=False),
    event("b6", "points.earned", points=0),
    event("b7", "points.earned", points=1.5),
    event("b8", "points.redeem", reward="r", quantity=True),
    event("b9", "app.product_view", product_id="p", duration_s=-1),
    event("b10", "identity.linked"),
    event("b11", "identity.linked", wechat_openid=""),
    event("b12", "identity.linked", customer_id=None, wechat_openid="o"),
    event("b13", "App.Login"),
    event("b14", customer_id=""),
    event("b15", customer_id=5),
    event("b16", ts=None),
    event("b17", ts="yesterday"),
    event("b18", ts=20260301),
    event("b19", channel=3),
    event(" "),
    event(True),
    event(1.5),
    event("b23", "card.transaction", card_id="6222000012345678", amount="99999999999999999"),
    event("b24", "card.transaction", card_id="6222000012345678", amount=0),
    event("b25", "card.transaction", card_id="6222000012345678", amount="12.5", merchant=7),
    {"event_id": "b26", "ts": MARCH, "customer_id": "C1"},
]


def test_emit_reads_the_contract_as_the_loader_does(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    scratch = Settings(home=tmp_path / "loader", timezone=settings.timezone)
    report = load_events(scratch, jsonl(tmp_path / "e.jsonl", *SAME_AS_LOADER), cipher=cipher, progress=False)
    done = emit(settings, SAME_AS_LOADER, cipher=cipher)
    assert [(r.index + 1, r.reason) for r in done.rejects] == [(n, why) for n, why, _ in rejects(report)]
    assert done.loaded == report.loaded == 10

    def rows(s: Settings) -> dict[str, dict[str, Any]]:
        # the loader stores a line as it was written, emit as compact JSON: the same object
        return {
            k: {c: json.loads(v) if c == "payload" else v for c, v in r.items() if c != "load_id"}
            for k, r in stored(s).items()
        }

    assert rows(settings) == rows(scratch)


# ---------------------------------------------------------------------------------------- personal data


PLAINTEXTS = ["13812345678", "11010519491231002X", "6222000012345678", "4111111111111111", "李雷"]


def test_personal_fields_never_reach_the_log_in_plaintext(settings: Settings, cipher: FieldCipher) -> None:
    events = [
        event(
            "p1",
            "lead.created",
            name="李雷",
            phone="13812345678",
            note="ID 11010519491231002X",
            detail={"cards": ["4111111111111111"]},
        ),  # fmt: skip
        txn("p2", card_id="6222000012345678", merchant="pay 13812345678"),
        receipt(1) | {"reason": "bounced for 13812345678"},
    ]
    done = emit(settings, events, cipher=cipher)
    assert done.loaded == 3
    files = EventLog(settings).files()
    for path in files:
        values = [str(v) for col in pq.read_table(path).columns for v in col.to_pylist() if v is not None]
        for secret in PLAINTEXTS:
            assert not any(secret in v for v in values), f"{secret} in {path}"
    rows = stored(settings)
    assert rows["p2"]["card_id"].startswith("⟨card:") and rows["p2"]["merchant"].startswith("pay ⟨phone:")
    assert '"phone_bidx":' in rows["p1"]["payload"] and '"name_bidx":' in rows["p1"]["payload"]


# ------------------------------------------------------------------------------------------------- the API


@pytest.fixture
def bank(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000})
    built = build_bank(settings, tmp_path / "bank")
    with built.client:
        yield built


def _writer(bank: Bank) -> dict[str, str]:
    with unit_of_work(bank.settings) as session:
        _, token = users.create_api_token(session, name="crm", scopes=["events:write"],
                                          lifetime=timedelta(days=30), now=bank.clock.now, actor="test",
                                          bank_wide=True)  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def test_a_single_api_event_is_resolved_protected_and_appended_without_a_temporary_file(bank: Bank) -> None:
    settings, headers = bank.settings, _writer(bank)
    loads_before = files_under(settings.loads_dir)
    # given an event naming no customer, only the phone of CA1 (as the loader resolves identifiers)
    sent = {"event_id": "api-1", "type": "shop.visit", "ts": MARCH, "phone": "13800000001", "note": "hi"}
    r = bank.client.post("/api/v1/events", headers=headers, json=sent)
    # then it is in the log under CA1, its phone kept as a blind index only, in one new file
    assert r.status_code == 200, r.text
    assert r.json() == {"loaded": 1, "duplicates": 0, "rejected": 0, "rejects": []}
    row = stored(settings)["api-1"]
    assert row["customer_id"] == "CA1" and "13800000001" not in row["payload"]
    assert len(EventLog(settings).files()) == 1
    # and no temporary JSONL file, no loader run, no rejects file was made on the way
    assert not files_under(settings.home_dir / "tmp")
    assert files_under(settings.loads_dir) == loads_before
    # a card issued through the API binds the card, and a later event found by the card alone goes to CA2
    issued = event("api-2", "card.issued", customer_id="CA2", card_id="6222000099998888", product="p",
                   tier="gold", primary=True, new_customer=False)  # fmt: skip
    assert bank.client.post("/api/v1/events", headers=headers, json=issued).json()["loaded"] == 1
    spent = txn("api-3", customer_id=None, card_id="6222000099998888")
    assert bank.client.post("/api/v1/events", headers=headers, json=spent).json()["loaded"] == 1
    assert stored(settings)["api-3"]["customer_id"] == "CA2"
    # sending it again adds nothing
    assert bank.client.post("/api/v1/events", headers=headers, json=spent).json()["duplicates"] == 1


def test_a_rejected_api_event_says_what_and_where_without_its_personal_data(bank: Bank) -> None:
    headers = _writer(bank)
    unknown = {"event_id": "api-9", "type": "shop.visit", "ts": MARCH, "phone": "13900001111"}
    r = bank.client.post("/api/v1/events", headers=headers, json=unknown)
    assert r.json()["rejects"] == [
        {"index": 0, "reason": "customer_id: missing, and no loaded customer has this phone"}
    ]
    assert "13900001111" not in r.text
    batch = {"events": [event("ok", customer_id="CA1"), event("no", ts="soon")]}
    bad = bank.client.post("/api/v1/events/batch", headers=headers, json=batch)
    assert bad.json()["rejects"] == [{"index": 1, "reason": "ts: not an ISO 8601 date-time"}]
    assert EventLog(bank.settings).files() and sorted(stored(bank.settings)) == ["ok"]


def test_the_arrow_schema_has_the_log_columns_in_order() -> None:
    from omnibank.events.log import COLUMN_NAMES, arrow_schema

    assert tuple(arrow_schema().names) == COLUMN_NAMES
