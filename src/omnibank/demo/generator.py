"""Deterministic, streaming generator of a demo bank: organisation, staff, customers and a year of events.

The output follows the data contract (``orgs.csv``, ``staff.csv``, ``customers.csv``, ``events.jsonl``). The
bank is modelled on a Hebei city commercial bank (衡水银行): about a third of its retail customers are 60 or
older, wealth grows with age, older customers prefer the branch and the phone and are more conservative;
young white-collar customers take up the Luckin co-branded credit card and buy coffee with it.

Design:

* Determinism: every random draw comes from ``numpy.random.Generator(PCG64(...))`` seeded from
  ``SeedSequence(seed, spawn_key=...)`` with a fixed key per stream (organisation, customers, staff, cards,
  one per day of events). Nothing reads the clock or ``hash()``; the same arguments (and numpy version)
  give byte-identical files.
* Constant memory: per-customer state lives in numpy columns (O(customers)); events are produced one day at
  a time, vectorised over customers, sorted by timestamp and written with one ``write`` per day.
* Per-customer event rates are fixed for the run; each day draws the day's total count from a Poisson law
  and spreads it over customers in proportion to their rates (a binary search in the cumulative rates),
  then drops draws that are not possible that day (a card not issued yet). That is exactly a thinned
  Poisson process per customer, at a cost proportional to the day's events rather than to the customers.
  Calendar effects (weekdays, Spring Festival, 618 / Double 11) scale a day's totals.
* Volume: coffee (1-5 a week per Luckin cardholder), monthly points and card issues keep their natural
  rates; logins, product views and everyday card spending are scaled so that the expected total is
  ``events_per_customer * days / 365`` per customer.

The jobs live apart (issue 21), each drawing from its own stream so none shifts another's draws:
:mod:`~omnibank.demo.sampling` (the seeded streams and the vectorised draws), :mod:`~omnibank.demo.names`
(Chinese names, mobile numbers), :mod:`~omnibank.demo.orgs` (the org tree), :mod:`~omnibank.demo.people`
(the customers), :mod:`~omnibank.demo.staff` (staff and relationship managers), :mod:`~omnibank.demo.rates`
(cards, per-customer rates, calendar effects), :mod:`~omnibank.demo.events` (the days of events) and
:mod:`~omnibank.demo.render` (JSON lines as byte matrices). This module keeps the order they run in, the
writing of the three CSV files and ``events.jsonl``, and the summary of what was written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TextIO

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from omnibank.customers.values import CHANNEL_PREFS, OCCUPATIONS, RISK_LEVELS
from omnibank.demo.events import EVENT_TYPES, EventDays
from omnibank.demo.experience import EXPERIENCE_TYPES, Experience
from omnibank.demo.installments import INSTALLMENT_TYPES, Installments
from omnibank.demo.names import chinese_names
from omnibank.demo.orgs import OrgTree, build_orgs
from omnibank.demo.people import ID_CHECK_CHARS, Customers, build_customers
from omnibank.demo.rates import build_behaviour, day_multipliers
from omnibank.demo.sampling import S_CUSTOMERS, stream
from omnibank.demo.staff import ROLES, Staff, assign_rms, build_staff

__all__ = ["DemoSummary", "generate"]

# --------------------------------------------------------------------------------------------------------
# Public result
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate` wrote."""

    out_dir: Path
    orgs_csv: Path
    staff_csv: Path
    customers_csv: Path
    events_jsonl: Path
    orgs: int
    staff: int
    customers: int
    events: int
    events_by_type: dict[str, int] = field(default_factory=dict)
    orgs_by_level: dict[str, int] = field(default_factory=dict)
    staff_by_role: dict[str, int] = field(default_factory=dict)

    @property
    def paths(self) -> tuple[Path, Path, Path, Path]:
        return (self.orgs_csv, self.staff_csv, self.customers_csv, self.events_jsonl)


# --------------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------------

_CHUNK = 100_000


def _open(path: Path) -> TextIO:
    return path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20)


def _write_orgs(path: Path, tree: OrgTree) -> None:
    with _open(path) as fh:
        fh.write("org_id,parent_id,name,level\n")
        fh.writelines(f"{o.org_id},{o.parent_id},{o.name},{o.level}\n" for o in tree.orgs)


def _staff_ids(n: int) -> list[str]:
    width = max(5, len(str(n)))
    return [f"E{i:0{width}d}" for i in range(1, n + 1)]


def _write_staff(path: Path, tree: OrgTree, staff: Staff) -> None:
    ids = _staff_ids(staff.n)
    with _open(path) as fh:
        fh.write("staff_id,org_id,name,role,phone\n")
        fh.writelines(
            f"{sid},{tree.orgs[o].org_id},{name},{ROLES[r]},{ph}\n"
            for sid, o, name, r, ph in zip(
                ids, staff.org.tolist(), staff.names, staff.role.tolist(), staff.phone.tolist(), strict=True
            )
        )


def _customer_ids(n: int) -> list[str]:
    """``C000001``...: zero-padded to six digits, wider when there are more customers."""
    width = max(6, len(str(n)))
    numbers = (np.arange(1, n + 1, dtype=np.int64) + 10**width).astype(f"U{width + 1}").tolist()
    return ["C" + s[1:] for s in numbers]


