"""Data rights: export everything held on one customer, and erase one by crypto-shredding while the
ledgers keep the customer number."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from sqlalchemy import select, text

from omnibank.audit import service as audit
from omnibank.audit.models import AuditEntry
from omnibank.benefits import ledger
from omnibank.benefits.models import PointsPosting
from omnibank.consent import service as consent
from omnibank.consent.models import ConsentRecord
from omnibank.customers.models import Customer, CustomerIdentifier
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.security import get_cipher
from tests.benefits.helpers import NOW
from tests.factories import customers_csv
from tests.segments.bank import CUSTOMERS, load_bank


def test_export_holds_the_customers_own_data_in_clear_and_is_audited(cli, env, tmp_path: Path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    with unit_of_work() as s:
        ledger.earn(s, customer_id="C01", amount=300, key="evt:x", now=NOW, reference="points.earned")
    assert (
        cli("consent", "revoke", "C01", "marketing", "--channel", "app", "--evidence", "FORM-1").exit_code
        == 0
    )
    out = tmp_path / "out" / "C01.json"
    r = cli("customer", "export", "C01", "--reason", "客户申请", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["customer_id"] == "C01"
    assert data["profile"]["name"] == CUSTOMERS[0]["name"]
    assert data["profile"]["phone"] == "13800000001"
    assert data["profile"]["id_number"] == CUSTOMERS[0]["id_number"]
    assert data["profile"]["aum"] == "49999.99"
    assert "name_enc" not in data["profile"] and "phone_bidx" not in data["profile"]
    assert data["consent"]["now"]["marketing"] is False
    assert [(c["purpose"], c["granted"], c["evidence"]) for c in data["consent"]["history"]] == [
        ("marketing", False, "FORM-1")
    ]
    assert data["points"]["balance"] == 300
    assert [p["amount"] for p in data["points"]["postings"]] == [300]
    assert [e["event_id"] for e in data["events"]] == ["e2", "e3", "e1"]  # oldest first
    with unit_of_work() as s:
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "customer.export"))
    assert (entry.subject_id, entry.reason) == ("C01", "客户申请")
    assert "13800000001" not in entry.detail


def test_export_needs_a_reason_and_a_known_customer(cli, env, tmp_path: Path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    r = cli("customer", "export", "C01", "--reason", " ", "--out", str(tmp_path / "x.json"))
    assert r.exit_code == 1 and "--reason is required" in r.stderr
    r = cli("customer", "export", "C999", "--reason", "req", "--out", str(tmp_path / "x.json"))
    assert r.exit_code == 1 and "no customer C999" in r.stderr
    assert not (tmp_path / "x.json").exists()


def _personal(s, customer_id: str) -> tuple:
    return s.execute(
        text(
            "SELECT name_enc, phone_enc, id_number_enc, phone_bidx, id_number_bidx, fingerprint "
            "FROM customers WHERE customer_id = :c"
        ),
        {"c": customer_id},
    ).one()


def _ledgers(s) -> tuple:
    postings = [
        (p.id, p.customer_id, p.kind, p.amount)
        for p in s.scalars(select(PointsPosting).order_by(PointsPosting.id))
    ]
    consents = [
        (c.id, c.customer_id, c.granted) for c in s.scalars(select(ConsentRecord).order_by(ConsentRecord.id))
    ]
    return postings, consents, ledger.balance(s, "C03")


def test_erase_destroys_ciphertexts_and_blind_indexes_and_keeps_the_ledgers(cli, env, tmp_path: Path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    with unit_of_work() as s:
        ledger.earn(s, customer_id="C03", amount=800, key="evt:c3", now=NOW, reference="points.earned")
    assert cli("consent", "grant", "C03", "profiling", "--channel", "branch").exit_code == 0
    assert cli("customer", "find", "--phone", "13800000003").exit_code == 0
    assert cli("segment", "count", "aum >= 0", "--as-of", "2026-03-01").last_line == "5"
    with unit_of_work() as s:
        before = _personal(s, "C03")
        ledgers_before = _ledgers(s)
        audit_before = s.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id)).all()
        assert s.scalars(select(CustomerIdentifier).where(CustomerIdentifier.customer_id == "C03")).all()

    r = cli("customer", "erase", "C03", "--reason", "客户申请注销 REQ-7")
    assert r.exit_code == 0, r.stderr
    assert "erased C03" in r.stdout

    with unit_of_work() as s:
        # nothing of the old ciphertexts, blind indexes or keyed fingerprint is left anywhere in the table
        rows = s.execute(
            text(
                "SELECT name_enc, phone_enc, id_number_enc, phone_bidx, id_number_bidx, fingerprint "
                "FROM customers"
            )
        ).all()
        held = {bytes(v) if isinstance(v, bytes | memoryview) else v for row in rows for v in row}
        assert not {bytes(v) if isinstance(v, memoryview) else v for v in before} & held
        name_enc, phone_enc, id_enc, phone_bidx, id_bidx, _ = _personal(s, "C03")
        assert (bytes(name_enc), bytes(phone_enc), bytes(id_enc), phone_bidx, id_bidx) == (
            b"",
            b"",
            b"",
            "",
            "",
        )
        customer = s.get(Customer, "C03")
        assert customer is not None and customer.erased_at is not None
        assert str(customer.birth_date) == "1900-01-01"
        assert not s.scalars(select(CustomerIdentifier).where(CustomerIdentifier.customer_id == "C03")).all()
        # the ledgers and the audit trail are untouched and still name C03
        assert _ledgers(s) == ledgers_before
        assert (
            s.execute(
                select(AuditEntry.id, AuditEntry.hash)
                .where(AuditEntry.id <= audit_before[-1][0])
                .order_by(AuditEntry.id)
            ).all()
            == audit_before
        )
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "customer.erase"))
        assert (entry.subject_id, entry.reason) == ("C03", "客户申请注销 REQ-7")
        assert audit.verify(s).intact

    # other customers still decrypt; C03 is neither found, shown, exported nor targeted
    cipher = get_cipher()
    with unit_of_work() as s:
        c1 = s.get(Customer, "C01")
        assert c1 is not None
        assert cipher.decrypt(c1.phone_enc, context="customers.phone:C01") == "13800000001"
    found = cli("customer", "find", "--phone", "13800000003")
    assert found.exit_code == 1 and "no customer matches" in found.stdout
    found = cli("customer", "find", "--id-number", CUSTOMERS[2]["id_number"])
    assert found.exit_code == 1
    shown = cli("customer", "show", "C03")
    assert shown.exit_code == 1
    assert "customer C03 was erased on" in shown.stderr
    r = cli("customer", "export", "C03", "--reason", "again", "--out", str(tmp_path / "c3.json"))
    assert r.exit_code == 1 and "was erased" in r.stderr
    assert cli("segment", "count", "aum >= 0", "--as-of", "2026-03-01").last_line == "4"
    assert cli("points", "balance", "C03").last_line == "C03: 800 points"
    with unit_of_work() as s:  # consent granted before erasure no longer lets anyone use the data
        assert consent.allowed(s, "C03", "profiling") is False
        assert consent.allowed(s, "C03", "marketing") is False
    again = cli("customer", "erase", "C03", "--reason", "twice")
    assert again.exit_code == 1 and "already erased" in again.stderr


def test_reloading_the_customer_file_does_not_bring_an_erased_customer_back(cli, env, tmp_path: Path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    assert cli("customer", "erase", "C02", "--reason", "request").exit_code == 0
    report = load_file("customers", customers_csv(tmp_path / "again.csv", CUSTOMERS), settings=env.settings,
                       progress=False)  # fmt: skip
    assert report.rejected == 1
    with unit_of_work() as s:
        assert bytes(_personal(s, "C02")[1]) == b""
    assert cli("customer", "find", "--phone", "13800000002").exit_code == 1


def test_erase_needs_a_reason_and_a_known_customer(cli, env, tmp_path: Path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    r = cli("customer", "erase", "C01", "--reason", "")
    assert r.exit_code == 1 and "--reason is required" in r.stderr
    r = cli("customer", "erase", "C999", "--reason", "x")
    assert r.exit_code == 1 and "no customer C999" in r.stderr
    with unit_of_work() as s:
        assert all(c.erased_at is None for c in s.scalars(select(Customer)))


def test_a_survivor_with_an_erased_merged_customer_still_shows(cli, env, tmp_path: Path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    assert cli("customer", "merge", "C02", "C01").exit_code == 0
    assert cli("customer", "erase", "C02", "--reason", "request").exit_code == 0
    shown = cli("customer", "show", "C01")
    assert shown.exit_code == 0, shown.stderr
    assert "merged from" in shown.stdout and "C02" in shown.stdout
    assert "138****0001" in shown.stdout and "138****0002" not in shown.stdout
