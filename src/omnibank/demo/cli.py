"""`omnibank demo`: a synthetic bank, generated deterministically, loaded, and run through its year."""

from __future__ import annotations

import tempfile
import time
from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from omnibank.config import Settings
from omnibank.demo.year import EXAMPLES
from omnibank.kit.console import err, out, progress_enabled

app = typer.Typer()  # help: omnibank.cli.COMMANDS

CustomersOpt = typer.Option(20_000, "--customers", min=10, help="How many customers.")
SeedOpt = typer.Option(2026, "--seed", help="Random seed: the same seed gives the same bank.")
StartOpt = typer.Option("2026-01-01", "--start", help="First day of the year of events (YYYY-MM-DD).")
DaysOpt = typer.Option(365, "--days", min=1, max=3660, help="Days of events.")


def _start(value: str) -> date:
    from omnibank.kit.dates import check_date

    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date in the form YYYY-MM-DD", param_hint="--start"
        ) from None
    return check_date("--start", day)


@app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    customers: int = CustomersOpt,
    seed: int = SeedOpt,
    start: str = StartOpt,
    days: int = DaysOpt,
) -> None:
    """Generate the demo bank, load it into the data home and run its year: catalogue and budgets, live
    campaigns and coupons, journeys with the worker, leads followed up, suppliers scored, points. The
    generated files are written to a temporary folder and removed when the demo ends."""
    if ctx.invoked_subcommand is not None:
        return
    from omnibank.config import get_settings
    from omnibank.db import unit_of_work
    from omnibank.demo import living, summary
    from omnibank.demo.generator import generate
    from omnibank.demo.year import Calendar, Phases
    from omnibank.ingest.service import KINDS, load_file

    settings = get_settings()
    t0 = time.perf_counter()
    cal = Calendar.of(_start(start), days, settings.tz)
    phases = Phases()
    left = settings.home_dir / "demo"
    if left.is_dir():
        err.print(f"[yellow]warning:[/yellow] {left} holds an earlier demo's contract files (names, phones "
                  f"and ID numbers in plain text); delete it: rm -r {left}")  # fmt: skip
    # The contract files and the feed hold (synthetic) names, phones and ID numbers in plain text: they are
    # written to a private temporary folder outside the data home ($TMPDIR) and removed when the demo ends.
    with tempfile.TemporaryDirectory(prefix="omnibank-demo-") as scratch:
        out_dir = Path(scratch) / f"seed{seed}-{customers}"
        err.print(f"generating the demo bank ({customers:,} customers, seed {seed}) into {out_dir} (removed "
                  "when the demo ends)")  # fmt: skip
        with phases("generate"):
            bank = generate(out_dir, customers=customers, seed=seed, start=cal.first, days=days,
                            progress=progress_enabled())  # fmt: skip
            feed = living.split_events(bank.events_jsonl, cal, out_dir / "feed")
        table = Table("file", "loaded", "rejected", "duplicates", "seconds", title="demo bank loaded",
                      title_justify="left")  # fmt: skip
        with phases("load"):
            for kind, path in zip(KINDS, (*bank.paths[:3], feed.history), strict=True):
                if path is None:
                    continue
                t = time.perf_counter()
                report = load_file(kind, path, settings=settings, progress=progress_enabled())
                table.add_row(path.name, f"{report.loaded:,}", f"{report.rejected:,}",
                              f"{report.duplicates:,}", f"{time.perf_counter() - t:.1f}")  # fmt: skip
        out.print(table)
        already = living.lived(settings)
        if already:
            out.print(
                f"this bank has lived its year already (data home {settings.home_dir}): nothing more to do"
            )
        else:
            out.print(
                f"living the year: campaigns live from {cal.first}, journeys from "
                f"{cal.launched:%Y-%m-%d %H:%M}, the events since ({feed.arriving_events:,}) arriving before "
                "each of the worker's looks"
            )
            year = living.live_year(settings, cal=cal, seed=seed, feed=feed, folder=out_dir, phases=phases,
                                    customers=customers, progress=lambda msg: err.print(msg))  # fmt: skip
            out.print(year.line())
            from omnibank.demo.invites import acquire

            with phases("invite codes"):
                invites = acquire(settings, cal=cal, seed=seed, customers=customers,
                                  folder=out_dir / "invites")  # fmt: skip
            out.print(invites.line())
            from omnibank.demo.loans import load_loans

            with phases("loans"):
                loans = load_loans(settings, cal=cal, seed=seed, customers=customers,
                                   folder=out_dir / "loans")  # fmt: skip
            out.print(loans.line())
            from omnibank.demo.desk import run_desk

            with phases("service desk"):
                desk = run_desk(settings, cal=cal, seed=seed, customers=customers, folder=out_dir / "desk")
            out.print(desk.line())
            from omnibank.demo.cx import run_cx

            with phases("experience"):
                experience = run_cx(settings, cal=cal)
            out.print(experience.line())
    with phases("tags & segments"):
        _tags_and_segments(settings, as_of=cal.last)
    with unit_of_work(settings) as session:
        state = summary.read(session, settings, last=cal.last)
    summary.print_state(state, first=cal.first, last=cal.last, launch=cal.launch)
    timing = Table("phase", "seconds", title="phases", title_justify="left")
    for name, seconds in phases.seconds.items():
        timing.add_row(name, f"{seconds:.1f}")
    out.print(timing)
    out.print(
        f"demo bank ready in {time.perf_counter() - t0:.0f} s: {bank.orgs} orgs, {bank.staff} staff, "
        f"{bank.customers:,} customers, {sum(bank.events_by_type.values()):,} events "
        f"(data home {settings.home_dir}; its clock stands at {cal.end:%Y-%m-%d %H:%M})"
    )
    out.print("try:")
    for command in summary.try_commands(state, last=cal.last):
        out.print(f"  {command}")
    _console_accounts(settings)


def _console_accounts(settings: Settings) -> None:
    """Print how to open the console, with a demo account per role (new passwords on every run)."""
    from omnibank.audit.service import cli_actor
    from omnibank.db import unit_of_work
    from omnibank.demo.accounts import ensure_accounts
    from omnibank.kit.clock import system_clock

    with unit_of_work(settings) as session:
        accounts = ensure_accounts(session, now=system_clock(), actor=cli_actor())
    table = Table("user", "role", "password", "staff", "org", title="console accounts (passwords new on "
                  "every run of the demo; shown once)", title_justify="left")  # fmt: skip
    for a in accounts:
        table.add_row(a.username, a.role, a.password, a.staff_id, a.org)
    out.print(table)
    out.print(
        "open the console: omnibank serve, then http://127.0.0.1:8000/console (Chinese; English from "
        "the switch at the top). Customer-facing pages live under /c/ (elder mode: 长辈版)."
    )


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
