"""`omnibank campaign …`: validate and backtest campaigns."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from omnibank.campaigns.simulate import SimulationReport
from omnibank.config import Settings, get_settings
from omnibank.errors import AppError
from omnibank.kit.console import err, out

app = typer.Typer(help="Campaigns whose rules are data: validate, simulate (backtest).", no_args_is_help=True)


@app.command("validate")
def validate(path: Path = typer.Argument(..., help="A campaign YAML file.")) -> None:
    """Check a campaign file against the schema and the expression language."""
    from omnibank.campaigns.spec import load_campaign

    spec = load_campaign(path)
    out.print(
        f"campaign {spec.id} is valid: {len(spec.rules)} rules, {spec.period.start} – {spec.period.end}"
    )


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of campaign files."""
    from omnibank.campaigns.spec import json_schema

    out.print(json_schema(), markup=False, highlight=False)


@app.command("simulate")
def simulate_cmd(
    campaign: Path = typer.Argument(..., help="A campaign YAML file."),
    events: Path = typer.Argument(None, help="An events.jsonl file (default: the data home's event log)."),
    out_file: Path = typer.Option(None, "--out", help="Write every grant here (grants.jsonl)."),
    segment: str = typer.Option(None, "--segment", help="Only customers matching this expression now."),
) -> None:
    """Backtest: run the campaign over the events from empty state, touching nothing; print its cost."""
    from omnibank.campaigns.simulate import simulate
    from omnibank.campaigns.spec import load_campaign

    settings = get_settings()
    spec = load_campaign(campaign)
    eligible = _eligible(settings, spec.eligibility, segment)
    if out_file is not None and out_file.is_dir():
        raise AppError(f"{out_file}: is a folder; give a file name for --out")
    tmp = out_file.with_name(out_file.name + ".tmp") if out_file else None
    fh = tmp.open("wb") if tmp else None
    try:
        report = simulate(
            spec,
            settings,
            events=events,
            out=fh,
            eligible=eligible,
            on_progress=lambda n: err.print(f"  {n:,} events…") if n % 1_000_000 == 0 else None,
        )
    finally:
        if fh is not None:
            fh.close()
    if tmp is not None and out_file is not None:
        tmp.replace(out_file)
    print_report(report, out_file)


def _eligible(settings: Settings, eligibility: str | None, segment: str | None) -> frozenset[str] | None:
    """Who may take part: the campaign's eligibility and the --segment, as of today."""
    texts = [t for t in (eligibility, segment) if t]
    if not texts:
        return None
    from omnibank.db import unit_of_work
    from omnibank.kit.clock import local_today
    from omnibank.segments.service import member_set

    with unit_of_work(settings) as session:
        text = " AND ".join(f"({t})" for t in texts)
        return member_set(session, settings, text, as_of=local_today(settings.tz))


def print_report(report: SimulationReport, out_file: Path | None) -> None:
    table = Table(
        "rule",
        "month",
        "grants",
        "face value (CNY)",
        title=f"campaign {report.campaign}: grants",
        title_justify="left",
    )
    for (rule, month), (items, value) in sorted(report.by_rule_month.items()):
        table.add_row(rule, month, f"{items:,}", f"{value:,.2f}")
    out.print(table)
    if report.refusals:
        refused = Table("rule", "reason", "items refused", title="refusals", title_justify="left")
        for (rule, reason), items in sorted(report.refusals.items()):
            refused.add_row(rule, reason, f"{items:,}")
        out.print(refused)
    if report.source.unusable:
        err.print(
            f"[yellow]ignored {report.source.unusable:,} of {report.source.lines:,} lines that are not "
            "usable events (omnibank load events FILE lists each with its reason)[/yellow]"
        )
    where = f"; grants in {out_file}" if out_file else ""
    out.print(
        f"{report.events:,} events, {report.grants:,} grants to {report.customers:,} customers, "
        f"face value {report.face_value:,.2f} CNY{where}"
    )
