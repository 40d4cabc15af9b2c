"""Commands of this domain (filled in as the domain is built)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
