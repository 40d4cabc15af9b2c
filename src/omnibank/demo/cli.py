"""`omnibank demo`: a synthetic bank, generated deterministically and loaded."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from omnibank.kit.console import err, out, progress_enabled

app = typer.Typer(help="A synthetic demo bank (衡水银行): generate the contract files and load them.")

CustomersOpt = typer.Option(20_000, "--customers", min=10, help="How many customers.")
SeedOpt = typer.Option(2026, "--seed", help="Random seed: the same seed gives the same bank.")
StartOpt = typer.Option("2026-01-01", "--start", help="First day of the year of events (YYYY-MM-DD).")
DaysOpt = typer.Option(365, "--days", min=1, max=3660, help="Days of events.")


def _start(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date in the form YYYY-MM-DD", param_hint="--start"
        ) from None


@app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    customers: int = CustomersOpt,
    seed: int = SeedOpt,
    start: str = StartOpt,
    days: int = DaysOpt,
) -> None:
    """Generate the demo bank into the data home and load it: orgs, staff, customers, a year of events."""
    if ctx.invoked_subcommand is not None:
        return
    from omnibank.config import get_settings
    from omnibank.demo.generator import generate
    from omnibank.ingest.service import KINDS, load_file

    settings = get_settings()
    out_dir = settings.home_dir / "demo" / f"seed{seed}-{customers}"
    t0 = time.perf_counter()
    err.print(f"generating the demo bank ({customers:,} customers, seed {seed}) into {out_dir}")
    summary = generate(
        out_dir, customers=customers, seed=seed, start=_start(start), days=days, progress=progress_enabled()
    )
    table = Table(
        "file", "loaded", "rejected", "duplicates", "seconds", title="demo bank loaded", title_justify="left"
    )
    for kind, path in zip(KINDS, summary.paths, strict=True):
        t = time.perf_counter()
        report = load_file(kind, path, settings=settings, progress=progress_enabled())
        table.add_row(
            path.name,
            f"{report.loaded:,}",
            f"{report.rejected:,}",
            f"{report.duplicates:,}",
            f"{time.perf_counter() - t:.1f}",
        )
    out.print(table)
    out.print(
        f"demo bank ready in {time.perf_counter() - t0:.0f} s: {summary.orgs} orgs, {summary.staff} staff, "
        f"{summary.customers:,} customers, {sum(summary.events_by_type.values()):,} events "
        f"(data home {settings.home_dir})"
    )
    out.print("try: omnibank org tree · omnibank customer show C000001")


@app.command("generate")
def generate_cmd(
    out_dir: Path = typer.Option(
        ..., "--out", help="Folder to write orgs.csv, staff.csv, customers.csv, events.jsonl."
    ),
    customers: int = CustomersOpt,
    seed: int = SeedOpt,
    start: str = StartOpt,
    days: int = DaysOpt,
    events_per_customer: float = typer.Option(
        50.0, "--events-per-customer", min=0, help="Events per customer per year."
    ),
) -> None:
    """Write the demo bank's contract files without loading them (benchmarks: 1M customers, ~50M events)."""
    from omnibank.demo.generator import generate

    t0 = time.perf_counter()
    summary = generate(
        out_dir,
        customers=customers,
        seed=seed,
        start=_start(start),
        days=days,
        events_per_customer=events_per_customer,
        progress=progress_enabled(),
    )
    events = sum(summary.events_by_type.values())
    out.print(
        f"wrote {summary.orgs} orgs, {summary.staff} staff, {summary.customers:,} customers, "
        f"{events:,} events to {out_dir} in {time.perf_counter() - t0:.1f} s"
    )
