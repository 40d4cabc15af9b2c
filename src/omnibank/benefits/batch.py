"""Granting many items at once: :func:`grant_many`, with the outcome of :func:`~.granting.grant` each.

A live campaign issues a log file's grants (tens of thousands) and a journey a step's in one call; one
statement per item was most of a live run's time. Apart from ``granting.py`` because it is an optimisation
of that path, not a second meaning of a grant: when the batch cannot be issued whole it is rolled back and
every item goes through :func:`~.granting.grant` in order. Both take the one grant shape,
:class:`~omnibank.benefits.grant.Grant`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnibank.benefits import ledger
from omnibank.benefits.grant import Grant
from omnibank.benefits.granting import GrantResult, Refused, aware, default_windows, grant
from omnibank.benefits.models import Benefit, Coupon, CouponEvent, Supplier
from omnibank.benefits.schemas import CouponRead
from omnibank.config import get_settings


def grant_many(
    session: Session, grants: Sequence[Grant], *, tz: ZoneInfo | None = None, actor: str
) -> list[GrantResult]:
    """Issue many items, with the same outcome, item by item and in order, as :func:`grant` each.

    When every item can be issued (none granted before, benefits active and not points, stock and every
    budget enough for all of them), it is done in a few statements: stock and budgets taken in one
    conditional UPDATE each for the whole batch, coupons and their history inserted together, all inside
    one SAVEPOINT. Otherwise (or if anything refuses half-way) that savepoint is rolled back and each item
    goes through :func:`grant` in order, so refusals fall on exactly the items they would one at a time."""
    zone = tz or get_settings().tz
    issued = _grant_all(session, grants, zone, actor) if grants else []
    if issued is not None:
        return issued
    return [
        grant(
            session,
            key=g.key,
            campaign=g.campaign,
            rule=g.rule,
            customer_id=g.customer_id,
            benefit_id=g.benefit_id,
            face_value_fen=g.face_value_fen,
            discount_rate=g.discount_rate,
            stage=g.stage,
            branch_id=g.branch_id,
            granted_at=g.granted_at,
            claim_by=g.claim_by,
            valid_from=g.valid_from,
            valid_to=g.valid_to,
            budgets=g.budgets,
            tz=zone,
            actor=actor,
        )
        for g in grants
    ]


def _grant_all(
    session: Session, grants: Sequence[Grant], zone: ZoneInfo, actor: str
) -> list[GrantResult] | None:
    """Every item of ``grants`` issued at once, or None (nothing written) when that cannot be."""
    keys = [r.key for r in grants]
    if len(set(keys)) != len(keys):
        return None
    for r in grants:
        for name in ("granted_at", "claim_by", "valid_from", "valid_to"):
            aware(name, getattr(r, name))
    for i in range(0, len(keys), 500):
        if session.execute(select(Coupon.id).where(Coupon.grant_key.in_(keys[i : i + 500])).limit(1)).first():
            return None
    wanted = {r.benefit_id for r in grants}
    benefits = {b.id: b for b in session.scalars(select(Benefit).where(Benefit.id.in_(wanted)))}
    if set(benefits) != wanted or any(b.status != "active" or b.type == "points" for b in benefits.values()):
        return None
    supplier_ids = {b.supplier_id for b in benefits.values() if b.supplier_id}
    statuses = session.execute(select(Supplier.status).where(Supplier.id.in_(supplier_ids))).scalars()
    if any(status == "suspended" for status in statuses):
        return None
    rows: list[dict[str, Any]] = []
    stock: dict[str, int] = {}
    budgets: dict[str, list[int]] = {}  # budget id → [items, face value]
    for r in grants:
        benefit = benefits[r.benefit_id]
        face = r.face_value_fen if r.face_value_fen is not None else benefit.face_value_fen
        if face < 0:
            return None
        start = r.valid_from or r.granted_at
        claim_by, valid_to = default_windows(
            benefit.claim_days, benefit.valid_days, r.granted_at, start, r.claim_by, r.valid_to, zone
        )
        rows.append(
            {
                "grant_key": r.key,
                "campaign": r.campaign,
                "rule": r.rule,
                "customer_id": r.customer_id,
                "benefit_id": r.benefit_id,
                "branch_id": r.branch_id,
                "face_value_fen": face,
                "discount_rate": r.discount_rate if r.discount_rate is not None else benefit.discount_rate,
                "stage": r.stage,
                "status": "granted",
                "granted_at": r.granted_at,
                "claim_by": claim_by,
                "valid_from": start,
                "valid_to": valid_to,
                "status_at": r.granted_at,
            }
        )
        if benefit.stock_tracked:
            stock[r.benefit_id] = stock.get(r.benefit_id, 0) + 1
        for budget_id in {b.id for b in r.budgets}:
            used = budgets.setdefault(budget_id, [0, 0])
            used[0] += 1
            used[1] += face
    defined: set[str] = set()
    try:
        with session.begin_nested():
            ids = list(
                session.scalars(insert(Coupon).returning(Coupon.id, sort_by_parameter_order=True), rows)
            )
            session.execute(
                insert(CouponEvent),
                [
                    {
                        "coupon_id": coupon_id,
                        "action": "grant",
                        "from_status": None,
                        "to_status": "granted",
                        "at": row["granted_at"],
                        "actor": actor,
                        "detail": json.dumps({"key": row["grant_key"]}, ensure_ascii=False),
                    }
                    for coupon_id, row in zip(ids, rows, strict=True)
                ],
            )
            # the shared rows last (in a fixed order): their locks are held from here to the commit, so
            # batches of other transactions (a live campaign's runs side by side) wait only that long
            for benefit_id, n in sorted(stock.items()):
                if not ledger.take_stock(session, benefit_id, n):
                    raise Refused("out_of_stock")
            for budget_id, (n, money) in sorted(budgets.items()):
                taken = ledger.take_budget(session, budget_id, face_value_fen=money, n=n)
                if taken is False:
                    raise Refused(f"budget_exhausted:{budget_id}")
                if taken:
                    defined.add(budget_id)
    except (Refused, IntegrityError):
        return None
    return [
        GrantResult(
            "granted",
            CouponRead(id=coupon_id, **row),
            budgets=tuple(sorted({b.id for b in r.budgets} & defined)),
        )
        for coupon_id, row, r in zip(ids, rows, grants, strict=True)
    ]
