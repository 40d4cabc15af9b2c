"""Console output for the CLI: results to stdout, progress and errors to stderr."""

from __future__ import annotations

import sys

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty()
