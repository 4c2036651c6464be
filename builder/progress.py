"""Progress for long steps: stage lines with elapsed time, streamed command output."""

from __future__ import annotations

import time
from typing import Protocol

from rich.console import Console
from rich.markup import escape


class Reporter(Protocol):
    def stage(self, name: str, message: str) -> None: ...
    def detail(self, message: str) -> None: ...
    def output(self, line: str) -> None: ...


class ConsoleReporter:
    """Human progress on stderr. ``verbose`` streams command output as it comes."""

    def __init__(self, console: Console | None = None, *, verbose: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.verbose = verbose
        self._start = time.monotonic()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._start:6.1f}s"

    def stage(self, name: str, message: str) -> None:
        self.console.print(
            f"[dim]{self._elapsed()}[/] [bold cyan]{name:>8}[/] {escape(message)}",
            highlight=False,
        )

    def detail(self, message: str) -> None:
        self.console.print(f"[dim]{self._elapsed()}[/]          {escape(message)}",
                           highlight=False)

    def output(self, line: str) -> None:
        if self.verbose:
            self.console.print(f"[dim]         | {escape(line)}[/]", highlight=False)


class NullReporter:
    def stage(self, name: str, message: str) -> None:
        pass

    def detail(self, message: str) -> None:
        pass

    def output(self, line: str) -> None:
        pass
