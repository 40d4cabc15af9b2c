"""The demo bank's staff (managers, tellers, the contact centre, relationship and wealth managers) and the
relationship manager each customer is given.

Apart because staff are sized from the customers (about one relationship manager per 140, a contact centre
that grows with the base), so they are drawn after them, from their own stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np

from omnibank.demo.names import chinese_names, unique_phones
from omnibank.demo.orgs import CITIES, TEAM_KINDS, OrgTree
from omnibank.demo.people import AUM_LOG_SIGMA, AUM_MEDIAN_FEN, PRIVATE_BANKING_FEN, Customers
from omnibank.demo.sampling import S_STAFF, FloatArr, IntArr, stream
from omnibank.orgs.models import STAFF_ROLES

ROLES = STAFF_ROLES
_R = {role: i for i, role in enumerate(ROLES)}


@dataclass
class Staff:
    org: IntArr
    role: IntArr
    names: list[str]
    phone: IntArr

    @property
    def n(self) -> int:
        return len(self.org)


def _largest_remainder(total: int, weights: FloatArr, minimum: int = 0) -> IntArr:
    """Split ``total`` into integers proportional to ``weights``, each at least ``minimum``."""
    n = len(weights)
    base = np.full(n, minimum, dtype=np.int64)
    rest = total - minimum * n
    if rest <= 0 or n == 0:
        return base
    share = weights / weights.sum() * rest
    whole = np.floor(share).astype(np.int64)
    left = rest - int(whole.sum())
    order = np.argsort(-(share - whole), kind="stable")
    whole[order[:left]] += 1
    out: IntArr = base + whole
    return out


def build_staff(seed: int, start: date, tree: OrgTree, cust: Customers) -> Staff:
    rng = stream(seed, S_STAFF)
    n_cust = cust.n
    per_org = np.bincount(cust.home, minlength=len(tree.orgs)).astype(np.float64)
    per_city = np.bincount(cust.city, minlength=len(CITIES)).astype(np.float64)
    org: list[int] = []
    role: list[int] = []

    def add(o: int, r: str, k: int = 1) -> None:
        org.extend([o] * k)
        role.extend([_R[r]] * k)

    # HQ: campaign managers, admins and the central contact centre (half of service and telemarketing).
    service_total = int(np.clip(math.ceil(n_cust / 3_000), 4, 300))
    tele_total = int(np.clip(math.ceil(n_cust / 4_000), 3, 200))
    add(0, "admin", int(np.clip(2 + n_cust // 250_000, 2, 6)))
    add(0, "campaign_manager", int(np.clip(n_cust // 10_000, 2, 8)))
    add(0, "service_agent", service_total - service_total // 2)
    add(0, "telemarketer", tele_total - tele_total // 2)
    weights_city = per_city + 1.0
    service_city = _largest_remainder(service_total // 2, weights_city)
    tele_city = _largest_remainder(tele_total // 2, weights_city)

    # Relationship staff: at least one per team, about one per 140 customers, at most 3,000.
    team_list = [t for subs in tree.subbranches for s in subs for t in tree.teams[s]]
    team_weight = np.zeros(len(team_list))
    for k, t in enumerate(team_list):
        s = tree.orgs[t].parent
        b = tree.orgs[s].parent
        n_branch_teams = sum(len(tree.teams[x]) for x in tree.subbranches[tree.orgs[b].city])
        team_weight[k] = per_org[s] / len(tree.teams[s]) + per_org[b] / n_branch_teams + 1.0
    n_rel = int(np.clip(math.ceil(n_cust / 140), len(team_list), 3_000))
    rel_per_team = dict(zip(team_list, _largest_remainder(n_rel, team_weight, 1).tolist(), strict=True))

    for ci, b in enumerate(tree.branches):
        add(b, "branch_manager")
        add(b, "teller", int(np.clip(round(per_org[b] / 1_500), 1, 6)))  # the branch's own counter
        add(b, "service_agent", int(service_city[ci]))
        add(b, "telemarketer", int(tele_city[ci]))
        for s in tree.subbranches[ci]:
            add(s, "branch_manager")
            add(s, "teller", int(np.clip(round(per_org[s] / 1_500), 1, 12)))
            for t in tree.teams[s]:
                k = rel_per_team[t]
                wm_share = TEAM_KINDS[tree.orgs[t].team_kind][1]
                n_wm = int(round(k * wm_share))
                add(t, "rm", k - n_wm)
                add(t, "wealth_manager", n_wm)
    n = len(org)
    age = rng.integers(23, 58, n)
    male = rng.random(n) < 0.45
    names = chinese_names(rng, male, start.year - age)
    phone = unique_phones(rng, n, taken=cust.phone)
    return Staff(np.asarray(org, dtype=np.int64), np.asarray(role, dtype=np.int64), names, phone)


def assign_rms(seed: int, tree: OrgTree, cust: Customers, staff: Staff) -> IntArr:
    """~70% of customers get an RM from their home branch's subtree; wealthier ones more often, and the
    wealthy mostly a wealth manager."""
    rng = stream(seed, S_STAFF, 1)
    n_orgs = len(tree.orgs)
    is_rel = (staff.role == _R["rm"]) | (staff.role == _R["wealth_manager"])
    is_wm = staff.role == _R["wealth_manager"]
    # Subtree pools for every org a customer can belong to (branches and sub-branches).
    pools_all: list[IntArr] = [np.zeros(0, dtype=np.int64)] * n_orgs
    pools_wm: list[IntArr] = [np.zeros(0, dtype=np.int64)] * n_orgs
    team_of_sub: dict[int, list[int]] = tree.teams
    for ci, b in enumerate(tree.branches):
        branch_all: list[IntArr] = []
        branch_wm: list[IntArr] = []
        for s in tree.subbranches[ci]:
            in_sub = np.isin(staff.org, np.asarray(team_of_sub[s], dtype=np.int64))
            pools_all[s] = np.flatnonzero(in_sub & is_rel).astype(np.int64)
            pools_wm[s] = np.flatnonzero(in_sub & is_wm).astype(np.int64)
            branch_all.append(pools_all[s])
            branch_wm.append(pools_wm[s])
        pools_all[b] = np.concatenate(branch_all)
        pools_wm[b] = np.concatenate(branch_wm)

    def flat(pools: list[IntArr]) -> tuple[IntArr, IntArr, IntArr]:
        counts = np.array([len(p) for p in pools], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return np.concatenate(pools).astype(np.int64), offsets, counts

    all_flat, all_off, all_cnt = flat(pools_all)
    wm_flat, wm_off, wm_cnt = flat(pools_wm)
    n = cust.n
    z = (np.log(np.maximum(cust.aum_fen, 100)) - math.log(AUM_MEDIAN_FEN)) / AUM_LOG_SIGMA
    p_rm = 1.0 / (1.0 + np.exp(-(1.15 + 1.3 * z)))
    has_rm = (rng.random(n) < p_rm) | (cust.aum_fen >= PRIVATE_BANKING_FEN)
    want_wm = (cust.aum_fen >= 50_000_000) & (rng.random(n) < 0.85) & (wm_cnt[cust.home] > 0)
    u = rng.random(n)
    pick_all = all_flat[
        np.minimum(all_off[cust.home] + (u * all_cnt[cust.home]).astype(np.int64), len(all_flat) - 1)
    ]
    if len(wm_flat):
        pick_wm = wm_flat[
            np.minimum(wm_off[cust.home] + (u * wm_cnt[cust.home]).astype(np.int64), len(wm_flat) - 1)
        ]
    else:
        pick_wm = pick_all
    rm = np.where(want_wm, pick_wm, pick_all)
    out: IntArr = np.where(has_rm & (all_cnt[cust.home] > 0), rm, -1).astype(np.int64)
    return out
