"""A small bank for the API tests: two branches with an RM each, customers in both, a catalogue, and a user
for every role. The app's clock is fixed (and can move) so tokens and coupons expire when a test says."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from omnibank.app import create_app
from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.ingest.service import load_file
from omnibank.users import service as users
from tests.benefits.helpers import NOW, load, small_catalogue
from tests.factories import ORGS, customer_row, customers_csv

# HQ > B001 > S0101 > T010101; HQ > B001 > S0102; HQ > B002 > S0201
STAFF = """staff_id,org_id,name,role,phone
E00001,S0101,周慧敏,rm,13911112222
E00002,S0201,吴承恩,rm,13911113333
E00003,B001,郑和平,branch_manager,
E00004,HQ,王安石,admin,
E00005,HQ,李清照,campaign_manager,
E00006,S0102,苏东坡,service_agent,
E00007,HQ,包拯,teller,
E00008,B002,海瑞,branch_manager,
E00009,T010101,林则徐,rm,
"""
PASSWORD = "Correct-Horse-9-Battery"

# branch A (B001): A1 and A2 in RM A's sub-branch S0101 (A2 in its team), A3 in the other sub-branch S0102
# branch B (B002): B1 in S0201, B2 at the branch itself
CUSTOMERS = [
    customer_row(
        "CA1", name="张三丰", birth_date="1960-01-01", branch_id="S0101", rm_id="E00001", phone="13800000001"
    ),
    customer_row(
        "CA2",
        name="李四光",
        birth_date="1970-02-02",
        branch_id="T010101",
        rm_id="E00001",
        phone="13800000002",
    ),
    customer_row(
        "CA3", name="王五岳", birth_date="1980-03-03", branch_id="S0102", rm_id="", phone="13800000003"
    ),
    customer_row(
        "CB1", name="赵六合", birth_date="1990-04-04", branch_id="S0201", rm_id="E00002", phone="13800000004"
    ),
    customer_row(
        "CB2", name="钱七星", birth_date="1985-05-05", branch_id="B002", rm_id="", phone="13800000005"
    ),
]
BRANCH_A_RM = {"CA1", "CA2"}
ALL = {"CA1", "CA2", "CA3", "CB1", "CB2"}
USERS = {  # username: (role, staff, supplier)
    "rm_a": ("rm", "E00001", None),
    "rm_b": ("rm", "E00002", None),
    "rm_team": ("rm", "E00009", None),  # sits in team T010101, serves its sub-branch S0101
    "bm_a": ("branch_manager", "E00003", None),
    "admin": ("admin", "E00004", None),
    "cm": ("campaign_manager", "E00005", None),
    "agent": ("service_agent", "E00006", None),
    "auditor": ("auditor", "E00007", None),
    "acme_user": ("supplier", None, "acme"),
}


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@dataclass
class Bank:
    settings: Settings
    clock: Clock
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def login(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        r = self.client.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def auth(self, username: str) -> dict[str, str]:
        if username not in self.tokens:
            self.tokens[username] = self.login(username)["access_token"]
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def get(self, username: str, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers={**self.auth(username), **kw.pop("headers", {})}, **kw)

    def post(self, username: str, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers={**self.auth(username), **kw.pop("headers", {})}, **kw)


def build_bank(settings: Settings, tmp: Path, *, raise_server_exceptions: bool = True) -> Bank:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp / "staff.csv").write_text(STAFF, encoding="utf-8")
    customers_csv(tmp / "customers.csv", CUSTOMERS)
    for kind in ("orgs", "staff", "customers"):
        report = load_file(kind, tmp / f"{kind}.csv", settings=settings, progress=False)
        assert report.rejected == 0, kind
    load(small_catalogue(tmp, stock=50))
    with unit_of_work(settings) as session:
        for name, (role, staff, supplier) in USERS.items():
            users.create_user(
                session,
                role=role,
                password=PASSWORD,
                now=NOW,
                actor="test",
                staff_id=staff,
                supplier_id=supplier,
                username=name,
            )
    clock = Clock()
    app = create_app(settings, clock=clock)
    client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
    return Bank(settings=settings, clock=clock, client=client)
