"""Checkpoints of the audit trail kept off the data volume: written by `omnibank audit checkpoint --out FILE`
and, on a schedule, by a running server or worker (a file and/or a webhook); never inside the data home;
`audit verify --checkpoint FILE` refuses a line that is not the platform's."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from omnibank import config
from omnibank.audit import service as audit
from omnibank.db import ensure_schema, get_engine
from tests.audit.test_audit_attacks import reveals


def test_a_checkpoint_is_a_signed_line_appended_outside_the_data_home(cli, env, tmp_path: Path) -> None:
    inside = cli("audit", "checkpoint", "--out", str(env.home / "checkpoints.jsonl"))
    assert inside.exit_code == 1 and "inside the data home" in inside.stderr
    empty = cli("audit", "checkpoint", "--out", str(tmp_path / "cp.jsonl"))
    assert empty.exit_code == 0 and "empty" in empty.stdout and not (tmp_path / "cp.jsonl").exists()
    reveals(2)
    path = tmp_path / "off-volume" / "cp.jsonl"
    assert cli("audit", "checkpoint", "--out", str(path)).exit_code == 0
    (line,) = path.read_text().splitlines()
    checkpoint = json.loads(line)
    assert checkpoint["kind"] == "omnibank-audit-checkpoint/1" and checkpoint["seq"] == 2
    assert set(checkpoint) == {"kind", "seq", "head", "at", "prev", "mac"}
    assert path.stat().st_mode & 0o777 == 0o600
    r = cli("audit", "verify", "--checkpoint", str(path))
    assert r.exit_code == 0, r.stderr
    assert "1 checkpoints matched" in r.stdout


def test_a_checkpoint_line_that_is_not_the_platforms_is_refused(cli, tmp_path: Path) -> None:
    reveals(2)
    path = tmp_path / "cp.jsonl"
    assert cli("audit", "checkpoint", "--out", str(path)).exit_code == 0
    forged = json.loads(path.read_text())
    forged["seq"] = 1  # someone shortens what the checkpoint says, to hide a cut
    path.write_text(path.read_text() + json.dumps(forged) + "\nnot json\n")
    r = cli("audit", "verify", "--checkpoint", str(path))
    assert r.exit_code == 1
    assert f"{path} line 2 does not verify with the audit key" in r.stderr
    assert f"{path} line 3 is not an audit checkpoint" in r.stderr
    missing = cli("audit", "verify", "--checkpoint", str(tmp_path / "nowhere.jsonl"))
    assert missing.exit_code == 1 and "cannot be read" in missing.stderr


def test_a_checkpoint_place_inside_the_data_home_is_refused(cli, env, monkeypatch) -> None:
    monkeypatch.setenv("OMNIBANK_AUDIT_CHECKPOINT_PATH", str(env.home / "audit" / "cp.jsonl"))
    config.reset_settings()
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "OMNIBANK_AUDIT_CHECKPOINT_PATH" in r.stderr and "inside the data home" in r.stderr
    monkeypatch.setenv("OMNIBANK_AUDIT_CHECKPOINT_PATH", "/elsewhere/cp.jsonl")
    monkeypatch.setenv("OMNIBANK_AUDIT_CHECKPOINT_URL", "ftp://audit.bank/cp")
    config.reset_settings()
    r = cli("audit", "verify")
    assert r.exit_code == 1 and "OMNIBANK_AUDIT_CHECKPOINT_URL" in r.stderr


class _Receiver(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        _Receiver.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> object:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_running_server_exports_checkpoints_to_a_file_and_a_webhook(
    cli, env, tmp_path: Path, receiver: HTTPServer, monkeypatch
) -> None:
    path = tmp_path / "vault" / "audit.jsonl"
    monkeypatch.setenv("OMNIBANK_AUDIT_CHECKPOINT_PATH", str(path))
    monkeypatch.setenv("OMNIBANK_AUDIT_CHECKPOINT_URL", f"http://127.0.0.1:{receiver.server_port}/cp")
    monkeypatch.setenv("OMNIBANK_AUDIT_CHECKPOINT_SECONDS", "1")
    config.reset_settings()
    settings = config.get_settings()
    ensure_schema(settings)
    reveals(2)
    engine = get_engine(settings)
    chainer = audit.start_chainer(engine, interval=0.05, settings=settings)
    try:
        deadline = time.monotonic() + 20
        while not (path.exists() and _Receiver.received):
            assert time.monotonic() < deadline, "no checkpoint was exported"
            time.sleep(0.05)
        reveals(1, first=3)
        while len(path.read_text().splitlines()) < 2:  # the next turn, a second later, exports the new head
            assert time.monotonic() < deadline, "the second checkpoint was not exported"
            time.sleep(0.05)
    finally:
        audit.stop_chainer(engine)
    assert not chainer._thread.is_alive()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [c["seq"] for c in lines] == [2, 3]  # a turn with nothing new exports nothing
    assert json.loads(_Receiver.received[0]) == lines[0]
    r = cli("audit", "verify", "--checkpoint", str(path))
    assert r.exit_code == 0, r.stderr
    assert "2 checkpoints matched" in r.stdout
