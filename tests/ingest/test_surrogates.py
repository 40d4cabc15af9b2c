"""A lone surrogate — half a UTF-16 pair, "\\ud800" in JSON, or its bytes ED A0 80 — is not a character:
a line holding one is rejected with a reason, its neighbours load, and the rejects file stays UTF-8 with
personal fields masked; never a traceback."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.events.helpers import stored

GOOD = '{"event_id":"ok-1","type":"app.login","customer_id":"C000001","ts":"2026-03-01T10:00:00+08:00"}'
BASE = '"customer_id":"C000001","ts":"2026-03-01T10:00:00+08:00"'
LINES = [
    GOOD.encode(),
    ('{"event_id":"s-2","type":"card.transaction",' + BASE
     + ',"card_id":"6222000012345678","amount":"9.90","merchant":"\\ud800"}').encode(),
    ('{"event_id":"s-3","type":"branch.visit",' + BASE + ',"note":"\\udfff after"}').encode(),
    ('{"event_id":"s-4","type":"branch.visit",' + BASE + ',"name":"\\ud800\\u5f20\\u4e09"}').encode(),
    ('{"event_id":"s-5\\udc00","type":"app.login",' + BASE + "}").encode(),
    b'{"event_id":"s-6","type":"branch.visit",' + BASE.encode() + b',"note":"\xed\xa0\x80"}',
]  # fmt: skip


def test_lone_surrogates_in_an_events_file_reject_their_lines(cli, env, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    r = cli("load", "events", str(path))
    assert r.exit_code == 3, r.stderr
    assert "Traceback" not in r.stderr
    assert r.last_line.startswith("loaded 1, rejected 5, duplicates 0")
    rejects_path = Path(r.last_line.split("(rejects: ")[1].rstrip(")"))
    rejects_path.read_bytes().decode("utf-8")  # UTF-8, whatever the lines held
    with rejects_path.open(encoding="utf-8-sig", newline="") as fh:
        rejects = {int(row["line"]): row for row in csv.DictReader(fh)}
    assert {n: row["reason"] for n, row in rejects.items()} == {
        2: "not valid JSON",
        3: "not valid JSON",
        4: "not valid JSON",
        5: "not valid JSON",
        6: "not valid UTF-8",
    }
    assert "张三" not in rejects[4]["raw"]  # the name is masked, even beside half a character
    assert set(stored(env.settings)) == {"ok-1"}
