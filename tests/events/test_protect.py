"""No personal data in the immutable event log (issue 13, item 6).

Attacks: a card number as ``card_id``, custom fields holding phones (``phone_number``, nested
``contact.phone``), free text holding a mobile number, a resident ID number and a Luhn-valid card number,
events sent through the platform's own ingest, a log written before the protection; then every byte of the
log and every table of the store is read for them. And what must keep working: the same card gives the same
token and binds the same customer, ``customer show`` masks the card, numbers that are not personal data stay.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select, text

from omnibank.customers.models import CustomerIdentifier
from omnibank.db import get_engine, unit_of_work
from omnibank.db.base import Base
from omnibank.errors import ConfigError
from omnibank.events.emit import emit
from omnibank.events.loader import load_events
from omnibank.events.log import COLUMNS, EventLog
from omnibank.models import import_all_models
from omnibank.security import get_cipher
from tests.conftest import write
from tests.events.helpers import event, jsonl, stored
from tests.factories import ORGS, STAFF, customer_row, customers_csv, id_number

if TYPE_CHECKING:
    from omnibank.events.protect import Protector


def protector() -> Protector:
    """The data home's protector (imported here: the attacks below run on a release without it too)."""
    from omnibank.events.protect import Protector

    return Protector(get_cipher())


REGISTRY = Path(__file__).resolve().parents[2] / "examples" / "events" / "registry.yaml"

CARD = "6225880012345678"  # the card: not Luhn-valid, a card all the same because it is a card_id
MASKED = "6225********5678"
LUHN_CARD = "6225880012345675"  # Luhn-valid: found in free text
VISA = "4111111111111111"
PHONE_FIELD = "13912345678"  # phone_number
NESTED_PHONE = "13712345678"  # contact.phone
TEXT_PHONE = "15800001111"  # in a note
LIST_PHONE = "18600002222"  # in a list inside an object
ID_NUMBER = id_number("110105", "19491231", "002")  # valid check digit
CUSTOMER_PHONE = "13812345678"
PLAINTEXTS = [CARD, LUHN_CARD, VISA, PHONE_FIELD, NESTED_PHONE, TEXT_PHONE, LIST_PHONE, ID_NUMBER]


@pytest.fixture
def bank(cli, tmp_path: Path) -> None:
    assert cli("load", "orgs", str(write(tmp_path / "orgs.csv", ORGS))).exit_code == 0
    assert cli("load", "staff", str(write(tmp_path / "staff.csv", STAFF))).exit_code == 0
    rows = [customer_row("C000001", phone=CUSTOMER_PHONE), customer_row("C000002", phone="13900001111")]
    assert cli("load", "customers", str(customers_csv(tmp_path / "customers.csv", rows))).exit_code == 0


def attack_events() -> list[dict[str, Any]]:
    return [
        event(
            "i1",
            "card.issued",
            customer_id="C000001",
            card_id=CARD,
            product="luckin_cobrand",
            tier="gold",
            primary=True,
            new_customer=True,
        ),
        # the same card again, without customer_id: found through the card
        event("t1", "card.transaction", customer_id=None, card_id=CARD, amount="35.00", merchant="瑞幸咖啡"),
        event(
            "n1",
            "service.callback_requested",
            customer_id="C000001",
            phone_number=PHONE_FIELD,
            contact={"phone": NESTED_PHONE, "name": "王小明", "others": [{"tel": LIST_PHONE}]},
            note=f"客户来电{TEXT_PHONE}, 身份证{ID_NUMBER}, 卡号 {LUHN_CARD}; card {VISA[:4]} {VISA[4:8]} "
            f"{VISA[8:12]} {VISA[12:]}",
        ),
        # an unknown type with a number that is a phone, and a card number as a JSON number
        event("n2", "cs.survey", customer_id="C000002", callback=int(TEXT_PHONE), card_no=int(LUHN_CARD)),
    ]


