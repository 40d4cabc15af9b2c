"""A small bank for the journey tests and helpers to run journeys over events written as real files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from omnibank.config import Settings
from omnibank.ingest.service import load_file
from omnibank.journeys.simulate import SimulationReport, simulate
from omnibank.journeys.spec import JourneySpec, load_journey, parse_journey
from tests.events.helpers import event, jsonl
from tests.factories import ORGS, customer_row, customers_csv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "journeys"

STAFF = """staff_id,org_id,name,role,phone
E00001,S0101,周慧敏,rm,13911112222
E00002,S0201,吴承恩,rm,13911113333
E00003,B001,郑和平,branch_manager,
E00008,B002,海瑞,branch_manager,
"""

# K1 (S0101, RM E00001, 46, consent), K2 (S0201, RM E00002, consent), K3 (S0102, no RM, no consent),
# S1 (S0101, 71, no RM, prefers the branch), S2 (S0201, 66, RM E00002, prefers the phone, AUM 86,000);
# the others hold AUM 523,000
CUSTOMERS = [
    customer_row("K1", name="张三丰", birth_date="1980-01-01", branch_id="S0101", rm_id="E00001",
                 phone="13800000001"),
    customer_row("K2", name="李四光", birth_date="1985-02-02", branch_id="S0201", rm_id="E00002",
                 phone="13800000002"),
    customer_row("K3", name="王五岳", birth_date="1990-03-03", branch_id="S0102", rm_id="",
                 phone="13800000003", marketing_consent="false"),
    customer_row("S1", name="赵六合", birth_date="1955-04-04", branch_id="S0101", rm_id="",
                 phone="13800000004", channel_pref="branch"),
    customer_row("S2", name="钱七星", birth_date="1960-05-05", branch_id="S0201", rm_id="E00002",
                 phone="13800000005", channel_pref="phone", aum="86000.00"),
]  # fmt: skip
PLAINTEXT = ["张三丰", "李四光", "王五岳", "赵六合", "钱七星"] + [f"1380000000{i}" for i in range(1, 6)]


def load_bank(settings: Settings, tmp: Path, customers: list[dict[str, str]] | None = None) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    customers_csv(tmp / "customers.csv", customers if customers is not None else CUSTOMERS)
    for kind in ("orgs", "staff", "customers"):
        report = load_file(kind, tmp / f"{kind}.csv", settings=settings, progress=False)
        assert report.rejected == 0, kind


def view(eid: str, customer: str, ts: str, product: str = "WM2026A01", seconds: float = 75) -> dict[str, Any]:
    return event(eid, "app.product_view", customer_id=customer, ts=ts, channel="app", product_id=product,
                 duration_s=seconds)  # fmt: skip


def card(eid: str, customer: str, ts: str) -> dict[str, Any]:
    return event(eid, "card.issued", customer_id=customer, ts=ts, card_id=f"6222{customer}",
                 product="standard_credit", tier="gold", primary=True, new_customer=False)  # fmt: skip


def spend(eid: str, customer: str, ts: str, amount: str = "30.00") -> dict[str, Any]:
    return event(eid, "card.transaction", customer_id=customer, ts=ts, card_id=f"6222{customer}",
                 amount=amount)  # fmt: skip


def login(eid: str, customer: str, ts: str) -> dict[str, Any]:
    return event(eid, "app.login", customer_id=customer, ts=ts, channel="app")


def lead_event(eid: str, customer: str, ts: str, action: str = "contacted", **fields: Any) -> dict[str, Any]:
    return event(eid, f"lead.{action}", customer_id=customer, ts=ts, **fields)


def journey(text: str) -> JourneySpec:
    return parse_journey(text)


def example(name: str) -> JourneySpec:
    return load_journey(EXAMPLES / f"{name}.yaml")


def run(
    settings: Settings, tmp: Path, events: list[dict[str, Any]], *specs: JourneySpec, **kw: Any
) -> tuple[list[dict[str, Any]], SimulationReport]:
    path = jsonl(tmp / f"events-{len(list(tmp.glob('events-*')))}.jsonl", *events)
    buf = io.BytesIO()
    report = simulate(list(specs), settings, events=path, out=buf, **kw)
    return [json.loads(line) for line in buf.getvalue().splitlines()], report


def of(actions: list[dict[str, Any]], action: str, **match: Any) -> list[dict[str, Any]]:
    return [a for a in actions if a["action"] == action and all(a.get(k) == v for k, v in match.items())]
