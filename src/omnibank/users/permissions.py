"""Who may do what: the permissions (also the scopes an API token can carry) and each role's set."""

from __future__ import annotations

SCOPES: dict[str, str] = {
    "customers:read": "search, list, count and view customers (masked)",
    "customers:reveal": "reveal one personal field of a customer, with a reason (audited)",
    "segments:read": "count, preview and export segments",
    "segments:write": "save segments",
    "events:write": "send events",
    "campaigns:read": "validate and simulate campaigns",
    "campaigns:write": "start and stop campaigns",
    "benefits:read": "the benefit catalogue and stock",
    "coupons:write": "issue, claim and redeem coupons",
    "points:read": "points balances",
    "points:write": "redeem points",
    "leads:write": "record the follow-up of leads (contacted, won, lost)",
    "invites:write": "issue, revoke and rotate staff invite codes",
    "tickets:write": "open service desk tickets, answer, move and assign them",
    "audit:read": "the audit trail",
    "users:write": "create staff accounts",
}

_CUSTOMER_FACING = frozenset(
    {
        "customers:read",
        "benefits:read",
        "coupons:write",
        "points:read",
        "points:write",
        "leads:write",
        "tickets:write",
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "campaign_manager": _CUSTOMER_FACING
    | {"segments:read", "segments:write", "events:write", "campaigns:read", "campaigns:write"}
    | {"invites:write"},
    "branch_manager": _CUSTOMER_FACING | {"customers:reveal", "segments:read", "campaigns:read"},
    "rm": _CUSTOMER_FACING | {"segments:read"},
    "service_agent": _CUSTOMER_FACING,
    # a supplier sees its own benefits and redeems its own coupons; no customer data
    "supplier": frozenset({"benefits:read", "coupons:write"}),
    "auditor": frozenset({"audit:read"}),
}

#: Roles that see every customer of the bank; the others see their org's subtree (or none).
WHOLE_BANK_ROLES = frozenset({"admin", "campaign_manager"})
NO_CUSTOMER_ROLES = frozenset({"supplier", "auditor"})
