"""`omnibank model …`: train a propensity model on a time split, score customers, list, show, retire."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.errors import InputRefused
from omnibank.kit.clock import local_today, system_clock
from omnibank.kit.console import err, out
from omnibank.kit.dates import parse_date
from omnibank.listing import Col, FormatOpt, OutputFormat, print_rows
from omnibank.marketing import models

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

_WINDOW = re.compile(r"^([0-9]{1,4})d?$")


def parse_window(text: str) -> int:
    """``30d`` or ``30`` as days."""
    found = _WINDOW.fullmatch(text.strip().lower())
    if not found or not 1 <= int(found.group(1)) <= 3660:
        raise InputRefused(f"--window: {text!r} is not a window in days; write e.g. 30d (1 to 3660 days)")
    return int(found.group(1))


def _metrics_table(card: models.ModelCard) -> Table:
    baseline = card.card["features"].get("baseline")
    table = Table(title=f"held-out period {card.card['test_period']['labels'][0]} → "
                        f"{card.card['test_period']['labels'][1]}")  # fmt: skip
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column(f"baseline ({baseline})" if baseline else "baseline (none)", justify="right")
    for row in models.metric_rows(card.metrics):
        table.add_row(*row)
    return table


def _rows_line(card: models.ModelCard) -> str:
    r = card.card["rows"]
    return (f"rows: training {r['train']} ({r['train_positives']} positive), held out {r['test']} "
            f"({r['test_positives']} positive); calibration: {card.card['calibration']}")  # fmt: skip


@app.command("train")
def train_cmd(
    name: str = typer.Argument(..., help="The model's name, e.g. installment."),
    features: Path = typer.Option(..., "--features", help="The feature set (YAML)."),
    label: str = typer.Option(
        ..., "--label", help="The outcome, e.g. \"events('installment.accepted', 30) >= 1\"."
    ),
    as_of: str = typer.Option(
        ..., "--as-of", help="The cut-off YYYY-MM-DD: the held-out period starts after it."
    ),
    window: str = typer.Option("30d", "--window", help="The label window in days, e.g. 30d."),
    seed: int = typer.Option(0, "--seed", help="The random seed (same data and seed: same model)."),
) -> None:
    """Train a propensity model on a time split and print its held-out metrics against a naive baseline."""
    settings = get_settings()
    now = system_clock()
    day = parse_date("--as-of", as_of)
    days = parse_window(window)
    with unit_of_work(settings) as session:
        card = models.train(session, settings, name=name, features_path=features, label_expr=label,
                            as_of=day, window_days=days, today=local_today(settings.tz, lambda: now),
                            now=now, seed=seed)  # fmt: skip
    out.print(f"model {escape(card.name)} version {card.version} saved to {escape(str(card.path))}")
    out.print(_metrics_table(card))
    out.print(_rows_line(card))


@app.command("score")
def score_cmd(
    name: str = typer.Argument(..., help="The model's name."),
    out_path: Path = typer.Option(..., "--out", help="The CSV to write: customer_id,score."),
    as_of: str = typer.Option(
        None, "--as-of", help="Features as of YYYY-MM-DD (default: today, bank-local)."
    ),
    version: str = typer.Option(None, "--version", help="A version (default: the latest not retired)."),
) -> None:
    """Score every customer with a model (its signature checked first) and write customer_id,score."""
    settings = get_settings()
    day = parse_date("--as-of", as_of) if as_of else local_today(settings.tz, system_clock)
    with unit_of_work(settings) as session:
        scores = models.score(session, settings, name, as_of=day, version=version)
    with out_path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(("customer_id", "score"))
        writer.writerows((customer_id, f"{value:.4f}") for customer_id, value in scores)
    err.print(f"{len(scores)} customers scored as of {day.isoformat()} → {escape(str(out_path))}")


@app.command("list")
def list_cmd(fmt: OutputFormat = FormatOpt) -> None:
    """Every model version, with its held-out AUC against the baseline's."""

    def auc(block: dict[str, Any] | None) -> str | None:
        return None if block is None else f"{float(block['auc']):.3f}"

    rows = [
        (c.name, c.version, c.card["as_of"], c.card["window_days"], auc(c.metrics["model"]),
         auc(c.metrics.get("baseline")), "retired" if c.retired else "live")
        for c in models.list_models(get_settings())
    ]  # fmt: skip
    columns = (Col("name"), Col("version"), Col("as_of", "as of"), Col("window_days", "window (days)"),
               Col("auc", "AUC"), Col("baseline_auc", "baseline AUC", empty="—"),
               Col("status"))  # fmt: skip
    print_rows(columns, rows, fmt, empty="no models yet (omnibank model train …)")


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="The model's name."),
    version: str = typer.Option(None, "--version", help="A version (default: the latest)."),
) -> None:
    """A model's card: feature set, label, cut-off, libraries, metrics, and whether its signature holds."""
    card, problem = models.show(get_settings(), name, version)
    c = card.card
    retired = " [yellow](retired)[/yellow]" if card.retired else ""
    out.print(f"model {escape(card.name)} version {card.version}{retired}")
    out.print(f"label: {escape(c['label'])} over {c['window_days']} days; cut-off {c['as_of']}")
    out.print("features: " + escape(", ".join(f["id"] for f in c["features"]["features"])))
    out.print("libraries: " + escape(", ".join(f"{k} {v}" for k, v in sorted(c["libraries"].items()))))
    out.print(_metrics_table(card))
    out.print(_rows_line(card))
    if problem:
        err.print(f"[red]signature: refused[/red] — {escape(problem)}")
        raise typer.Exit(1)
    out.print("signature: ok")


@app.command("retire")
def retire_cmd(
    name: str = typer.Argument(..., help="The model's name."),
    version: str = typer.Argument(..., help="The version to retire."),
) -> None:
    """Retire a version: scoring no longer picks it by default (its files stay)."""
    if models.retire(get_settings(), name, version, now=system_clock()):
        out.print(f"model {escape(name)} version {escape(version)} retired")
    else:
        out.print(f"model {escape(name)} version {escape(version)} was already retired")
