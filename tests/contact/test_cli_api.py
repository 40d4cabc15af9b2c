"""`omnibank contact …` commands (do-not-disturb, outbox, dispatch; clear errors; Chinese text) and the
receipts endpoint a gateway calls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from omnibank import config
from omnibank.contact.dispatch import dispatch
from omnibank.contact.outbox import submit
from omnibank.contact.policy import CHANNELS
from omnibank.contact.views import get_message
from omnibank.db import unit_of_work
from omnibank.kit.console import out
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank
from tests.contact.helpers import load_bank, send


@pytest.fixture
def bank(env, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(out, "width", 240)  # tables unwrapped, as on a wide terminal
    load_bank(env.settings, tmp_path / "bank")


def now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------------------- CLI


def test_dnd_add_list_remove_from_the_command_line(cli, bank) -> None:
    r = cli(
        "contact",
        "dnd",
        "add",
        "C01",
        "--reason",
        "客户来电要求勿扰",
        "--channel",
        "sms",
        "--until",
        "2099-12-31",
    )
    assert r.exit_code == 0, r.stderr
    assert "C01: do-not-disturb on sms until 2100-01-01 00:00" in r.stdout
    r = cli("contact", "dnd", "list")
    assert r.exit_code == 0 and "客户来电要求勿扰" in r.stdout and "1 entry" in r.stdout
    r = cli("contact", "dnd", "remove", "C01")
    assert r.exit_code == 0 and "1 do-not-disturb entry removed" in r.stdout
    assert "0 entries" in cli("contact", "dnd", "list").stdout
    assert "1 entry" in cli("contact", "dnd", "list", "--history").stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("dnd", "add", "C404", "--reason", "x"), "no customer C404"),
        (
            ("dnd", "add", "C01", "--reason", "x", "--channel", "fax"),
            "channel: 'fax' is not one of all, app_push",
        ),
        (
            ("dnd", "add", "C01", "--reason", "x", "--until", "明天"),
            "--until: '明天' is not a date YYYY-MM-DD",
        ),
        (
            ("dnd", "add", "C01", "--reason", "x", "--until", "2020-01-01"),
            "until: 2020-01-02T00:00:00+08:00 is not after",
        ),
        (("dnd", "remove", "C02"), "C02 has no do-not-disturb to remove"),
        (("outbox", "--status", "sending"), "status: 'sending' is not one of queued, deferred"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(cli, bank, args, says) -> None:
    r = cli("contact", *args)
    assert r.exit_code == 1
    assert says in r.stderr and "Traceback" not in r.stderr


def test_outbox_and_dispatch_from_the_command_line(pinned_clock, cli, env, bank) -> None:
    t = now() - timedelta(minutes=5)
    with unit_of_work() as session:
        birthday = send("a", "C01", "app_push", "service", at=t, journey="生日关怀", step="祝福",
                        template="birthday", payload={"祝福": "生日快乐"})  # fmt: skip
        submit(session, env.settings, [birthday, send("b", "C07", "sms", at=t)], now=t)
    r = cli("contact", "outbox")
    assert r.exit_code == 0, r.stderr
    assert "生日关怀/祝福" in r.stdout and "no_consent" in r.stdout and "1 queued, 1 suppressed" in r.stdout
    assert "张三丰" not in r.stdout and "1380000" not in r.stdout  # no names, no phone numbers
    r = cli("contact", "dispatch")
    assert (
        r.exit_code == 0
        and "1 handed to channels; 1 delivered" in r.stdout
        and "1 receipt events" in r.stdout
    )
    r = cli("contact", "outbox", "--status", "delivered", "--journey", "生日关怀")
    assert "delivered" in r.stdout and "1 shown" in r.stdout
    assert "0 shown" in cli("contact", "outbox", "--customer", "C02").stdout


def test_a_bad_setting_is_reported_naming_the_variable(cli, env, monkeypatch) -> None:
    monkeypatch.setenv("OMNIBANK_QUIET_HOURS", "21:00~08:00")
    config.reset_settings()
    r = cli("contact", "outbox")
    assert r.exit_code == 1
    assert "OMNIBANK_QUIET_HOURS: quiet hours '21:00~08:00': write them as HH:MM-HH:MM" in r.stderr
    monkeypatch.setenv("OMNIBANK_QUIET_HOURS", "21:00-08:00")
    monkeypatch.setenv("OMNIBANK_CAP_WEEK", "-1")
    config.reset_settings()
    assert "OMNIBANK_CAP_WEEK" in cli("contact", "outbox").stderr


# ------------------------------------------------------------------------------------------------- API


@pytest.fixture
def api(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = env.settings.model_copy(update={"api_login_per_minute": 1000})
    built = build_bank(settings, tmp_path / "api-bank")
    with built.client:
        yield built


class Gateway:
    name = "held"

    def deliver(self, messages, *, now):  # type: ignore[no-untyped-def]
        from omnibank.contact.channels import Outcome

        return [Outcome(m.message_id, "sent", provider_ref=f"gw-{m.message_id}") for m in messages]


def test_receipts_endpoint_records_and_emits(api) -> None:
    at = api.clock.now
    with unit_of_work(api.settings) as session:
        [d] = submit(session, api.settings, [send("m1", "CA1", "sms", "service", at=at)], now=at)
    dispatch(api.settings, now=at, adapters=dict.fromkeys(CHANNELS, Gateway()))
    body = {"receipts": [
        {"message_id": d.message_id, "status": "delivered", "at": at.isoformat()},
        {"message_id": d.message_id, "status": "clicked", "at": (at + timedelta(minutes=2)).isoformat()},
        {"message_id": 987654, "status": "failed", "at": at.isoformat(), "reason": "号码停机"},
    ]}  # fmt: skip
    r = api.post("admin", "/api/v1/contact/receipts", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["recorded"], out["unchanged"], out["refused"]) == (2, 0, 1)
    assert out["results"][2]["detail"] == "no message 987654"
    again = api.post("admin", "/api/v1/contact/receipts", json=body).json()
    assert (again["recorded"], again["unchanged"]) == (0, 2)
    with unit_of_work(api.settings) as session:
        m = get_message(session, d.message_id)  # type: ignore[arg-type]
        assert (m.status, m.events_pending) == ("clicked", False)


def test_receipts_need_the_permission_and_valid_input(api) -> None:
    ok = {"receipts": [{"message_id": 1, "status": "delivered", "at": "2026-03-02T10:00:00+08:00"}]}
    assert api.post("rm_a", "/api/v1/contact/receipts", json=ok).status_code == 403
    assert api.client.post("/api/v1/contact/receipts", json=ok).status_code == 401
    naive = {"receipts": [{"message_id": 1, "status": "delivered", "at": "2026-03-02T10:00:00"}]}
    assert api.post("admin", "/api/v1/contact/receipts", json=naive).status_code == 422
    bad = {"receipts": [{"message_id": 1, "status": "bounced", "at": "2026-03-02T10:00:00+08:00"}]}
    assert api.post("admin", "/api/v1/contact/receipts", json=bad).status_code == 422
