"""Showing the steps of a long operation (bring-up) as they happen.

On a terminal each step shows a spinner while it runs and a line with its time when done; when
the output is not a terminal, one plain line per finished step; nothing with ``RH_QUIET=1``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Iterator


def quiet() -> bool:
    return os.environ.get("RH_QUIET", "").lower() in ("1", "true", "yes")


class Steps:
    """``with steps.step("starting the server"): ...`` prints the step and how long it took."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.tty = sys.stderr.isatty()

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[dict]:
        """Yields a dict whose ``"note"`` is added to the done line (e.g. "12 files") and whose
        ``"show"`` shows a line of the step's own output while it runs (a provider's log: beside
        the spinner on a terminal, as an indented line otherwise)."""
        info: dict = {"show": lambda line: None}
        if quiet():
            yield info
            return
        t0 = time.monotonic()
        if self.tty:
            # rich costs tens of ms to import and is needed only on a terminal.
            from rich.console import Console
            from rich.markup import escape

            console = Console(stderr=True)
            with console.status(f"{self.prefix}: {text}") as status:
                info["show"] = lambda line: status.update(
                    f"{self.prefix}: {text}: [dim]{escape(line[:100])}[/dim]")
                yield info
            note = f", {info['note']}" if info.get("note") else ""
            console.print(f"[green]✓[/green] {self.prefix}: {text}{note} "
                          f"[dim]({time.monotonic() - t0:.1f} s)[/dim]")
        else:
            info["show"] = lambda line: print(f"rh {self.prefix}:   {line}", file=sys.stderr,
                                              flush=True)
            yield info
            note = f", {info['note']}" if info.get("note") else ""
            print(f"rh {self.prefix}: {text}{note} ({time.monotonic() - t0:.1f} s)",
                  file=sys.stderr, flush=True)
