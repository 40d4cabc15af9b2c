"""Run a campaign over a handful of events written as a real events.jsonl, and read the grants back."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from omnibank.campaigns.simulate import SimulationReport, simulate
from omnibank.campaigns.spec import CampaignSpec, load_campaign
from omnibank.config import Settings
from tests.events.helpers import event, jsonl

LUCKIN = Path(__file__).resolve().parents[2] / "examples" / "campaigns" / "luckin_cobrand.yaml"


def card(eid: str, customer: str, ts: str, *, tier: str = "gold", primary: bool = True, new: bool = True,
         product: str = "luckin_cobrand") -> dict[str, Any]:  # fmt: skip
    return event(eid, "card.issued", customer_id=customer, ts=ts, card_id=f"6222{customer}", product=product,
                 tier=tier, primary=primary, new_customer=new)  # fmt: skip


def spend(eid: str, customer: str, ts: str, amount: str = "25.00") -> dict[str, Any]:
    fields = {"card_id": f"6222{customer}", "amount": amount, "merchant": "瑞幸咖啡"}
    return event(eid, "card.transaction", customer_id=customer, ts=ts, **fields)


def points(eid: str, customer: str, ts: str, n: int) -> dict[str, Any]:
    return event(eid, "points.earned", customer_id=customer, ts=ts, points=n)


def exchange(eid: str, customer: str, ts: str, quantity: int = 1) -> dict[str, Any]:
    return event(
        eid, "points.redeem", customer_id=customer, ts=ts, reward="luckin_voucher", quantity=quantity
    )


def run(
    settings: Settings, tmp: Path, events: list[dict[str, Any]], spec: CampaignSpec | None = None
) -> tuple[list[dict[str, Any]], SimulationReport]:
    path = jsonl(tmp / f"events-{len(list(tmp.glob('events-*')))}.jsonl", *events)
    buf = io.BytesIO()
    report = simulate(spec or load_campaign(LUCKIN), settings, events=path, out=buf)
    grants = [json.loads(line) for line in buf.getvalue().splitlines()]
    return grants, report


def of(grants: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [g for g in grants if g["rule"] == rule]
