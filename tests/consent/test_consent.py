"""Consent per customer and purpose: history, the effective answer, and revocation taking effect at once in
the segment engines (DuckDB snapshot, PostgreSQL store, in-memory evaluation) and in `allowed()`."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.consent import service as consent
from omnibank.consent.models import ConsentRecord
from omnibank.db import unit_of_work, versions
from omnibank.errors import AppError, NotFound
from omnibank.segments.engine import customer_facts, parse_in
from omnibank.segments.expr import evaluate
from tests.conftest import ON_POSTGRES
from tests.segments.bank import load_bank

AS_OF = "2026-03-01"
CONSENTING = "marketing_consent = true"  # C01, C02, C03, C05 by the customer file; C04 says false


@pytest.fixture
def bank(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)


def count(cli, expression: str = CONSENTING, *engine: str) -> int:
    r = cli("segment", "count", expression, "--as-of", AS_OF, *engine)
    assert r.exit_code == 0, r.stderr
    return int(r.last_line)


def test_revoking_marketing_drops_the_segment_count_at_once(cli, bank) -> None:
    assert count(cli) == 4  # the snapshot is built here
    r = cli("consent", "revoke", "C01", "marketing", "--channel", "app", "--evidence", "FORM-123")
    assert r.exit_code == 0, r.stderr
    assert "C01: marketing consent revoked via app" in r.stdout
    assert count(cli) == 3
    assert count(cli, "marketing_consent = false") == 2


def test_granting_overrides_a_customer_file_that_says_no(cli, bank) -> None:
    assert count(cli) == 4
    assert cli("consent", "grant", "C04", "marketing", "--channel", "branch").exit_code == 0
    assert count(cli) == 5


def test_consent_of_other_purposes_leaves_marketing_alone(cli, bank) -> None:
    assert count(cli) == 4
    assert cli("consent", "revoke", "C01", "profiling", "--channel", "web").exit_code == 0
    assert count(cli) == 4


@pytest.mark.skipif(not ON_POSTGRES, reason="the store engine needs PostgreSQL")
def test_the_postgres_engine_sees_revocation_at_once(cli, bank) -> None:
    assert count(cli, CONSENTING, "--engine", "postgres") == 4
    assert cli("consent", "revoke", "C02", "marketing", "--channel", "sms").exit_code == 0
    assert cli("consent", "grant", "C04", "marketing", "--channel", "sms").exit_code == 0
    assert cli("consent", "revoke", "C04", "marketing", "--channel", "sms").exit_code == 0
    assert count(cli, CONSENTING, "--engine", "postgres") == 3


def test_in_memory_evaluation_uses_the_effective_consent(env, bank) -> None:
    with unit_of_work() as s:
        consent.revoke(s, "C01", purpose="marketing", channel="app", actor="t")
        consent.grant(s, "C04", purpose="marketing", channel="app", actor="t")
    with unit_of_work() as s:
        expr = parse_in(s, CONSENTING)
        facts = customer_facts(s, env.settings, ["C01", "C02", "C04"])
    got = {cid: evaluate(expr, f, date(2026, 3, 1)) for cid, f in facts.items()}
    assert got == {"C01": False, "C02": True, "C04": True}


def test_history_is_kept_and_the_latest_record_is_the_answer(cli, bank) -> None:
    for verb in ("revoke", "grant", "revoke"):
        assert cli("consent", verb, "C02", "marketing", "--channel", "wechat").exit_code == 0
    assert (
        cli("consent", "grant", "C02", "data_sharing", "--channel", "branch", "--evidence", "F-9").exit_code
        == 0
    )
    with unit_of_work() as s:
        records = consent.history(s, "C02")
        assert [(r.purpose, r.granted) for r in records] == [
            ("marketing", False), ("marketing", True), ("marketing", False), ("data_sharing", True),
        ]  # fmt: skip
        assert all(r.at.tzinfo is not None for r in records)
        assert consent.allowed(s, "C02", "marketing") is False
        assert consent.allowed(s, "C02", "data_sharing") is True
    r = cli("consent", "show", "C02")
    assert r.exit_code == 0, r.stderr
    assert r.last_line == "4 records"
    assert "F-9" in r.stdout


def test_without_a_record_marketing_follows_the_customer_file_and_the_rest_their_defaults(env, bank) -> None:
    with unit_of_work() as s:
        assert consent.allowed(s, "C01", "marketing") is True
        assert consent.allowed(s, "C04", "marketing") is False
        assert consent.allowed(s, "C01", "profiling") is True
        assert consent.allowed(s, "C01", "data_sharing") is False
        assert consent.allowed_many(s, ["C01", "C04", "NOPE"], "marketing") == {
            "C01": True, "C04": False, "NOPE": False,
        }  # fmt: skip


def test_revoked_lists_the_customers_whose_latest_record_is_a_revocation(env, bank) -> None:
    with unit_of_work() as s:
        consent.revoke(s, "C01", purpose="marketing", channel="app", actor="t")
        consent.revoke(s, "C02", purpose="marketing", channel="app", actor="t")
        consent.grant(s, "C02", purpose="marketing", channel="app", actor="t")  # changed their mind
        consent.revoke(s, "C03", purpose="profiling", channel="app", actor="t")
    with unit_of_work() as s:
        assert consent.revoked(s, "marketing") == {"C01"}
        assert consent.revoked(s, "profiling") == {"C03"}
        assert consent.revoked(s, "marketing", ["C02", "C03"]) == set()
        assert consent.allowed(s, "C03", "profiling") is False


def test_grant_and_revoke_are_audited_and_bump_the_consent_version(env, bank) -> None:
    with unit_of_work() as s:
        before = versions.current(s)["consent"]
        consent.grant(s, "C04", purpose="marketing", channel="phone", evidence="CALL-77", actor="cli:alice")
        consent.revoke(s, "C04", purpose="marketing", channel="phone", actor="cli:alice")
    with unit_of_work() as s:
        assert versions.current(s)["consent"] == before + 2
        entries = list(
            s.scalars(select(AuditEntry).where(AuditEntry.action.like("consent.%")).order_by(AuditEntry.id))
        )
    assert [(e.action, e.actor, e.subject_id) for e in entries] == [
        ("consent.grant", "cli:alice", "C04"), ("consent.revoke", "cli:alice", "C04"),
    ]  # fmt: skip
    assert json.loads(entries[0].detail)["evidence"] == "CALL-77"


def test_evidence_never_keeps_a_phone_or_id_number(env, bank) -> None:
    with unit_of_work() as s:
        rec = consent.grant(
            s, "C01", purpose="marketing", channel="phone", evidence="call 13812345678", actor="t"
        )
        assert rec.evidence == "call 138****5678"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("grant", "C01", "spam", "--channel", "app"), "purpose: 'spam' is not one of marketing, profiling"),
        (("revoke", "C01", "marketing", "--channel", "fax"), "channel: 'fax' is not one of app, wechat"),
        (("grant", "C999", "marketing", "--channel", "app"), "no customer C999"),
        (("show", "C999"), "no customer C999"),
    ],
)
def test_bad_input_is_a_clear_error_and_records_nothing(cli, bank, args, message) -> None:
    r = cli("consent", *args)
    assert r.exit_code == 1
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    with unit_of_work() as s:
        assert s.scalars(select(ConsentRecord)).first() is None


def test_service_errors_are_app_errors(env, bank) -> None:
    with unit_of_work() as s:
        with pytest.raises(AppError, match="purpose"):
            consent.allowed(s, "C01", "everything")
        with pytest.raises(NotFound):
            consent.allowed(s, "C999", "marketing")
        with pytest.raises(AppError, match="evidence: at most 200"):
            consent.grant(s, "C01", purpose="marketing", channel="app", evidence="x" * 201, actor="t")


def test_a_merged_away_customer_is_refused_with_the_survivor_named(cli, bank) -> None:
    assert cli("customer", "merge", "C02", "C01").exit_code == 0
    r = cli("consent", "revoke", "C02", "marketing", "--channel", "app")
    assert r.exit_code == 1
    assert "C02 was merged into C01: record consent for C01" in r.stderr
