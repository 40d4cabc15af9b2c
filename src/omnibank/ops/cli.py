"""`omnibank backup DIR` and `omnibank restore DIR`."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from omnibank.config import get_settings
from omnibank.kit.console import err, out, progress_enabled
from omnibank.ops import backup as ops


class _Bar(ops.Progress):
    """A Rich progress bar on stderr, one task per phase (hidden when stderr is not a terminal)."""

    def __init__(self) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not progress_enabled(),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> _Bar:
        self._bar.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._bar.stop()

    def phase(self, description: str, total: int) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=self._bar.tasks[-1].total)
        self._task = self._bar.add_task(description, total=max(total, 1))

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, amount)


PgBinOpt = typer.Option(
    None, "--pg-bin", help="PostgreSQL only: the folder of pg_dump/pg_restore of the server's version."
)


def backup_cmd(
    folder: Path = typer.Argument(..., help="A new or empty folder to write the backup into."),
    keys_out: Path = typer.Option(
        None,
        "--keys-out",
        help="A folder apart from the backup to write the key file into (secret: store it separately).",
    ),
    pg_bin: Path = PgBinOpt,
) -> None:
    """Back up the store and the event log, consistently. The keys go apart, to --keys-out."""
    settings = get_settings()
    with _Bar() as bar:
        report = ops.backup(settings, folder, keys_out=keys_out, progress=bar, pg_bin=pg_bin)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    manifest = report.manifest
    rows = sum(manifest["tables"].values())
    out.print(
        f"backup written to {report.folder}: {len(manifest['tables'])} tables, {rows} rows, "
        f"{manifest['event_files']} event files, revision {manifest['revision']}"
    )
    if report.keys_written is not None:
        out.print(f"key file written to {report.keys_written} (secret: keep it apart from the backup)")


def restore_cmd(
    folder: Path = typer.Argument(..., help="A folder written by `omnibank backup`."),
    keys_in: Path = typer.Option(
        None, "--keys-in", help="The folder written by `backup --keys-out` (default: the target's own keys)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Replace a target that is not empty (its event log and key file are moved aside).",
    ),
    pg_bin: Path = PgBinOpt,
) -> None:
    """Restore a backup, after verifying its signature and every checksum. It goes into the configured data
    home and store.

    Run it with the platform stopped. A refused restore changes nothing."""
    settings = get_settings()
    with _Bar() as bar:
        report = ops.restore(settings, folder, keys_in=keys_in, force=force, progress=bar, pg_bin=pg_bin)
    for moved in report.moved_aside:
        err.print(f"moved aside: {moved}")
    if report.keys_installed is not None:
        out.print(f"key file installed at {report.keys_installed}")
    out.print(
        f"restored {sum(report.tables.values())} rows in {len(report.tables)} tables and "
        f"{report.files} event files into {settings.home_dir}"
    )


def backup_sign_cmd(
    folder: Path = typer.Argument(..., help="A backup made before backups were signed."),
    keys_in: Path = typer.Option(
        None, "--keys-in", help="The folder written by `backup --keys-out` (default: this home's keys)."
    ),
) -> None:
    """Sign the manifest of a backup made before backups were signed, so that it can be restored.

    Every file is checked against the manifest first. Sign only a backup you trust: kept where nobody could
    alter it. A signed backup is checked, never signed again."""
    settings = get_settings()
    ops.sign_backup(settings, folder, keys_in=keys_in)
    out.print(f"backup {folder.expanduser().resolve()} signed: it can be restored with these keys")
