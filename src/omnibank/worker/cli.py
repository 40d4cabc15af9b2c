"""`omnibank worker`: run the background jobs of every domain; `omnibank worker status`: their leases and last
runs, from the store (what every worker of the store did, not only this one)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from omnibank.config import get_settings
from omnibank.kit.console import out
from omnibank.listing import Col, FormatOpt, OutputFormat, print_rows

app = typer.Typer(no_args_is_help=False)  # help: omnibank.cli.COMMANDS


@app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="One loop, then stop (else: until interrupted)."),
    batch: int = typer.Option(500, "--batch", min=1, max=10_000, help="Entries claimed per transaction."),
    interval: float = typer.Option(2.0, "--interval", min=0.1, help="Seconds to sleep when idle."),
) -> None:
    """Run journeys and the outbox in the background. It applies new events, enters customers, executes due
    steps through the contact policy, dispatches the outbox, escalates overdue leads and exports audit
    checkpoints (when configured). Several workers may run at once (PostgreSQL): a lease keeps each job to
    one worker at a time. SIGTERM or Ctrl-C stops it after the current job."""
    if ctx.invoked_subcommand is not None:
        return
    from omnibank.worker.loop import LoopReport, work

    settings = get_settings()

    def show(r: LoopReport) -> None:
        if r.files or r.claimed or r.entered or once:
            sends = ", ".join(f"{k} {v:,}" for k, v in sorted(r.group("sends").items())) or "none"
            out.print(
                f"{r.files} log files ({r.events:,} events), {r.entered:,} entered, {r.steps:,} steps "
                f"({r.claimed:,} entries), sends: {sends}; {r.leads:,} leads, {r.tags:,} tags, "
                f"{r.grants:,} grants, {r.converted:,} converted, {r.dispatched:,} dispatched, "
                f"{r.escalated:,} leads escalated"
            )
        for name in r.failed:
            out.print(f"[yellow]job {name} failed; retried after a back-off (see the log)[/]")

    runner = work(settings, once=once, batch=batch, interval=interval, on_loop=show)
    if once:
        rows = [
            (name, m.runs, m.failures, m.skipped, m.last_duration_ms, m.last_error)
            for name, m in runner.metrics.jobs.items()
        ]
        print_rows(_METRICS, rows, OutputFormat.table)
        failed = sorted({name for name, m in runner.metrics.jobs.items() if m.failures})
        if failed:
            from omnibank.errors import AppError

            raise AppError(f"jobs failed: {', '.join(failed)} (their error kinds above; details in the log)")


_METRICS = (
    Col("job", no_wrap=True), Col("runs"), Col("failures"), Col("skipped"),
    Col("last_ms", "last run (ms)"), Col("last_error", "last error"),
)  # fmt: skip

_STATUS = (
    Col("job", no_wrap=True), Col("state"), Col("holder"), Col("lease_until", "lease until"),
    Col("last_run", "last run"), Col("outcome"), Col("last_ms", "took (ms)"), Col("runs"), Col("failures"),
    Col("next_run", "not before"), Col("last_error", "last error"),
)  # fmt: skip


@app.command("status")
def status(fmt: OutputFormat = FormatOpt) -> None:
    """Each job's lease (who runs it now, until when) and last run (when, outcome, duration, error kind),
    with its runs and failures over all workers of the store."""
    from omnibank.worker import leases
    from omnibank.worker.registry import load_jobs

    settings = get_settings()
    now = datetime.now(UTC)
    stored = leases.rows(settings)
    names = load_jobs().names()
    names += [n for n in stored if n not in names]  # a job no longer registered keeps its row
    rows: list[dict[str, Any]] = []
    for name in names:
        r = stored.get(name)
        if r is None:
            rows.append({"job": name, "state": "never run", **dict.fromkeys(k.key for k in _STATUS[2:])})
            continue
        if r.holder is None:
            state = "backing off" if r.failures_in_row and r.next_run_at and r.next_run_at > now else "idle"
        else:
            state = "running" if r.expires_at is not None and r.expires_at > now else "lease expired"
        rows.append({
            "job": name, "state": state, "holder": r.holder, "lease_until": r.expires_at,
            "last_run": r.last_started_at, "outcome": r.last_outcome, "last_ms": r.last_duration_ms,
            "runs": r.runs, "failures": r.failures, "next_run": r.next_run_at, "last_error": r.last_error,
        })  # fmt: skip
    print_rows(_STATUS, rows, fmt, empty="no jobs")
