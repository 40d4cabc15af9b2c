"""Channel routing: rules in the expression language first, then the customer's preference, then the
fallback; unreachable channels dropped; equals ordered by cost; bad rules refused when the route is built."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from omnibank.contact.dnd import add_dnd
from omnibank.contact.policy import CHANNELS
from omnibank.contact.routing import Route, choose, reachable, reachable_many, route_from
from omnibank.db import unit_of_work
from omnibank.segments.expr import CustomerFacts
from tests.contact.helpers import MONDAY, load_bank

AS_OF = date(2026, 11, 30)
ALL = frozenset(CHANNELS)


def facts(**attrs: Any) -> CustomerFacts:
    base: dict[str, Any] = {
        "customer_id": "C01", "gender": "F", "birth_date": date(1980, 5, 17), "branch_id": "S0101",
        "rm_id": "E00001", "aum": Decimal("523000.00"), "occupation": "employee", "risk_tolerance": "C3",
        "channel_pref": "app", "marketing_consent": True, "registered_at": date(2015, 3, 2),
    }  # fmt: skip
    base.update(attrs)
    return CustomerFacts(attributes=base, tags=frozenset(attrs.pop("tags", ())), org_path="/HQ/B001/S0101/",
                         events=())  # fmt: skip


ROUTE = route_from({
    "rules": [
        {"when": "aum >= 1000000", "channel": ["human_call", "wecom"]},
        {"when": "age >= 60", "channel": "ai_call"},
    ],
    "fallback": ["app_push", ["wechat", "sms"]],
    "cost": {"sms": "0.05", "wechat": "0.01", "ai_call": "0.30", "human_call": "8.00", "wecom": "0.00"},
})  # fmt: skip


def test_matching_rules_come_first_then_preference_then_fallback() -> None:
    rich = facts(aum=Decimal("2000000"), channel_pref="sms")
    assert choose(ROUTE, rich, AS_OF, ALL) == ["wecom", "human_call", "sms", "app_push", "wechat"]
    elder = facts(birth_date=date(1950, 1, 1), channel_pref="branch")
    assert choose(ROUTE, elder, AS_OF, ALL) == ["ai_call", "branch_task", "app_push", "wechat", "sms"]
    plain = facts()
    assert choose(ROUTE, plain, AS_OF, ALL) == ["app_push", "wechat", "sms"]


def test_phone_preference_gives_both_call_channels_cheapest_first() -> None:
    assert choose(ROUTE, facts(channel_pref="phone"), AS_OF, ALL)[:2] == ["ai_call", "human_call"]
    costly_ai = route_from({"cost": {"ai_call": "9", "human_call": "1"}})
    assert choose(costly_ai, facts(channel_pref="phone"), AS_OF, ALL) == ["human_call", "ai_call"]


def test_unreachable_channels_are_dropped_and_preference_can_be_ignored() -> None:
    rich = facts(aum=Decimal("2000000"), channel_pref="sms")
    assert choose(ROUTE, rich, AS_OF, {"sms", "app_push"}) == ["sms", "app_push"]
    assert choose(ROUTE, rich, AS_OF, set()) == []
    no_pref = Route(fallback=["sms"], use_preference=False)
    assert choose(no_pref, facts(channel_pref="wechat"), AS_OF, ALL) == ["sms"]


def test_the_day_matters_for_age_rules() -> None:
    turning_60 = facts(birth_date=date(1966, 12, 1), channel_pref="sms")
    assert choose(ROUTE, turning_60, date(2026, 11, 30), ALL)[0] == "sms"
    assert choose(ROUTE, turning_60, date(2026, 12, 1), ALL)[0] == "ai_call"


def test_bad_routes_are_refused_naming_the_rule() -> None:
    with pytest.raises(ValidationError, match=r"rules\[2\]\.when"):
        route_from(
            {"rules": [{"when": "aum > 1", "channel": "sms"}, {"when": "salary > 1", "channel": "sms"}]}
        )
    with pytest.raises(ValidationError, match="fax"):
        route_from({"fallback": ["fax"]})
    with pytest.raises(ValidationError, match="cost of sms"):
        route_from({"cost": {"sms": "-1"}})
    with pytest.raises(ValidationError, match="at least one channel"):
        route_from({"rules": [{"when": "aum > 1", "channel": []}]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        route_from({"rulez": []})


def test_reachable_from_what_we_know() -> None:
    assert reachable(facts(channel_pref="sms", rm_id=None)) == {"sms", "ai_call", "human_call", "branch_task"}
    assert reachable(facts(channel_pref="sms"), identifiers={"wechat_openid", "app_user_id"}) == ALL
    assert "sms" not in reachable(facts(), dnd_channels={"sms"})
    assert reachable(facts(), dnd_channels={"all"}) == frozenset()


def test_reachable_many_reads_the_store(env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    with unit_of_work() as session:
        add_dnd(session, "C01", channel="sms", reason="投诉", actor="t", now=MONDAY)
        got = reachable_many(session, ["C01", "C02", "C404"], now=datetime(2026, 12, 1, tzinfo=MONDAY.tzinfo))
    assert got["C01"] == {"app_push", "ai_call", "human_call", "wecom", "branch_task"}  # app pref, has an RM
    assert got["C02"] == {"wechat", "sms", "ai_call", "human_call", "branch_task"}  # wechat pref, no RM
    assert got["C404"] == frozenset()
