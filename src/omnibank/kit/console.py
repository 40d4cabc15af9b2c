"""Console output for the CLI: results to stdout, progress and errors to stderr.

On a terminal, stdout is as wide as the terminal. In a pipe or a file it is :data:`PIPE_WIDTH` wide, so that
a table prints at its natural width with no cell cut or ellipsised (Rich would otherwise assume 80 columns,
or the width of whatever terminal stdin or stderr is); colour and styles are off there, as Rich does for any
stream that is not a terminal.
"""

from __future__ import annotations

import sys

from rich.console import Console, ConsoleDimensions

PIPE_WIDTH = 10_000  # tables do not expand: each renders at its own width, at most this


class _Stdout(Console):
    """A console whose width, when it does not write to a terminal, is :data:`PIPE_WIDTH`."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out: Console = _Stdout(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty()
