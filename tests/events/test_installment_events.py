"""Bill installment events (issue 19): ``installment.offered`` and ``installment.accepted`` in the data
contract — typed columns when good, the row and the field named when bad, the same reading by the file
loader and by the typed append (emit)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from omnibank.config import Settings
from omnibank.events.columns import check
from omnibank.events.emit import emit
from omnibank.events.loader import load_events
from omnibank.events.protect import BUILT_IN_TYPES, Protector
from omnibank.events.reader import TYPE_FIELDS
from omnibank.kit.crypto import FieldCipher
from tests.events.helpers import event, jsonl, rejects, stored

CARD = "6222000012345678"


def offered(event_id: str, **fields: Any) -> dict[str, Any]:
    return event(event_id, "installment.offered", **{"card_id": CARD, "amount": "3280.50", "channel": "app",
                                                     **fields})  # fmt: skip


def accepted(event_id: str, **fields: Any) -> dict[str, Any]:
    return event(event_id, "installment.accepted", **{"card_id": CARD, "amount": "3280.50", "terms": 6,
                                                      **fields})  # fmt: skip


def test_good_installment_events_are_stored_with_their_typed_columns(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # given an offer and an acceptance, the amount once as a string and once as a JSON number
    path = jsonl(tmp_path / "e.jsonl", offered("o1"), accepted("a1", amount=1200, terms=12))

    # when loaded
    report = load_events(settings, path, cipher=cipher, progress=False)

    # then both are kept with amount, card token and terms (in the quantity column); the card in clear nowhere
    assert (report.loaded, report.rejected) == (2, 0)
    log = stored(settings)
    token = Protector(cipher).card_token(CARD)
    o1, a1 = log["o1"], log["a1"]
    assert (o1["amount"], o1["card_id"], o1["channel"], o1["quantity"]) == (
        Decimal("3280.50"),
        token,
        "app",
        None,
    )
    assert (a1["amount"], a1["card_id"], a1["quantity"]) == (Decimal("1200.00"), token, 12)
    assert json.loads(a1["payload"])["terms"] == 12
    assert all(CARD not in r["payload"] for r in log.values())


BAD: list[tuple[dict[str, Any], str]] = [
    (offered("b1", card_id=None), "card_id: missing"),
    (offered("b2", card_id="  "), "card_id: must be a non-empty string"),
    (offered("b3", amount=None), "amount: missing"),
    (offered("b4", amount="0"), "amount: must be a decimal > 0 with at most 2 decimals"),
    (offered("b5", amount="12.345"), "amount: must be a decimal > 0 with at most 2 decimals"),
    (offered("b6", amount="一千"), "amount: must be a decimal > 0 with at most 2 decimals"),
    (offered("b7", channel="ai_call"), "channel: must be one of "),
    (accepted("b8", terms=None), "terms: missing"),
    (accepted("b9", terms=0), "terms: must be an integer > 0"),
    (accepted("b10", terms="6"), "terms: must be an integer > 0"),
    (accepted("b11", terms=6.5), "terms: must be an integer > 0"),
    (accepted("b12", amount=-5), "amount: must be a decimal > 0 with at most 2 decimals"),
    (accepted("b13", card_id=None), "card_id: missing"),
]


def test_bad_rows_are_refused_naming_the_line_and_the_field(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    # given a file of good events around bad installment rows
    lines = [offered("g1"), *(row for row, _ in BAD), accepted("g2")]
    report = load_events(settings, jsonl(tmp_path / "e.jsonl", *lines), cipher=cipher, progress=False)

    # then only the good ones are kept; each bad line is refused with its line number and its field's reason
    assert (report.loaded, report.rejected) == (2, len(BAD))
    got = {line: reason for line, reason, _ in rejects(report)}
    assert sorted(got) == list(range(2, len(BAD) + 2))
    for line, (_, reason) in enumerate(BAD, start=2):
        assert got[line].startswith(reason), (line, got[line])
    assert set(stored(settings)) == {"g1", "g2"}


@pytest.mark.parametrize(("row", "reason"), BAD)
def test_the_python_reading_gives_the_loaders_reason(row: dict[str, Any], reason: str) -> None:
    from zoneinfo import ZoneInfo

    got = check(row, ZoneInfo("Asia/Shanghai"))
    assert isinstance(got, str)
    assert got.startswith(reason)


def test_emit_reads_installment_events_as_the_loader_does(
    settings: Settings, cipher: FieldCipher, tmp_path: Path
) -> None:
    rows = [offered("g1"), *(row for row, _ in BAD), accepted("g2", amount="99.9")]
    scratch = Settings(home=tmp_path / "loader", timezone=settings.timezone)
    report = load_events(scratch, jsonl(tmp_path / "e.jsonl", *rows), cipher=cipher, progress=False)
    done = emit(settings, rows, cipher=cipher)
    assert [(r.index + 1, r.reason) for r in done.rejects] == [(n, why) for n, why, _ in rejects(report)]
    typed = ("amount", "card_id", "quantity", "channel")
    assert {k: [r[c] for c in typed] for k, r in stored(settings).items()} == {
        k: [r[c] for c in typed] for k, r in stored(scratch).items()
    }


def test_the_types_are_known_everywhere_the_contract_is_read() -> None:
    assert {"installment.offered", "installment.accepted"} <= BUILT_IN_TYPES
    assert TYPE_FIELDS["installment.accepted"] == ("channel", "amount", "card_id", "quantity")