def _write_customers(
    path: Path,
    seed: int,
    tree: OrgTree,
    cust: Customers,
    staff: Staff,
    cids: list[str],
    tick: Callable[[int], None],
) -> None:
    rng = stream(seed, S_CUSTOMERS, 1)
    org_ids = [o.org_id for o in tree.orgs]
    staff_ids = ["", *_staff_ids(staff.n)]  # index 0 is "no RM"
    genders = ("F", "M")
    cents = [f"{c:02d}" for c in range(100)]
    # occupation, risk_tolerance, channel_pref and marketing_consent as one lookup
    tails = [
        f"{occ},{risk},{ch},{consent}"
        for occ in OCCUPATIONS
        for risk in RISK_LEVELS
        for ch in CHANNEL_PREFS
        for consent in ("false", "true")
    ]
    tail_code = ((cust.occupation * len(RISK_LEVELS) + cust.risk) * len(CHANNEL_PREFS) + cust.channel) * 2 + (
        cust.consent
    )
    check_chars = np.array(list(ID_CHECK_CHARS))
    birth_years = cust.birth.astype("datetime64[Y]").astype(np.int64) + 1970
    with _open(path) as fh:
        fh.write(
            "customer_id,name,gender,birth_date,phone,id_number,branch_id,rm_id,aum,occupation,"
            "risk_tolerance,channel_pref,marketing_consent,registered_at\n"
        )
        for lo in range(0, cust.n, _CHUNK):
            sl = slice(lo, min(lo + _CHUNK, cust.n))
            names = chinese_names(rng, cust.male[sl], birth_years[sl])
            id_numbers = np.char.add(cust.id17[sl].astype("U17"), check_chars[cust.id_check[sl]])
            fh.write(
                "".join(
                    [
                        f"{cid},{name},{genders[m]},{b},{ph},{idn},{org_ids[h]},{staff_ids[rm + 1]},"
                        f"{y}.{cents[c]},{tails[t]},{rg}\n"
                        for cid, name, m, b, ph, idn, h, rm, y, c, t, rg in zip(
                            cids[sl],
                            names,
                            cust.male[sl].tolist(),
                            np.datetime_as_string(cust.birth[sl]).tolist(),
                            cust.phone[sl].astype("U11").tolist(),
                            id_numbers.tolist(),
                            cust.home[sl].tolist(),
                            cust.rm[sl].tolist(),
                            (cust.aum_fen[sl] // 100).astype("U").tolist(),
                            (cust.aum_fen[sl] % 100).tolist(),
                            tail_code[sl].tolist(),
                            np.datetime_as_string(cust.registered[sl]).tolist(),
                            strict=True,
                        )
                    ]
                )
            )
            tick(sl.stop - sl.start)


# --------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------


def generate(
    out_dir: Path,
    *,
    customers: int = 20_000,
    seed: int = 2026,
    start: date = date(2026, 1, 1),
    days: int = 365,
    events_per_customer: float = 50.0,
    progress: bool = True,
) -> DemoSummary:
    """Write ``orgs.csv``, ``staff.csv``, ``customers.csv`` and ``events.jsonl`` into ``out_dir``.

    ``events_per_customer`` is the yearly volume: a run of ``days`` days writes about
    ``customers * events_per_customer * days / 365`` events (``0`` writes an empty ``events.jsonl``).
    The same arguments give byte-identical files. Events start on ``start`` (bank-local, +08:00) and are
    written in time order; customers registered before ``start``.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if days < 1:
        raise ValueError("days must be at least 1")
    if events_per_customer < 0 or not math.isfinite(events_per_customer):
        raise ValueError("events_per_customer must be a finite number >= 0")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    start = date(start.year, start.month, start.day)  # a datetime is taken for its date
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("orgs.csv", "staff.csv", "customers.csv", "events.jsonl")}

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    with bar:
        tree = build_orgs(seed)
        cust = build_customers(seed, customers, start, tree)
        staff = build_staff(seed, start, tree, cust)
        cust.rm = assign_rms(seed, tree, cust, staff)
        _write_orgs(paths["orgs.csv"], tree)
        _write_staff(paths["staff.csv"], tree, staff)
        levels = [o.level for o in tree.orgs]
        roles = [ROLES[r] for r in staff.role.tolist()]
        n_orgs, n_staff = len(tree.orgs), staff.n
        cids = _customer_ids(customers)
        t_cust = bar.add_task("customers", total=customers, note="")
        _write_customers(
            paths["customers.csv"], seed, tree, cust, staff, cids, lambda k: bar.advance(t_cust, k)
        )

        mult = day_multipliers(start, days)
        beh = build_behaviour(seed, start, cust, events_per_customer, days, mult)
        cx = Experience(seed, start, days, cust, tree, beh, mult["login"], events_per_customer)
        bills = Installments(seed, start, days, cust, beh, events_per_customer, inner=cx)
        sim = EventDays(seed, start, cust.age, beh, mult, extra=bills)
        bills.watch(sim)
        del cust, staff, beh, cids  # from here on only the event state is kept
        counts = dict.fromkeys((*EVENT_TYPES, *EXPERIENCE_TYPES, *INSTALLMENT_TYPES), 0)
        written = 0
        t_days = bar.add_task("events", total=days, note="0 events")
        with paths["events.jsonl"].open("wb", buffering=1 << 20) as fh:
            for d in range(days if events_per_customer > 0 else 0):
                lines, day_counts = sim.day(d, written + 1)
                fh.write(b"".join(lines))
                written += len(lines)
                for kind, k in day_counts.items():
                    counts[kind] += k
                bar.update(t_days, advance=1, note=f"{written:,} events")
            bar.update(t_days, completed=days)

    return DemoSummary(
        out_dir=out_dir,
        orgs_csv=paths["orgs.csv"],
        staff_csv=paths["staff.csv"],
        customers_csv=paths["customers.csv"],
        events_jsonl=paths["events.jsonl"],
        orgs=n_orgs,
        staff=n_staff,
        customers=customers,
        events=written,
        events_by_type=counts,
        orgs_by_level={lv: levels.count(lv) for lv in ("hq", "branch", "subbranch", "team")},
        staff_by_role={r: roles.count(r) for r in ROLES},
    )
