"""Benchmark (issue #19, B2): benefit recommendations evaluated offline, hit rate at 5 against most-popular.

    python benchmarks/bench_recommend.py                       # generated data: 50,000 customers, 30 benefits
    python benchmarks/bench_recommend.py --customers 200000
    python benchmarks/bench_recommend.py --home /tmp/demo/home # a demo bank (omnibank demo --customers 3000)

Each customer's last redemption is held out (hit rate at 5, and at 1: the demo bank has six benefits); the
model is built from the rest and the customer's top 5 (over every benefit of the catalogue but points
credits; nothing excluded for stock, which is today's state) is checked for it. A customer with one
redemption has no history left: the segment prior alone ranks for them (reported apart as "cold"). The
baseline ranks every customer the same, by bank-wide redemptions.

Generated data (numpy, seeded): benefits in five families (consumption, entertainment, life services, travel,
finance) of six; a customer's favourite families follow their age band (seed 000: consumption and
entertainment for the young, life services for older customers) and their spending categories (mcc) follow
the favourite; 1–6 redemptions each, 80% from the favourite family (two favourite benefits of it used most),
the rest from the catalogue by popularity. With ``--home``: the store's coupons and the log's
``points.redeem`` events, and the time ``recommend()`` takes for one customer once the model is built.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np

from omnibank.benefits import recommend as rec
from omnibank.benefits.recommend import Inputs, Model, Redemption, build_model

FAMILIES = ("consumption", "entertainment", "life", "travel", "finance")
MCC = {"consumption": "5812", "entertainment": "7832", "life": "5912", "travel": "4511", "finance": "6012"}
# favourite family weights by age band (under 30, 30–44, 45–59, 60+)
BAND_TASTE = np.array(
    [
        [0.45, 0.40, 0.05, 0.05, 0.05],
        [0.35, 0.20, 0.15, 0.15, 0.15],
        [0.20, 0.05, 0.40, 0.15, 0.20],
        [0.05, 0.05, 0.70, 0.05, 0.15],
    ]
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def generated(customers: int, seed: int) -> Inputs:
    rng = np.random.default_rng(seed)
    per = 6
    benefits = [f"{f}_{k}" for f in FAMILIES for k in range(per)]
    popularity = rng.dirichlet(np.ones(len(benefits)) * 0.7)
    band = rng.choice(4, size=customers, p=[0.25, 0.3, 0.25, 0.2])
    taste = np.array([rng.choice(len(FAMILIES), p=BAND_TASTE[b]) for b in band])
    count = rng.integers(1, 7, size=customers)
    redemptions: list[Redemption] = []
    bands: dict[str, int] = {}
    categories: dict[str, tuple[str, ...]] = {}
    for i in range(customers):
        cid = f"C{i:07d}"
        bands[cid] = int(band[i])
        fam = int(taste[i])
        other = int(rng.integers(len(FAMILIES)))
        categories[cid] = (MCC[FAMILIES[fam]],) if rng.random() < 0.7 else (MCC[FAMILIES[other]],)
        favourites = fam * per + rng.choice(per, size=2, replace=False)
        for k in range(int(count[i])):
            u = rng.random()
            if u < 0.5:
                j = int(rng.choice(favourites))
            elif u < 0.8:
                j = fam * per + int(rng.integers(per))
            else:
                j = int(rng.choice(len(benefits), p=popularity))
            redemptions.append(
                Redemption(cid, benefits[j], T0 + timedelta(days=int(k * 30 + rng.integers(30))))
            )
    return Inputs(benefits=benefits, redemptions=redemptions, bands=bands, categories=categories)


def split(inputs: Inputs) -> tuple[Inputs, dict[str, str], dict[str, frozenset[str]]]:
    """The inputs without each customer's last redemption; the held-out benefit; what is left of each."""
    by: dict[str, list[Redemption]] = defaultdict(list)
    for r in inputs.redemptions:
        by[r.customer_id].append(r)
    train: list[Redemption] = []
    held: dict[str, str] = {}
    for c, rs in by.items():
        rs.sort(key=lambda r: (r.at, r.benefit_id))
        held[c] = rs[-1].benefit_id
        train.extend(rs[:-1])
    rest: dict[str, set[str]] = defaultdict(set)
    for r in train:
        rest[r.customer_id].add(r.benefit_id)
    kept = Inputs(inputs.benefits, train, inputs.bands, inputs.categories)
    return kept, held, {c: frozenset(rest.get(c, ())) for c in held}


