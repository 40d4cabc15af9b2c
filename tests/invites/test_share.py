"""Share links (M4): making a link (one per staff member, target and channel; refusals), the landing URL,
click counting (once a minute per device) and the figures on a small worked example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused, NotFound
from omnibank.events.log import EventLog
from omnibank.invites import codes, share
from omnibank.invites.models import ShareClick, ShareLink
from omnibank.invites.share import Click
from omnibank.orgs.models import Staff
from omnibank.security import get_cipher
from omnibank.users import service as users
from tests.api.bank import Bank, build_bank
from tests.benefits.helpers import NOW
from tests.invites.share_helpers import BM_A, RM_A, RM_B, bind, issue_codes

SETTINGS = Settings(public_url="https://bank.example/", share_bank_url="https://m.bank.example")


@pytest.fixture
def bank(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bank:
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    built = build_bank(env.settings, tmp_path / "bank")
    issue_codes(built.settings)
    return built


def _make(settings: Settings, staff: str = RM_A, target: str = "benefit:voucher", channel: str = "wechat",
          now: datetime = NOW) -> ShareLink:  # fmt: skip
    kind, target_id = share.parse_target(target)
    with unit_of_work(settings) as session:
        link = share.make_link(session, staff_id=staff, kind=kind, target_id=target_id, channel=channel,
                               now=now, actor="test")  # fmt: skip
        session.expunge(link)
        return link


def test_asking_again_returns_the_same_link_and_counts_a_share(bank: Bank) -> None:
    first = _make(bank.settings)
    again = _make(bank.settings)
    other_channel = _make(bank.settings, channel="app")
    other_staff = _make(bank.settings, staff=RM_B)
    assert share.TOKEN_PATTERN.fullmatch(first.token)
    assert again.token == first.token and (first.shares, again.shares) == (1, 2)
    assert len({first.token, other_channel.token, other_staff.token}) == 3
    with unit_of_work(bank.settings) as session:
        assert session.scalar(select(ShareLink.shares).where(ShareLink.token == first.token)) == 2
        assert len(session.scalars(select(ShareLink)).all()) == 3


@pytest.mark.parametrize(
    ("staff", "target", "channel", "error", "says"),
    [
        ("E99999", "benefit:voucher", "wechat", NotFound, "no staff member E99999"),
        (RM_A, "benefit:nothing", "wechat", NotFound, "no benefit nothing"),
        (RM_A, "campaign:spring", "wechat", NotFound, "no campaign spring"),
        (RM_A, "benefit:voucher", "fax", InputRefused, "'fax' is not a channel"),
    ],
)
def test_refusals_name_what_is_wrong(bank: Bank, staff: str, target: str, channel: str,
                                     error: type[Exception], says: str) -> None:  # fmt: skip
    with pytest.raises(error, match=says):
        _make(bank.settings, staff=staff, target=target, channel=channel)


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("voucher", "is not KIND:ID"),
        ("coupon:voucher", "'coupon' is not a target kind; use one of product|campaign|benefit|scene|home"),
        ("scene:car loan", "'car loan' is not a target id"),
        ("scene:" + "x" * 65, "is not a target id"),
        ("product:", "'' is not a target id"),
    ],
)
def test_bad_targets_are_refused(target: str, says: str) -> None:
    with pytest.raises(InputRefused, match=says):
        share.parse_target(target)


def test_targets_parse() -> None:
    assert share.parse_target("scene:car_loan.2026-v2") == ("scene", "car_loan.2026-v2")
    assert share.parse_target("home") == ("home", share.HOME_ID)
    assert share.parse_target("Product:CARD_GOLD") == ("product", "CARD_GOLD")


def test_a_member_of_staff_who_left_or_has_no_live_code_gets_no_link(bank: Bank) -> None:
    with unit_of_work(bank.settings) as session:
        codes.revoke(session, RM_B, reason="test", now=NOW, actor="test")
        staff = session.get(Staff, BM_A)
        assert staff is not None
        staff.left_at = NOW
    with pytest.raises(InputRefused, match="E00002 has no live invite code.*omnibank invites issue"):
        _make(bank.settings, staff=RM_B)
    with pytest.raises(InputRefused, match="E00003 has left the bank"):
        _make(bank.settings, staff=BM_A)


def test_the_landing_carries_code_token_and_channel() -> None:
    url = share.landing_url(SETTINGS, kind="benefit", target_id="voucher", code="AB3K7X9", token="T" * 10,
                            channel="wechat")  # fmt: skip
    assert (
        url
        == "https://bank.example/c/benefits/voucher?invite_code=AB3K7X9&share_token=TTTTTTTTTT&channel=wechat"
    )
    bare = share.landing_url(SETTINGS, kind="scene", target_id="car_loan", code=None, token="T" * 10,
                             channel="app")  # fmt: skip
    assert bare == "https://m.bank.example/scenes/car_loan?share_token=TTTTTTTTTT&channel=app"
    custom = SETTINGS.model_copy(update={"share_landing": {"product": "https://p.example/x?from=s&id={id}"}})
    assert share.landing_url(custom, kind="product", target_id="gold", code="AB3K7X9", token="T" * 10,
                             channel="sms") == (
        "https://p.example/x?from=s&id=gold&invite_code=AB3K7X9&share_token=TTTTTTTTTT&channel=sms"
    )  # fmt: skip


@given(kind=st.sampled_from(["product", "campaign", "benefit", "scene", "home"]),
       target_id=st.from_regex(share.TARGET_ID, fullmatch=True),
       code=st.one_of(st.none(), st.text(codes.ALPHABET, min_size=7, max_size=7)))  # fmt: skip
def test_the_landing_query_reads_back(kind: str, target_id: str, code: str | None) -> None:
    url = share.landing_url(SETTINGS, kind=kind, target_id=target_id, code=code, token="abcDEF12-_",
                            channel="wecom")  # fmt: skip
    query = parse_qs(urlsplit(url).query)
    assert query.pop("invite_code", [None]) == [code]
    assert query == {"share_token": ["abcDEF12-_"], "channel": ["wecom"]}
    assert kind == "home" or target_id in urlsplit(url).path


def test_a_device_counts_once_a_minute_per_link(bank: Bank) -> None:
    link = _make(bank.settings)
    other = _make(bank.settings, channel="app")
    t0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)

    def click(token: str, device: str, seconds: float) -> Click:
        return Click(token, RM_A, "wechat", device, t0 + timedelta(seconds=seconds))

    with unit_of_work(bank.settings) as session:
        stored = share.store_clicks(session, [click(link.token, "d1", 0), click(link.token, "d1", 30),
                                              click(link.token, "d2", 30), click(other.token, "d1", 30),
                                              click(link.token, "d1", 59.9)])  # fmt: skip
        assert stored == 3
        # a later batch is checked against the clicks stored
        assert share.store_clicks(session, [click(link.token, "d1", 59.99)]) == 0
        assert share.store_clicks(session, [click(link.token, "d1", 60), click(link.token, "d1", 61)]) == 1
        assert share.store_clicks(session, [click("nosuchtoken", "d1", 0)]) == 0
        rows = session.execute(select(ShareClick.token, ShareClick.device, ShareClick.at)).all()
    assert sorted((t == link.token, d, at - t0) for t, d, at in rows) == [
        (False, "d1", timedelta(seconds=30)), (True, "d1", timedelta(0)), (True, "d1", timedelta(seconds=60)),
        (True, "d2", timedelta(seconds=30)),
    ]  # fmt: skip


def test_the_device_hash_is_keyed_and_hides_the_address(env) -> None:
    cipher = get_cipher(env.settings)
    a = share.device_of(user_agent="Mozilla/5.0 MicroMessenger", address="203.0.113.7", cipher=cipher)
    assert a == share.device_of(user_agent="Mozilla/5.0 MicroMessenger", address="203.0.113.7", cipher=cipher)
    assert a != share.device_of(user_agent="Mozilla/5.0 MicroMessenger", address="203.0.113.8", cipher=cipher)
    assert len(a) == 32 and "203" not in a


def test_stats_on_a_worked_example(bank: Bank) -> None:
    """RM A shares the voucher on WeChat and by SMS, RM B a scene. Three devices click A's WeChat link (one
    twice, a minute apart), one device A's SMS link; two customers bind through A's WeChat link, one of them
    gets a card after binding, the other had theirs before; one binds through B's link and gets a card."""
    s = bank.settings
    wechat, sms = _make(s), _make(s, channel="sms")
    _make(s)  # a second share of the WeChat link
    scene = _make(s, staff=RM_B, target="scene:car_loan")
    t0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    clicks = [Click(wechat.token, RM_A, "wechat", d, t0 + timedelta(seconds=sec))
              for d, sec in [("d1", 0), ("d1", 90), ("d2", 5), ("d3", 7)]]  # fmt: skip
    clicks += [Click(sms.token, RM_A, "sms", "d1", t0), Click(scene.token, RM_B, "wechat", "d9", t0)]
    with unit_of_work(s) as session:
        assert share.store_clicks(session, clicks) == 6
    bind(s, "CA1", RM_A, wechat.token, t0 + timedelta(hours=1))
    bind(s, "CA2", RM_A, wechat.token, t0 + timedelta(hours=2))
    bind(s, "CB1", RM_B, scene.token, t0 + timedelta(hours=1))
    bind(s, "CA3", RM_A, None, t0 + timedelta(hours=1))  # bound by the code alone: not through a link

    def card(event_id: str, customer: str, at: datetime) -> dict[str, object]:
        return {
            "event_id": event_id,
            "type": "card.issued",
            "customer_id": customer,
            "ts": at,
            "payload": "{}",
        }

    EventLog(s).append(
        [
            card("c1", "CA1", t0 + timedelta(days=1)),
            card("c2", "CA2", t0 - timedelta(days=1)),
            card("c3", "CB1", t0 + timedelta(hours=1)),
            card("c4", "CA3", t0 + timedelta(days=1)),
        ]
    )

    with unit_of_work(s) as session:
        by_staff = {r.staff_id: r for r in share.stats(session, s, by="staff")}
        by_target = {(r.target_kind, r.target_id): r for r in share.stats(session, s, by="target")}
        branch_b = share.stats(session, s, by="staff", org_id="B002")
        march_3 = datetime(2026, 3, 3, tzinfo=s.tz)
        before_card = share.stats(session, s, by="staff", staff_id=RM_A, until=march_3)
    a = by_staff[RM_A]
    assert (a.links, a.shares, a.clicks, a.unique_clickers, a.bindings, a.conversions) == (2, 3, 5, 3, 2, 1)
    assert a.conversion_rate == Decimal("0.3333")
    b = by_staff[RM_B]
    assert (b.shares, b.clicks, b.unique_clickers, b.bindings, b.conversions) == (1, 1, 1, 1, 1)
    assert b.conversion_rate == Decimal("1")
    voucher = by_target[("benefit", "voucher")]
    assert (voucher.clicks, voucher.unique_clickers, voucher.bindings, voucher.conversions) == (5, 3, 2, 1)
    assert [r.staff_id for r in branch_b] == [RM_B]
    # the card of CA1 was issued on 3 March (bank time): not before it
    assert (before_card[0].bindings, before_card[0].conversions) == (2, 0)


def test_stats_without_clicks_rate_zero_and_unknown_scope(bank: Bank) -> None:
    _make(bank.settings)
    with unit_of_work(bank.settings) as session:
        (row,) = share.stats(session, bank.settings, by="staff")
        assert (row.clicks, row.unique_clickers, row.conversion_rate) == (0, 0, Decimal("0"))
        with pytest.raises(NotFound, match="no org NOPE"):
            share.stats(session, bank.settings, org_id="NOPE")
