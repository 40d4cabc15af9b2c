"""`omnibank cx …`: customer-experience management — the experience index of a journey map, survey results,
feedback topics, alert rules (backtest, run, list, close), funnels, and the surveys file. The work is in
:mod:`omnibank.cx` and :mod:`omnibank.surveys`; this module parses options and prints."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.kit.clock import system_clock
from omnibank.kit.console import err, out
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS
alerts_app = typer.Typer(no_args_is_help=True, help="Alert rules with owners: backtest, run, list, close.")
surveys_app = typer.Typer(no_args_is_help=True, help="The surveys file: check it; invite from new events.")
app.add_typer(alerts_app, name="alerts")
app.add_typer(surveys_app, name="surveys")

ByOpt: Any = typer.Option(
    None, "--by", help="branch, channel or segment:NAME (a saved segment); default: the whole bank."
)
PeriodOpt: Any = typer.Option(
    None, "--period", help="A bank-local month YYYY-MM (or ISO week YYYY-Www); default: the whole log."
)


def _now() -> datetime:
    return system_clock()


def _pct(value: Decimal | None) -> str:
    return "" if value is None else f"{(value * 100).quantize(Decimal('0.1'))}%"


def _num(value: Decimal | None, places: str = "0.1") -> Decimal | None:
    return None if value is None else value.quantize(Decimal(places))


# ------------------------------------------------------------------------------------------------ index


@app.command("index")
def index_cmd(
    map_file: Path = typer.Argument(..., help="A journey map (YAML), e.g. examples/cx/credit_card_map.yaml."),
    by: str | None = ByOpt,
    period: str | None = PeriodOpt,
    level: str = typer.Option(
        "stage", "--level", help="Down to which level the table shows: map, stage, touchpoint, indicator."
    ),
    out_file: Path | None = typer.Option(None, "--out", help="Write every row (all levels) to this CSV."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """The experience index of a journey map: each indicator's value and 0–100 score, rolled up by weight
    to touchpoints, stages and the map, per branch, channel or segment and period."""
    from omnibank.cx.index import compute_index, write_csv
    from omnibank.cx.maps import load_map
    from omnibank.cx.reading import log_types
    from omnibank.segments.engine import vocabulary

    depth = {"map": 0, "stage": 1, "touchpoint": 2, "experience_point": 3, "indicator": 4}
    if level not in depth:
        raise InputRefused(f"--level: {level!r} is not one of map, stage, touchpoint, indicator")
    settings = get_settings()
    with unit_of_work(settings) as session:
        spec = load_map(map_file, vocabulary=vocabulary(session), known_types=log_types(settings))
        result = compute_index(session, settings, spec, by=by, period=period)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if out_file is not None:
        n = write_csv(result, out_file)
        err.print(f"{n} rows written to {escape(str(out_file))}")
    rows = [
        {
            "group": r.group, "level": r.level, "path": r.path, "name": r.name,
            "weight": r.weight.normalize(), "raw": _num(r.raw, "0.01"), "score": _num(r.score),
            "coverage": _num(r.coverage, "0.01"), "n": r.n,
        }
        for r in result.rows
        if depth[r.level] <= depth[level]
    ]  # fmt: skip
    group = (result.by or "group").split(":")[0]
    columns = (
        Col("group", group), Col("level"), Col("path", table=False), Col("name", "名称"), Col("weight"),
        Col("raw"), Col("score", "得分"), Col("coverage"), Col("n"),
    )  # fmt: skip
    title = f"{result.map_name} ({result.map_id}) · {result.period}"
    print_rows(columns, rows, fmt, title=title, empty=f"no data for {result.map_id} in {result.period}")


# ----------------------------------------------------------------------------------------------- survey


@app.command("survey")
def survey_cmd(
    survey_id: str = typer.Argument(..., help="A survey id, e.g. csat_branch."),
    by: str | None = ByOpt,
    period: str | None = PeriodOpt,
    fmt: OutputFormat = FormatOpt,
) -> None:
    """A survey's results: NPS (% promoters 9–10 − % detractors 0–6), CSAT (% of 4–5), CES (mean 1–7),
    each with its 95% confidence interval and counts, per group."""
    from omnibank.cx.survey_report import survey_report

    settings = get_settings()
    with unit_of_work(settings) as session:
        rows = survey_report(session, settings, survey_id, by=by, period=period)

    def interval(low: Decimal | None, high: Decimal | None) -> str:
        return "" if low is None or high is None else f"{low} – {high}"

    shown = [
        {
            "group": r.group, "responses": r.responses, "nps": r.nps,
            "nps_ci": interval(r.nps_low, r.nps_high), "promoters": r.promoters, "passives": r.passives,
            "detractors": r.detractors, "csat": r.csat, "csat_ci": interval(r.csat_low, r.csat_high),
            "ces": r.ces, "ces_ci": interval(r.ces_low, r.ces_high),
        }
        for r in rows
    ]  # fmt: skip
    asked = {
        k
        for r in rows
        for k, v in (("nps", r.nps_answers), ("csat", r.csat_answers), ("ces", r.ces_answers))
        if v
    }
    columns = [Col("group", (by or "group").split(":")[0]), Col("responses", "答卷")]
    if "nps" in asked:
        columns += [
            Col("nps", "NPS"),
            Col("nps_ci", "95% CI"),
            Col("promoters"),
            Col("passives"),
            Col("detractors"),
        ]
    if "csat" in asked:
        columns += [Col("csat", "CSAT %"), Col("csat_ci", "95% CI ")]
    if "ces" in asked:
        columns += [Col("ces", "CES"), Col("ces_ci", "95% CI  ")]
    print_rows(columns, shown, fmt, title=f"survey {survey_id} · {period or 'all'}")


# --------------------------------------------------------------------------------------------- feedback


@app.command("feedback")
def feedback_cmd(
    by: str = typer.Option("branch", "--by", help="branch or channel."),
    period: str | None = typer.Option(None, "--period", help="A bank-local month YYYY-MM; default all."),
    topics_file: Path | None = typer.Option(
        None, "--topics", help="Topics YAML (default: the packaged ones)."
    ),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """What the comments say: survey comments and complaint descriptions, their sentiment, and the top
    topics among the negative ones, per branch (or channel) and month."""
    from omnibank.cx.feedback import negative_topics, rows_for_output
    from omnibank.cx.text import load_topics

    settings = get_settings()
    topics = load_topics(topics_file) if topics_file is not None else None
    with unit_of_work(settings) as session:
        rows = rows_for_output(negative_topics(session, settings, period=period, by=by, topics=topics), by=by)
    columns = [
        Col(by), Col("period", "月份"), Col("comments", "评论"), Col("negative", "负面"),
        Col("share_negative", "负面占比", show=lambda v: _pct(v)),
        *(Col(f"topic_{i}", f"负面话题{i}") for i in (1, 2, 3)),
        *(Col(f"topic_{i}_n", "次数", table=False) for i in (1, 2, 3)),
    ]  # fmt: skip
    print_rows(columns, rows, fmt, title="feedback: top topics among negative comments", empty="no comments")


# ----------------------------------------------------------------------------------------------- funnel


@app.command("funnel")
def funnel_cmd(
    journey: str | None = typer.Option(None, "--journey", help="One journey (default: every journey)."),
    by: str | None = typer.Option(None, "--by", help="channel or branch (the customer's home branch)."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Reach and conversion per journey and step (and channel or branch): sent, delivered (reach rate),
    clicked, converted (conversion rate), from the outbox and the journeys' entries."""
    from omnibank.cx.funnel import COLUMNS, funnel

    settings = get_settings()
    with unit_of_work(settings) as session:
        rows = [r.as_dict() for r in funnel(session, journey=journey, by=by)]
    rates = {"reach_rate", "click_rate", "conversion_rate"}
    columns = [
        Col(c, show=_pct if c in rates else None, table=c not in ("deferred_by", "suppressed_by", "queued"))
        for c in COLUMNS
        if (by == "channel" or c != "channel") and (by == "branch" or c != "branch")
    ]
    print_rows(columns, rows, fmt, title="funnel", empty="no journey has sent anything yet")


