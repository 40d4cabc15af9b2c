"""`omnibank model …`: train a propensity model on a time split (or an uplift model from a journey's control
group), score customers, list, show (with feature drift), retire."""

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
from omnibank.errors import AppError, InputRefused
from omnibank.kit.clock import local_today, system_clock
from omnibank.kit.console import err, out
from omnibank.kit.dates import parse_date
from omnibank.listing import Col, FormatOpt, OutputFormat, print_rows
from omnibank.marketing import drift, models, uplift
from omnibank.marketing.scores import store_scores

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

_WINDOW = re.compile(r"^([0-9]{1,4})d?$")


def parse_window(text: str) -> int:
    """``30d`` or ``30`` as days."""
    found = _WINDOW.fullmatch(text.strip().lower())
    if not found or not 1 <= int(found.group(1)) <= 3660:
        raise InputRefused(f"--window: {text!r} is not a window in days; write e.g. 30d (1 to 3660 days)")
    return int(found.group(1))


def _metrics_table(card: models.ModelCard) -> Table:
    if models.kind_of(card.card) == "uplift":
        return _uplift_table(card)
    baseline = card.card["features"].get("baseline")
    table = Table(title=f"held-out period {card.card['test_period']['labels'][0]} → "
                        f"{card.card['test_period']['labels'][1]}")  # fmt: skip
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column(f"baseline ({baseline})" if baseline else "baseline (none)", justify="right")
    for row in models.metric_rows(card.metrics):
        table.add_row(*row)
    return table


def _uplift_table(card: models.ModelCard) -> Table:
    days = card.card["test_period"]["entry_days"]
    table = Table(title=f"held-out entries {days[0]} → {days[1]} ({card.card['split']['kind']} split)")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("random targeting", justify="right")
    for row in uplift.metric_rows(card.metrics):
        table.add_row(*row)
    return table


def _rows_line(card: models.ModelCard) -> str:
    r = card.card["rows"]
    if models.kind_of(card.card) == "uplift":
        split = card.card["split"]
        how = (f"time (held out: entries from {split['held_out_from']})" if split["kind"] == "time"
               else f"random {split['held_out_share']:.0%} held out ({split['why']})")  # fmt: skip
        return (f"rows: training {r['train']} ({r['train_treated']} treated, "
                f"{r['train_positives']} positive), held out {r['test']} ({r['test_treated']} treated, "
                f"{r['test_positives']} positive); split: {how}")  # fmt: skip
    return (f"rows: training {r['train']} ({r['train_positives']} positive), held out {r['test']} "
            f"({r['test_positives']} positive); calibration: {card.card['calibration']}")  # fmt: skip


@app.command("train")
def train_cmd(
    name: str = typer.Argument(..., help="The model's name, e.g. installment."),
    features: Path = typer.Option(..., "--features", help="The feature set (YAML)."),
    label: str = typer.Option(
        None,
        "--label",
        help="The outcome, e.g. \"events('installment.accepted', 30) >= 1\" (with --treatment: default the "
        "journey's conversion).",
    ),
    as_of: str = typer.Option(
        ...,
        "--as-of",
        help="The cut-off YYYY-MM-DD: the held-out period starts after it (with --treatment: the last "
        "entry day taken).",
    ),
    window: str = typer.Option("30d", "--window", help="The label window in days, e.g. 30d."),
    treatment: str = typer.Option(
        None, "--treatment", help="A journey with a control group: train an uplift model from its entries."
    ),
    seed: int = typer.Option(0, "--seed", help="The random seed (same data and seed: same model)."),
) -> None:
    """Train a propensity model on a time split and print its held-out metrics against a naive baseline;
    with --treatment JOURNEY, an uplift model (treated vs control) with its Qini and uplift at the top."""
    settings = get_settings()
    now = system_clock()
    day = parse_date("--as-of", as_of)
    days = parse_window(window)
    if label is None and treatment is None:
        raise InputRefused("--label: give the outcome, e.g. \"events('installment.accepted', 30) >= 1\"")
    today = local_today(settings.tz, lambda: now)
    with unit_of_work(settings) as session:
        if treatment is not None:
            card = uplift.train(session, settings, name=name, features_path=features, journey_id=treatment,
                                label_expr=label, as_of=day, window_days=days, today=today, now=now,
                                seed=seed)  # fmt: skip
        else:
            card = models.train(session, settings, name=name, features_path=features, label_expr=label,
                                as_of=day, window_days=days, today=today, now=now, seed=seed)  # fmt: skip
    out.print(f"model {escape(card.name)} version {card.version} saved to {escape(str(card.path))}")
    out.print(_metrics_table(card))
    out.print(_rows_line(card))


