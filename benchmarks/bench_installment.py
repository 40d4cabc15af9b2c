"""Benchmark: the installment example model on the demo bank, against its naive baseline.

    python benchmarks/bench_installment.py [--customers 20000] [--seed 2026] [--as-of 2026-11-01] [--data DIR]

Target (issue 19): on the demo bank's installment example (``examples/models/installment/``: the demo's
``installment.offered`` / ``installment.accepted`` events, :mod:`omnibank.demo.installments`) the model shows
**AUC ≥ 0.75 and lift at the top 10% ≥ 2.5** on the held-out period, and beats the naive baseline (recent card
spend, the feature set's ``baseline:``) on both.

The bank is the demo's (``omnibank demo generate``: 20,000 customers and their year from 2026-01-01) loaded
into a data home (customers and events: the model reads nothing else), in a temporary folder unless
``--data`` keeps it for later runs. Then, as a user does::

    omnibank model train installment --features examples/models/installment/features.yaml \\
      --label "events('installment.accepted', 30) >= 1" --as-of 2026-11-01 --window 30d

(trained on features as of 2026-10-02 with the labels up to the cut-off, judged on features as of the cut-off
with the labels of the 30 days after it). Printed: AUC, lift and precision at 10% of the model and of the
baseline, the held-out positives, and the seconds of each step. The held-out window must have ended: on a
machine whose clock is before 2026-12-02 pass an earlier ``--as-of``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OMNIBANK = [sys.executable, "-m", "omnibank"]
FEATURES = ROOT / "examples" / "models" / "installment" / "features.yaml"
LABEL = "events('installment.accepted', 30) >= 1"
AUC_TARGET, LIFT_TARGET = 0.75, 2.5


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:5])} failed:\n{res.stdout}\n{res.stderr}")
    return time.perf_counter() - t, res.stdout


def build(src: Path, home: Path, env: dict[str, str], customers: int, seed: int) -> None:
    """Generate the demo bank's files and load its customers and events into ``home``."""
    seconds, _ = run([*OMNIBANK, "demo", "generate", "--out", str(src), "--customers", str(customers),
                      "--seed", str(seed)], env)  # fmt: skip
    print(f"demo bank of {customers:,} customers (seed {seed}) generated in {seconds:.0f} s", flush=True)
    t = time.perf_counter()
    for kind, name in (("orgs", "orgs.csv"), ("staff", "staff.csv"), ("customers", "customers.csv"),
                       ("events", "events.jsonl")):  # fmt: skip
        run([*OMNIBANK, "load", kind, str(src / name)], env)
    (home / "loaded").touch()
    print(f"loaded in {time.perf_counter() - t:.0f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--as-of", default="2026-11-01", help="the cut-off (held-out labels: 30 days after)")
    parser.add_argument("--data", type=Path, default=None, help="keep the bank here for later runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="omnibank-bench-installment-") as scratch:
        base = (args.data or Path(scratch)).resolve()
        src = base / f"installment-{args.customers}-{args.seed}"
        home = base / f"installment-{args.customers}-{args.seed}-home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIBANK_")}
        env["OMNIBANK_HOME"] = str(home)
        if not (home / "loaded").exists():
            build(src, home, env, args.customers, args.seed)

        seconds, _ = run([*OMNIBANK, "model", "train", "installment", "--features", str(FEATURES),
                          "--label", LABEL, "--as-of", args.as_of, "--window", "30d"], env)  # fmt: skip
        cards = sorted((home / "models" / "installment").glob("*/card.json"))
        card = json.loads(cards[-1].read_text(encoding="utf-8"))
        model, baseline = card["metrics"]["model"], card["metrics"]["baseline"]
        rows = card["rows"]
        print(f"model trained in {seconds:.1f} s: training {rows['train']:,} customers "
              f"({rows['train_positives']} positive), held out {rows['test']:,} ({rows['test_positives']} "
              f"positive, base rate {model['base_rate']:.2%})")  # fmt: skip
        print(f"{'':<28}{'AUC':>8}{'lift@10%':>10}{'precision@10%':>15}")
        for label, m in (("model", model), (f"baseline ({card['features']['baseline']})", baseline)):
            print(f"{label:<28}{m['auc']:>8.3f}{m['lift_10']:>10.2f}{m['precision_10']:>15.3f}")
        ok = model["auc"] >= AUC_TARGET and model["lift_10"] >= LIFT_TARGET
        beats = model["auc"] > baseline["auc"] and model["lift_10"] >= baseline["lift_10"]
        print(f"target AUC ≥ {AUC_TARGET} and lift@10% ≥ {LIFT_TARGET}: {'PASS' if ok else 'MISS'}; "
              f"beats the baseline: {'yes' if beats else 'NO'}")  # fmt: skip
        return 0 if ok and beats else 1


if __name__ == "__main__":
    sys.exit(main())
