"""POST /api/v1/assistant/ask: any caller who reads the catalogue may ask; asking for a customer needs
customers:read (403) and the customer in the caller's scope (404); the customer's coupons come from the ledger
with nothing personal in the answer, audited; bad input is refused with the field named; rate-limited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from omnibank.assistant import service
from omnibank.assistant.models import AssistantQuestion
from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank
from tests.benefits.helpers import NOW, grant_one
from tests.conftest import Env

URL = "/api/v1/assistant/ask"
PLAINTEXT = ("张三丰", "13800000001", "赵六合", "13800000004")


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _bank(env: Env, tmp_path: Path, **settings: object) -> Bank:
    return build_bank(
        env.settings.model_copy(update={"api_login_per_minute": 1000, **settings}), tmp_path / "b"
    )


@pytest.fixture
def bank(env: Env, tmp_path: Path) -> Iterator[Bank]:
    built = _bank(env, tmp_path)
    with built.client:
        yield built


def _rows(bank: Bank) -> list[AssistantQuestion]:
    with unit_of_work(bank.settings) as session:
        rows = list(session.scalars(select(AssistantQuestion).order_by(AssistantQuestion.id)))
        session.expunge_all()
    return rows


def _coupons(bank: Bank) -> dict[str, int]:
    """CA1: a voucher (饮品券) and an installment discount; CB1 (the other branch): a voucher."""
    ids = {}
    for key, customer, benefit in (
        ("a", "CA1", "voucher"),
        ("b", "CA1", "discount"),
        ("c", "CB1", "voucher"),
    ):
        result = grant_one(key, customer=customer, benefit=benefit)
        assert result.coupon is not None
        ids[f"{customer}:{benefit}"] = result.coupon.id
    return ids


def test_any_catalogue_reader_asks_and_gets_passages_with_sources(bank: Bank) -> None:
    for who in ("rm_a", "agent", "acme_user"):
        r = bank.post(who, URL, json={"question": "银行卡丢了怎么办", "top": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["answered"] and body["intent"] == "general" and body["coupons"] is None
        assert [p["source"] for p in body["passages"]][0] == "faq:cards.yaml#card-lost"
        assert len(body["passages"]) == 2 and body["passages"][0]["title"] == "银行卡丢了怎么办?"
    assert bank.post("auditor", URL, json={"question": "银行卡丢了怎么办"}).status_code == 403
    assert bank.client.post(URL, json={"question": "银行卡丢了怎么办"}).status_code == 401
    rows = _rows(bank)
    assert [r.actor for r in rows] == ["user:rm_a", "user:agent", "user:acme_user"]
    assert {r.channel for r in rows} == {"api"} and all(r.asked_at == NOW for r in rows)


def test_an_unanswerable_question_is_recorded_not_guessed(bank: Bank) -> None:
    r = bank.post("rm_a", URL, json={"question": "明天天气怎么样 我的手机13812345678"})
    body = r.json()
    assert r.status_code == 200 and not body["answered"] and body["passages"] == []
    assert body["note"] == service.NOT_HANDED_OFF and body["handed_off"] is False
    assert "13812345678" not in r.text and "138****5678" in body["question"]
    (row,) = _rows(bank)
    assert not row.answered and row.question == body["question"] and row.reason == service.NOT_HANDED_OFF


def test_an_unanswerable_question_for_a_customer_becomes_an_inquiry_ticket(bank: Bank) -> None:
    from omnibank.service.models import Ticket

    r = bank.post("rm_a", URL, json={"question": "明天天气怎么样", "customer_id": "CA1"})
    body = r.json()
    assert r.status_code == 200 and not body["answered"] and body["handed_off"] is True
    assert body["ticket_id"] and body["ticket_id"] in body["note"]
    with unit_of_work(bank.settings) as session:
        ticket = session.get(Ticket, body["ticket_id"])
        assert ticket is not None
        assert (ticket.kind, ticket.category, ticket.channel, ticket.customer_id, ticket.source) == (
            "inquiry",
            "faq",
            "assistant",
            "CA1",
            "assistant",
        )
        assert ticket.subject == "助手未能回答: 明天天气怎么样"
    (row,) = _rows(bank)
    assert row.handed_off and body["ticket_id"] in row.reason


def test_my_coupons_for_a_customer_come_from_the_ledger_masked_and_audited(bank: Bank) -> None:
    ids = _coupons(bank)
    r = bank.post("rm_a", URL, json={"question": "我的券还能用吗", "customer_id": "CA1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answered"] and body["intent"] == "my_coupons" and body["customer_id"] == "CA1"
    assert {c["coupon_id"] for c in body["coupons"]} == {ids["CA1:voucher"], ids["CA1:discount"]}
    assert all(c["usable"] and c["status"] == "granted" for c in body["coupons"])
    assert body["note"].startswith("您有2张券还能用") and "饮品券" in body["note"]
    assert not [p for p in PLAINTEXT if p in r.text]
    # a question naming a benefit the customer holds: that benefit's coupons only
    named = bank.post("rm_a", URL, json={"question": "我的饮品券过期了吗", "customer_id": "CA1"}).json()
    assert [c["coupon_id"] for c in named["coupons"]] == [ids["CA1:voucher"]]
    with unit_of_work(bank.settings) as session:
        audited = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "assistant.customer_coupons"))
        )
        assert [(a.actor, a.subject_id) for a in audited] == [("user:rm_a", "CA1")] * 2
    rows = _rows(bank)
    assert [(r.customer_id, r.intent, r.top_source) for r in rows] == [
        ("CA1", "my_coupons", "ledger:coupons")
    ] * 2


def test_asking_for_a_customer_needs_customers_read_and_the_customer_in_scope(bank: Bank) -> None:
    _coupons(bank)
    ask = {"question": "我的券还能用吗", "customer_id": "CA1"}
    other_branch = bank.post("rm_b", URL, json=ask)
    assert other_branch.status_code == 404 and other_branch.json()["code"] == "not_found"
    assert bank.post("rm_b", URL, json={**ask, "customer_id": "NOPE"}).status_code == 404
    supplier = bank.post("acme_user", URL, json=ask)
    assert supplier.status_code == 403 and supplier.json()["details"] == {"needs": "customers:read"}
    assert bank.post("auditor", URL, json=ask).status_code == 403
    assert _rows(bank) == []  # a refused question is not recorded
    assert bank.post("bm_a", URL, json=ask).json()["coupons"]  # the branch manager of CA1's branch
    assert bank.post("rm_b", URL, json={**ask, "customer_id": "CB1"}).json()["coupons"]


def test_my_coupons_without_a_customer_answers_in_general(bank: Bank) -> None:
    _coupons(bank)
    body = bank.post("rm_a", URL, json={"question": "我的券在哪里查看"}).json()
    assert body["intent"] == "my_coupons" and body["coupons"] is None and body["customer_id"] is None
    assert body["answered"] and body["passages"][0]["source"] == "faq:benefits.yaml#coupon-where"
    assert "ask for the customer" in body["note"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"question": ""}, "question"),
        ({"question": "   "}, "question"),
        ({"question": "问" * 301}, "question"),
        ({}, "question"),
        ({"question": "积分", "top": 0}, "top"),
        ({"question": "积分", "top": 11}, "top"),
        ({"question": "积分", "customer_id": "CA1; DROP"}, "customer_id"),
        ({"question": "积分", "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_refused_with_the_field_named(
    bank: Bank, payload: dict[str, object], field: str
) -> None:
    r = bank.post("rm_a", URL, json=payload)
    assert r.status_code == 422, r.text
    assert field in {str(part) for e in r.json()["details"] for part in e["loc"]}, r.text
    assert _rows(bank) == []


def test_asking_is_rate_limited_like_every_endpoint(env: Env, tmp_path: Path) -> None:
    built = _bank(env, tmp_path, api_rate_per_minute=3)
    with built.client:
        codes = [built.post("rm_a", URL, json={"question": "积分会过期吗"}).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
