"""`omnibank keys …`: the key ring's status, rotation and retirement of data keys."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.kit.console import err, out, progress_enabled
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows
from omnibank.ops import rotate as rot

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


@app.command("status")
def status(fmt: OutputFormat = FormatOpt) -> None:
    """Key ids, which one is active, and how many ciphertexts each key still encrypts (with csv and json: a
    row per field and key)."""
    settings = get_settings()
    ring = rot.load_ring(settings)
    with unit_of_work(settings) as session:
        usage = rot.key_usage(session, ring)
    source = "OMNIBANK_MASTER_KEY" if settings.master_key else str(settings.key_file)
    if fmt is OutputFormat.table:
        from rich.table import Table

        keys = Table("key", "active", "ciphertexts", title=f"key ring ({source})", title_justify="left")
        for kid in ring.data_keys:
            keys.add_row(kid, "yes" if kid == ring.active else "", str(usage.by_key[kid]))
        out.print(keys)
        fields = Table("field", *ring.data_keys, title="ciphertexts per field and key", title_justify="left")
        for column, per in usage.by_column.items():
            fields.add_row(column, *(str(per[kid]) for kid in ring.data_keys))
        out.print(fields)
    else:
        print_rows(
            (Col("field"), Col("key"), Col("active"), Col("ciphertexts")),
            (
                (column, kid, kid == ring.active, per[kid])
                for column, per in usage.by_column.items()
                for kid in ring.data_keys
            ),
            fmt,
            title=f"key ring ({source})",
        )
    if usage.other:
        note(fmt, f"[red]{usage.other} ciphertexts use a key that is not in the ring[/red]")
    stale = usage.stale(ring.active)
    if stale:
        note(
            fmt,
            f"{stale} ciphertexts are not under the active key {ring.active!r}: "
            "finish with `omnibank keys rotate --resume`",
        )
    else:
        note(fmt, f"all {usage.total} ciphertexts are under the active key {ring.active!r}")
    note(fmt, "blind index key: one, not rotated (its digests are also stored in the immutable event log)")


@app.command("rotate")
def rotate(
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Add no key: finish re-encrypting under the active key (after an interruption).",
    ),
    batch_size: int = typer.Option(rot.DEFAULT_BATCH, "--batch-size", min=1, help="Rows per transaction."),
    max_batches: int = typer.Option(
        None, "--max-batches", min=1, help="Stop after this many batches; run --resume later for the rest."
    ),
) -> None:
    """Add a new data key, make it active and re-encrypt every personal field under it, in batches.

    Readers keep working throughout: old keys stay in the ring until retired. An interrupted run is
    finished by `omnibank keys rotate --resume`."""
    settings = get_settings()
    with Progress(
        TextColumn("re-encrypting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not progress_enabled(),
    ) as bar:
        task = bar.add_task("rotate", total=None)

        def start(total: int) -> None:
            bar.update(task, total=total)

        def step(done: int) -> None:
            bar.advance(task, done)

        report = rot.rotate(
            settings,
            resume=resume,
            batch_size=batch_size,
            max_batches=max_batches,
            on_start=start,
            on_batch=step,
            actor=cli_actor(),
        )
    if report.added:
        out.print(f"added key {report.active!r} to {settings.key_file}; it encrypts from now on")
    detail = ", ".join(f"{name} {n}" for name, n in report.per_table.items()) or "none"
    out.print(f"re-encrypted {report.rewritten} rows in {report.batches} batches ({detail})")
    if report.finished:
        out.print(
            f"rotation complete: every ciphertext is under {report.active!r}; old keys can be retired "
            "with `omnibank keys retire KEYID` (keep them with any backup taken before now)"
        )
    else:
        out.print(
            f"rotation unfinished: {report.left} rows still hold values under older keys "
            "(everything stays readable); run `omnibank keys rotate --resume` to finish"
        )


@app.command("retire")
def retire(kid: str = typer.Argument(..., help="The key id to remove from the ring, e.g. k1.")) -> None:
    """Remove an old data key from the ring; refused while any ciphertext still uses it."""
    settings = get_settings()
    ring = rot.retire(settings, kid, actor=cli_actor())
    out.print(f"retired key {kid!r}; the ring now holds {', '.join(ring.data_keys)} (active {ring.active!r})")
    err.print(f"backups taken before now may need key {kid!r}: keep a copy of the old key file with them")


@app.command("to-file")
def to_file() -> None:
    """Write the ring derived from OMNIBANK_MASTER_KEY into the key file, so that it can be rotated."""
    path = rot.ring_to_file(get_settings())
    out.print(f"wrote the key ring to {path} (mode 0600); now unset OMNIBANK_MASTER_KEY everywhere")
