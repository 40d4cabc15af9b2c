"""The points ledger: append-only postings with a direction and a positive amount, a balance changed in the
same transaction, redemptions never beyond the balance, corrections by reversal, and a verification."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from omnibank.audit.models import AuditEntry
from omnibank.benefits import ledger
from omnibank.benefits.ledger import InsufficientPoints
from omnibank.benefits.models import PointsPosting
from omnibank.db import unit_of_work
from omnibank.errors import AppError, Conflict
from tests.benefits.helpers import NOW


def test_earn_redeem_and_reverse_keep_the_balance_equal_to_the_postings(env) -> None:
    with unit_of_work() as session:
        earned = ledger.earn(
            session, customer_id="C1", amount=3000, key="evt:1", now=NOW, reference="points.earned"
        )
        ledger.spend(session, customer_id="C1", amount=1000, key="redeem:luckin:1", now=NOW)
        assert ledger.balance(session, "C1") == 2000
        # a reversal of the redemption gives the points back, referencing it; the original stays
        redemption = session.execute(select(PointsPosting).where(PointsPosting.kind == "redeem")).scalar_one()
        back = ledger.reverse(session, posting_id=redemption.id, now=NOW, reason="voucher not issued")
        assert (back.kind, back.direction, back.amount) == ("reverse", "credit", 1000)
        assert ledger.balance(session, "C1") == 3000
        ledger.expire(session, customer_id="C1", amount=500, key="expire:2026", now=NOW)
        assert ledger.balance(session, "C1") == 2500
        rows = [(p.kind, p.direction, p.amount, p.reverses_id) for p in ledger.postings(session, "C1")]
    assert rows == [
        ("expire", "debit", 500, None),
        ("reverse", "credit", 1000, redemption.id),
        ("redeem", "debit", 1000, None),
        ("earn", "credit", 3000, None),
    ]
    assert earned.duplicate is False


def test_a_posting_is_idempotent_by_its_key(env) -> None:
    with unit_of_work() as session:
        first = ledger.earn(session, customer_id="C1", amount=100, key="evt:1", now=NOW)
        again = ledger.earn(session, customer_id="C1", amount=100, key="evt:1", now=NOW)
        assert again.duplicate and again.posting_id == first.posting_id
        assert ledger.balance(session, "C1") == 100
        with pytest.raises(Conflict, match="was used for another posting"):
            ledger.earn(session, customer_id="C1", amount=999, key="evt:1", now=NOW)


def test_a_redemption_beyond_the_balance_is_refused_and_posts_nothing(env) -> None:
    with unit_of_work() as session:
        ledger.earn(session, customer_id="C1", amount=999, key="evt:1", now=NOW)
    with unit_of_work() as session, pytest.raises(InsufficientPoints, match="has 999 points; redeem of 1000"):
        ledger.spend(session, customer_id="C1", amount=1000, key="r:1", now=NOW)
    with unit_of_work() as session:
        assert ledger.balance(session, "C1") == 999
        assert session.scalar(select(func.count()).select_from(PointsPosting)) == 1
        # a customer with no balance row at all
        with pytest.raises(InsufficientPoints):
            ledger.spend(session, customer_id="C2", amount=1, key="r:2", now=NOW)
        for bad in (0, -5):
            with pytest.raises(AppError, match="whole number > 0"):
                ledger.earn(session, customer_id="C1", amount=bad, key=f"bad:{bad}", now=NOW)


def test_a_posting_is_reversed_once_and_a_reversal_is_not_reversed(env) -> None:
    with unit_of_work() as session:
        p = ledger.earn(session, customer_id="C1", amount=100, key="evt:1", now=NOW)
        r = ledger.reverse(session, posting_id=p.posting_id, now=NOW)
        assert ledger.reverse(session, posting_id=p.posting_id, now=NOW).duplicate
        assert ledger.balance(session, "C1") == 0
        with pytest.raises(AppError, match="is itself a reversal"):
            ledger.reverse(session, posting_id=r.posting_id, now=NOW)


def test_reversing_points_already_spent_is_refused(env) -> None:
    with unit_of_work() as session:
        p = ledger.earn(session, customer_id="C1", amount=100, key="evt:1", now=NOW)
        ledger.spend(session, customer_id="C1", amount=60, key="r:1", now=NOW)
        with pytest.raises(InsufficientPoints):
            ledger.reverse(session, posting_id=p.posting_id, now=NOW)
        assert ledger.balance(session, "C1") == 40


def test_postings_cannot_be_edited_into_nonsense(env) -> None:
    with pytest.raises(Exception, match="(?i)check"), unit_of_work() as session:
        session.execute(
            text(
                "INSERT INTO points_postings (customer_id, kind, direction, amount, reference,"
                " idempotency_key, created_at) VALUES ('C1', 'earn', 'debit', 5, '', 'x', '2026-01-01')"
            )
        )


def test_verify_finds_a_tampered_balance(cli, env) -> None:
    with unit_of_work() as session:
        ledger.earn(session, customer_id="C1", amount=100, key="a", now=NOW)
        ledger.earn(session, customer_id="C2", amount=50, key="b", now=NOW)
    ok = cli("points", "verify")
    assert ok.exit_code == 0 and "all 2 balances equal the sum of their postings" in ok.stdout
    with unit_of_work() as session:
        session.execute(text("UPDATE points_balances SET balance = 150 WHERE customer_id = 'C2'"))
        session.execute(text("DELETE FROM points_balances WHERE customer_id = 'C1'"))
    bad = cli("points", "verify")
    assert bad.exit_code == 1
    assert "C1: no balance row, postings sum to 100" in bad.stdout
    assert "C2: balance 150, postings sum to 50" in bad.stdout
    assert "2 of 2 balances differ" in bad.stdout


def test_the_cli_shows_a_balance_and_reverses_with_an_audit_entry(cli, env) -> None:
    with unit_of_work() as session:
        p = ledger.earn(
            session, customer_id="C000123", amount=2500, key="evt:9", now=NOW, reference="points.earned"
        )
    shown = cli("points", "balance", "C000123")
    assert shown.exit_code == 0 and shown.last_line == "C000123: 2,500 points"
    r = cli("points", "reverse", str(p.posting_id), "--reason", "duplicate feed")
    assert r.exit_code == 0 and "C000123: 0 points" in r.stdout
    assert "was reversed before" in cli("points", "reverse", str(p.posting_id), "--reason", "again").stdout
    assert cli("points", "balance", "C999").last_line == "C999: 0 points"
    with unit_of_work() as session:
        actions = list(session.scalars(select(AuditEntry.action)))
    assert actions == ["points.reverse"]
