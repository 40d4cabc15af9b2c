"""Benchmark: how fast the `omnibank` command starts, measured as whole processes.

    python benchmarks/bench_cli.py [--customers 20000] [--runs 7] [--data DIR]

Targets (issue #14), the median of ``--runs`` runs each:

* ``omnibank --help`` ≤ 0.3 s;
* ``omnibank segment count "age >= 60"`` on the demo bank (20,000 customers and a year of their events,
  ``omnibank demo generate`` then loaded, kept under ``--data`` for later runs) ≤ 1 s. One run first
  builds the profile snapshot the count reads (the first command after a load does that); it is shown
  apart and not counted.

Also printed: each command's peak memory, and what ``--help`` imports (``python -X importtime``).

The package's modules are compiled to bytecode first (``compileall``), as an installed package has them: a
checkout whose environment sets ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module the
command imports on every run (~0.1 s of the count), which no installed copy does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OMNIBANK = [sys.executable, "-m", "omnibank"]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds and stdout of one whole process."""
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed:\n{res.stderr}")
    return seconds, res.stdout


def peak_mb(args: list[str], env: dict[str, str]) -> int:
    """Peak memory of one `omnibank ARGS` process (ru_maxrss of children is the largest child so far, so
    the process reports its own)."""
    probe = [sys.executable, "-c",
             "import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
             "try:\n    runpy.run_module('omnibank', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)",
             "omnibank", *args]  # fmt: skip
    res = subprocess.run(probe, env=env, capture_output=True, text=True, check=False)
    return int(res.stderr.strip().splitlines()[-1])


def measure(label: str, args: list[str], env: dict[str, str], runs: int, target: float) -> bool:
    times = [timed([*OMNIBANK, *args], env)[0] for _ in range(runs)]
    median = statistics.median(times)
    verdict = "PASS" if median <= target else "MISS"
    print(
        f"{label:<38} median {median:.3f} s (min {min(times):.3f}, max {max(times):.3f}, {runs} runs), "
        f"peak {peak_mb(args, env)} MB   target ≤ {target} s: {verdict}",
        flush=True,
    )
    return median <= target


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data", type=Path, default=Path("bench-data"), help="generated files and data home")
    args = parser.parse_args()
    src = (args.data / f"cli-{args.customers}").resolve()
    home = (args.data / f"cli-{args.customers}-home").resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIBANK_")}
    env["OMNIBANK_HOME"] = str(home)

    if not (home / "loaded").exists():
        t = time.perf_counter()
        subprocess.run([*OMNIBANK, "demo", "generate", "--out", str(src), "--customers", str(args.customers)],
                       env=env, check=True, capture_output=True)  # fmt: skip
        for kind, name in (("orgs", "orgs.csv"), ("staff", "staff.csv"), ("customers", "customers.csv"),
                           ("events", "events.jsonl")):  # fmt: skip
            subprocess.run([*OMNIBANK, "load", kind, str(src / name)], env=env, check=True,
                           capture_output=True)  # fmt: skip
        (home / "loaded").touch()
        seconds = time.perf_counter() - t
        print(f"demo bank of {args.customers:,} customers generated and loaded in {seconds:.0f} s")

    import compileall

    import omnibank

    compileall.compile_dir(Path(omnibank.__file__).parent, quiet=1)  # as an installed package has it
    count = ["segment", "count", "age >= 60"]
    seconds, stdout = timed([*OMNIBANK, *count], env)
    print(f"first count after the load (builds the profile snapshot): {seconds:.2f} s, "
          f"{stdout.strip().splitlines()[-1]} customers aged 60+")  # fmt: skip
    ok = measure("omnibank --help", ["--help"], env, args.runs, 0.3)
    ok &= measure('omnibank segment count "age >= 60"', count, env, args.runs, 1.0)

    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "omnibank", "--help"], env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    rows = []
    for line in res.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):
            rows.append((int(parts[1]), parts[2].strip()))
    top = ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in sorted(rows, reverse=True)[:6])
    print(f"--help imports (top level, cumulative): {top}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