def evaluate(
    model: Model, held: dict[str, str], rest: dict[str, frozenset[str]], n: int = 5
) -> dict[str, float]:
    universe = list(model.benefits)
    popular = set(model.popular(universe, n))
    hits = {"model": 0, "popular": 0, "cold_model": 0, "cold_popular": 0, "cold": 0}
    started = time.perf_counter()
    for c, target in held.items():
        top = {b for b, _, _ in model.rank(c, universe, n)}
        hits["model"] += target in top
        hits["popular"] += target in popular
        if not rest[c]:
            hits["cold"] += 1
            hits["cold_model"] += target in top
            hits["cold_popular"] += target in popular
    seconds = time.perf_counter() - started
    total, cold = len(held), hits["cold"] or 1
    return {
        "customers": total,
        "cold": hits["cold"],
        "model": hits["model"] / total,
        "popular": hits["popular"] / total,
        "cold_model": hits["cold_model"] / cold,
        "cold_popular": hits["cold_popular"] / cold,
        "rank_ms": seconds / total * 1000,
    }


def report(title: str, inputs: Inputs, weights: list[float]) -> None:
    train, held, rest = split(inputs)
    model = build_model(train)
    print(f"{title}: {len(inputs.bands):,} customers, {len(inputs.benefits)} benefits, "
          f"{len(inputs.redemptions):,} redemptions; {len(held):,} held out; model built in "
          f"{model.build_seconds:.2f} s")  # fmt: skip
    for w in weights:
        rec.HISTORY_WEIGHT = w
        for n in (5, 1):
            f = evaluate(model, held, rest, n)
            print(
                f"  hit rate @{n}  model {f['model']:.3f}  most-popular {f['popular']:.3f}   "
                f"(cold start, {f['cold']:,}: model {f['cold_model']:.3f}, popular {f['cold_popular']:.3f}; "
                f"HISTORY_WEIGHT {w}; {f['rank_ms']:.2f} ms a customer)"
            )


def demo(home: str, weights: list[float]) -> None:
    os.environ["OMNIBANK_HOME"] = home
    from omnibank.config import get_settings
    from omnibank.db import unit_of_work

    settings = get_settings()
    with unit_of_work(settings) as session:
        inputs = rec.load_inputs(session, settings)
        report("demo bank", inputs, weights)
        rec.HISTORY_WEIGHT = weights[0]
        ids = sorted(inputs.bands)[:100]
        started = time.perf_counter()
        rec.recommend(session, settings, ids[0])
        first = time.perf_counter() - started
        times = []
        for c in ids:
            t = time.perf_counter()
            rec.recommend(session, settings, c)
            times.append(time.perf_counter() - t)
    print(
        f"  recommend(): first call (reads the store and the log, builds) {first * 1000:.0f} ms; then median "
        f"{statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms (target < 100 ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--home", help="Evaluate on this data home (a demo bank) instead of generated data.")
    parser.add_argument(
        "--weights", default=str(rec.HISTORY_WEIGHT), help="HISTORY_WEIGHT values, comma-separated."
    )
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    if args.home:
        demo(args.home, weights)
    else:
        started = time.perf_counter()
        inputs = generated(args.customers, args.seed)
        print(f"generated in {time.perf_counter() - started:.1f} s")
        report("generated", inputs, weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
