"""`omnibank campaign …`: validate and backtest campaigns."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from omnibank.campaigns.audience import eligible_today
from omnibank.campaigns.simulate import SimulationReport
from omnibank.config import Settings, get_settings
from omnibank.errors import AppError
from omnibank.kit.console import err, out
from omnibank.listing import Col, FormatOpt, OutputFormat, print_rows

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


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
    engine: Engine = typer.Option(
        Engine.duckdb, "--engine", help="duckdb (this machine), or spark: the event log's files on Spark."
    ),
    spark_master: str = typer.Option(
        "local[*]", "--spark-master", help="With --engine spark: local[*], or a cluster (spark://host:7077)."
    ),
) -> None:
    """Backtest: run the campaign over the events from empty state, touching nothing; print its cost."""
    from omnibank.campaigns.simulate import simulate
    from omnibank.campaigns.spec import load_campaign

    settings = get_settings()
    spec = load_campaign(campaign)
    if engine is Engine.spark:
        from omnibank.campaigns.spark import check_runs_on_spark

        check_runs_on_spark(spec, events=events)  # before the audience is computed, which it does not need
    eligible = eligible_today(settings, spec, segment=segment)
    if out_file is not None and out_file.is_dir():
        raise AppError(f"{out_file}: is a folder; give a file name for --out")
    tmp = out_file.with_name(out_file.name + ".tmp") if out_file else None
    fh = tmp.open("wb") if tmp else None
    try:
        if engine is Engine.spark:
            from omnibank.campaigns.spark import simulate_on_spark
            from omnibank.segments.spark import stop_sessions

            try:
                report = simulate_on_spark(
                    spec,
                    settings,
                    out=fh,
                    eligible=eligible,
                    master=spark_master,
                    on_progress=lambda n: err.print(f"  {n:,} events decided on Spark"),
                )
            finally:
                stop_sessions()
        else:
            report = simulate(
                spec,
                settings,
                events=events,
                out=fh,
                eligible=eligible,
                on_progress=lambda n: err.print(f"  {n:,} events…") if n % 1_000_000 == 0 else None,
            )
    except BaseException:
        if tmp is not None:  # no half-written grants left behind
            tmp.unlink(missing_ok=True)
        raise
    finally:
        if fh is not None:
            fh.close()
    if tmp is not None and out_file is not None:
        tmp.replace(out_file)
    print_report(report, out_file)


def print_report(report: SimulationReport, out_file: Path | None) -> None:
    from rich.table import Table

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


@app.command("start")
def start_cmd(
    campaign: Path = typer.Argument(..., help="A campaign YAML file."),
    partitions: int = typer.Option(
        None,
        "--partitions",
        min=1,
        help="Shares of the customers that runs apply apart (default 8; 1 when a budget spans customers). "
        "Fixed once the campaign has applied a file.",
    ),
) -> None:
    """Start (or update and resume) a live campaign; `omnibank campaign run` then applies it."""
    from omnibank.campaigns import live
    from omnibank.campaigns.spec import load_campaign
    from omnibank.db import unit_of_work

    spec = load_campaign(campaign)
    with unit_of_work() as session:
        text = campaign.read_text(encoding="utf-8")
        row = live.start(session, spec, source_text=text, partitions=partitions)
        count = row.partitions
    shares = f" in {count} partitions (run it in up to {count} processes at once)" if count > 1 else ""
    out.print(f"campaign {spec.id} is active{shares}; run it with: omnibank campaign run")


@app.command("stop")
def stop_cmd(campaign_id: str = typer.Argument(..., help="The campaign id.")) -> None:
    """Stop a live campaign (its state is kept; `campaign start` resumes it)."""
    from omnibank.campaigns import live
    from omnibank.db import unit_of_work

    with unit_of_work() as session:
        live.stop(session, campaign_id)
    out.print(f"campaign {campaign_id} stopped")


@app.command("list")
def list_cmd(fmt: OutputFormat = FormatOpt) -> None:
    """Live campaigns with the events applied and the grants made."""
    from omnibank.campaigns.views import campaign_list
    from omnibank.db import unit_of_work

    with unit_of_work() as session:
        rows = campaign_list(session)
    columns = (
        Col("id", "campaign"), Col("name"), Col("status"), Col("events_applied", "events applied"),
        Col("grants"),
    )  # fmt: skip
    print_rows(
        columns,
        ((r.id, r.name, r.status, r.events, r.grants) for r in rows),
        fmt,
        empty="no live campaigns (omnibank campaign start FILE.yaml)",
    )


@app.command("run")
def run_cmd(
    campaign_id: str = typer.Option(
        None, "--campaign", help="Only this campaign (default: every active one)."
    ),
    follow: bool = typer.Option(False, "--follow", help="Keep going: apply new events as they are loaded."),
    interval: float = typer.Option(5.0, "--interval", min=0.2, help="Seconds between looks with --follow."),
    lease: float = typer.Option(
        30.0,
        "--lease",
        min=1.0,
        help="Seconds a partition stays this run's without renewal: a killed run's partitions are taken "
        "over by another run after this long.",
    ),
) -> None:
    """Apply live campaigns to the event log from where they stopped (each log file once per partition of the
    customers, atomically). Start it in several processes (or machines, on PostgreSQL) to share the work: each
    takes free partitions with a lease."""
    import time
    from datetime import timedelta

    from omnibank.campaigns import live

    settings = get_settings()

    def eligible_for(session, spec):  # type: ignore[no-untyped-def]
        return eligible_today(settings, spec)

    while True:
        reports = live.run_once(
            settings,
            campaign_id=campaign_id,
            eligible_for=eligible_for,
            on_file=lambda cid, rel, r: err.print(f"{cid}: applied {rel} ({r.events:,} events so far)"),
            lease=timedelta(seconds=lease),
        )
        for r in reports:
            refused = ", ".join(f"{k} {v:,}" for k, v in sorted(r.refusals.items())) or "none"
            held = f"; partitions {', '.join(map(str, r.held))} left to another run" if r.held else ""
            out.print(
                f"{r.campaign}: {r.files} new files, {r.events:,} events, {r.grants:,} grants, "
                f"{r.coupons:,} coupons issued (refused: {refused}){held}"
            )
        if not follow:
            return
        time.sleep(interval)


@app.command("grants")
def grants_cmd(
    campaign_id: str = typer.Option(None, "--campaign", help="Only this campaign."),
    customer_id: str = typer.Option(None, "--customer", help="Only this customer."),
    out_file: Path = typer.Option(None, "--out", help="Write them as grants.jsonl instead of a table."),
    limit: int = typer.Option(50, "--limit", min=1, help="Rows to show (not with --out)."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Grants made by live campaigns."""
    import orjson
    from sqlalchemy import select

    from omnibank.campaigns.models import CampaignGrant
    from omnibank.db import unit_of_work

    settings = get_settings()
    with unit_of_work(settings) as session:
        query = select(CampaignGrant).order_by(CampaignGrant.granted_at, CampaignGrant.key)
        if campaign_id:
            query = query.where(CampaignGrant.campaign == campaign_id)
        if customer_id:
            query = query.where(CampaignGrant.customer_id == customer_id)
        rows = list(session.scalars(query if out_file else query.limit(limit)))
    if out_file is not None:
        with out_file.open("wb") as fh:
            for g in rows:
                fh.write(orjson.dumps(_contract(g, settings)) + b"\n")
        out.print(f"wrote {len(rows):,} grants to {out_file}")
        return
    from omnibank.kit.money import from_fen

    columns = (
        Col("granted_at", "granted (bank-local)"), Col("campaign"), Col("rule"),
        Col("customer_id", "customer"), Col("benefit"), Col("valid_from", table=False),
        Col("valid_to", table=False), Col("claim_by", table=False), Col("face_value", "face value", show=str),
        Col("discount_rate", table=False), Col("stage", show=str), Col("key", table=False),
    )  # fmt: skip
    print_rows(
        columns,
        (
            (g.granted_at, g.campaign, g.rule, g.customer_id, g.benefit, g.valid_from, g.valid_to, g.claim_by,
             from_fen(g.face_value_fen) if g.face_value_fen is not None else None,
             g.discount_rate.normalize() if g.discount_rate is not None else None, g.stage, g.key)
            for g in rows
        ),
        fmt,
        tz=settings.tz,
    )  # fmt: skip


def _contract(g, settings: Settings) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A stored grant in the contract's grants.jsonl form (times bank-local)."""
    from decimal import Decimal

    tz = settings.tz
    row: dict[str, object] = {
        "customer_id": g.customer_id,
        "campaign": g.campaign,
        "rule": g.rule,
        "benefit": g.benefit,
        "granted_at": g.granted_at.astimezone(tz).isoformat(),
        "valid_from": g.valid_from.astimezone(tz).isoformat(),
        "valid_to": g.valid_to.astimezone(tz).isoformat() if g.valid_to else None,
    }
    if g.claim_by is not None:
        row["claim_by"] = g.claim_by.astimezone(tz).isoformat()
    if g.face_value_fen is not None:
        row["face_value"] = f"{Decimal(g.face_value_fen) / 100:.2f}"
    if g.discount_rate is not None:
        row["discount_rate"] = str(g.discount_rate.normalize())
    if g.stage is not None:
        row["stage"] = g.stage
    return row