def _store_values() -> list[str]:
    import_all_models()
    values: list[str] = []
    with get_engine().connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for v in row:
                    if v is not None:
                        values.append(v.decode("utf-8", "ignore") if isinstance(v, bytes) else str(v))
    return values


def _sqlite_values(path: Path) -> list[str]:
    out: list[str] = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                out += [v.decode("utf-8", "ignore") if isinstance(v, bytes) else str(v) for v in row if v]
    finally:
        conn.close()
    return out


def assert_nowhere(home: Path, secrets: list[str]) -> None:
    """No secret in any file under the home (raw bytes, and every value of every Parquet file and SQLite
    table decoded), nor in any table of the store."""
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        data = path.read_bytes()
        values: list[str] = []
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            values = [str(v) for col in table.columns for v in col.to_pylist() if v is not None]
        elif path.suffix == ".db":
            values = _sqlite_values(path)
        for s in secrets:
            assert s.encode() not in data, f"{s} in plaintext in {path}"
            assert not any(s in v for v in values), f"{s} in {path}"
    for v in _store_values():
        for s in secrets:
            assert s not in v, f"{s} in the store: {v[:200]}"


def test_no_card_number_phone_or_id_number_is_stored_in_plaintext(
    cli, env, bank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given events with a card number, custom phone fields (nested too) and free text full of personal data
    path = jsonl(tmp_path / "events.jsonl", *attack_events())

    # when they are loaded (the bank's registry declares its custom fields)
    use_registry(monkeypatch, REGISTRY)
    result = cli("load", "events", str(path))

    # then everything loads, and neither the log nor the store holds any of it in plaintext
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.last_line.startswith("loaded 4, rejected 0")
    assert_nowhere(env.home, PLAINTEXTS)
    log = stored(env.settings)
    p = protector()
    assert log["i1"]["card_id"] == log["t1"]["card_id"] == p.card_token(CARD)
    note = json.loads(log["n1"]["payload"])
    # declared fields: their blind index (a phone's is the customers' phone index)
    assert note["phone_number_bidx"] == get_cipher().blind_index("phone", PHONE_FIELD)
    assert note["contact"]["phone_bidx"] == get_cipher().blind_index("phone", NESTED_PHONE)
    assert "name" not in note["contact"] and "王小明" not in log["n1"]["payload"]
    # undeclared ones and free text: each personal number replaced by its token, the rest kept
    assert note["contact"]["others"] == [{"tel": p.token("phone", LIST_PHONE)}]
    assert note["note"] == (
        f"客户来电{p.token('phone', TEXT_PHONE)}, 身份证{p.token('id_number', ID_NUMBER)}, "
        f"卡号 {p.token('card', LUHN_CARD)}; card {p.token('card', VISA)}"
    )
    survey = json.loads(log["n2"]["payload"])
    assert survey["callback"] == p.token("phone", TEXT_PHONE)
    assert survey["card_no"] == p.token("card", LUHN_CARD)
    assert EventLog(env.settings).unprotected_files() == []


def test_without_a_registry_the_scan_still_replaces_every_personal_number(
    cli, env, bank, tmp_path: Path
) -> None:
    result = cli("load", "events", str(jsonl(tmp_path / "events.jsonl", *attack_events())))

    assert result.last_line.startswith("loaded 4, rejected 0")
    assert_nowhere(env.home, [p for p in PLAINTEXTS])
    note = json.loads(stored(env.settings)["n1"]["payload"])
    assert note["phone_number"] == protector().token("phone", PHONE_FIELD)


def test_the_same_card_is_one_token_one_customer_and_shows_masked(cli, env, bank, tmp_path: Path) -> None:
    # given a card issued to C000001, then used in events that do not name their customer
    first = jsonl(tmp_path / "a.jsonl", *attack_events()[:2])
    assert cli("load", "events", str(first)).last_line.startswith("loaded 2, rejected 0")
    later = jsonl(
        tmp_path / "b.jsonl",
        event("t2", "card.transaction", customer_id=None, card_id=CARD, amount="12.00"),
        event("t3", "card.transaction", customer_id=None, card_id=" 6225 8800 1234 5678 ", amount="1.00"),
    )
    assert cli("load", "events", str(later)).last_line.startswith("loaded 2, rejected 0")

    # then every event has the same token and the card's customer
    log = stored(env.settings)
    token = protector().card_token(CARD)
    assert {log[e]["card_id"] for e in ("i1", "t1", "t2", "t3")} == {token}
    assert {log[e]["customer_id"] for e in ("i1", "t1", "t2", "t3")} == {"C000001"}
    # the store binds the token, with the number encrypted beside it
    with unit_of_work() as s:
        (card,) = s.scalars(select(CustomerIdentifier).where(CustomerIdentifier.kind == "card_id"))
        assert (card.value, card.customer_id) == (token, "C000001")
        assert card.value_enc and CARD.encode() not in card.value_enc
    # and the customer 360 shows the card masked, in the identifiers and the events alike
    shown = cli("customer", "show", "C000001")
    assert shown.exit_code == 0
    assert shown.stdout.count(MASKED) >= 3 and CARD not in shown.stdout and "⟨card" not in shown.stdout


def test_numbers_that_are_not_personal_data_are_kept(env, tmp_path: Path) -> None:
    # given amounts, order numbers that fail Luhn, timestamps, IDs that fail their check digit
    bad_id = ID_NUMBER[:-1] + ("1" if ID_NUMBER[-1] != "1" else "2")
    fields = {
        "amount": "13800138000.00",
        "order_no": "6225880012345670",
        "sku": "ORD13800138000",
        "created_ms": 1772330400000,
        "stamp": "20260301101500123",
        "not_an_id": bad_id,
        "ratio": "0.13800138000",
        "hex": "ab13800138000cd",
        "long_run": "13800138000123456789012",
    }
    line = (
        json.dumps(event("x1", "shop.order", customer_id="C1", **fields))[:-1] + ', "total": 13800138000.50}'
    )
    path = jsonl(tmp_path / "e.jsonl", line)

    load_events(env.settings, path, cipher=get_cipher(), progress=False)

    payload = stored(env.settings)["x1"]["payload"]
    assert json.loads(payload, parse_float=Decimal) == {
        **event("x1", "shop.order", customer_id="C1"),
        **fields,
        "total": Decimal("13800138000.50"),
    }
    assert "⟨" not in payload


def test_the_scan_recognises_the_written_forms(env) -> None:
    from omnibank.events.protect import card_number, mobile_number

    p = protector()
    phone = p.token("phone", "13800138000")
    for written in ("13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "+8613800138000"):
        assert p.scan_text(f"电话:{written}。") == f"电话:{phone}。", written
    assert p.scan_text("13800138000.00 元") == "13800138000.00 元"
    assert mobile_number("12800138000") is None and mobile_number("8613800138000") == "13800138000"
    assert card_number(LUHN_CARD) and not card_number(CARD) and not card_number("1" + LUHN_CARD[1:])
    assert p.scan_text(f"{ID_NUMBER.lower()}") == p.token("id_number", ID_NUMBER)
    # the blind index is the cipher's: the customers' phone index finds the token's phone
    assert p.blind_index("phone", "13800138000") == get_cipher().blind_index("phone", "13800138000")


def test_events_sent_through_the_platforms_ingest_are_protected(env, bank) -> None:
    # the API's POST /events and the platform's own events go through emit()
    done = emit(env.settings, attack_events())
    assert (done.loaded, done.rejected) == (4, 0)
    assert_nowhere(env.home, PLAINTEXTS)


def test_the_registry_keeps_drops_or_tokenises_declared_fields(
    env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = write(
        tmp_path / "registry.yaml",
        """format: 1
types:
  kyc.checked:
    fields:
      holder.passport: {personal: other, store: token}
      holder.name: {personal: name, store: drop}
      holder.nickname: {personal: name}
      level: {}
""",
    )
    use_registry(monkeypatch, registry)
    path = jsonl(
        tmp_path / "e.jsonl",
        event(
            "k1", "kyc.checked", holder={"passport": "E12345678", "name": "李雷", "nickname": "雷雷"}, level=2
        ),
    )

    load_events(env.settings, path, cipher=get_cipher(), progress=False)

    p = protector()
    holder = json.loads(stored(env.settings)["k1"]["payload"])["holder"]
    assert holder == {
        "passport": p.token("other", "E12345678"),
        "nickname_bidx": get_cipher().blind_index("name", "雷雷"),
    }


@pytest.mark.parametrize(
    ("text_", "message"),
    [
        ("format: 1\ntypes:\n  card.issued:\n    fields: {x: {}}\n", "card.issued is built in"),
        ("format: 2\n", "format"),
        ("format: 1\ntypes:\n  a.b:\n    fields:\n      x: {personal: passport}\n", "personal"),
        ("format: 1\npersonal_everywhere:\n  event_id: {personal: other}\n", "event_id cannot be personal"),
        ("format: 1\ntypes:\n  Bad Type:\n    fields: {}\n", "not an event type"),
        ("format: [1\n", "not valid YAML"),
    ],
)
def test_a_bad_registry_is_refused_with_the_reason(text_: str, message: str) -> None:
    from omnibank.events.protect import Registry

    with pytest.raises(ConfigError, match="event registry x.yaml: .*" + message.split()[0]):
        Registry.parse(text_, source="x.yaml")


def test_erasure_leaves_nothing_readable_of_the_customer_in_the_log(cli, env, bank, tmp_path: Path) -> None:
    # given a customer whose card, phone and ID number appear in events (fields and free text)
    events = [
        *attack_events()[:3],
        event(
            "n3",
            "service.callback_requested",
            customer_id="C000001",
            phone=CUSTOMER_PHONE,
            note=f"回电 {CUSTOMER_PHONE}",
        ),
    ]
    assert cli("load", "events", str(jsonl(tmp_path / "e.jsonl", *events))).exit_code == 0

    # when the customer is erased
    erased = cli("customer", "erase", "C000001", "--reason", "客户申请 REQ-1")

    # then nothing of theirs is readable anywhere: what the log keeps of them are keyed tokens
    assert erased.exit_code == 0, erased.stdout + erased.stderr
    assert_nowhere(env.home, [*PLAINTEXTS, CUSTOMER_PHONE, customer_row()["id_number"], "张三丰"])
    with unit_of_work() as s:
        assert s.scalars(select(CustomerIdentifier)).all() == []  # the encrypted card went with it


# -- a log written before the protection ---------------------------------------------------------------------


def _legacy_log(env: Any) -> Path:
    """A log file as the loader wrote it before the protection: card numbers as given, free text kept, no
    protection mark; and the card bound in plaintext in the store."""
    lines = [
        {**e, "customer_id": e.get("customer_id") or "C000001"} for e in attack_events()[:3]
    ]  # the old loader resolved t1 to C000001
    rows = []
    for n, e in enumerate(lines, 1):
        rows.append(
            {
                "event_id": e["event_id"],
                "type": e["type"],
                "customer_id": e["customer_id"],
                "ts": pa.scalar(1772330400000000, pa.timestamp("us", tz="UTC")).as_py(),
                "local_date": pa.scalar(20513, pa.date32()).as_py(),
                "channel": None,
                "amount": Decimal("35.00") if e["type"] == "card.transaction" else None,
                "card_id": e.get("card_id"),
                "product": e.get("product"),
                "tier": e.get("tier"),
                "is_primary": e.get("primary"),
                "new_customer": e.get("new_customer"),
                "merchant": e.get("merchant"),
                "mcc": None,
                "points": None,
                "reward": None,
                "quantity": None,
                "product_id": None,
                "duration_s": None,
                "payload": json.dumps(e, ensure_ascii=False),
                "load_id": "20260301T000000Z-events-legacy",
                "line_no": n,
            }
        )
    kinds = {
        "VARCHAR": pa.string(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
        "DATE": pa.date32(),
        "DECIMAL(18,2)": pa.decimal128(18, 2),
        "BOOLEAN": pa.bool_(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
    }
    schema = pa.schema([(name, kinds[kind]) for name, kind in COLUMNS])
    path = env.settings.event_log_dir / "month=2026-03" / "20260301T000000Z-events-legacy-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema), path, compression="zstd")
    with unit_of_work() as s:
        s.execute(
            text(
                "INSERT INTO customer_identifiers (kind, value, customer_id, source, first_seen_at) "
                "VALUES ('card_id', :v, 'C000001', 'event:i1', :t)"
            ),
            {"v": CARD, "t": rows[0]["ts"]},
        )
    return path


def test_events_protect_rewrites_a_log_written_before_the_protection(cli, env, bank) -> None:
    # given a log and a store written by the earlier release: card numbers and free text as given
    legacy = _legacy_log(env)
    assert CARD in pq.read_table(legacy).column("card_id").to_pylist()
    assert cli("events", "protect", "--check").exit_code == 1
    # erasing now would leave the customer readable in the log: refused, nothing changed
    refused = cli("customer", "erase", "C000001", "--reason", "客户申请 REQ-1")
    assert refused.exit_code == 1 and "events protect" in refused.stdout + refused.stderr

    # when the log is protected
    done = cli("events", "protect")

    # then the file is replaced in place by its protected rows: same events, no plaintext anywhere
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "protected 1 log files (3 events" in done.stdout
    assert EventLog(env.settings).files() == [legacy]
    assert pq.read_schema(legacy).metadata[b"omnibank.protected"] == b"1"
    log = stored(env.settings)
    assert set(log) == {"i1", "t1", "n1"}
    token = protector().card_token(CARD)
    assert log["i1"]["card_id"] == log["t1"]["card_id"] == token
    assert_nowhere(env.home, PLAINTEXTS)
    # the store's binding became the token with the number encrypted: the card still shows masked
    assert MASKED in cli("customer", "show", "C000001").stdout
    # running it again changes nothing; new events of the same card find the same customer
    assert cli("events", "protect").stdout.startswith("protected 0 log files")
    assert cli("events", "protect", "--check").exit_code == 0
    more = jsonl(
        env.home.parent / "m.jsonl",
        event("t9", "card.transaction", customer_id=None, card_id=CARD, amount="5.00"),
    )
    assert cli("load", "events", str(more)).last_line.startswith("loaded 1, rejected 0")
    assert stored(env.settings)["t9"]["customer_id"] == "C000001"
    # and now an erasure leaves nothing readable
    assert cli("customer", "erase", "C000001", "--reason", "客户申请 REQ-1").exit_code == 0


def test_card_conditions_in_expressions_find_the_tokenised_card(cli, env, bank, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "e.jsonl", *attack_events()[:2])
    assert cli("load", "events", str(path)).exit_code == 0
    as_of = "--as-of", "2026-03-31"

    found = cli("segment", "count", f"events('card.transaction', 90, card_id = '{CARD}') > 0", *as_of)
    other = cli(
        "segment", "count", "events('card.transaction', 90, card_id IN ('6225000000000000')) > 0", *as_of
    )
    refused = cli("segment", "count", "events('card.transaction', 90, card_id LIKE '6225%') > 0", *as_of)

    assert found.exit_code == 0 and found.last_line.split()[0] == "1", found.stdout
    assert other.exit_code == 0 and other.last_line.split()[0] == "0", other.stdout
    assert refused.exit_code != 0 and "keyed tokens" in refused.stdout + refused.stderr


def use_registry(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Point the settings at a registry for the rest of the test."""
    from omnibank import config

    monkeypatch.setenv("OMNIBANK_EVENT_REGISTRY", str(path))
    config.reset_settings()
