"""Benchmark (issue #19): a propensity model's features, training and scoring on 1M customers, 10M events.

    python benchmarks/bench_models.py [--customers 1000000] [--events 10000000] [--data DIR | --keep]
                                      [--features FEATURES.yaml] [--profile]

Targets: features and training ≤ 120 s and ≤ 4 GB; scoring 1M customers ≤ 20 s.

Setup (not timed): a migrated store in a temporary data home; the profile snapshot of ``--customers``
customers written straight as the segment engine's Parquet snapshot, and ``--events`` events over five
months (August–December 2026) in the log's layout, both by ``bench_cx_index.py``'s generators (loading a
million customers through the store would take minutes and measure the loader): logins, card spending with
amounts, product views, installment offers and messages, each customer drawn by a lognormal activity, and
``installment.accepted`` events (2% of the customers a month) drawn by activity squared, so spending and
activity predict the label. The tags the feature set names are defined, and a history of them planted in
``customer_tag_changes`` (12% gain it in August, a third of those lose it in November: between the cut-offs).

Timed, each phase in its own process so that its peak memory (``ru_maxrss``) is its own:

* **features** — the feature set (default ``examples/models/installment/features.yaml``) built with
  ``marketing.features.build`` and its label with ``features.label``, at the training cut-off (2026-10-31)
  and the held-out one (2026-11-30); a breakdown of what ``train`` does first;
* **train** — ``marketing.models.train`` end to end (both feature builds and labels, the fit of a calibrated
  gradient boosting model, its metrics, the signed artifact): the figure held to 120 s and 4 GB;
* **score** — ``marketing.models.score`` of every customer as of 2026-12-30: the figure held to 20 s.

Prints wall and CPU time (all threads: with others on the machine, wall time says less) and peak memory of
each phase, PASS/MISS against the targets. ``--profile`` adds the top of a cProfile of each phase.
``--data DIR`` keeps the generated data home there and reuses it on later runs of the same size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FEATURES = HERE.parent / "examples" / "models" / "installment" / "features.yaml"
LABEL = "events('installment.accepted', 30) >= 1"
WINDOW = 30
AS_OF = date(2026, 11, 30)  # held-out cut-off; training features as of AS_OF - WINDOW
SCORE_AS_OF = date(2026, 12, 30)
TODAY = date(2027, 1, 1)
MONTHS = ((2026, 8), (2026, 9), (2026, 10), (2026, 11), (2026, 12))  # each ≥ 30 days: 30-day blocks fit
MIX = {
    "app.login": 0.40,
    "card.transaction": 0.40,
    "app.product_view": 0.10,
    "message.delivered": 0.07,
    "installment.offered": 0.03,
}
ACCEPTED_PER_MONTH = 0.02  # installment.accepted events a month, per customer
TAG_SHARE = 0.12
TRAIN_TARGET_S, SCORE_TARGET_S, MEMORY_TARGET_MB = 120.0, 20.0, 4096.0
NAME = "bench_installment"
RESULT = "RESULT "


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------- setup


def setup(customers: int, events: int, features: Path) -> dict[str, Any]:
    import numpy as np
    from bench_cx_index import LOCAL_US, US, write_events, write_profiles

    from omnibank import config, db
    from omnibank.db import versions
    from omnibank.db.bulk import insert_rows
    from omnibank.marketing.models import load_model_spec
    from omnibank.tags import service as tags
    from omnibank.tags.models import CustomerTagChange

    settings = config.get_settings()
    db.upgrade()
    rng = np.random.default_rng(19)
    spec = load_model_spec(features).features
    tag_names = sorted({t for f in spec.features for t in f.expression.tags})
    ids = np.arange(1, customers + 1)
    carriers = ids[rng.random(customers) < TAG_SHARE]
    leavers = carriers[rng.random(len(carriers)) < 1 / 3]
    now = datetime(2026, 12, 31, 12, tzinfo=UTC)
    table = CustomerTagChange.__table__
    columns = ("customer_id", "tag", "change", "as_of", "computed_at")
    with db.unit_of_work(settings, bulk_load=True) as session:
        specs = [
            tags.TagSpec(t, "lifestyle", "", "amount('card.transaction', 30) >= 100", "bench")
            for t in tag_names
        ]
        tags.store_definitions(session, specs, now=now)
        for tag in tag_names:
            for who, change, day in (
                (carriers, "gained", date(2026, 8, 15)),
                (leavers, "lost", date(2026, 11, 15)),
            ):
                rows = ((f"C{i:07d}", tag, change, day, now) for i in who.tolist())
                insert_rows(session, table, columns, rows)
    with db.unit_of_work(settings) as session:
        now_versions = versions.current(session)
    snapshots = settings.home_dir / "snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)
    write_profiles(snapshots / "v1", customers, rng)
    (snapshots / "state.json").write_text(json.dumps({"folder": "v1", "versions": now_versions}))

    activity = rng.lognormal(0.0, 0.8, customers)
    weights = activity / activity.sum()
    eager = activity**2 / (activity**2).sum()
    accepted = int(customers * ACCEPTED_PER_MONTH)
    per_month = events // len(MONTHS)
    first = 1
    for k, (y, m) in enumerate(MONTHS):
        start = int(datetime(y, m, 1, tzinfo=UTC).timestamp() * US) - LOCAL_US
        folder = settings.event_log_dir / f"month={y}-{m:02d}"
        main = per_month - accepted + (events - per_month * len(MONTHS) if k == len(MONTHS) - 1 else 0)
        write_events(folder / f"0bench0000000019-{k}a.parquet", main, customers, rng, start_us=start, mix=MIX,
                     weights=weights, amounts=True, first_id=first)  # fmt: skip
        first += main
        write_events(folder / f"0bench0000000019-{k}b.parquet", accepted, customers, rng, start_us=start,
                     mix={"installment.accepted": 1.0}, weights=eager, first_id=first)  # fmt: skip
        first += accepted
    return {
        "carriers": int(len(carriers)),
        "leavers": int(len(leavers)),
        "tags": tag_names,
        "events": first - 1,
    }


# -------------------------------------------------------------------------------------------- phases


def phase_features(features: Path) -> dict[str, Any]:
    from omnibank import config, db
    from omnibank.marketing import features as ft
    from omnibank.marketing.models import load_model_spec

    settings = config.get_settings()
    spec = load_model_spec(features).features
    out: dict[str, Any] = {"features": len(spec.features)}
    with db.unit_of_work(settings) as session:
        for period, cut in (("train", AS_OF - timedelta(days=WINDOW)), ("test", AS_OF)):
            t, cpu = time.perf_counter(), time.process_time()
            matrix = ft.build(session, settings, spec, as_of=cut)
            out[f"{period}_build"] = (time.perf_counter() - t, time.process_time() - cpu)
            t, cpu = time.perf_counter(), time.process_time()
            labels = ft.label(session, settings, LABEL, as_of=cut, window_days=WINDOW)
            y = matrix.aligned(labels)
            out[f"{period}_label"] = (time.perf_counter() - t, time.process_time() - cpu)
            out[f"{period}_rows"] = len(matrix.customer_ids)
            out[f"{period}_positives"] = int(y.sum())
            del matrix, labels, y
    return out


def phase_train(features: Path) -> dict[str, Any]:
    from omnibank import config, db
    from omnibank.marketing import models

    settings = config.get_settings()
    with db.unit_of_work(settings) as session:
        card = models.train(session, settings, name=NAME, features_path=features, label_expr=LABEL,
                            as_of=AS_OF, window_days=WINDOW, today=TODAY, now=datetime.now(UTC))  # fmt: skip
    return {"version": card.version, "metrics": card.metrics, "rows": card.card["rows"],
            "calibration": card.card["calibration"]}  # fmt: skip


def phase_score() -> dict[str, Any]:
    from omnibank import config, db
    from omnibank.marketing import models

    settings = config.get_settings()
    with db.unit_of_work(settings) as session:
        scores = models.score(session, settings, NAME, as_of=SCORE_AS_OF)
    values = [s for _, s in scores]
    return {"scored": len(scores), "mean": sum(values) / max(len(values), 1)}


def run_phase(args: argparse.Namespace) -> int:
    """In the child process: one phase, its figures as a JSON line."""
    features = args.features.resolve()
    fn = {
        "setup": lambda: setup(args.customers, args.events, features),
        "features": lambda: phase_features(features),
        "train": lambda: phase_train(features),
        "score": phase_score,
    }[args.phase]
    t = time.perf_counter()
    if args.phase != "setup":  # the libraries a command imports first, timed apart (seconds under load)
        import sklearn.calibration  # type: ignore[import-untyped]  # noqa: F401
        import sklearn.ensemble  # type: ignore[import-untyped]  # noqa: F401

        import omnibank.marketing.models  # noqa: F401
    imports = time.perf_counter() - t
    profiler = None
    if args.profile and args.phase != "setup":
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t, cpu = time.perf_counter(), time.process_time()
    out = fn()
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    out.update(seconds=seconds, cpu=cpu, imports=imports, peak_mb=peak_rss_mb())
    from omnibank import db

    db.dispose_engines()
    print(RESULT + json.dumps(out), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- main


def child(args: argparse.Namespace, phase: str, home: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", phase, "--customers", str(args.customers),
           "--events", str(args.events), "--features", str(args.features)]  # fmt: skip
    cmd += ["--profile"] if args.profile else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIBANK_")}
    env["OMNIBANK_HOME"] = str(home)
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.splitlines()
    for line in lines:
        if not line.startswith(RESULT):
            print(line, flush=True)
    results = [line for line in lines if line.startswith(RESULT)]
    if proc.returncode != 0 or not results:
        raise SystemExit(f"phase {phase} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(results[-1][len(RESULT) :])
    return result


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--features", type=Path, default=FEATURES, help="the feature set (YAML)")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of each phase")
    parser.add_argument("--keep", action="store_true", help="keep the data home (printed)")
    parser.add_argument("--data", type=Path, help="a folder to keep the generated data home in, and reuse")
    parser.add_argument("--phase", choices=("setup", "features", "train", "score"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        return run_phase(args)
    if args.data is not None:
        home = args.data.resolve() / f"models-{args.customers}-{args.events}"
        args.keep = True
    else:
        home = Path(tempfile.mkdtemp(prefix="omnibank-bench-models-")) / "home"
    ready = home / "bench-ready"
    try:
        if not ready.exists():
            shutil.rmtree(home, ignore_errors=True)
            s = child(args, "setup", home)
            print(f"setup: {args.customers:,} customers, {s['events']:,} events over {len(MONTHS)} months, "
                  f"tag history of {', '.join(s['tags']) or 'no tag'} ({s['carriers']:,} gained, "
                  f"{s['leavers']:,} lost) in {s['seconds']:.1f} s", flush=True)  # fmt: skip
            ready.touch()
        f = child(args, "features", home)
        for period in ("train", "test"):
            (bw, bc), (lw, lc) = f[f"{period}_build"], f[f"{period}_label"]
            cut = AS_OF - timedelta(days=WINDOW) if period == "train" else AS_OF
            print(f"features ({period}, as of {cut}): {f[f'{period}_rows']:,} × {f['features']} built in "
                  f"{bw:.1f} s (CPU {bc:.1f} s); label in {lw:.1f} s (CPU {lc:.1f} s), "
                  f"{f[f'{period}_positives']:,} positives", flush=True)  # fmt: skip
        print(f"features, both cut-offs with labels: {f['seconds']:.1f} s (CPU {f['cpu']:.1f} s); "
              f"peak RSS {f['peak_mb']:,.0f} MB", flush=True)  # fmt: skip

        t = child(args, "train", home)
        m, b = t["metrics"]["model"], t["metrics"].get("baseline") or {}
        fit_s = t["seconds"] - f["seconds"]
        print(f"train: {t['rows']['train']:,} rows ({t['rows']['train_positives']:,} positives), held out "
              f"{t['rows']['test']:,} ({t['rows']['test_positives']:,}); {t['calibration']}; held-out AUC "
              f"{m['auc']:.3f} (baseline {b.get('auc', float('nan')):.3f}), lift at 10% {m['lift_10']:.2f} "
              f"(baseline {b.get('lift_10', float('nan')):.2f})", flush=True)  # fmt: skip
        train_ok = t["seconds"] <= TRAIN_TARGET_S
        train_mem_ok = max(t["peak_mb"], f["peak_mb"]) <= MEMORY_TARGET_MB
        print(f"features and training (models.train): {t['seconds']:.1f} s (CPU {t['cpu']:.1f} s; "
              f"+ {t['imports']:.1f} s importing scikit-learn and omnibank before it; fit, "
              f"metrics and save ≈ {fit_s:.1f} s after the features phase's {f['seconds']:.1f} s)  "
              f"[target ≤ {TRAIN_TARGET_S:.0f} s: {verdict(train_ok)}]", flush=True)  # fmt: skip
        print(f"features and training peak RSS {t['peak_mb']:,.0f} MB (features alone "
              f"{f['peak_mb']:,.0f} MB)  "
              f"[target ≤ {MEMORY_TARGET_MB:.0f} MB: {verdict(train_mem_ok)}]", flush=True)  # fmt: skip

        s = child(args, "score", home)
        score_ok = s["seconds"] <= SCORE_TARGET_S
        print(f"score (models.score, as of {SCORE_AS_OF}): {s['scored']:,} customers in {s['seconds']:.1f} s "
              f"(CPU {s['cpu']:.1f} s; + {s['imports']:.1f} s of imports before it), mean score "
              f"{s['mean']:.4f}; peak RSS {s['peak_mb']:,.0f} MB  "
              f"[target ≤ {SCORE_TARGET_S:.0f} s: {verdict(score_ok)}]", flush=True)  # fmt: skip
        return 0 if train_ok and train_mem_ok and score_ok else 1
    finally:
        if args.keep:
            print(f"kept: {home}")
        else:
            shutil.rmtree(home.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