# ----------------------------------------------------------------------------------------------- alerts


def _counts(items: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{k} {v}" for k, v in items) or "none"


@alerts_app.command("test")
def alerts_test(
    rules_file: Path = typer.Argument(..., help="Alert rules (YAML), e.g. examples/cx/alerts.yaml."),
    events_file: Path = typer.Argument(..., help="Events (JSONL, the data contract's format)."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Backtest rules over a file of events: how many alerts each would raise and for whom, before they are
    switched on (the same evaluation the worker runs)."""
    from omnibank.cx.alerts import load_rules
    from omnibank.cx.backtest import backtest

    rules = load_rules(rules_file)
    settings = get_settings()
    with unit_of_work(settings) as session:
        result = backtest(rules, events_file, session, settings)
    note(fmt, f"{result.events} events read, {result.rejected} lines rejected, {result.alerts} alerts")
    for line, reason in result.rejects:
        err.print(f"  line {line}: {escape(reason)}")
    for text in result.notes:
        err.print(f"[yellow]note:[/yellow] {escape(text)}")
    print_rows(
        (Col("rule"), Col("alerts")),
        sorted(result.per_rule.items()),
        fmt,
        title="alerts per rule",
        empty="none",
    )
    if fmt is OutputFormat.table:
        top = sorted(result.per_owner.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        out.print(f"owners (top 10): {escape(_counts(top))}")


@alerts_app.command("run")
def alerts_run() -> None:
    """Evaluate the rules (OMNIBANK_CX_ALERTS_FILE) over the events that arrived since the last pass, once;
    `omnibank worker` does it continuously."""
    from omnibank.cx.alerting import rules_of, run_alerts

    settings = get_settings()
    if rules_of(settings) is None:
        raise InputRefused("no alert rules: set OMNIBANK_CX_ALERTS_FILE (e.g. examples/cx/alerts.yaml)")
    with unit_of_work(settings) as session:
        run = run_alerts(session, settings, now=_now())
    _emit_tickets(settings)
    out.print(_counts((k, v) for k, v in run.counts().items()))
    for text in run.notes:
        err.print(f"[yellow]note:[/yellow] {escape(text)}")


def _emit_tickets(settings: Any) -> None:
    from omnibank.service.tickets import emit_pending

    try:
        emit_pending(settings, now=_now())
    except Exception:  # noqa: BLE001 - the events stay pending; the worker or `tickets run` emits them
        err.print("[yellow]note:[/yellow] ticket events left pending (omnibank tickets run emits them)")


@alerts_app.command("list")
def alerts_list(
    state: str = typer.Option("open", "--state", help="open, closed or all."),
    rule: str | None = typer.Option(None, "--rule", help="One rule's alerts."),
    staff: str | None = typer.Option(None, "--staff", help="As this member of staff sees them (their own)."),
    limit: int = typer.Option(200, "--limit", min=1, max=5000),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Alerts and who owns each (责任落实): open ones first to act on, or what was done about closed ones."""
    from omnibank.customers.repository import Scope
    from omnibank.cx.views import Viewer, alerts

    if state not in ("open", "closed", "all"):
        raise InputRefused(f"--state: {state!r} is not one of open, closed, all")
    viewer = Viewer(staff_id=staff) if staff else Viewer(scope=Scope.whole_bank())
    settings = get_settings()
    with unit_of_work(settings) as session:
        found = alerts(session, viewer, state=state, rule=rule, limit=limit)  # type: ignore[arg-type]
    rows = [
        {
            "key": a.key, "rule": a.rule_id, "subject": f"{a.subject_kind}:{a.subject_id}", "owner": a.owner,
            "raised_at": a.raised_at, "due_at": a.due_at, "ticket": a.ticket_id, "status": a.status,
            "context": a.context,
            "action": a.action,
        }
        for a in found
    ]  # fmt: skip
    columns = (
        Col("key", table=False), Col("rule"), Col("subject"), Col("owner", "负责人"), Col("raised_at"),
        Col("due_at", "due"), Col("ticket"), Col("status"), Col("context"), Col("action", "处置"),
    )  # fmt: skip
    print_rows(columns, rows, fmt, title=f"alerts ({state})", empty="no alerts")


@alerts_app.command("close")
def alerts_close(
    key: str = typer.Argument(..., help="The alert's key (alerts list --format csv shows it)."),
    action: str = typer.Option(..., "--action", help="What was done about it."),
) -> None:
    """Close an alert about a branch or the bank with the action taken (an alert with a ticket is closed by
    resolving the ticket with a note)."""
    from omnibank.cx.alerting import close_alert

    settings = get_settings()
    with unit_of_work(settings) as session:
        alert = close_alert(session, key, action=action, by=cli_actor(), now=_now())
    out.print(f"alert {escape(alert.key)} closed")


# ---------------------------------------------------------------------------------------------- surveys


@surveys_app.command("check")
def surveys_check(path: Path = typer.Argument(..., help="A surveys file (YAML).")) -> None:
    """Check a surveys file: every problem with its field and line."""
    from omnibank.surveys.spec import load_surveys

    surveys = load_surveys(path)
    for s in surveys.values():
        triggers = ", ".join(t.event for t in s.triggers) or "journeys only"
        out.print(f"{s.id}: {escape(s.name)} · asks {', '.join(s.asks)} · {s.channel} · after {triggers}")


@surveys_app.command("run")
def surveys_run() -> None:
    """Invite the customers whose new events trigger a survey (OMNIBANK_SURVEYS_FILE), once; `omnibank
    worker` does it continuously. Each invitation goes through the contact policy."""
    from omnibank.surveys.sending import trigger_pass

    settings = get_settings()
    if settings.surveys_file is None:
        raise InputRefused("no surveys: set OMNIBANK_SURVEYS_FILE (e.g. examples/cx/surveys.yaml)")
    with unit_of_work(settings) as session:
        report = trigger_pass(session, settings, now=_now())
    out.print(_counts(report.counts().items()))