@app.command("score")
def score_cmd(
    name: str = typer.Argument(..., help="The model's name."),
    out_path: Path = typer.Option(None, "--out", help="Also write a CSV: customer_id,score."),
    as_of: str = typer.Option(
        None, "--as-of", help="Features as of YYYY-MM-DD (default: today, bank-local)."
    ),
    version: str = typer.Option(None, "--version", help="A version (default: the latest not retired)."),
) -> None:
    """Score every customer with a model (its signature checked first) and store the scores, replacing the
    model's previous ones, so that score('NAME') in expressions reads them; --out also writes a CSV."""
    settings = get_settings()
    now = system_clock()
    day = parse_date("--as-of", as_of) if as_of else local_today(settings.tz, lambda: now)
    with unit_of_work(settings) as session:
        used = models.live_version(settings, name, version)
        scores = models.score(session, settings, name, as_of=day, version=used)
        stored = store_scores(session, model=name, version=used, as_of=day, scores=scores, now=now)
    if out_path is not None:
        tmp = out_path.with_name(out_path.name + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(("customer_id", "score"))
            writer.writerows((customer_id, f"{value:.6f}") for customer_id, value in scores)
        tmp.replace(out_path)
        err.print(f"wrote {escape(str(out_path))}")
    out.print(
        f"{stored:,} customers scored by {escape(name)} version {used} as of {day.isoformat()}; "
        f"stored for score('{escape(name)}')"
    )


@app.command("list")
def list_cmd(fmt: OutputFormat = FormatOpt) -> None:
    """Every model version: a propensity model's held-out AUC against the baseline's, an uplift model's
    Qini coefficient and uplift at the top 10% against random targeting's."""

    def metric(block: dict[str, Any] | None, key: str, fmt: str = ".3f") -> str | None:
        return None if block is None or block.get(key) is None else format(float(block[key]), fmt)

    rows = [
        (c.name, c.version, c.card["as_of"], c.card["window_days"], models.kind_of(c.card),
         metric(c.metrics["model"], "auc"), metric(c.metrics.get("baseline"), "auc"),
         metric(c.metrics["model"], "qini", ".4f"), metric(c.metrics["model"], "uplift_10", "+.3f"),
         metric(c.metrics["model"], "uplift", "+.3f"), "retired" if c.retired else "live")
        for c in models.list_models(get_settings())
    ]  # fmt: skip
    columns = (Col("name"), Col("version"), Col("as_of", "as of"), Col("window_days", "window (days)"),
               Col("kind"), Col("auc", "AUC", empty="—"), Col("baseline_auc", "baseline AUC", empty="—"),
               Col("qini", "Qini", empty="—"), Col("uplift_10", "uplift top 10%", empty="—"),
               Col("uplift", "uplift (random)", empty="—"), Col("status"))  # fmt: skip
    print_rows(columns, rows, fmt, empty="no models yet (omnibank model train …)")


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="The model's name."),
    version: str = typer.Option(None, "--version", help="A version (default: the latest)."),
    as_of: str = typer.Option(
        None, "--as-of", help="Feature drift as of YYYY-MM-DD (default: today, bank-local)."
    ),
    psi_threshold: float = typer.Option(
        drift.PSI_THRESHOLD, "--psi-threshold", help="Flag a feature whose PSI is over this."
    ),
) -> None:
    """A model's card: feature set, label, cut-off, libraries, metrics, feature drift (PSI of the features
    as of today or --as-of against the training features), and whether its signature holds."""
    settings = get_settings()
    day = parse_date("--as-of", as_of) if as_of else local_today(settings.tz, system_clock)
    if not psi_threshold > 0:
        raise InputRefused(f"--psi-threshold: {psi_threshold:g} is not above 0; e.g. 0.2")
    card, problem = models.show(settings, name, version)
    c = card.card
    retired = " [yellow](retired)[/yellow]" if card.retired else ""
    kind = models.kind_of(c)
    out.print(f"model {escape(card.name)} version {card.version} ({kind}){retired}")
    out.print(f"label: {escape(c['label'])} over {c['window_days']} days; cut-off {c['as_of']}")
    if kind == "uplift":
        t = c["treatment"]
        out.print(f"treatment: journey {escape(t['journey'])} ({t['approach']}), entries "
                  f"{t['entry_days'][0]} → {t['entry_days'][1]}; "
                  f"features as of {t['features_as_of']}")  # fmt: skip
    out.print("features: " + escape(", ".join(f["id"] for f in c["features"]["features"])))
    out.print("libraries: " + escape(", ".join(f"{k} {v}" for k, v in sorted(c["libraries"].items()))))
    out.print(_metrics_table(card))
    out.print(_rows_line(card))
    try:
        with unit_of_work(settings) as session:
            report = models.drift(session, settings, name, as_of=day, version=card.version,
                                  threshold=psi_threshold)  # fmt: skip
    except AppError as exc:  # e.g. a feature naming a tag since removed: the card is still shown
        err.print(f"[yellow]drift: not computed[/yellow] — {escape(exc.message)}")
    else:
        _print_drift(report)
    if problem:
        err.print(f"[red]signature: refused[/red] — {escape(problem)}")
        raise typer.Exit(1)
    out.print("signature: ok")


