"""`omnibank calllist MODEL --top N`: a ranked call list for AI outbound, through the contact policy, with a
holdout (the service is :mod:`omnibank.marketing.calllist`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.kit.clock import local_today, system_clock
from omnibank.kit.console import err, out
from omnibank.kit.dates import parse_date
from omnibank.marketing import calllist


def summary(result: calllist.CallListResult, *, dry_run: bool) -> list[str]:
    """The lines printed for a list: listed, held out, spared and why, deferred, what was done with it."""
    listed, held = len(result.of("treated")), len(result.of("holdout"))
    spared = result.spared
    head = "dry run, nothing written: " if dry_run else ""
    lines = [
        f"{head}call list {result.id} — model {result.model} version {result.version} as of "
        f"{result.as_of.isoformat()}, channel {result.channel}"
        + (f", segment {result.segment}" if result.segment else ""),
        f"listed {listed} to call (top {result.top}), held out {held} ({result.holdout_percent}% holdout), "
        f"spared {sum(spared.values())}"
        + (": " + ", ".join(f"{reason} {n}" for reason, n in sorted(spared.items())) if spared else ""),
    ]
    if listed < result.top:
        lines.append(f"the ranking ran out: {result.ranked} customers ranked, {listed} could be listed")
    if result.deferred:
        lines.append(
            f"{result.deferred} of the calls fall in the quiet hours: deferred to their end, not spared"
        )
    if not dry_run and result.entered is not None:
        lines.append(
            f"entered journey {result.journey}: {result.entered[0]} to call, {result.entered[1]} as control "
            f"(the worker makes the calls; omnibank journey report {result.journey} shows the uplift)"
        )
    elif not dry_run:
        decided = ", ".join(f"{k} {n}" for k, n in sorted(result.sends.items())) or "none"
        lines.append(
            f"submitted to the outbox ({result.channel}): {decided} (dispatch hands them to the channel)"
        )
    return lines


def calllist_cmd(
    model: str = typer.Argument(
        ..., help="The model ranking the list (propensity or uplift), e.g. installment."
    ),
    top: int = typer.Option(
        ..., "--top", help="How many customers to call (after the policy and the holdout)."
    ),
    segment: str = typer.Option(
        None, "--segment", help='Only customers this expression holds, e.g. "age >= 30".'
    ),
    channel: str = typer.Option("ai_call", "--channel", help="The channel of the calls."),
    holdout: int = typer.Option(10, "--holdout", help="Percent kept out at random, to measure the uplift."),
    journey: str = typer.Option(
        None, "--journey", help="A started journey the list enters (its first step makes the call)."
    ),
    as_of: str = typer.Option(None, "--as-of", help="Score as of YYYY-MM-DD (default: today, bank-local)."),
    version: str = typer.Option(
        None, "--version", help="The model's version (default: the latest not retired)."
    ),
    template: str = typer.Option(
        None, "--template", help="Without --journey: the call's script or gateway template id."
    ),
    out_path: Path = typer.Option(None, "--out", help="Also write customer_id,rank,score,group to this CSV."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Build and print the list; change nothing."),
) -> None:
    """Call lists for AI outbound: the top customers by a model, through the contact policy, with a holdout
    (10% by default) kept out to measure the uplift."""
    settings = get_settings()
    now = system_clock()
    day = parse_date("--as-of", as_of) if as_of else local_today(settings.tz, lambda: now)
    with unit_of_work(settings) as session:
        if dry_run:
            result = calllist.build(
                session, settings, model=model, top=top, as_of=day, now=now, segment=segment, channel=channel,
                holdout_percent=holdout, journey=journey, version=version,
            )  # fmt: skip
            session.rollback()  # nothing of the list is written (a snapshot cache may be)
        else:
            result = calllist.make(
                session, settings, model=model, top=top, as_of=day, now=now, segment=segment, channel=channel,
                holdout_percent=holdout, journey=journey, version=version, template=template,
            )  # fmt: skip
    for line in summary(result, dry_run=dry_run):
        out.print(escape(line))
    if out_path is not None and not dry_run:
        n = calllist.write_csv(result, out_path)
        err.print(f"{n} rows (treated and holdout) → {escape(str(out_path))}")
    elif out_path is not None:
        err.print(f"dry run: {escape(str(out_path))} not written")
