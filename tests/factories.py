"""Typed helpers that write contract files for tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from omnibank.customers.service import CUSTOMER_COLUMNS
from omnibank.kit.idcard import id_check_digit

ORGS = """org_id,parent_id,name,level
HQ,,衡水银行总行,hq
B001,HQ,衡水分行,branch
B002,HQ,石家庄分行,branch
S0101,B001,桃城支行,subbranch
S0102,B001,冀州支行,subbranch
S0201,B002,长安支行,subbranch
T010101,S0101,财富管理团队,team
"""

STAFF = """staff_id,org_id,name,role,phone
E00001,T010101,周慧敏,rm,13911112222
E00002,S0201,吴承恩,rm,13911113333
E00003,B001,郑和平,branch_manager,
"""


def id_number(region: str, birth: str, seq: str) -> str:
    first17 = f"{region}{birth}{seq}"
    return first17 + id_check_digit(first17)


def customer_row(
    customer_id: str = "C000001",
    *,
    name: str = "张三丰",
    gender: str = "M",
    birth_date: str = "1980-05-17",
    phone: str = "13812345678",
    id_no: str | None = None,
    branch_id: str = "S0101",
    rm_id: str = "E00001",
    aum: str = "523000.00",
    occupation: str = "employee",
    risk_tolerance: str = "C3",
    channel_pref: str = "app",
    marketing_consent: str = "true",
    registered_at: str = "2015-03-02",
) -> dict[str, str]:
    if id_no is None:
        birth = birth_date.replace("-", "")
        id_no = id_number("131102", birth if birth.isdigit() and len(birth) == 8 else "19800517", "123")
    return {
        "customer_id": customer_id,
        "name": name,
        "gender": gender,
        "birth_date": birth_date,
        "phone": phone,
        "id_number": id_no,
        "branch_id": branch_id,
        "rm_id": rm_id,
        "aum": aum,
        "occupation": occupation,
        "risk_tolerance": risk_tolerance,
        "channel_pref": channel_pref,
        "marketing_consent": marketing_consent,
        "registered_at": registered_at,
    }


def customers_csv(path: Path, rows: Iterable[dict[str, str]], *, header: list[str] | None = None) -> Path:
    cols = header or CUSTOMER_COLUMNS
    lines = [",".join(cols)] + [",".join(r.get(c, "") for c in cols) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
