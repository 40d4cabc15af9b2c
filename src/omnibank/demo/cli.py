"""`omnibank demo`: a synthetic bank, generated deterministically and loaded."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import typer
from rich.table import Table

from omnibank.campaigns.audience import eligible_today
from omnibank.config import Settings
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
    _tags_and_segments(settings, as_of=_start(start) + timedelta(days=days - 1))
    _campaigns(settings)
    _journeys(settings, since=_start(start) + timedelta(days=max(days - 90, 0)))
    out.print(
        f"demo bank ready in {time.perf_counter() - t0:.0f} s: {summary.orgs} orgs, {summary.staff} staff, "
        f"{summary.customers:,} customers, {sum(summary.events_by_type.values()):,} events "
        f"(data home {settings.home_dir})"
    )
    out.print("try: omnibank org tree · omnibank customer show C000001 · omnibank segment matrix")


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
EXAMPLE_TAGS = EXAMPLES / "tags"
EXAMPLE_SEGMENTS = {
    "silver_digital_help": ("silver_75_plus OR digital_divide", "银发助老: 75+ or not using the app"),
    "luckin_gold_active": (
        "events('card.issued', 365, product = 'luckin_cobrand' AND tier = 'gold') > 0 "
        "AND events('card.transaction', 30) >= 3",
        "瑞幸联名金卡活跃持卡人",
    ),
    "wealth_leads": (
        "wealth_product_interest AND aum >= 50000 AND rm_id IS NOT NULL",
        "理财意向, 有客户经理",
    ),
}


def _tags_and_segments(settings: Settings, *, as_of: date) -> None:
    """Compute the example tags as of the last day of events and save a few segments with a snapshot."""
    from omnibank.audit.service import cli_actor
    from omnibank.db import unit_of_work
    from omnibank.segments import service as segments
    from omnibank.tags import service as tags

    if not EXAMPLE_TAGS.is_dir():
        err.print(f"example tags not found at {EXAMPLE_TAGS}; skipping tags and segments")
        return
    specs = tags.read_definitions(EXAMPLE_TAGS)
    with unit_of_work(settings, bulk_load=True) as session:
        tags.store_definitions(session, specs)
        report = tags.compute_tags(session, settings, as_of=as_of)
        title = f"segments as of {as_of}"
        table = Table("segment", "customers", "description", title=title, title_justify="left")
        for name, (expression, description) in EXAMPLE_SEGMENTS.items():
            segments.save(session, name=name, text=expression, description=description, actor=cli_actor())
            snap = segments.snapshot(session, settings, name, as_of=as_of, actor=cli_actor())
            table.add_row(name, f"{snap.members:,}", description)
    out.print(f"computed {len(report.results)} example tags as of {as_of} ({report.gained:,} gained)")
    out.print(table)


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


def _campaigns(settings: Settings) -> None:
    """Backtest the example campaigns over the demo bank's event log and print what they would cost."""
    from omnibank.campaigns.simulate import simulate
    from omnibank.campaigns.spec import load_campaign

    folder = EXAMPLES / "campaigns"
    if not folder.is_dir():
        return
    table = Table("campaign", "rule", "grants", "face value (CNY)", "refused", title="example campaigns "
                  "simulated over the demo year (nothing issued)", title_justify="left")  # fmt: skip
    for path in sorted(folder.glob("*.yaml")):
        spec = load_campaign(path)
        report = simulate(spec, settings, events=None, eligible=eligible_today(settings, spec))
        for rule in spec.rules:
            cells = [v for (r, _m), v in report.by_rule_month.items() if r == rule.id]
            refused = sum(n for (r, _why), n in report.refusals.items() if r == rule.id)
            table.add_row(
                spec.id,
                rule.id,
                f"{sum(c[0] for c in cells):,}",
                f"{sum(c[1] for c in cells):,.2f}",
                f"{refused:,}",
            )
    out.print(table)


def _journeys(settings: Settings, *, since: date) -> None:
    """Simulate the example journeys together over the demo's last 90 days, as if launched then (one contact
    policy, shared caps), and print the sends, the suppressions by reason and the leads per branch (nothing
    is sent or stored)."""
    from datetime import datetime

    from omnibank.journeys.cli import print_simulation
    from omnibank.journeys.simulate import simulate
    from omnibank.journeys.spec import load_journey

    folder = EXAMPLES / "journeys"
    if not folder.is_dir():
        return
    specs = [load_journey(p) for p in sorted(folder.glob("*.yaml"))]
    t = time.perf_counter()
    launch = datetime.combine(since, datetime.min.time(), tzinfo=settings.tz)
    report = simulate(specs, settings, events=None, since=launch)
    print_simulation(report, title=f"launched {since}, simulated in {time.perf_counter() - t:.1f} s,")
