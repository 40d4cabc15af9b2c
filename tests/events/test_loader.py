"""Loading events.jsonl into the event log: validation, time zones, partitions, dedup, personal data."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from omnibank.config import Settings
from omnibank.errors import InputRefused
from omnibank.events import finalize
from omnibank.events.columns import CHANNELS
from omnibank.events.loader import load_events
from omnibank.events.log import EventLog
from omnibank.events.protect import Protector
from omnibank.kit.crypto import FieldCipher
from tests.events.helpers import event, files_under, jsonl, rejects, stored, txn


def us(text: str) -> int:
    """Microseconds since the epoch of an ISO instant."""
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)


def test_known_types_are_stored_with_their_typed_fields(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # given a file with one event of every known type
    path = jsonl(
        tmp_path / "events.jsonl",
        event(
            "i1",
            "card.issued",
            channel="branch",
            card_id="K1",
            product="luckin_cobrand",
            tier="gold",
            primary=True,
            new_customer=False,
        ),
        txn("t1", "88.80", merchant="瑞幸咖啡(衡水店)", mcc="5814", channel="partner"),
        event("p1", "points.earned", points=120),
        event("r1", "points.redeem", reward="coffee_coupon", quantity=2),
        event("v1", "app.product_view", product_id="FUND0001", duration_s=12.5),
        event("l1", "app.login", channel="app"),
    )

    # when it is loaded
    report = load_events(settings, path, cipher=cipher, progress=False)

    # then every event is in the log with its typed columns, and nothing else is set
    assert (report.loaded, report.rejected, report.duplicates) == (6, 0, 0)
    log = stored(settings)
    issued = log["i1"]
    token = Protector(cipher).card_token  # card numbers are kept as their keyed tokens
    assert (issued["card_id"], issued["product"], issued["tier"]) == (token("K1"), "luckin_cobrand", "gold")
    assert (issued["is_primary"], issued["new_customer"], issued["channel"]) == (True, False, "branch")
    t1 = log["t1"]
    assert (t1["amount"], t1["merchant"], t1["mcc"], t1["card_id"]) == (
        Decimal("88.80"),
        "瑞幸咖啡(衡水店)",
        "5814",
        token("6222000012345678"),
    )
    assert log["p1"]["points"] == 120
    assert (log["r1"]["reward"], log["r1"]["quantity"]) == ("coffee_coupon", 2)
    assert (log["v1"]["product_id"], log["v1"]["duration_s"]) == ("FUND0001", 12.5)
    login = log["l1"]
    typed = ["amount", "card_id", "product", "tier", "is_primary", "new_customer", "merchant", "mcc"]
    typed += ["points", "reward", "quantity", "product_id", "duration_s"]
    assert all(login[c] is None for c in typed)
    assert login["channel"] == "app"
    assert json.loads(login["payload"]) == event("l1", "app.login", channel="app")
    assert {r["load_id"] for r in log.values()} == {report.load_id}
    assert sorted(r["line_no"] for r in log.values()) == [1, 2, 3, 4, 5, 6]


OPT_ID = "must be a non-empty string of at most 128 characters"
BAD_LINES: list[tuple[Any, str]] = [
    ("not json", "not valid JSON"),
    ('{"event_id": "x", "type": "app.login"', "not valid JSON"),
    (
        '{"event_id": "x", "type": "app.login", "customer_id": "C1", "ts": "2026-03-01T10:00:00Z",}',
        "not valid JSON",
    ),
    (
        '{"event_id": "x", "type": "points.earned", "customer_id": "C1", "ts": "2026-03-01T10:00:00Z", '
        '"points": NaN}',
        "not valid JSON",
    ),
    (
        '{"event_id": "x", "type": "a.b", "customer_id": "C1", "ts": "2026-03-01T10:00:00Z", '
        '"n": [Infinity]}',
        "not valid JSON",
    ),
    (
        b'{"event_id": "x", "type": "app.login", "customer_id": "C\xff\xfe", "ts": "2026-03-01"}',
        "not valid UTF-8",
    ),
    ("[1, 2, 3]", "not a JSON object"),
    ('"just a string"', "not a JSON object"),
    (event(event_id=None), "event_id: missing"),
    (event(event_id=""), "event_id: must be a non-empty string or an integer"),
    (event(event_id=True), "event_id: must be a non-empty string or an integer"),
    (event(event_id=1.5), "event_id: must be a non-empty string or an integer"),
    (event(type_=None), "type: missing"),
    (event(type_="Card.Transaction"), "type: must be lowercase dotted words such as card.transaction"),
    (event(type_="login"), "type: must be lowercase dotted words such as card.transaction"),
    (event(type_=12), "type: must be lowercase dotted words such as card.transaction"),
    (event(customer_id=None), "customer_id: missing"),
    (event(customer_id=123), "customer_id: must be a non-empty string"),
    (event(customer_id="  "), "customer_id: must be a non-empty string"),
    (event(ts=None), "ts: missing"),
    (event(ts="yesterday"), "ts: not an ISO 8601 date-time"),
    (event(ts="2026/03/01 10:00"), "ts: not an ISO 8601 date-time"),
    (event(ts="2026-03-01"), "ts: not an ISO 8601 date-time"),
    (event(ts="2026-03-01T25:00:00"), "ts: not an ISO 8601 date-time"),
    (event(ts=1772330400), "ts: not an ISO 8601 date-time"),
    (event(ts="2026-02-30T10:00:00"), "ts: not a real date and time"),
    (event(ts="2025-02-29T10:00:00+08:00"), "ts: not a real date and time"),
    (event(channel="fax"), "channel: must be one of " + ", ".join(CHANNELS)),
    (event(channel=1), "channel: must be one of " + ", ".join(CHANNELS)),
    (txn("x", amount="0"), "amount: must be a decimal > 0 with at most 2 decimals"),
    (txn("x", amount="0.00"), "amount: must be a decimal > 0 with at most 2 decimals"),
    (txn("x", amount="-5.00"), "amount: must be a decimal > 0 with at most 2 decimals"),
    (txn("x", amount=-5), "amount: must be a decimal > 0 with at most 2 decimals"),
    (txn("x", amount="1.005"), "amount: must be a decimal > 0 with at most 2 decimals"),
    (
        '{"event_id": "x", "type": "card.transaction", "customer_id": "C1", "ts": "2026-03-01T10:00:00Z", '
        '"card_id": "K1", "amount": 1.005}',
        "amount: must be a decimal > 0 with at most 2 decimals",
    ),
    (txn("x", amount="abc"), "amount: must be a decimal > 0 with at most 2 decimals"),
    (txn("x", amount="1e3"), "amount: must be a decimal > 0 with at most 2 decimals"),
    (txn("x", amount=True), "amount: must be a decimal > 0 with at most 2 decimals"),
    (txn("x", amount=None), "amount: missing"),
    (txn("x", card_id=None), "card_id: missing"),
    (txn("x", card_id=6222), "card_id: must be a non-empty string"),
    (txn("x", merchant=123), "merchant: must be a string"),
    (event("x", "points.earned", points="10"), "points: must be an integer > 0"),
    (event("x", "points.earned", points=1.5), "points: must be an integer > 0"),
    (event("x", "points.earned", points=0), "points: must be an integer > 0"),
    (event("x", "points.earned", points=-3), "points: must be an integer > 0"),
    (event("x", "points.earned"), "points: missing"),
    (event("x", "points.redeem", quantity=1), "reward: missing"),
    (event("x", "points.redeem", reward="cup", quantity=0), "quantity: must be an integer > 0"),
    (
        event("x", "card.issued", card_id="K", product="p", tier="gold", primary="true", new_customer=True),
        "primary: must be true or false (a JSON boolean)",
    ),
    (
        event("x", "card.issued", card_id="K", product="p", tier="diamond", primary=True, new_customer=True),
        "tier: must be one of classic, gold, platinum",
    ),
    (
        event("x", "card.issued", card_id="K", product="p", tier="gold", primary=True),
        "new_customer: missing",
    ),
    (event("x", "app.product_view", product_id="P", duration_s=-1), "duration_s: must be a number >= 0"),
    (event("x", "app.product_view", product_id="P", duration_s="12"), "duration_s: must be a number >= 0"),
    (event("x", "app.product_view", duration_s=3), "product_id: missing"),
    (
        event("x", "identity.linked"),
        "wechat_openid: missing (identity.linked needs wechat_openid or app_user_id)",
    ),
    (event("x", "identity.linked", wechat_openid=12), f"wechat_openid: {OPT_ID}"),
    (event("x", "identity.linked", wechat_openid="wx", app_user_id=" "), f"app_user_id: {OPT_ID}"),
    (event("x", "identity.linked", app_user_id="a" * 129), f"app_user_id: {OPT_ID}"),
    # identity.linked binds identifiers to its customer, so it must name it
    (
        event("x", "identity.linked", customer_id=None, wechat_openid="wx", phone="13812345678"),
        "customer_id: missing",
    ),
    # without a customer_id, only a usable identifier could find the customer
    (event("x", customer_id=None, card_id=6222), "customer_id: missing"),
    (event("x", customer_id=None, card_id="  ", phone=None), "customer_id: missing"),
    (event("x", customer_id="  ", card_id="6222"), "customer_id: must be a non-empty string"),
]


@pytest.mark.parametrize("batch_lines", [500_000, 7])
def test_each_bad_line_is_rejected_with_its_line_number_and_the_good_ones_load(
    settings: Settings, cipher: FieldCipher, tmp_path: Path, batch_lines: int
) -> None:
    # given good lines (and a blank one) between bad lines of every kind
    lines: list[Any] = [event("good-0")]
    expected = []
    for i, (bad, _reason) in enumerate(BAD_LINES):
        lines.append(bad)
        expected.append((len(lines), _reason))
        lines.append(event(f"good-{i + 1}"))
        if i == 3:
            lines.append("   ")
    path = jsonl(tmp_path / "events.jsonl", *lines)

    # when the file is loaded
    report = load_events(settings, path, cipher=cipher, progress=False, batch_lines=batch_lines)

    # then each bad line is in the rejects file with its physical line number and reason
    got = [(line, reason) for line, reason, _ in rejects(report)]
    assert got == expected
    assert report.rejected == len(BAD_LINES)
    # and every good line is in the log
    assert report.loaded == len(BAD_LINES) + 1
    good_lines = {
        ln["event_id"]: i + 1
        for i, ln in enumerate(lines)
        if isinstance(ln, dict) and str(ln.get("event_id")).startswith("good-")
    }
    assert {e: row["line_no"] for e, row in stored(settings).items()} == good_lines


def test_blank_lines_crlf_and_a_byte_order_mark_are_handled(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # given a Windows-style file with a BOM, blank lines and no final newline
    body = [json.dumps(event("a")), "", "  \t", json.dumps(event("b")), "", json.dumps(event("c"))]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(body).encode())

    # when loaded
    report = load_events(settings, path, cipher=cipher, progress=False)

    # then the three events load with their physical line numbers and a clean payload
    assert (report.loaded, report.rejected) == (3, 0)
    log = stored(settings)
    assert {e: r["line_no"] for e, r in log.items()} == {"a": 1, "b": 4, "c": 6}
    assert log["a"]["payload"] == json.dumps(event("a"))
    assert report.extra["lines"] == 6


@pytest.mark.parametrize(
    ("ts", "utc", "local_date"),
    [
        ("2026-03-01T00:30:00", "2026-02-28T16:30:00+00:00", date(2026, 3, 1)),  # bank-local
        ("2026-03-01 00:30", "2026-02-28T16:30:00+00:00", date(2026, 3, 1)),
        ("2026-03-01T00:30:00Z", "2026-03-01T00:30:00+00:00", date(2026, 3, 1)),
        ("2026-02-28T20:00:00Z", "2026-02-28T20:00:00+00:00", date(2026, 3, 1)),  # 04:00 local next day
        ("2026-03-01T00:30:00+05:30", "2026-02-28T19:00:00+00:00", date(2026, 3, 1)),
        ("2026-03-01T00:30:00-0100", "2026-03-01T01:30:00+00:00", date(2026, 3, 1)),
        ("2026-03-01T00:30:00.250+08:00", "2026-02-28T16:30:00.250000+00:00", date(2026, 3, 1)),
    ],
)
def test_timestamps_without_offset_are_bank_local_and_offsets_are_honoured(
    settings: Settings, cipher: FieldCipher, tmp_path: Path, ts: str, utc: str, local_date: date
) -> None:
    path = jsonl(tmp_path / "events.jsonl", event("e", ts=ts))

    load_events(settings, path, cipher=cipher, progress=False)

    row = stored(settings)["e"]
    assert row["ts_us"] == us(utc)
    assert row["local_date"] == local_date
    recent = EventLog(settings).recent("C0000001")
    assert recent[0]["ts"] == datetime.fromisoformat(utc)
    assert recent[0]["ts"].tzinfo is not None


def test_the_bank_time_zone_comes_from_the_settings(cipher: FieldCipher, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", timezone="Europe/London")
    path = jsonl(tmp_path / "events.jsonl", event("e", ts="2026-07-01T00:30:00"))

    load_events(settings, path, cipher=cipher, progress=False)

    row = stored(settings)["e"]
    assert row["ts_us"] == us("2026-06-30T23:30:00+00:00")  # BST is UTC+1
    assert row["local_date"] == date(2026, 7, 1)


def test_files_are_partitioned_by_bank_local_month(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # given one event late on 31 March bank time and one that is already 1 April bank time
    path = jsonl(
        tmp_path / "events.jsonl",
        event("march", ts="2026-03-31T23:30:00+08:00"),
        event("april", ts="2026-03-31T16:30:00Z"),
    )

    report = load_events(settings, path, cipher=cipher, progress=False)

    log = EventLog(settings)
    months = {p.parent.name for p in log.files()}
    assert months == {"month=2026-03", "month=2026-04"}
    assert all(p.name.startswith(f"{report.load_id}-") and p.suffix == ".parquet" for p in log.files())
    rows = stored(settings)
    assert (rows["march"]["month"], rows["march"]["local_date"]) == ("2026-03", date(2026, 3, 31))
    assert (rows["april"]["month"], rows["april"]["local_date"]) == ("2026-04", date(2026, 4, 1))
    # nothing is left in staging
    assert not files_under(settings.event_log_dir / "_staging")


def test_a_repeated_id_in_a_file_keeps_the_first_line(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # given an id that repeats, also across batches
    path = jsonl(
        tmp_path / "events.jsonl",
        event("a", customer_id="FIRST"),
        event("b"),
        event("a", customer_id="SECOND"),
        event("c"),
        event("b", customer_id="LATER"),
        event("a", customer_id="THIRD"),
    )

    report = load_events(settings, path, cipher=cipher, progress=False, batch_lines=2)

    assert (report.loaded, report.duplicates, report.rejected) == (3, 3, 0)
    log = stored(settings)
    assert (log["a"]["customer_id"], log["a"]["line_no"]) == ("FIRST", 1)
    assert log["b"]["customer_id"] == "C0000001"


def test_loading_the_same_file_again_changes_nothing(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    path = jsonl(
        tmp_path / "events.jsonl", event("a"), txn("b"), event("c", "points.earned", points=5), "oops"
    )
    first = load_events(settings, path, cipher=cipher, progress=False)
    files = {p: p.stat().st_mtime_ns for p in EventLog(settings).files()}

    again = load_events(settings, path, cipher=cipher, progress=False)

    assert (first.loaded, first.duplicates, first.rejected) == (3, 0, 1)
    assert (again.loaded, again.duplicates, again.rejected) == (0, 3, 1)
    assert {p: p.stat().st_mtime_ns for p in EventLog(settings).files()} == files
    assert EventLog(settings).count() == 3


def test_ids_already_in_the_log_are_duplicates_and_integer_ids_are_strings(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # given a first file, with an integer id
    load_events(settings, jsonl(tmp_path / "a.jsonl", event(1001), event("x")), cipher=cipher, progress=False)

    # when a second file repeats the same ids (the integer now as a string) next to new ones
    second = jsonl(tmp_path / "b.jsonl", event("1001", customer_id="OTHER"), event("x"), event("y"))
    report = load_events(settings, second, cipher=cipher, progress=False)

    # then only the new one is added
    assert (report.loaded, report.duplicates) == (1, 2)
    log = stored(settings)
    assert sorted(log) == ["1001", "x", "y"]
    assert log["1001"]["customer_id"] == "C0000001"


def test_unknown_types_are_kept_with_their_payload(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # given a type the platform does not know, with fields named like known ones, for an unknown customer
    raw = {
        **event("w1", "wealth.fund_purchase", customer_id="NOBODY-KNOWS-ME"),
        "fund": "FUND0001",
        "amount": "abc",
        "units": 12.5,
        "tags": ["a", {"b": None}],
    }
    path = jsonl(tmp_path / "events.jsonl", raw)

    report = load_events(settings, path, cipher=cipher, progress=False)

    assert (report.loaded, report.rejected) == (1, 0)
    row = stored(settings)["w1"]
    assert row["type"] == "wealth.fund_purchase"
    assert row["amount"] is None  # typed columns are only for the known types
    assert json.loads(row["payload"]) == raw


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0.10", Decimal("0.10")),
        ("0.01", Decimal("0.01")),
        (0.1, Decimal("0.10")),
        ("12", Decimal("12.00")),
        (12, Decimal("12.00")),
        ("12.5", Decimal("12.50")),
        ("12.500", Decimal("12.50")),
        ("99999999.99", Decimal("99999999.99")),
        ("1234567890123456.78", Decimal("1234567890123456.78")),
    ],
)
def test_amounts_are_exact_decimals(
    settings: Settings, cipher: FieldCipher, tmp_path: Path, amount: Any, expected: Decimal
) -> None:
    path = jsonl(tmp_path / "events.jsonl", txn("t", amount))

    load_events(settings, path, cipher=cipher, progress=False)

    assert stored(settings)["t"]["amount"] == expected


def test_a_json_number_amount_is_read_from_its_text_not_a_float(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # 1234567890123456.78 has no exact binary float; 0.30000000000000001 is 0.3 as a float
    path = jsonl(
        tmp_path / "events.jsonl",
        '{"event_id":"big","type":"card.transaction","customer_id":"C","ts":"2026-03-01T10:00:00Z",'
        '"card_id":"K","amount":1234567890123456.78,"note":{"amount":1}}',
        '{"event_id":"tiny","type":"card.transaction","customer_id":"C","ts":"2026-03-01T10:00:00Z",'
        '"card_id":"K","amount":0.30000000000000001}',
    )

    report = load_events(settings, path, cipher=cipher, progress=False)

    assert stored(settings)["big"]["amount"] == Decimal("1234567890123456.78")
    assert [(line, reason) for line, reason, _ in rejects(report)] == [
        (2, "amount: must be a decimal > 0 with at most 2 decimals")
    ]


def test_personal_fields_are_never_stored_in_plain_text(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # given events carrying personal fields: one good (unknown type), one rejected
    personal = {
        "phone": "13812345678",
        "mobile": "13987654321",
        "name": "欧阳娜娜",
        "id_number": "37010219900101123X",
        "id_no": "370102199001011234",
        "id_card": "370102199001015678",
    }
    good = {**event("cb1", "service.callback_requested"), **personal, "topic": "账单"}
    bad = {**event("cb2", "service.callback_requested", ts="not a time"), **personal}
    path = jsonl(tmp_path / "events.jsonl", good, bad, event("plain"))

    report = load_events(settings, path, cipher=cipher, progress=False)

    # then the log holds blind indexes instead of the values
    assert (report.loaded, report.rejected) == (2, 1)
    payload = json.loads(stored(settings)["cb1"]["payload"])
    assert payload == {
        **event("cb1", "service.callback_requested"),
        "phone_bidx": cipher.blind_index("phone", "13812345678"),
        "mobile_bidx": cipher.blind_index("phone", "13987654321"),
        "name_bidx": cipher.blind_index("name", "欧阳娜娜"),
        "id_number_bidx": cipher.blind_index("id_number", "37010219900101123X"),
        "id_no_bidx": cipher.blind_index("id_number", "370102199001011234"),
        "id_card_bidx": cipher.blind_index("id_number", "370102199001015678"),
        "topic": "账单",
    }
    # an event without personal fields keeps its payload byte for byte
    assert stored(settings)["plain"]["payload"] == json.dumps(event("plain"))
    # and no file anywhere under the data home holds a value in plain text
    secrets = [v.encode() for v in personal.values()]
    for file in files_under(settings.home_dir):
        data = file.read_bytes()
        assert not any(s in data for s in secrets), file
    con = EventLog(settings).connect()
    text = con.execute(f"SELECT string_agg(payload, '') FROM {EventLog(settings).scan_sql()}").fetchone()
    con.close()
    assert text is not None
    assert not any(v in text[0] for v in personal.values())
    # the rejected line is in the rejects file, masked
    ((line, reason, raw),) = rejects(report)
    assert (line, reason) == (2, "ts: not an ISO 8601 date-time")
    assert "138****5678" in raw
    assert "欧***" in raw


def test_a_missing_file_a_directory_and_an_empty_file_are_refused(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    for path, message in [
        (tmp_path / "nope.jsonl", "no such file"),
        (tmp_path, "is a directory"),
        (empty, "the file is empty"),
    ]:
        with pytest.raises(InputRefused, match=message) as refused:
            load_events(settings, path, cipher=cipher, progress=False)
        assert str(path) in str(refused.value)
    assert not settings.home_dir.exists()


def test_a_file_of_blank_lines_is_refused_and_nothing_is_loaded(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_text("\n  \n\n")

    with pytest.raises(InputRefused, match="only blank lines"):
        load_events(settings, path, cipher=cipher, progress=False)

    assert EventLog(settings).files() == []
    assert not files_under(settings.event_log_dir / "_staging")


def test_the_report_tells_bytes_time_and_rate(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    path = jsonl(tmp_path / "events.jsonl", *(event(f"e{i}") for i in range(50)))

    report = load_events(settings, path, cipher=cipher, progress=True)

    assert report.extra["bytes"] == path.stat().st_size
    assert report.extra["seconds"] > 0
    assert report.extra["events_per_s"] > 0
    assert report.finished_at is not None
    saved = json.loads((Path(report.load_dir) / "report.json").read_text(encoding="utf-8"))
    assert saved["loaded"] == 50
    assert datetime.fromisoformat(saved["finished_at"]).tzinfo == UTC


def test_ids_that_share_a_hash_are_still_told_apart(
    settings: Settings, cipher: FieldCipher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given every id hashing alike (as two ids among billions may): only comparing the ids tells them apart
    monkeypatch.setattr(finalize, "_ID_HASH", "0::UBIGINT")
    first = jsonl(
        tmp_path / "a.jsonl",
        event("a", customer_id="1"),
        event("b", customer_id="2"),
        event("a", customer_id="3"),
        event("c", customer_id="4", ts="2026-04-02T10:00:00+08:00"),
        event("b", customer_id="5"),
    )
    second = jsonl(tmp_path / "b.jsonl", event("c", customer_id="6"), event("d", customer_id="7"))

    one = load_events(settings, first, cipher=cipher, progress=False, batch_lines=2)
    two = load_events(settings, second, cipher=cipher, progress=False)

    # then the ids themselves decide: first occurrences kept, repeats dropped
    assert (one.loaded, one.duplicates, two.loaded, two.duplicates) == (3, 2, 1, 1)
    log = stored(settings)
    assert {e: r["customer_id"] for e, r in log.items()} == {"a": "1", "b": "2", "c": "4", "d": "7"}
    assert log["c"]["month"] == "2026-04"