def _print_drift(report: models.DriftReport) -> None:
    if report.reference is None:
        out.print("drift: this version keeps no reference bins (trained before drift was recorded)")
        return
    table = Table(title=f"feature drift as of {report.as_of.isoformat()} ({report.rows} customers) against "
                        f"training ({report.reference['rows']} rows)")  # fmt: skip
    table.add_column("feature")
    table.add_column("PSI", justify="right")
    table.add_column("missing (train → now)", justify="right")
    table.add_column("flag")
    for f in report.features:
        flag = "[yellow]DRIFT[/yellow]" if f.flagged else ""
        table.add_row(escape(f.feature), f"{f.psi:.3f}", f"{f.expected_nan:.0%} → {f.actual_nan:.0%}", flag)
    out.print(table)
    if report.flagged:
        names = escape(", ".join(report.flagged))
        out.print(f"[yellow]drift:[/yellow] {len(report.flagged)} feature(s) with PSI over "
                  f"{report.threshold:g}: {names}; train the model again")  # fmt: skip
    else:
        out.print(f"drift: none (every feature's PSI at most {report.threshold:g})")


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


def _cell(value: float) -> str:
    if value != value:  # NaN: no value (no birth date, no event for days_since)
        return ""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"


@app.command("features")
def features_cmd(
    features: Path = typer.Argument(..., help="The feature set (YAML)."),
    out_path: Path = typer.Option(
        ..., "--out", help="The CSV to write: customer_id and one column a feature."
    ),
    as_of: str = typer.Option(
        None, "--as-of", help="Features as of YYYY-MM-DD (default: today, bank-local)."
    ),
) -> None:
    """Write a feature set as of a day for every customer: customer_id and the features (numbers only, no
    name, phone or ID number; an empty cell is a missing value)."""
    settings = get_settings()
    day = parse_date("--as-of", as_of) if as_of else local_today(settings.tz, system_clock)
    spec = models.load_model_spec(features)
    with unit_of_work(settings) as session:
        matrix = models.build_features(session, settings, spec, as_of=day)
    with out_path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(("customer_id", *matrix.columns))
        for customer_id, row in zip(matrix.customer_ids, matrix.values.tolist(), strict=True):
            writer.writerow((customer_id, *(_cell(v) for v in row)))
    err.print(f"{len(matrix.customer_ids)} customers × {len(matrix.columns)} features as of "
              f"{day.isoformat()} → {escape(str(out_path))}")  # fmt: skip
